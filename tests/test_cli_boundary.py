"""The CLI boundary (issue 8, items 5 and 7): whatever escapes a command is one line and an exit
code, never a traceback (unless `BULK_DEBUG=1`); Ctrl-C exits 130, also while modules load; bad
connection options are usage errors before anything is sent."""

from __future__ import annotations

import asyncio
import errno
import os
import subprocess
import sys
import tomllib
from collections.abc import Coroutine
from pathlib import Path
from typing import Any

import click
import pytest
from click.testing import CliRunner, Result

from bulk import cli
from bulk.cli import BUG_EXIT_CODE, main, reports_errors
from bulk.errors import InputError, UsageError
from bulk.settings import ConnectionSettings

PYPROJECT = Path(__file__).parent.parent / "pyproject.toml"
MIGRATE = ["migrate", "--from-key", "pivotal_a", "--to-key", "pivotal_b", "--workdir", "w"]


def raising(error: BaseException) -> click.Command:
    """A one-off command, behind the same boundary as bulk's own, that raises `error`."""

    @click.command()
    @reports_errors
    def explode() -> None:
        raise error

    return explode


def run(command: click.Command) -> Result:
    return CliRunner().invoke(command, [])


def test_every_command_is_behind_the_boundary() -> None:
    unguarded = [
        name
        for name, command in main.commands.items()
        if not getattr(command.callback, "reports_errors", False)
    ]
    assert unguarded == []


def test_a_bulk_error_is_its_line_and_its_exit_code() -> None:
    result = run(raising(InputError("no name", path=Path("c.csv"), line=3, remedy="Add one.")))

    assert (result.exit_code, result.stdout) == (2, "")
    assert result.stderr == "Error: c.csv line 3: no name Add one.\n"


def test_an_unexpected_exception_is_one_line_saying_it_is_a_bug() -> None:
    result = run(raising(RuntimeError("the\nplan\tbroke.")))

    assert result.exit_code == BUG_EXIT_CODE == 70
    assert result.stderr == (
        "Error: RuntimeError: the plan broke. This is a bug in bulk; "
        "set BULK_DEBUG=1 for the traceback.\n"
    )


def test_an_unexpected_exception_never_shows_the_api_key(monkeypatch: pytest.MonkeyPatch) -> None:
    def leaky_run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        coroutine.close()
        raise ValueError("header Authorization: Bearer pivotal_secretws is odd")

    monkeypatch.setattr(cli, "run_to_end", leaky_run)
    monkeypatch.setenv("PIVOTAL_API_KEY", "pivotal_secretws")

    result = CliRunner().invoke(main, ["export", "out"])

    assert result.exit_code == BUG_EXIT_CODE
    assert "secretws" not in result.output
    assert "Bearer *** is odd" in result.stderr


def test_an_os_error_names_the_file_and_the_remedy() -> None:
    error = OSError(errno.ENOSPC, "No space left on device", "/data/out.csv")

    result = run(raising(error))

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: Cannot write the file /data/out.csv: No space left on device. "
        "Free some disk space there, then run the same command again.\n"
    )


def test_an_os_error_without_a_file_is_still_one_line() -> None:
    result = run(raising(OSError(errno.EIO, "Input/output error")))

    assert result.exit_code == BUG_EXIT_CODE
    assert result.stderr.count("\n") == 1 and result.stderr.startswith("Error: OSError: ")


@pytest.mark.parametrize("interrupt", [KeyboardInterrupt(), asyncio.CancelledError()])
def test_ctrl_c_exits_130_without_a_traceback(interrupt: BaseException) -> None:
    result = run(raising(interrupt))

    assert (result.exit_code, result.stderr) == (130, "Interrupted.\n")


