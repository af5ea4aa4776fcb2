"""Peak memory of reading and planning big sources: narrow and wide CSV files, and a workbook.

Generates, in a temporary folder (or `--workdir`, kept for the next run):
- a narrow customers CSV of `--size-mb` MB (10 columns);
- a wide one of the same size, 1,000 columns (a CRM export: `external_id`, `name` and 998
  columns the import ignores, but reads);
- a workbook with a `customers` sheet of `--sheet-rows` rows (10 columns, numbers and dates).

Each file is then read, and separately planned into a checkpoint (what `bulk import` does before
its first request), in a fresh subprocess that prints its own peak RSS; planning's time is also
given per row. The figure to hold: any 200 MB source under ~500 MB. Before batches were sized by
bytes, the wide file peaked at 3.69 GB; before the planner kept its whole-source maps in
`KeyLines` (and polars read CSV in 4 MiB chunks), the narrow one planned in 738 MiB.

    python benchmarks/source_memory.py
    python benchmarks/source_memory.py --size-mb 50 --sheet-rows 100000 --workdir /tmp/sources
    python benchmarks/source_memory.py --windows   # also: the sheet loaded in row windows
"""

from __future__ import annotations

import argparse
import contextlib
import json
import resource
import subprocess
import sys
import tempfile
import time
from datetime import date, timedelta
from pathlib import Path

import polars as pl
from generate_customers import customers_frame

WIDE_COLUMNS = 1_000
NARROW_ROW_BYTES = 105
"""About what a generated customers row takes in CSV."""


