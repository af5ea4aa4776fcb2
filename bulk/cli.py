"""The `bulk` command: parses options, calls one library function, prints the result."""

from __future__ import annotations

import asyncio
import os
import signal
import sys
from collections.abc import Callable
from dataclasses import fields
from functools import wraps
from pathlib import Path
from typing import TYPE_CHECKING, Any, Protocol, TypeVar

import click
from click.core import ParameterSource

from bulk._version import __version__
from bulk.errors import BulkError, OutputError, SandboxError, UsageError
from bulk.event_loop import run_to_end
from bulk.interrupts import exit_code_for
from bulk.outputs import output_error
from bulk.sandbox.config import (
    DEFAULT_HOST,
    DEFAULT_PORT,
    LIVE_RATE_LIMIT,
    RATE_WINDOW_S,
    TEST_RATE_LIMIT,
)
from bulk.settings import (
    DEFAULT_BASE_URL,
    DEFAULT_CHECKPOINT,
    DEFAULT_CONCURRENCY,
    DEFAULT_EXPORT_FORMAT,
    DEFAULT_HEADROOM_PERCENT,
    DEFAULT_PART_ROWS,
    DEFAULT_SANDBOX_DB,
    DEFAULT_TIMEOUT_S,
    EXPORT_CHECKPOINT_NAME,
    EXPORT_FORMATS,
    PASSES,
    ConnectionNames,
    ConnectionSettings,
    ExportSettings,
    ImportSettings,
    MigrateSettings,
    UndoSettings,
)

if TYPE_CHECKING:
    from bulk.sandbox import Sandbox

F = TypeVar("F", bound=Callable[..., Any])


BUG_EXIT_CODE = 70
"""An exception bulk did not expect (EX_SOFTWARE), kept apart from 1, "some rows failed"."""
INTERRUPTED_EXIT_CODE = exit_code_for(signal.SIGINT)
DEBUG_VARIABLE = "BULK_DEBUG"
CLICK_EXCEPTIONS = (click.ClickException, click.exceptions.Exit, click.Abort)
"""What click raises inside a command to print usage or exit: it handles them itself."""


def reports_errors(command: F) -> F:
    """The CLI boundary: whatever escapes a command is one line on stderr and an exit code.

    A `BulkError` is its message and remedy; an `OSError` names the file and what to do; any
    other exception is a bug, said so in one line. Ctrl-C exits 130. `BULK_DEBUG=1` re-raises
    for the traceback. Every command carries this decorator (tests/test_cli_boundary.py checks).
    """

    @wraps(command)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return command(*args, **kwargs)
        except CLICK_EXCEPTIONS:
            raise
        except (KeyboardInterrupt, asyncio.CancelledError):
            if debugging():
                raise
            click.echo("Interrupted.", err=True)
            sys.exit(INTERRUPTED_EXIT_CODE)
        except Exception as error:
            if debugging():
                raise
            line, exit_code = one_line(error)
            click.echo(f"Error: {_without_keys(line, kwargs)}", err=True)
            sys.exit(exit_code)

    wrapper.reports_errors = True  # type: ignore[attr-defined]
    return wrapper  # type: ignore[return-value]


def _without_keys(line: str, options: dict[str, Any]) -> str:
    """The line with any API key among the command's options masked: an unexpected exception's
    text was never checked for one, and the key must never reach the output."""
    for name, value in options.items():
        if name.endswith("key") and isinstance(value, str) and value:
            line = line.replace(value, "***")
    return line


def debugging() -> bool:
    """`BULK_DEBUG=1` (any value but empty or 0): tracebacks instead of one-line errors."""
    return os.environ.get(DEBUG_VARIABLE, "") not in ("", "0")


def one_line(error: Exception) -> tuple[str, int]:
    """What the user reads for `error`, and the exit code."""
    if isinstance(error, BulkError):
        return str(error), error.exit_code
    if isinstance(error, OSError) and error.filename is not None:
        return str(output_error("file", Path(os.fsdecode(error.filename)), error)), (
            OutputError.exit_code
        )
    return (
        f"{type(error).__name__}: {as_text(error)}. This is a bug in bulk; "
        f"set {DEBUG_VARIABLE}=1 for the traceback.",
        BUG_EXIT_CODE,
    )


def as_text(error: Exception) -> str:
    """The exception's message on one line, without its final full stop."""
    text = " ".join(str(error).split()).rstrip(".")
    return text or "no message"


