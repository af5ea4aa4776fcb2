"""The README's promises, checked: its "From Python" snippet runs as printed, and its layout
table names every module of the package, and it shows every option the commands take."""

from __future__ import annotations

import re
from pathlib import Path

import click
import pytest
from helpers import SAMPLES, WORKSPACE, assert_workspace_matches_samples, source_rows

from bulk.cli import main
from bulk.sandbox import SandboxConfig, sandbox_in_thread

README = Path(__file__).resolve().parent.parent / "README.md"
PACKAGE = Path(__file__).resolve().parent.parent / "bulk"


def section(title: str) -> str:
    text = README.read_text(encoding="utf-8")
    start = text.index(f"\n## {title}\n")
    end = text.find("\n## ", start + 1)
    return text[start : end if end != -1 else len(text)]


def python_snippet(title: str) -> str:
    """The first ```python block of a README section, exactly as printed."""
    match = re.search(r"```python\n(.*?)```", section(title), re.DOTALL)
    assert match, f"no python block under '## {title}'"
    return match.group(1)


def test_the_from_python_snippet_imports_the_samples_field_by_field(
    tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    (tmp_path / "samples").symlink_to(SAMPLES)  # the snippet runs from a checkout's root

    exec(compile(python_snippet("From Python"), str(README), "exec"), {"__name__": "__main__"})

    assert capsys.readouterr().out.splitlines()[:4] == [
        "pass         total  created  updated  unchanged  adopted  failed  skipped  invalid",
        "customers       50       50        0          0        0       0        0        0",
        "contacts       100      100        0          0        0       0        0        0",
        "onboardings     40       40        0          0        0       0        0        0",
    ]
    config = SandboxConfig(db_path=tmp_path / "sandbox.sqlite", rate_limit=0)
    with sandbox_in_thread(config) as sandbox:
        assert_workspace_matches_samples(sandbox)
        customers = {
            c["metadata"]["external_id"]: c for c in sandbox.objects(WORKSPACE, "customer")
        }
    for row in source_rows("customers"):
        customer = customers[row["external_id"]]
        assert customer["status"] == (row["status"] or "active")
        assert customer["owner_id"] == row["owner_id"]
        assert customer["stripe_customer_id"] == row["stripe_customer_id"]
        assert customer["hubspot_company_id"] == row["hubspot_company_id"]
        for key in ("region", "segment"):  # a metadata.KEY column wins over the metadata JSON
            if row[f"metadata.{key}"] is not None:
                assert customer["metadata"][key] == row[f"metadata.{key}"]
    assert (tmp_path / "bulk-import.sqlite").is_file()


def test_the_layout_table_names_every_module() -> None:
    layout = section("Layout")
    missing = []
    for path in sorted(PACKAGE.rglob("*.py")):
        relative = path.relative_to(PACKAGE.parent)
        if path.parent.name == "__pycache__" or path.name in ("__init__.py", "__main__.py"):
            continue
        named = f"`{relative}`" in layout or (
            f"`{relative.parent}/`" in layout and f"`{path.name}`" in layout
        )
        if not named:
            missing.append(str(relative))
    assert missing == []


def test_every_option_a_command_shows_is_in_the_readme() -> None:
    """`--help` and the README tell the same options (hidden ones aside): each is in an options
    table or a synopsis."""
    text = README.read_text(encoding="utf-8")
    missing = [
        f"{name} {option}"
        for name, command in main.commands.items()
        for parameter in command.params
        if isinstance(parameter, click.Option) and not parameter.hidden
        for option in parameter.opts
        if option.startswith("--") and not re.search(rf"(?<![\w-]){option}(?![\w-])", text)
    ]
    assert missing == []
