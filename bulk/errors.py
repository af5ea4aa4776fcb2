"""Every error `bulk` raises on purpose, under one root.

    BulkError                      something the user can act on; the CLI prints one line
     ├── UsageError                bad options or configuration                    (exit 2)
     ├── InputError                a source file cannot be used: file, line, column (exit 2)
     ├── CheckpointError           the checkpoint cannot be opened or does not fit  (exit 2)
     │    └── CheckpointBusyError  another live process runs on this checkpoint     (exit 2)
     ├── OutputError               an output file cannot be written (disk, rights)  (exit 2)
     ├── SandboxError              the embedded sandbox could not start             (exit 2)
     ├── RunInterrupted            SIGINT or SIGTERM stopped the run             (exit 130/143)
     └── ApiError                  talking to the Pivotal API failed
          ├── RequestAbandoned     a stop was asked for while the request waited for a rate
          │                        slot or a retry (`sent`: whether an earlier attempt left)
          ├── NotTheApiError       the base URL answers, not as the API: a 404 on /me, an
          │                        HTML page (not retried)                          (exit 3)
          ├── ApiUnreachableError  no request gets any answer: the run stops        (exit 3)
          ├── NoResponseError      no usable answer: timeout, refused or dropped connection;
          │                        the request may or may not have taken effect (retryable)
          └── ApiStatusError       an answer with an error status, type, code and message
               ├── AuthenticationError   401: the key is missing, wrong or revoked  (exit 3)
               ├── RateLimitedError      429, with the server's Retry-After
               └── ServerError           5xx (retryable)

aiohttp's exceptions are translated into this tree in one place, `bulk.api.client`. Messages never
contain an API key. At the CLI boundary (`bulk.cli.reports_errors`) a `BulkError` is its message
and remedy on one line; an `OSError` is one line naming the file (exit 2); anything else is a bug
in bulk, one line too (exit 70); `BULK_DEBUG=1` shows the traceback instead.
"""

from __future__ import annotations

from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from bulk.lock import Holder

RESUME_HINT = "The checkpoint is saved; run the same command again to resume."


def as_sentence(error: BaseException) -> str:
    """The error's message ending in exactly one full stop, ready to be followed by more."""
    text = str(error).rstrip()
    return text if text.endswith((".", "!", "?")) else f"{text}."


class BulkError(Exception):
    """A failure with a message fit for the user and, where there is one, a remedy."""

    exit_code = 1

    def __init__(self, message: str, remedy: str | None = None) -> None:
        super().__init__(message)
        self.message = message
        self.remedy = remedy

    def __str__(self) -> str:
        return f"{self.message} {self.remedy}" if self.remedy else self.message


class UsageError(BulkError):
    exit_code = 2


class InputError(BulkError):
    """A source that cannot be read or used; `line` and `column` point at the culprit."""

    exit_code = 2

    def __init__(
        self,
        message: str,
        *,
        path: Path | None = None,
        line: int | None = None,
        column: str | None = None,
        remedy: str | None = None,
    ) -> None:
        location = ""
        if path is not None:
            location = path.name + (f" line {line}" if line is not None else "")
            location += f", column {column!r}" if column else ""
            location += ": "
        super().__init__(location + message, remedy)
        self.path = path
        self.line = line
        self.column = column


class CheckpointError(BulkError):
    exit_code = 2


class CheckpointBusyError(CheckpointError):
    """Another live process holds the checkpoint; `holder` says which."""

    def __init__(self, checkpoint: Path, holder: Holder) -> None:
        super().__init__(
            f"The checkpoint {checkpoint} is in use by another process: {holder.describe()}.",
            "Wait for that run to finish (bulk status shows its progress) or stop it, then run "
            "this command again; nothing was sent.",
        )
        self.checkpoint = checkpoint
        self.holder = holder


class OutputError(BulkError):
    exit_code = 2


class SandboxError(BulkError):
    exit_code = 2


class RunInterrupted(BulkError):
    """A signal stopped the run before it finished; the checkpoint is saved."""

    def __init__(self, exit_code: int) -> None:
        super().__init__("Interrupted.", RESUME_HINT)
        self.exit_code = exit_code


class ApiError(BulkError):
    """The API could not be used for a request."""

    attempts: int = 1
    """How many times the request was sent before this error was raised (set by the client)."""


class RequestAbandoned(ApiError):
    """A stop came while the request waited for a rate-limit slot or for its next retry."""

    def __init__(self, sent: bool) -> None:
        super().__init__("Stopped before the request was sent" if not sent else "Stopped retrying")
        self.sent = sent
        """Whether an earlier attempt left: its outcome is then unknown."""


class NotTheApiError(ApiError):
    """The base URL answers, but not as the Pivotal API (a 404 on `/me`, an HTML page)."""

    exit_code = 3


class ApiUnreachableError(ApiError):
    """Not one request gets an answer: the API as a whole is down or out of reach."""

    exit_code = 3


class NoResponseError(ApiError):
    """No usable answer (timeout, refused or dropped connection): the outcome is unknown."""

    exit_code = 3


class ApiStatusError(ApiError):
    """The API answered with an error: its status and the envelope's type, code and message."""

    def __init__(
        self,
        status: int,
        type: str,
        code: str,
        message: str,
        field: str | None = None,
        retry_after_s: float | None = None,
    ) -> None:
        super().__init__(f"{status} {code}: {message}")
        self.status = status
        self.type = type
        self.code = code
        self.api_message = message
        self.field = field
        self.retry_after_s = retry_after_s


class AuthenticationError(ApiStatusError):
    """401: its remedy (set by the client) names the option that gave the key, not a re-run."""

    exit_code = 3


class RateLimitedError(ApiStatusError):
    pass


class ServerError(ApiStatusError):
    pass
