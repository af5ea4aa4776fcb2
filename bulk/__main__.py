"""`python -m bulk` and the `bulk` console script.

The CLI is imported inside `main`, not above it: loading click, aiohttp and the sandbox takes a
moment, and a Ctrl-C in that moment must exit 130 without a traceback, as it does once a command
runs (`bulk.cli.reports_errors`).
"""

from __future__ import annotations

import signal
import sys

INTERRUPTED_EXIT_CODE = 128 + signal.SIGINT
"""What a shell reports for a process ended by Ctrl-C, as `bulk.interrupts.exit_code_for`."""


def main() -> None:
    """Run the `bulk` command line."""
    try:
        from bulk.cli import main as command_line
    except KeyboardInterrupt:
        sys.exit(INTERRUPTED_EXIT_CODE)
    command_line()


if __name__ == "__main__":
    main()