API_SETTINGS = ("api_key", "base_url")
CONTEXT_SETTINGS: dict[str, Any] = {"help_option_names": ["-h", "--help"]}
"""`-h` works as `--help` on the group and, inherited, on every command."""

DECLARED_SETTINGS = ("names",)
"""`ConnectionSettings` fields that no option sets: the CLI fills them from the declarations."""
PACING_OPTIONS = tuple(
    setting.name
    for setting in fields(ConnectionSettings)
    if setting.name not in (*API_SETTINGS, *DECLARED_SETTINGS)
)
"""The parameters `pacing_options` declares: every `ConnectionSettings` field but key, URL and
the names of their options."""


def option_group(*options: Callable[[F], F]) -> Callable[[F], F]:
    """Options declared once and stacked on each command, in the order given."""

    def decorate(command: F) -> F:
        for option in reversed(options):
            command = option(command)
        return command

    return decorate


api_options = option_group(
    click.option(
        "--api-key",
        envvar="PIVOTAL_API_KEY",
        show_envvar=True,
        help="Pivotal API key (required unless --sandbox).",
    ),
    click.option(
        "--base-url",
        envvar="PIVOTAL_BASE_URL",
        show_envvar=True,
        default=DEFAULT_BASE_URL,
        show_default=True,
        help="Base URL of the Pivotal API.",
    ),
)
"""Which API and key (SPEC: Connection); `bulk migrate` has a pair for each workspace."""

pacing_options = option_group(
    click.option(
        "--sandbox",
        is_flag=True,
        help="Start the embedded sandbox on a free loopback port and use it.",
    ),
    click.option(
        "--sandbox-db",
        type=click.Path(dir_okay=False, path_type=Path),
        default=DEFAULT_SANDBOX_DB,
        show_default=True,
        help="Where the embedded sandbox keeps its data.",
    ),
    click.option(
        "--concurrency",
        type=click.IntRange(1, 64),
        default=DEFAULT_CONCURRENCY,
        show_default=True,
        help="Requests in flight.",
    ),
    click.option(
        "--rate-limit",
        type=click.IntRange(min=1),
        help="Requests/min ceiling per key (default: learned from X-RateLimit-Limit).",
    ),
    click.option(
        "--headroom",
        "headroom_percent",
        type=click.FloatRange(0, 90),
        default=DEFAULT_HEADROOM_PERCENT,
        show_default=True,
        metavar="PERCENT",
        help="Share of the rate window left free while another client uses the same key "
        "(0 takes everything).",
    ),
    click.option(
        "--timeout",
        "timeout_s",
        type=click.FloatRange(min=0.1),
        default=DEFAULT_TIMEOUT_S,
        show_default=True,
        help="Seconds per request.",
    ),
)
"""The sandbox and how hard to push the API: shared by every command that talks to it."""

connection_options = option_group(api_options, pacing_options)
"""The options of a command that talks to one API (SPEC: Connection)."""

output_options = option_group(
    click.option(
        "--report",
        "report_path",
        type=click.Path(dir_okay=False, path_type=Path),
        help="Write the summary as JSON here.",
    ),
    click.option("--quiet", is_flag=True, help="No progress bars."),
)
"""What a command prints besides its summary: the JSON report, and no progress bars."""


def row_files_options(errors_help: str, results_help: str) -> Callable[[F], F]:
    """`--errors PATH` and `--results PATH`: where the rows' CSV files go (import, status)."""
    return option_group(
        click.option(
            "--errors",
            "errors_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help=errors_help,
        ),
        click.option(
            "--results",
            "results_path",
            type=click.Path(dir_okay=False, path_type=Path),
            help=results_help,
        ),
    )


class CommandOutcome(Protocol):
    exit_code: int
    warnings: list[str]
    error: str | None

    def render(self) -> str: ...

    def to_json(self) -> dict[str, Any]: ...


def conclude(outcome: CommandOutcome, report_path: Path | None) -> None:
    """Warnings and the error on stderr, the summary on stdout, the JSON report; then exit."""
    from bulk.importing.reports import write_report

    for warning in outcome.warnings:
        click.echo(f"Warning: {warning}", err=True)
    click.echo(outcome.render())
    if outcome.error:
        click.echo(f"Error: {outcome.error}", err=True)
    if report_path is not None:
        try:
            write_report(report_path, outcome.to_json())
        except OSError as error:
            click.echo(f"Error: {output_error('report', report_path, error)}", err=True)
            sys.exit(outcome.exit_code or OutputError.exit_code)
    sys.exit(outcome.exit_code)


