"""The export's folder: which files in it the export wrote, and the refusal to clobber others.

An export into a folder that holds the user's own `customers.csv` would replace it without a
word, so before anything is sent the export refuses (exit 2) an OUT_DIR holding any file it did
not write, unless `--overwrite` (SPEC: "refuses an OUT_DIR that holds files it did not write").
Any such file refuses, even one the export would not replace (`notes.txt`): the folder is then
not the export's, and the user says so with `--overwrite` or picks another one.

The export's own files are told apart by name: the manifest (when it is `bulk`'s) lists the data
files, and the rest have fixed names — the parts folder, the checkpoint with its SQLite and lock
companions, and the `--report` file when it was put there. The manifest is written before the
merge too (without counts), so that a folder whose merge was killed is still known as the
export's.
"""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

from bulk.errors import OutputError
from bulk.lock import LOCK_SUFFIX
from bulk.settings import EXPORT_CHECKPOINT_NAME, ExportSettings

MANIFEST = "manifest.json"
PARTS_DIR = ".parts"
CHECKPOINT_COMPANIONS = ("", "-wal", "-shm", "-journal", LOCK_SUFFIX)
"""What SQLite and the lock put beside a checkpoint named N: N, N-wal, ..., N.lock."""
TEMPORARY_SUFFIX = ".tmp"
"""What a data file is called while the merge writes it."""
NAMED_IN_REFUSAL = 5


def refuse_foreign_files(settings: ExportSettings) -> None:
    """Raise `OutputError` if `out_dir` holds a file the export did not write (unless
    `settings.overwrite`)."""
    if settings.overwrite or not settings.out_dir.is_dir():
        return
    foreign = sorted(set(_entries(settings.out_dir)) - own_files(settings))
    if not foreign:
        return
    named = ", ".join(foreign[:NAMED_IN_REFUSAL])
    if len(foreign) > NAMED_IN_REFUSAL:
        named += f" and {len(foreign) - NAMED_IN_REFUSAL} more"
    raise OutputError(
        f"{settings.out_dir} holds files this export did not write: {named}.",
        "Export into another (new or empty) folder, or pass --overwrite to replace them "
        "(files the export does not write are left as they are).",
    )


def own_files(settings: ExportSettings) -> set[str]:
    """The names in `out_dir` that are the export's own."""
    names = {MANIFEST, PARTS_DIR, *_companions(EXPORT_CHECKPOINT_NAME)}
    checkpoint = settings.checkpoint_file
    if _is_in(checkpoint, settings.out_dir):
        names |= _companions(checkpoint.name)
    if settings.report_path is not None and _is_in(settings.report_path, settings.out_dir):
        names.add(settings.report_path.name)
    manifest = _bulk_manifest(settings.out_dir / MANIFEST)
    if manifest is None:
        names.discard(MANIFEST)  # somebody else's manifest.json
    else:
        for data_file in manifest_files(manifest):
            names |= {data_file, data_file + TEMPORARY_SUFFIX}
    return names


def manifest_files(manifest: dict[str, Any]) -> list[str]:
    """The data files a manifest lists (plain names: nothing outside the folder)."""
    files = manifest.get("files")
    if not isinstance(files, dict):
        return []
    return [name for name in files.values() if isinstance(name, str) and "/" not in name]


def _bulk_manifest(path: Path) -> dict[str, Any] | None:
    """The manifest at `path` if `bulk` wrote it, else None."""
    try:
        document = json.loads(path.read_text(encoding="utf-8"))
    except (OSError, ValueError):
        return None
    if not isinstance(document, dict):
        return None
    tool = document.get("tool")
    return document if isinstance(tool, dict) and tool.get("name") == "bulk" else None


def _companions(name: str) -> set[str]:
    return {name + suffix for suffix in CHECKPOINT_COMPANIONS}


def _entries(folder: Path) -> list[str]:
    return [entry.name for entry in folder.iterdir()]


def _is_in(path: Path, folder: Path) -> bool:
    return path.parent.resolve() == folder.resolve()
