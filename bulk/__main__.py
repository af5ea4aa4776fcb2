"""`python -m bulk` and the `bulk` console script.

The CLI is imported inside `main`, not above it: loading click, aiohttp and the sandbox takes a
moment, and a Ctrl-C in that moment must exit 130 without a traceback, as it does once a command
runs (`bulk.cli.reports_errors`).

Once the command has finished, the process ends without the interpreter's teardown: every file
is closed by then, and freeing a run's objects and polars's and aiohttp's modules one by one took
0.2 s that the user waited for after the summary.
"""

from __future__ import annotations

import logging
import os
import signal
import sys
from contextlib import suppress

INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT
"""What a shell reports for a process ended by Ctrl-C, as `bulk.interrupts.exit_code_for`."""


def main() -> None:
    """Run the `bulk` command line."""
    try:
        from bulk.cli import main as command_line
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT_CODE)
    try:
        command_line()
    except SystemExit as finished:
        exit_now(finished.code)
    exit_now(0)


def exit_now(code: object) -> None:
    """End the process with `code`, as `sys.exit` would, once output is flushed: no module
    teardown or garbage collection (nothing is left to close: commands close their files)."""
    if code is not None and not isinstance(code, int):
        print(code, file=sys.stderr)  # what the interpreter does with a `sys.exit("text")`
        code = 1
    logging.shutdown()
    for stream in (sys.stdout, sys.stderr):
        with suppress(OSError, ValueError):  # a closed pipe (`bulk status | head`)
            stream.flush()
    os._exit(code or 0)


if __name__ == "__main__":
    main()