def _pacing(options: dict[str, Any]) -> dict[str, Any]:
    """Pop the `pacing_options`: the `ConnectionSettings` fields besides key and URL."""
    return {name: options.pop(name) for name in PACING_OPTIONS}


def _connection(options: dict[str, Any]) -> ConnectionSettings:
    _refuse_sandbox_with_url(options, "base_url")
    return ConnectionSettings(
        api_key=options.pop("api_key"),
        base_url=options.pop("base_url"),
        names=_names("api_key", "base_url"),
        **_pacing(options),
    )


def _names(key: str, url: str) -> ConnectionNames:
    """The options (and variables) that set this key and URL, as the command declares them."""
    return ConnectionNames(*_declared(key), *_declared(url))


def _declared(name: str) -> tuple[str, str | None]:
    """The current command's option for parameter `name`, and its environment variable."""
    param = next(p for p in click.get_current_context().command.params if p.name == name)
    return param.opts[0], param.envvar if isinstance(param.envvar, str) else None


def _refuse_sandbox_with_url(options: dict[str, Any], *urls: str) -> None:
    """`--sandbox` starts its own API: a URL given as well would be ignored, so refuse it."""
    if not options.get("sandbox"):
        return
    context = click.get_current_context()
    for name in urls:
        source = context.get_parameter_source(name)
        option, envvar = _declared(name)
        if source == ParameterSource.COMMANDLINE:
            raise UsageError(
                f"--sandbox starts its own API: it cannot be used with {option}.",
                "Drop one of the two.",
            )
        if source == ParameterSource.ENVIRONMENT:
            raise UsageError(
                f"--sandbox starts its own API: it cannot be used with {option}, "
                f"set here by {envvar}.",
                f"Unset {envvar}, or drop --sandbox.",
            )


@click.group(context_settings=CONTEXT_SETTINGS)
@click.version_option(__version__, prog_name="bulk")
def main() -> None:
    """Move data in and out of the Pivotal API in bulk."""


@main.command()
@click.option("--host", default=DEFAULT_HOST, show_default=True, help="Address to listen on.")
@click.option(
    "--port",
    default=DEFAULT_PORT,
    show_default=True,
    type=click.IntRange(0, 65535),
    help="Port to listen on (0 picks a free one).",
)
@click.option(
    "--db",
    "db_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="SQLite file that keeps the data across restarts (default: in memory).",
)
@click.option(
    "--rate-limit",
    default=LIVE_RATE_LIMIT,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests per window for a live key; 0 turns rate limiting off.",
)
@click.option(
    "--test-rate-limit",
    default=TEST_RATE_LIMIT,
    show_default=True,
    type=click.IntRange(min=0),
    help="Requests per window for a test key; 0 is off.",
)
@click.option(
    "--rate-window",
    "window_s",
    default=RATE_WINDOW_S,
    show_default=True,
    type=click.FloatRange(min=0.1),
    help="Length of the sliding rate-limit window, in seconds.",
)
@click.option(
    "--latency-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Delay added to every API request.",
)
@click.option(
    "--latency-jitter-ms",
    default=0.0,
    show_default=True,
    type=click.FloatRange(min=0),
    help="Up to this much more delay, drawn anew for each request.",
)
@click.option(
    "--fault-rate",
    default=0.0,
    show_default=True,
    type=click.FloatRange(0, 1),
    help="Share of requests that fail with a 500 or a dropped connection.",
)
@click.option("--fault-seed", type=int, help="Seed for reproducible faults.")
@click.option(
    "--extra-fields",
    is_flag=True,
    help="Act as a newer API: objects carry fields and enum values this tool does not know.",
)
@click.option(
    "--revoke-key",
    "revoked_keys",
    multiple=True,
    metavar="KEY",
    help="Answer this key with 401 api_key_revoked (repeatable).",
)
@reports_errors
def sandbox(revoked_keys: tuple[str, ...], **options: Any) -> None:
    """Serve a local Pivotal API on loopback, with SQLite storage."""
    from bulk.sandbox import SandboxConfig, serve_forever

    config = SandboxConfig(revoked_keys=frozenset(revoked_keys), **options)
    try:
        serve_forever(config, _announce_sandbox)
    except OSError as error:
        raise SandboxError(
            f"Cannot listen on {config.host}:{config.port}: {error.strerror}.",
            "Pass another --port, or 0 for a free one.",
        ) from error


