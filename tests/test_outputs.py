"""Output paths are checked before anything is sent, and OS errors become one line."""

from __future__ import annotations

import errno
from pathlib import Path

import pytest

from bulk.errors import OutputError
from bulk.outputs import check_writable, output_error


def test_a_path_under_a_file_is_refused_with_a_remedy(tmp_path: Path) -> None:
    (tmp_path / "notes.txt").write_text("mine")
    errors = tmp_path / "notes.txt" / "errors.csv"
    with pytest.raises(OutputError) as refused:
        check_writable([("errors file", errors)])
    assert str(refused.value) == (
        f"Cannot write the errors file {errors}: Not a directory. "
        "A part of the path is a file, not a folder: pass another path."
    )
    assert refused.value.exit_code == 2
    assert (tmp_path / "notes.txt").read_text() == "mine"


def test_checking_leaves_no_file_behind_and_truncates_nothing(tmp_path: Path) -> None:
    existing = tmp_path / "results.csv"
    existing.write_text("a,b\n1,2\n")
    new = tmp_path / "deep" / "er" / "errors.csv"
    check_writable([("results file", existing), ("errors file", new)])
    assert existing.read_text() == "a,b\n1,2\n"
    assert not new.exists()
    assert new.parent.is_dir()


def test_a_full_disk_says_to_free_space() -> None:
    error = OSError(errno.ENOSPC, "No space left on device")
    message = str(output_error("report", Path("out/report.json"), error))
    assert message == (
        "Cannot write the report out/report.json: No space left on device. "
        "Free some disk space there, then run the same command again."
    )
