"""Every error `bulk` raises on purpose, under one root.

    BulkError                    something the user can act on; the CLI prints one line
     ├── UsageError              bad options or configuration (exit 2)
     └── SandboxError            the embedded sandbox could not start

The importer's input, API and checkpoint errors join this tree as those parts land.
"""

from __future__ import annotations


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


class SandboxError(BulkError):
    exit_code = 2
