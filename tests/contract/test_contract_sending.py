"""What a pass guarantees about each request it sends, seen from the server's side.

The server is the plain contract server: each request, as it arrives, is looked up in the
checkpoint through a second, read-only connection, which sees only what was committed.
"""

from __future__ import annotations

import sqlite3
from pathlib import Path

from server import Canned, ContractServer, Seen

from bulk.importing.importer import run_import
from bulk.settings import ConnectionSettings, ImportSettings

KEY = "pivotal_acme"


def committed_request(checkpoint: Path, body: bytes) -> tuple[str, str, str] | None:
    """(key, state, path) of the row whose recorded request is exactly `body`, as committed."""
    with sqlite3.connect(f"{checkpoint.as_uri()}?mode=ro", uri=True) as db:
        found = db.execute(
            "SELECT key, state, request_path FROM rows WHERE CAST(request_body AS BLOB) = ?",
            (body,),
        ).fetchall()
    return found[0] if len(found) == 1 else None


async def test_every_request_is_in_flight_and_committed_with_its_exact_bytes_before_it_arrives(
    contract: ContractServer, tmp_path: Path
) -> None:
    """Rows are claimed a batch at a time under one commit: none may leave before that commit."""
    source = tmp_path / "customers.csv"
    lines = [f"C{n:03d},Company {n},c{n}.example.com" for n in range(30)]
    source.write_text("external_id,name,domain\n" + "\n".join(lines) + "\n")
    contract.route("GET", "/me", Canned(200, "me.json"))
    contract.route("POST", "/customers", Canned(201, "customer.json"))
    checkpoint = tmp_path / "ck.sqlite"
    found_on_arrival: list[tuple[str, str, str] | None] = []

    def look_up(seen: Seen) -> None:
        if seen.method == "POST":
            found_on_arrival.append(committed_request(checkpoint, seen.body))

    contract.on_arrival = look_up
    settings = ImportSettings(
        connection=ConnectionSettings(api_key=KEY, base_url=contract.base_url, concurrency=4),
        files={"customers": source},
        checkpoint=checkpoint,
        quiet=True,
    )

    outcome = await run_import(settings)

    assert outcome.exit_code == 0
    assert len(found_on_arrival) == 30
    assert sorted(f[0] for f in found_on_arrival if f is not None) == [
        f"C{n:03d}" for n in range(30)
    ]
    assert {(f[1], f[2]) for f in found_on_arrival if f is not None} == {
        ("in_flight", "/customers")
    }
