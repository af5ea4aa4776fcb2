"""The `bulk` command: parses options, calls one library function, prints the result."""

from __future__ import annotations

import os
import sys
from collections.abc import Callable
from functools import wraps
from pathlib import Path
from typing import Any, TypeVar

import click

from bulk import __version__
from bulk.errors import BulkError, SandboxError
from bulk.sandbox import EXAMPLE_KEY, Sandbox, SandboxConfig, serve_forever
from bulk.sandbox.config import DEFAULT_HOST, DEFAULT_PORT, LIVE_RATE_LIMIT, RATE_WINDOW_S, TEST_RATE_LIMIT

F = TypeVar("F", bound=Callable[..., Any])


def reports_errors(command: F) -> F:
    """Turn a `BulkError` into one line on stderr and its exit code (`BULK_DEBUG=1` re-raises)."""

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except BulkError as error:
            if os.environ.get("BULK_DEBUG"):
                raise
            click.echo(f"Error: {error}", err=True)
            sys.exit(error.exit_code)

    return wrapper  # type: ignore[return-value]


@click.group()
@click.version_option(__version__, prog_name="bulk")
def main() -> None:
    """Move data in and out of the Pivotal API in bulk."""


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option("--port", default=DEFAULT_PORT, show_default=True, type=click.IntRange(0, 65535),
              help="Port to listen on (0 picks a free one).")
@click.option("--db", "db_path", type=click.Path(dir_okay=False, path_type=Path),
              help="SQLite file that keeps the data across restarts (default: in memory).")
@click.option("--rate-limit", default=LIVE_RATE_LIMIT, show_default=True, type=click.IntRange(min=0),
              help="Requests per window for a live key; 0 turns rate limiting off.")
@click.option("--test-rate-limit", default=TEST_RATE_LIMIT, show_default=True,
              type=click.IntRange(min=0), help="Requests per window for a test key; 0 is off.")
@click.option("--rate-window", "window_s", default=RATE_WINDOW_S, show_default=True,
              type=click.FloatRange(min=0.1), help="Length of the sliding rate-limit window, in seconds.")
@click.option("--latency-ms", default=0.0, show_default=True, type=click.FloatRange(min=0),
              help="Delay added to every API request.")
@click.option("--fault-rate", default=0.0, show_default=True, type=click.FloatRange(0, 1),
              help="Share of requests that fail with a 500 or a dropped connection.")
@click.option("--fault-seed", type=int, help="Seed for reproducible faults.")
@click.option("--revoke-key", "revoked_keys", multiple=True, metavar="KEY",
              help="Answer this key with 401 api_key_revoked (repeatable).")
@reports_errors
def sandbox(revoked_keys: tuple[str, ...], **options: Any) -> None:
    """Serve a local Pivotal API on loopback, with SQLite storage."""
    config = SandboxConfig(revoked_keys=frozenset(revoked_keys), **options)
    try:
        serve_forever(config, _announce_sandbox)
    except OSError as error:
        raise SandboxError(
            f"Cannot listen on {config.host}:{config.port}: {error.strerror}.",
            "Pass another --port, or 0 for a free one.",
        ) from error


def _announce_sandbox(sandbox: Sandbox) -> None:
    click.echo(f"Pivotal sandbox listening on {sandbox.base_url}")
    click.echo(f"Example key: {EXAMPLE_KEY} (any pivotal_<workspace> or pivotal_test_<workspace> works)")
    click.echo(f"Try: curl -H 'Authorization: Bearer {EXAMPLE_KEY}' {sandbox.base_url}/customers")
    click.echo("Press Ctrl-C to stop.")
