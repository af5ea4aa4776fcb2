"""One run per checkpoint: an exclusive lock that a killed holder cannot leave behind.

The lock is `flock` on a file beside the checkpoint (`bulk-import.sqlite.lock`), which the
kernel releases when its holder exits, however it exits (`kill -9` included): a stale file never
blocks the next run. The file holds who took it (pid, host, start time, command) so that a
refused run, and `bulk status`, can name the holder. A run that ends removes the file (while
still holding it, so no other run can be holding a lock on a file that no longer has a name);
one that was killed leaves it, empty of meaning, for the next run to take. The checkpoint's own
SQLite locks are no substitute: they guard single transactions, not a run.
"""

from __future__ import annotations

import errno
import fcntl
import json
import os
import socket
from contextlib import suppress
from dataclasses import dataclass
from pathlib import Path
from types import TracebackType

from bulk.errors import CheckpointBusyError, CheckpointError
from bulk.schema import now_timestamp

LOCK_SUFFIX = ".lock"


@dataclass(frozen=True)
class Holder:
    """The process that holds a checkpoint."""

    pid: int | None
    host: str | None
    since: str | None
    command: str | None

    def describe(self) -> str:
        """`pid 4242 on build-7, since 2026-12-01T10:00:00.000Z (bulk import)`."""
        parts = [f"pid {self.pid}" if self.pid is not None else "an unknown process"]
        if self.host:
            parts.append(f"on {self.host}")
        text = " ".join(parts)
        if self.since:
            text += f", since {self.since}"
        if self.command:
            text += f" ({self.command})"
        return text


def lock_path(checkpoint: Path) -> Path:
    return checkpoint.with_name(checkpoint.name + LOCK_SUFFIX)


class CheckpointLock:
    """Held for the whole of one command's run on a checkpoint (a context manager)."""

    def __init__(self, checkpoint: Path, command: str) -> None:
        self.checkpoint = checkpoint
        self.path = lock_path(checkpoint)
        self.command = command
        self._fd: int | None = None

    def acquire(self) -> None:
        """Take the lock at once or raise `CheckpointBusyError` naming the holder."""
        while True:
            fd = self._open()
            try:
                fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
            except OSError as error:
                os.close(fd)
                if error.errno not in (errno.EWOULDBLOCK, errno.EACCES):
                    raise
                raise CheckpointBusyError(self.checkpoint, _read_holder(self.path)) from None
            if _still_named(fd, self.path):
                break
            os.close(fd)  # its holder removed that file as we opened it: take the new one
        self._fd = fd
        self._write_holder()

    def _open(self) -> int:
        try:
            self.path.parent.mkdir(parents=True, exist_ok=True)
            return os.open(self.path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as error:
            raise CheckpointError(
                f"Cannot create the lock file {self.path}: {error.strerror}.",
                "Make its folder writable, or pass another --checkpoint.",
            ) from error

    def release(self) -> None:
        if self._fd is None:
            return
        with suppress(OSError):  # still held: no other run can be using this file
            self.path.unlink()
        os.close(self._fd)  # closing releases the flock
        self._fd = None

    def _write_holder(self) -> None:
        assert self._fd is not None
        document = {
            "pid": os.getpid(),
            "host": socket.gethostname(),
            "since": now_timestamp(),
            "command": self.command,
        }
        os.ftruncate(self._fd, 0)
        os.pwrite(self._fd, json.dumps(document).encode(), 0)

    def __enter__(self) -> CheckpointLock:
        self.acquire()
        return self

    def __exit__(
        self,
        kind: type[BaseException] | None,
        error: BaseException | None,
        traceback: TracebackType | None,
    ) -> None:
        self.release()


def _still_named(fd: int, path: Path) -> bool:
    """Whether `path` still names the file open as `fd` (a releasing holder unlinks it)."""
    try:
        named = os.stat(path)
    except FileNotFoundError:
        return False
    held = os.fstat(fd)
    return (named.st_dev, named.st_ino) == (held.st_dev, held.st_ino)


def current_holder(checkpoint: Path) -> Holder | None:
    """Who holds the checkpoint now, or None; never creates or changes a file."""
    path = lock_path(checkpoint)
    try:
        fd = os.open(path, os.O_RDONLY)
    except OSError:
        return None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_SH | fcntl.LOCK_NB)
        except OSError:
            return _read_holder(path)
        fcntl.flock(fd, fcntl.LOCK_UN)
        return None
    finally:
        os.close(fd)


def _read_holder(path: Path) -> Holder:
    try:
        document = json.loads(path.read_text(encoding="utf-8") or "{}")
    except (OSError, ValueError):
        document = {}
    if not isinstance(document, dict):
        document = {}
    pid = document.get("pid")
    return Holder(
        pid=pid if isinstance(pid, int) else None,
        host=_text(document.get("host")),
        since=_text(document.get("since")),
        command=_text(document.get("command")),
    )


def _text(value: object) -> str | None:
    return value if isinstance(value, str) and value else None