def test_bulk_debug_re_raises_for_the_traceback(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULK_DEBUG", "1")

    result = run(raising(RuntimeError("boom")))

    assert isinstance(result.exception, RuntimeError)


def test_bulk_debug_0_is_off(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("BULK_DEBUG", "0")

    assert run(raising(RuntimeError("boom"))).exit_code == BUG_EXIT_CODE


def test_clicks_own_usage_errors_pass_through() -> None:
    result = run(raising(click.BadParameter("nope", param_hint="'--x'")))

    assert result.exit_code == 2
    assert "Error: Invalid value for '--x': nope" in result.stderr


def test_an_unexpected_exception_in_a_real_command_is_one_line(
    monkeypatch: pytest.MonkeyPatch, tmp_path: Path
) -> None:
    (tmp_path / "customers.csv").write_text("external_id,name\nK1,Kay\n", encoding="utf-8")

    def broken_run(coroutine: Coroutine[Any, Any, Any]) -> Any:
        coroutine.close()
        raise RuntimeError("the event loop fell over")

    monkeypatch.setattr(cli, "run_to_end", broken_run)

    result = CliRunner().invoke(main, ["import", "--customers", "customers.csv", "--sandbox"])

    assert result.exit_code == BUG_EXIT_CODE
    assert result.stderr == (
        "Error: RuntimeError: the event loop fell over. This is a bug in bulk; "
        "set BULK_DEBUG=1 for the traceback.\n"
    )


# -- the entry point ---------------------------------------------------------------------------

INTERRUPT_WHILE_LOADING = """
import sys

class InterruptLoading:
    "Ctrl-C at the moment bulk.cli is imported (what a user's Ctrl-C does during start-up)."
    def find_spec(self, name, path=None, target=None):
        if name == "bulk.cli":
            raise KeyboardInterrupt
        return None

sys.meta_path.insert(0, InterruptLoading())
from bulk.__main__ import main
main()
"""


def test_ctrl_c_while_the_cli_loads_exits_130_without_a_traceback() -> None:
    done = subprocess.run(
        [sys.executable, "-c", INTERRUPT_WHILE_LOADING], capture_output=True, text=True, timeout=60
    )

    assert (done.returncode, done.stderr, done.stdout) == (130, "", "")


def test_the_console_script_is_the_guarded_entry_point() -> None:
    scripts = tomllib.loads(PYPROJECT.read_text(encoding="utf-8"))["project"]["scripts"]

    assert scripts == {"bulk": "bulk.__main__:main"}


def test_python_m_bulk_runs_the_cli_and_importing_it_runs_nothing() -> None:
    version = subprocess.run(
        [sys.executable, "-m", "bulk", "--version"], capture_output=True, text=True, timeout=60
    )
    imported = subprocess.run(
        [sys.executable, "-c", "import bulk.__main__"], capture_output=True, text=True, timeout=60
    )

    assert version.returncode == 0 and version.stdout.startswith("bulk, version ")
    assert (imported.returncode, imported.stdout, imported.stderr) == (0, "", "")


EXIT_AFTER_OUTPUT = """
import sys
from bulk.__main__ import exit_now
for _ in range(50_000):  # small writes: the last of them are still buffered when it exits
    sys.stdout.write("xxxx")
sys.stderr.write("last words")
exit_now(int(sys.argv[1]) if sys.argv[1].isdigit() else sys.argv[1])
"""


@pytest.mark.parametrize(
    ("code", "exit_code", "stderr"),
    [("3", 3, "last words"), ("0", 0, "last words"), ("Stopped.", 1, "last wordsStopped.\n")],
)
def test_the_process_ends_with_its_exit_code_and_all_of_its_output(
    code: str, exit_code: int, stderr: str
) -> None:
    buffered = {name: value for name, value in os.environ.items() if name != "PYTHONUNBUFFERED"}
    done = subprocess.run(
        [sys.executable, "-c", EXIT_AFTER_OUTPUT, code],
        capture_output=True,
        text=True,
        timeout=60,
        env=buffered,
    )

    assert (done.returncode, len(done.stdout), done.stderr) == (exit_code, 200_000, stderr)


# -- connection options --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("url", "problem"),
    [
        ("127.0.0.1:9/api/v1", "is not an http:// or https:// URL"),
        ("localhost:8765", "is not an http:// or https:// URL"),
        ("ftp://files.example.com/api/v1", "is not an http:// or https:// URL"),
        ("https:///api/v1", "is not an http:// or https:// URL"),
        ("http://example.com:port/api/v1", "is not a valid URL"),
    ],
)
def test_a_base_url_that_is_not_http_is_a_usage_error(url: str, problem: str) -> None:
    result = CliRunner().invoke(main, ["import", "--customers", "c.csv", "--base-url", url])

    assert result.exit_code == 2
    assert result.stderr.startswith(f"Error: --base-url {url!r} {problem}")
    assert result.stderr.endswith(". Example: --base-url https://my.pivotal.app/api/v1\n")
    assert not Path("bulk-import.sqlite").exists()


def test_migrate_names_its_own_url_option() -> None:
    result = CliRunner().invoke(
        main,
        [*MIGRATE, "--to-url", "pivotal.example.com/api/v1"],
    )

    assert result.exit_code == 2
    assert result.stderr == (
        "Error: --to-url 'pivotal.example.com/api/v1' is not an http:// or https:// URL. "
        "Example: --to-url https://my.pivotal.app/api/v1\n"
    )


def test_connection_settings_refuse_a_url_without_a_scheme_in_the_library_too() -> None:
    with pytest.raises(UsageError, match="is not an http"):
        ConnectionSettings(base_url="my.pivotal.app/api/v1")


@pytest.mark.parametrize(
    ("arguments", "environment", "message"),
    [
        (
            ["export", "out", "--sandbox", "--base-url", "http://127.0.0.1:9/api/v1"],
            {},
            "Error: --sandbox starts its own API: it cannot be used with --base-url. "
            "Drop one of the two.\n",
        ),
        (
            ["import", "--customers", "c.csv", "--sandbox"],
            {"PIVOTAL_BASE_URL": "http://127.0.0.1:9/api/v1"},
            "Error: --sandbox starts its own API: it cannot be used with --base-url, set here "
            "by PIVOTAL_BASE_URL. Unset PIVOTAL_BASE_URL, or drop --sandbox.\n",
        ),
        (
            [*MIGRATE, "--sandbox", "--from-url", "http://127.0.0.1:9/api/v1"],
            {},
            "Error: --sandbox starts its own API: it cannot be used with --from-url. "
            "Drop one of the two.\n",
        ),
    ],
)
def test_sandbox_with_a_url_is_a_usage_error_before_anything_starts(
    arguments: list[str], environment: dict[str, str], message: str, tmp_path: Path
) -> None:
    result = CliRunner().invoke(main, arguments, env=environment)

    assert (result.exit_code, result.stderr) == (2, message)
    assert list(tmp_path.iterdir()) == []  # no checkpoint, no sandbox database, no folder


def test_sandbox_alone_keeps_the_default_url_without_complaint(
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    seen: list[ConnectionSettings] = []

    def capture(coroutine: Coroutine[Any, Any, Any]) -> Any:
        frame = coroutine.cr_frame
        assert frame is not None
        seen.append(frame.f_locals["settings"].connection)
        coroutine.close()
        raise SystemExit(0)

    monkeypatch.setattr(cli, "run_to_end", capture)
    result = CliRunner().invoke(main, ["export", "out", "--sandbox"])

    assert result.exit_code == 0, result.output
    assert seen[0].sandbox and seen[0].names.url_source == "--base-url or PIVOTAL_BASE_URL"
