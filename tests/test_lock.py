"""One run per checkpoint: the lock refuses a second holder at once and survives `kill -9`."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest

from bulk.errors import CheckpointBusyError
from bulk.lock import CheckpointLock, current_holder, lock_path

HOLD = """
import sys, time
from pathlib import Path
from bulk.lock import CheckpointLock
lock = CheckpointLock(Path(sys.argv[1]), "bulk import")
lock.acquire()
print("held", flush=True)
time.sleep(60)
"""


def hold_in_subprocess(checkpoint: Path) -> subprocess.Popen[str]:
    process = subprocess.Popen(
        [sys.executable, "-c", HOLD, str(checkpoint)], stdout=subprocess.PIPE, text=True
    )
    assert process.stdout is not None
    assert process.stdout.readline().strip() == "held"
    return process


def test_a_second_lock_on_one_checkpoint_is_refused_naming_the_holder(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bulk-import.sqlite"
    with (
        CheckpointLock(checkpoint, "bulk import"),
        pytest.raises(CheckpointBusyError) as refused,
    ):
        CheckpointLock(checkpoint, "bulk undo").acquire()
    holder = refused.value.holder
    assert holder.pid == os.getpid()
    assert holder.command == "bulk import"
    assert holder.host and holder.since and holder.since.endswith("Z")
    assert refused.value.exit_code == 2
    message = str(refused.value)
    assert message.startswith(f"The checkpoint {checkpoint} is in use by another process: pid ")
    assert "nothing was sent." in message


def test_a_released_lock_can_be_taken_again_and_names_nobody(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bulk-import.sqlite"
    with CheckpointLock(checkpoint, "bulk import"):
        assert current_holder(checkpoint) is not None
    assert current_holder(checkpoint) is None
    assert not lock_path(checkpoint).exists()  # a run that ends leaves no file behind
    with CheckpointLock(checkpoint, "bulk import"):
        pass


def test_a_holder_killed_with_sigkill_does_not_block_the_next_run(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bulk-import.sqlite"
    process = hold_in_subprocess(checkpoint)
    try:
        holder = current_holder(checkpoint)
        assert holder is not None and holder.pid == process.pid
        with pytest.raises(CheckpointBusyError):
            CheckpointLock(checkpoint, "bulk import").acquire()
    finally:
        process.send_signal(signal.SIGKILL)
        process.wait()
    assert '"pid"' in lock_path(checkpoint).read_text()  # the stale file is still there...
    assert current_holder(checkpoint) is None  # ...and names nobody
    started = time.monotonic()
    with CheckpointLock(checkpoint, "bulk import"):
        assert time.monotonic() - started < 1.0


def test_asking_who_holds_a_checkpoint_creates_no_file(tmp_path: Path) -> None:
    checkpoint = tmp_path / "bulk-import.sqlite"
    assert current_holder(checkpoint) is None
    assert list(tmp_path.iterdir()) == []


def test_a_lock_for_a_checkpoint_in_a_folder_not_made_yet_makes_the_folder(tmp_path: Path) -> None:
    checkpoint = tmp_path / "state" / "nightly.sqlite"
    with CheckpointLock(checkpoint, "bulk import"):
        assert lock_path(checkpoint).exists()
    assert sorted(p.name for p in checkpoint.parent.iterdir()) == []


def test_a_file_removed_by_a_releasing_holder_is_not_taken(tmp_path: Path) -> None:
    """Between opening the lock file and locking it, its holder may release (and unlink) it:
    the lock then re-opens by name, so two runs never hold locks on two different files."""
    checkpoint = tmp_path / "bulk-import.sqlite"
    first = CheckpointLock(checkpoint, "bulk import")
    second = CheckpointLock(checkpoint, "bulk import")
    opened = second._open()
    first.acquire()
    first.release()  # unlinks the file `opened` refers to
    original_open = second._open
    calls = [opened]

    def open_again() -> int:
        return calls.pop() if calls else original_open()

    second._open = open_again  # type: ignore[method-assign]
    second.acquire()
    try:
        assert current_holder(checkpoint) is not None  # the file by that name is the held one
    finally:
        second.release()
