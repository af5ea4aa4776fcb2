"""`bulk status` as a library: rows by state with the invalid ones, the live holder, an export's
progress as a table, the errors and results files written again; and never a changed file."""

from __future__ import annotations

import hashlib
import os
import socket
from pathlib import Path

import polars as pl
from safe_runs_support import bulk, connection, write_text

from bulk.checkpoint import Checkpoint
from bulk.exporting.state import ExportState
from bulk.lock import CheckpointLock
from bulk.sandbox import Sandbox
from bulk.status import describe_checkpoint, rewrite_reports


def files_of(folder: Path) -> dict[str, str]:
    return {
        path.name: hashlib.sha256(path.read_bytes()).hexdigest()
        for path in sorted(folder.iterdir())
        if path.is_file()
    }


def imported_with_an_invalid_row(sandbox: Sandbox, tmp_path: Path) -> Path:
    write_text(tmp_path / "customers.csv", "external_id,name,status\nK1,Kay,active\nK2,Bee,bad!\n")
    result = bulk("import", "--customers", "customers.csv", *connection(sandbox), "--quiet")
    assert result.exit_code == 1, result.output
    return tmp_path / "bulk-import.sqlite"


def test_status_counts_rows_by_state_and_the_invalid_ones_and_changes_nothing(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    checkpoint = imported_with_an_invalid_row(threaded_sandbox, tmp_path)
    before = files_of(tmp_path)

    text = describe_checkpoint(checkpoint)

    lines = text.splitlines()
    assert lines[0].split() == [
        "pass",
        "pending",
        "in_flight",
        "done",
        "failed",
        "skipped",
        "invalid",
    ]
    assert lines[1].split() == ["customers", "0", "0", "1", "0", "0", "1"]
    assert lines[-1] == "Not in use by a live process."
    assert files_of(tmp_path) == before


def test_status_names_the_live_process_holding_the_checkpoint(tmp_path: Path) -> None:
    path = tmp_path / "ck.sqlite"
    live = Checkpoint(path)
    live.begin_run()
    try:
        with CheckpointLock(path, "bulk import"):
            text = describe_checkpoint(path)
    finally:
        live.close()

    last = text.splitlines()[-1]
    assert last.startswith(f"In use by pid {os.getpid()} on {socket.gethostname()}, since ")
    assert last.endswith(" (bulk import).")


def test_status_of_an_export_is_a_table_of_its_progress(tmp_path: Path) -> None:
    path = tmp_path / "export.sqlite"
    checkpoint = Checkpoint(path)
    state = ExportState(file_format="csv", workspace="acme", contacts_walked=7)
    state.objects["customer"].rows, state.objects["customer"].parts = 250, 3
    state.warnings = ["2 or more onboardings share created_at X"]
    state.save(checkpoint)
    checkpoint.close()

    lines = describe_checkpoint(path).splitlines()

    assert lines[0] == "export of workspace 'acme': in progress (or stopped)"
    assert [line.split() for line in lines[1:5]] == [
        ["type", "rows", "parts"],
        ["customers", "250", "3"],
        ["contacts", "0", "0"],
        ["onboardings", "0", "0"],
    ]
    assert lines[5:] == [
        "contacts walked for 7 customers",
        "warning: 2 or more onboardings share created_at X",
        "Not in use by a live process.",
    ]


def test_rewrite_reports_writes_the_latest_runs_files_from_the_checkpoint_alone(
    threaded_sandbox: Sandbox, tmp_path: Path
) -> None:
    checkpoint = imported_with_an_invalid_row(threaded_sandbox, tmp_path)
    requests = threaded_sandbox.stats.requests

    written = rewrite_reports(checkpoint, tmp_path / "out" / "E.csv", tmp_path / "R.csv")

    assert written == [tmp_path / "out" / "E.csv", tmp_path / "R.csv"]
    assert pl.read_csv(written[0], infer_schema=False)["external_id"].to_list() == ["K2"]
    results = pl.read_csv(written[1], infer_schema=False)
    assert dict(zip(results["external_id"], results["action"], strict=True)) == {
        "K1": "created",
        "K2": "invalid",
    }
    assert rewrite_reports(checkpoint, None, tmp_path / "only.csv") == [tmp_path / "only.csv"]
    assert threaded_sandbox.stats.requests == requests


def test_rewrite_reports_of_a_checkpoint_without_a_run_writes_nothing(tmp_path: Path) -> None:
    Checkpoint(tmp_path / "ck.sqlite").close()
    assert rewrite_reports(tmp_path / "ck.sqlite", tmp_path / "E.csv", tmp_path / "R.csv") == []
    assert not (tmp_path / "E.csv").exists()
