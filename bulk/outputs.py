"""The files a run writes, checked before the first request, and OS errors told in one line.

A run that sends every row and then cannot write its errors file has lost the user's trust: so
every output path (checkpoint, errors, results, report) is checked writable before anything is
sent, by creating its folder and opening it for appending (nothing existing is truncated; a file
the check created is removed again). What the disk says later (full, read-only, permission)
becomes an `OutputError` with a remedy, never a traceback.
"""

from __future__ import annotations

import errno
import os
from collections.abc import Iterable
from pathlib import Path

from bulk.errors import OutputError

_REMEDIES = {
    errno.ENOSPC: "Free some disk space there, then run the same command again.",
    errno.EDQUOT: "Free some disk space there, then run the same command again.",
    errno.EROFS: "The file system is read-only: pass a path on a writable one.",
    errno.EACCES: "Make the folder writable for this user, or pass a path in one that is.",
    errno.EPERM: "Make the folder writable for this user, or pass a path in one that is.",
    errno.ENOTDIR: "A part of the path is a file, not a folder: pass another path.",
    errno.EISDIR: "That path is a folder: pass a file's path.",
}
_DEFAULT_REMEDY = "Pass a path in a writable folder."


def check_writable(outputs: Iterable[tuple[str, Path]]) -> None:
    """Raise `OutputError` for the first (label, path) that cannot be written."""
    for label, path in outputs:
        _check_one(label, path)


def _check_one(label: str, path: Path) -> None:
    existed = path.exists()
    try:
        _make_folder(path.parent)
        with path.open("ab"):
            pass
    except OSError as error:
        raise output_error(label, path, error) from error
    if not existed:
        path.unlink(missing_ok=True)


def _make_folder(folder: Path) -> None:
    try:
        folder.mkdir(parents=True, exist_ok=True)
    except FileExistsError:  # a file where a folder should be: say so, not "File exists"
        raise NotADirectoryError(errno.ENOTDIR, os.strerror(errno.ENOTDIR), str(folder)) from None


def output_error(label: str, path: Path, error: OSError) -> OutputError:
    """One line for an OS error on an output: what, where, why, and what to do."""
    reason = error.strerror or str(error)
    remedy = _REMEDIES.get(error.errno or 0, _DEFAULT_REMEDY)
    return OutputError(f"Cannot write the {label} {path}: {reason}.", remedy)
