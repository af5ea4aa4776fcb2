"""The `bulk` command's shape: `-h` everywhere, and options shared by declaration, not by copy."""

from __future__ import annotations

import click
import pytest
from click.testing import CliRunner

from bulk.cli import API_SETTINGS, PACING_OPTIONS, main

COMMANDS = sorted(main.commands)
SHARED = ("report_path", "quiet", "sandbox", "sandbox_db", "concurrency", "rate_limit", "timeout_s")
"""The parameters that `import`, `export` and `migrate` all take from the same declaration."""


def options_of(command_name: str) -> dict[str, click.Option]:
    command = main.commands[command_name]
    return {p.name: p for p in command.params if isinstance(p, click.Option) and p.name}


def test_the_commands_are_the_documented_ones() -> None:
    assert COMMANDS == ["export", "import", "migrate", "sandbox", "status", "undo"]


@pytest.mark.parametrize("flag", ["-h", "--help"])
@pytest.mark.parametrize("command", [None, *COMMANDS])
def test_h_is_help_on_the_group_and_every_command(command: str | None, flag: str) -> None:
    arguments = [flag] if command is None else [command, flag]

    result = CliRunner().invoke(main, arguments, prog_name="bulk")

    assert result.exit_code == 0, result.output
    usage = f"Usage: bulk {command} " if command else "Usage: bulk [OPTIONS] COMMAND [ARGS]..."
    assert result.output.startswith(usage)
    assert "  -h, --help " in result.output
    assert result.stderr == ""


@pytest.mark.parametrize("name", SHARED)
def test_shared_options_carry_the_same_help_everywhere(name: str) -> None:
    declared = [options_of(command)[name] for command in ("import", "export", "migrate")]

    assert declared[0].help
    assert {option.help for option in declared} == {declared[0].help}
    assert {tuple(option.opts) for option in declared} == {tuple(declared[0].opts)}
    assert {repr(option.default) for option in declared} == {repr(declared[0].default)}


def test_migrate_shows_the_help_of_its_shared_options() -> None:
    result = CliRunner().invoke(main, ["migrate", "-h"], terminal_width=200)

    for option in ("sandbox", "sandbox_db", "concurrency", "rate_limit", "timeout_s"):
        help_text = options_of("import")[option].help
        assert help_text and help_text in result.output, option


def test_every_option_but_a_hidden_one_has_help() -> None:
    undocumented = [
        f"{name} {option.opts[0]}"
        for name in COMMANDS
        for option in options_of(name).values()
        if not option.help and not option.hidden
    ]
    assert undocumented == []


def test_pacing_options_declare_every_connection_setting_but_key_and_url() -> None:
    own = {"from_key", "to_key", "from_url", "to_url", "workdir", "report_path", "quiet"}

    assert set(options_of("migrate")) - own == set(PACING_OPTIONS)
    assert set(options_of("export")) >= {*API_SETTINGS, *PACING_OPTIONS}