def _announce_sandbox(sandbox: Sandbox) -> None:
    from bulk.sandbox import EXAMPLE_KEY

    click.echo(f"Pivotal sandbox listening on {sandbox.base_url}")
    click.echo(
        f"Example key: {EXAMPLE_KEY} (any pivotal_<workspace> or pivotal_test_<workspace> works)"
    )
    click.echo(f"Try: curl -H 'Authorization: Bearer {EXAMPLE_KEY}' {sandbox.base_url}/customers")
    click.echo("Press Ctrl-C to stop.")


@main.command("import")
@click.argument("sources", nargs=-1, type=click.Path(path_type=Path))
@click.option(
    "--customers", type=click.Path(path_type=Path), help="Customers file (or FILE#SHEET)."
)
@click.option("--contacts", type=click.Path(path_type=Path), help="Contacts file (or FILE#SHEET).")
@click.option(
    "--onboardings", type=click.Path(path_type=Path), help="Onboardings file (or FILE#SHEET)."
)
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    default=DEFAULT_CHECKPOINT,
    show_default=True,
    help="The resumable state (the API key is never stored).",
)
@click.option("--dry-run", is_flag=True, help="Validate and print the plan; send no write.")
@click.option("--strict", is_flag=True, help="Send nothing if any row is invalid.")
@row_files_options(
    "Errors CSV (default: <checkpoint>.errors.csv).",
    "Results CSV (default: <checkpoint>.results.csv).",
)
@click.option(
    "--passes",
    default=",".join(PASSES),
    show_default=True,
    help="Which passes to run, comma-separated.",
)
@click.option(
    "--map",
    "maps",
    multiple=True,
    metavar="FIELD=COLUMN",
    help="Read [PASS.]FIELD from COLUMN or from a template like '{First} {Last}' (repeatable).",
)
@click.option(
    "--map-file",
    type=click.Path(dir_okay=False, path_type=Path),
    help="TOML file of maps, one table per pass; --map overrides it.",
)
@click.option("--encoding", help="Source encoding when not UTF-8, e.g. cp1252.")
@click.option(
    "--delimiter",
    help="CSV delimiter: one character, or tab (default: detected from the header).",
)
@click.option("--force", is_flag=True, help="Re-send rows already done and unchanged.")
@output_options
@connection_options
@reports_errors
def import_command(sources: tuple[Path, ...], **options: Any) -> None:
    """Import customers, contacts and onboardings from CSV, spreadsheet or Parquet files."""
    from bulk.importing.importer import run_import
    from bulk.progress import ProgressFactory

    connection = _connection(options)
    files = {name: options.pop(name) for name in PASSES if options.get(name) is not None}
    for name in PASSES:
        options.pop(name, None)
    if not sources and not files:
        raise UsageError(
            "No source given.", "Name a folder, or pass --customers/--contacts/--onboardings."
        )
    settings = ImportSettings(
        connection=connection,
        folders=sources,
        files=files,
        passes=_passes(options.pop("passes")),
        delimiter=_delimiter(options.pop("delimiter")),
        **options,
    )
    outcome = run_to_end(run_import(settings, ProgressFactory(quiet=settings.quiet)))
    conclude(outcome, settings.report_path)


@main.command()
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@row_files_options(
    "Write the errors CSV again here, from the checkpoint.",
    "Write the results CSV again here, from the checkpoint.",
)
@reports_errors
def status(checkpoint: Path, errors_path: Path | None, results_path: Path | None) -> None:
    """Show a checkpoint's rows by state, its last errors and whether a run holds it."""
    from bulk.status import describe_checkpoint, rewrite_reports

    click.echo(describe_checkpoint(checkpoint))
    if errors_path is not None or results_path is not None:
        for written in rewrite_reports(checkpoint, errors_path, results_path):
            click.echo(f"Wrote {written}")


def _passes(text: str) -> tuple[str, ...]:
    chosen = tuple(part.strip() for part in text.split(",") if part.strip())
    unknown = [name for name in chosen if name not in PASSES]
    if unknown or not chosen:
        raise UsageError(
            f"Unknown pass {', '.join(unknown) or text!r}.", f"Choose from {', '.join(PASSES)}."
        )
    return tuple(name for name in PASSES if name in chosen)


