"""`bulk export` never surprises: it refuses a folder holding files it did not write (unless
overwrite), runs alone on its checkpoint and leaves no lock file behind."""

from __future__ import annotations

import asyncio
import json
import os
import re
from pathlib import Path
from typing import Any

import aiohttp
import pytest
from helpers import create

from bulk.errors import CheckpointBusyError, OutputError
from bulk.exporting.exporter import run_export
from bulk.exporting.folder import own_files, refuse_foreign_files
from bulk.lock import CheckpointLock
from bulk.sandbox import Sandbox
from bulk.settings import ConnectionSettings, ExportSettings

KEY = "pivotal_acme"


def settings_for(sandbox: Sandbox | None, out_dir: Path, **options: Any) -> ExportSettings:
    base_url = sandbox.base_url if sandbox is not None else "http://127.0.0.1:9/api/v1"
    connection = ConnectionSettings(api_key=KEY, base_url=base_url)
    return ExportSettings(connection=connection, out_dir=out_dir, quiet=True, **options)


async def seed(http: aiohttp.ClientSession, sandbox: Sandbox, customers: int) -> None:
    await asyncio.gather(
        *(create(http, sandbox, "/customers", {"name": f"C{n}"}) for n in range(customers))
    )


async def test_any_file_the_export_did_not_write_refuses_the_folder_before_a_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    """SPEC: "refuses an OUT_DIR that holds files it did not write" — notes.txt too, though the
    export would not replace it: the folder is not the export's."""
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")

    with pytest.raises(OutputError) as refused:
        await run_export(settings_for(sandbox, out))

    assert str(refused.value).startswith(f"{out} holds files this export did not write: notes.txt.")
    assert "--overwrite" in str(refused.value)
    assert refused.value.exit_code == 2
    assert sandbox.stats.requests == 0
    assert sorted(p.name for p in out.iterdir()) == ["notes.txt"]  # not even a checkpoint


async def test_overwrite_replaces_the_exports_files_and_leaves_the_others(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await seed(http, sandbox, 2)
    out = tmp_path / "out"
    out.mkdir()
    (out / "notes.txt").write_text("mine\n")
    (out / "manifest.json").write_text('{"mine": true}\n')

    outcome = await run_export(settings_for(sandbox, out, overwrite=True))

    assert outcome.exit_code == 0, outcome.error
    assert (out / "notes.txt").read_text() == "mine\n"
    assert json.loads((out / "manifest.json").read_text())["counts"]["customers"] == 2


async def test_a_re_export_with_its_report_in_the_folder_proceeds_and_leaves_no_lock_file(
    sandbox: Sandbox, http: aiohttp.ClientSession, tmp_path: Path
) -> None:
    await seed(http, sandbox, 3)
    out = tmp_path / "out"
    settings = settings_for(sandbox, out, file_format="csv", report_path=out / "report.json")
    (await run_export(settings))
    (out / "report.json").write_text("{}\n")  # what the CLI writes there after the run

    again = await run_export(settings)

    assert again.exit_code == 0, again.error
    assert sorted(p.name for p in out.iterdir()) == [
        ".bulk-export.sqlite",
        "contacts.csv",
        "customers.csv",
        "manifest.json",
        "onboardings.csv",
        "report.json",
    ]


def test_a_folder_whose_merge_was_killed_is_still_the_exports(tmp_path: Path) -> None:
    """The manifest is written before the merge, naming the files the merge writes."""
    out = tmp_path / "out"
    out.mkdir()
    manifest = {
        "counts": None,
        "files": {"customers": "customers.parquet", "contacts": "contacts.parquet"},
        "tool": {"name": "bulk", "version": "0"},
    }
    (out / "manifest.json").write_text(json.dumps(manifest))
    for name in ("customers.parquet", "contacts.parquet.tmp", ".parts", ".bulk-export.sqlite"):
        (out / name).write_bytes(b"")
    (out / ".bulk-export.sqlite.lock").write_bytes(b"")  # left by a run killed with -9

    refuse_foreign_files(settings_for(None, out))  # no error

    assert {"customers.parquet", "contacts.parquet.tmp"} <= own_files(settings_for(None, out))


def test_a_checkpoint_kept_in_the_folder_under_another_name_is_the_exports(tmp_path: Path) -> None:
    out = tmp_path / "out"
    out.mkdir()
    for name in ("state.sqlite", "state.sqlite-wal", "state.sqlite-shm"):
        (out / name).write_bytes(b"")

    refuse_foreign_files(settings_for(None, out, checkpoint=out / "state.sqlite"))
    named = re.escape("state.sqlite, state.sqlite-shm, state.sqlite-wal")
    with pytest.raises(OutputError, match=named):
        refuse_foreign_files(settings_for(None, out, checkpoint=tmp_path / "elsewhere.sqlite"))


async def test_an_export_on_a_held_checkpoint_is_refused_before_a_request(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    settings = settings_for(sandbox, tmp_path / "out")
    with (
        CheckpointLock(settings.checkpoint_file, "bulk export"),
        pytest.raises(CheckpointBusyError, match=f"pid {os.getpid()}"),
    ):
        await run_export(settings)
    assert sandbox.stats.requests == 0