def narrow_csv(path: Path, size_mb: int) -> Path:
    if not path.exists():
        customers_frame(size_mb * 1_000_000 // NARROW_ROW_BYTES).write_csv(path)
    return path


def wide_csv(path: Path, size_mb: int) -> Path:
    """`WIDE_COLUMNS` columns of short cells, as many rows as make `size_mb` MB."""
    if not path.exists():
        cell_bytes = 10
        rows = size_mb * 1_000_000 // (WIDE_COLUMNS * cell_bytes)
        number = pl.int_range(0, rows, eager=True).cast(pl.String).str.zfill(9)
        extra = {f"field_{n:03d}": "v" + number.str.slice(0, 8) for n in range(WIDE_COLUMNS - 2)}
        pl.DataFrame({"external_id": number, "name": "Customer " + number, **extra}).write_csv(path)
    return path


def workbook(path: Path, rows: int) -> Path:
    """A `customers` sheet as Excel writes one (xlsxwriter, constant memory)."""
    if path.exists():
        return path
    import xlsxwriter

    book = xlsxwriter.Workbook(str(path), {"constant_memory": True})
    sheet = book.add_worksheet("customers")
    day = book.add_format({"num_format": "yyyy-mm-dd"})
    sheet.write_row(
        0,
        0,
        ["external_id", "name", "domain", "mrr", "plan", "status", "owner_id", "notes",
         "metadata.signed_on", "metadata.vip"],
    )  # fmt: skip
    start = date(2025, 1, 1)
    for row in range(1, rows + 1):
        sheet.write_string(row, 0, f"{row:07d}")
        sheet.write_string(row, 1, f"Customer {row:07d}, Ltd.")
        sheet.write_string(row, 2, f"c{row}.example.com")
        sheet.write_number(row, 3, row % 10_000)
        sheet.write_string(row, 4, "growth")
        sheet.write_string(row, 5, "active")
        sheet.write_string(row, 6, f"usr_{row % 97}")
        sheet.write_string(row, 7, "Renewal call booked; prefers email over calls.")
        sheet.write_datetime(row, 8, start + timedelta(days=row % 700), day)
        sheet.write_boolean(row, 9, row % 2 == 0)
    book.close()
    return path


def child(mode: str, path: Path, source_format: str, workdir: Path) -> None:
    """In the subprocess: read (or plan) the file, print its seconds and peak RSS."""
    from bulk.checkpoint import Checkpoint
    from bulk.importing.planning import BATCH_ROWS, PlanOptions, open_sources, plan_import
    from bulk.importing.sources import SourceFile

    started = time.monotonic()
    options = PlanOptions()
    [opened] = open_sources([SourceFile("customers", path, source_format)], options)
    if mode == "read":
        for _ in opened.source.batches(BATCH_ROWS):
            pass
    else:
        checkpoint_path = workdir / f"{path.stem}.plan.sqlite"
        checkpoint_path.unlink(missing_ok=True)
        checkpoint = Checkpoint(checkpoint_path)
        plan_import(checkpoint, checkpoint.begin_run(), [opened], options)
        checkpoint.close()
        checkpoint_path.unlink(missing_ok=True)
    print(json.dumps({"seconds": time.monotonic() - started, "peak_mib": peak_mib()}))


def windows_child(path: Path, window: int) -> None:
    """The sheet loaded whole, or in windows of `window` rows (`skip_rows`/`n_rows`)."""
    import fastexcel

    started = time.monotonic()
    reader = fastexcel.read_excel(path)
    rows = 0
    if window == 0:
        rows = reader.load_sheet("customers", schema_sample_rows=None).to_polars().height
    else:
        offset = 1
        while True:
            part = reader.load_sheet(
                "customers", header_row=None, skip_rows=offset, n_rows=window
            ).to_polars()
            rows += part.height
            offset += window
            if part.height < window:  # the last window (a skip past the end raises)
                break
    print(json.dumps({"seconds": time.monotonic() - started, "peak_mib": peak_mib(), "rows": rows}))


def peak_mib() -> float:
    """This process's peak RSS. Not `ru_maxrss`: Linux carries it across fork and exec, so a
    child would report the parent's peak (here: generating the files) if that was higher."""
    with contextlib.suppress(OSError), open("/proc/self/status") as status:
        for line in status:
            if line.startswith("VmHWM:"):
                return int(line.split()[1]) / 1024
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024


def measure(*arguments: str) -> dict[str, float]:
    output = subprocess.run(
        [sys.executable, __file__, "--child", *arguments],
        check=True,
        capture_output=True,
        text=True,
    ).stdout
    result: dict[str, float] = json.loads(output.strip().splitlines()[-1])
    return result


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--size-mb", type=int, default=200)
    parser.add_argument("--sheet-rows", type=int, default=300_000)
    parser.add_argument("--workdir", type=Path, help="Keep the generated files here.")
    parser.add_argument("--windows", action="store_true", help="Also time row windows.")
    parser.add_argument("--child", nargs="+", help=argparse.SUPPRESS)
    options = parser.parse_args()
    if options.child:
        mode, *rest = options.child
        if mode == "windows":
            windows_child(Path(rest[0]), int(rest[1]))
        else:
            child(mode, Path(rest[0]), rest[1], Path(rest[2]))
        return
    with tempfile.TemporaryDirectory(prefix="bulk-sources-") as scratch:
        workdir = options.workdir or Path(scratch)
        workdir.mkdir(parents=True, exist_ok=True)
        files = [
            ("narrow CSV", narrow_csv(workdir / "narrow.csv", options.size_mb), "csv"),
            ("wide CSV", wide_csv(workdir / "wide.csv", options.size_mb), "csv"),
            ("workbook", workbook(workdir / "book.xlsx", options.sheet_rows), "spreadsheet"),
        ]
        print(f"{'source':<12} {'MB':>6} {'rows':>9}  {'read s':>7} {'read MiB':>9}  "
              f"{'plan s':>7} {'µs/row':>7} {'plan MiB':>9}")  # fmt: skip
        for label, path, source_format in files:
            rows = options.sheet_rows if source_format == "spreadsheet" else _csv_rows(path)
            read = measure("read", str(path), source_format, str(workdir))
            plan = measure("plan", str(path), source_format, str(workdir))
            print(
                f"{label:<12} {path.stat().st_size / 1e6:>6.0f} {rows:>9,}  "
                f"{read['seconds']:>7.1f} {read['peak_mib']:>9.0f}  "
                f"{plan['seconds']:>7.1f} {plan['seconds'] / rows * 1e6:>7.1f} "
                f"{plan['peak_mib']:>9.0f}"
            )
        if options.windows:
            book = files[2][1]
            for window in (0, 50_000):
                result = measure("windows", str(book), str(window))
                shown = "whole sheet" if window == 0 else f"windows of {window:,} rows"
                print(
                    f"workbook loaded as {shown}: {result['seconds']:.1f} s, "
                    f"{result['peak_mib']:.0f} MiB"
                )


def _csv_rows(path: Path) -> int:
    return int(pl.scan_csv(path, infer_schema=False).select(pl.len()).collect().item())


if __name__ == "__main__":
    main()
