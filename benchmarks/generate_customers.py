"""Write a customers CSV of any size in the import format, fast, for the import benchmarks.

python benchmarks/generate_customers.py 1000000 /tmp/customers.csv
"""

from __future__ import annotations

import sys
from pathlib import Path

import polars as pl

STATUSES = ["onboarding", "active", "at_risk", "churned", "archived"]
PLANS = ["free", "starter", "growth", "scale", "enterprise"]


def customers_frame(count: int, prefix: str = "") -> pl.DataFrame:
    """`count` valid customers with leading-zero ids, unique names, tags and metadata columns."""
    index = pl.int_range(0, count, eager=True)
    number = index.cast(pl.String).str.zfill(9)
    return pl.DataFrame(
        {
            "external_id": prefix + number,
            "name": "Customer " + prefix + number + ", Ltd.",
            "domain": "c" + number + ".example.com",
            "status": pl.Series(STATUSES).gather(index % len(STATUSES)),
            "plan": pl.Series(PLANS).gather(index % len(PLANS)),
            "mrr": (index * 7 % 10_000).cast(pl.String),
            "owner_id": "usr_" + (index % 97).cast(pl.String),
            "tags": pl.Series(["beta;emea", "partner", "", "renewal-q3;beta"]).gather(index % 4),
            "metadata.region": pl.Series(["emea", "amer", "apac"]).gather(index % 3),
            "metadata.segment": pl.Series(["smb", "mid-market", "enterprise"]).gather(index % 3),
        }
    ).with_columns(pl.col("tags").replace("", None))


def write_customers(count: int, path: Path, prefix: str = "") -> Path:
    path.parent.mkdir(parents=True, exist_ok=True)
    customers_frame(count, prefix).write_csv(path)
    return path


if __name__ == "__main__":
    write_customers(int(sys.argv[1]), Path(sys.argv[2]))