def _delimiter(text: str | None) -> str | None:
    from bulk.importing.csv_dialect import parse_delimiter

    return None if text is None else parse_delimiter(text)


@main.command("export")
@click.argument("out_dir", type=click.Path(file_okay=False, path_type=Path))
@click.option(
    "--checkpoint",
    type=click.Path(dir_okay=False, path_type=Path),
    help=f"Resumable state (default: OUT_DIR/{EXPORT_CHECKPOINT_NAME}).",
)
@click.option(
    "--format",
    "file_format",
    type=click.Choice(EXPORT_FORMATS),
    default=DEFAULT_EXPORT_FORMAT,
    show_default=True,
    help="File format of the exported tables.",
)
@click.option(
    "--part-rows",
    type=click.IntRange(min=1),
    default=DEFAULT_PART_ROWS,
    hidden=True,
    help="Rows per part file (the unit of resumption).",
)
@click.option(
    "--overwrite",
    is_flag=True,
    help="Replace files in OUT_DIR that this export did not write (others stay as they are).",
)
@output_options
@connection_options
@reports_errors
def export_command(out_dir: Path, **options: Any) -> None:
    """Export a whole workspace to Parquet (or CSV) files that `bulk import` can read."""
    from bulk.exporting.exporter import run_export
    from bulk.progress import ProgressFactory

    settings = ExportSettings(connection=_connection(options), out_dir=out_dir, **options)
    outcome = run_to_end(run_export(settings, ProgressFactory(quiet=settings.quiet)))
    conclude(outcome, settings.report_path)


@main.command("migrate")
@click.option(
    "--from-key",
    required=True,
    envvar="PIVOTAL_FROM_API_KEY",
    show_envvar=True,
    help="API key of the source workspace.",
)
@click.option(
    "--to-key",
    required=True,
    envvar="PIVOTAL_TO_API_KEY",
    show_envvar=True,
    help="API key of the target workspace.",
)
@click.option(
    "--from-url", default=DEFAULT_BASE_URL, show_default=True, help="Base URL of the source API."
)
@click.option(
    "--to-url", default=DEFAULT_BASE_URL, show_default=True, help="Base URL of the target API."
)
@click.option(
    "--workdir",
    required=True,
    type=click.Path(file_okay=False, path_type=Path),
    help="Holds the export and both checkpoints; re-run with it to resume.",
)
@output_options
@pacing_options
@reports_errors
def migrate_command(**options: Any) -> None:
    """Copy one workspace into another: export, then import with ids remapped."""
    from bulk.migrate import run_migrate
    from bulk.progress import ProgressFactory

    _refuse_sandbox_with_url(options, "from_url", "to_url")
    pacing = _pacing(options)
    settings = MigrateSettings(
        source=ConnectionSettings(
            api_key=options.pop("from_key"),
            base_url=options.pop("from_url"),
            names=_names("from_key", "from_url"),
            **pacing,
        ),
        target=ConnectionSettings(
            api_key=options.pop("to_key"),
            base_url=options.pop("to_url"),
            names=_names("to_key", "to_url"),
            **pacing,
        ),
        **options,
    )
    outcome = run_to_end(run_migrate(settings, ProgressFactory(quiet=settings.quiet)))
    conclude(outcome, settings.report_path)


@main.command("undo")
@click.argument("checkpoint", type=click.Path(exists=True, dir_okay=False, path_type=Path))
@click.option(
    "--dry-run", is_flag=True, help="Print what would be deleted and restored; send no write."
)
@click.option(
    "--force",
    is_flag=True,
    help="Delete or restore records somebody else changed since the import wrote them.",
)
@click.option(
    "--errors",
    "errors_path",
    type=click.Path(dir_okay=False, path_type=Path),
    help="Conflicts and failures CSV (default: <checkpoint>.undo-errors.csv).",
)
@output_options
@connection_options
@reports_errors
def undo_command(checkpoint: Path, **options: Any) -> None:
    """Put the workspace back as it was before the imports recorded in CHECKPOINT."""
    from bulk.progress import ProgressFactory
    from bulk.undoing.undoer import run_undo

    settings = UndoSettings(connection=_connection(options), checkpoint=checkpoint, **options)
    outcome = run_to_end(run_undo(settings, ProgressFactory(quiet=settings.quiet)))
    conclude(outcome, settings.report_path)
