"""`bulk import` end to end against a real sandbox on loopback: samples, re-runs, edits, faults,
rate limits."""

from __future__ import annotations

import csv
import io
import shutil
from pathlib import Path

import polars as pl
from helpers import (
    SAMPLES,
    WORKSPACE,
    assert_workspace_matches_samples,
    counts,
    import_settings,
)

from bulk.importing.importer import run_import
from bulk.progress import ProgressFactory
from bulk.sandbox import Sandbox, SandboxConfig, running_sandbox

pytest_plugins = ["sandbox_helpers"]


async def test_samples_import_end_to_end(either_sandbox: Sandbox, tmp_path: Path) -> None:
    """Also against a newer API (`--extra-fields`): unknown fields and enums pass through."""
    sandbox = either_sandbox
    outcome = await run_import(import_settings(sandbox, tmp_path))

    assert outcome.exit_code == 0, outcome.error
    assert counts(outcome, "created") == {"customers": 50, "contacts": 100, "onboardings": 40}
    assert counts(outcome, "failed") == {"customers": 0, "contacts": 0, "onboardings": 0}
    assert_workspace_matches_samples(sandbox)
    assert outcome.errors_file is None
    with (tmp_path / "import.results.csv").open(encoding="utf-8") as results:
        lines = list(csv.DictReader(results))
    assert len(lines) == 190
    assert {line["action"] for line in lines} == {"created"}
    assert all(line["id"] and line["display_id"] for line in lines)


async def test_rerunning_an_unchanged_source_sends_no_writes(
    either_sandbox: Sandbox, tmp_path: Path
) -> None:
    """A newer API's extra response fields must not look like changes either."""
    sandbox = either_sandbox
    settings = import_settings(sandbox, tmp_path)
    await run_import(settings)
    writes_before = sandbox.stats.writes

    outcome = await run_import(settings)

    assert outcome.exit_code == 0
    assert sandbox.stats.writes == writes_before
    assert counts(outcome, "unchanged") == {"customers": 50, "contacts": 100, "onboardings": 40}
    assert_workspace_matches_samples(sandbox)


async def test_one_edited_cell_sends_one_patch(sandbox: Sandbox, tmp_path: Path) -> None:
    folder = tmp_path / "source"
    shutil.copytree(SAMPLES, folder, ignore=shutil.ignore_patterns("parquet", "*.py", "*.md"))
    settings = import_settings(sandbox, tmp_path, folder)
    await run_import(settings)
    customers = pl.read_csv(folder / "customers.csv", infer_schema=False)
    edited_id = customers["external_id"][3]
    customers = customers.with_columns(
        pl.when(pl.col("external_id") == edited_id)
        .then(pl.lit("enterprise-2027"))
        .otherwise(pl.col("plan"))
        .alias("plan")
    )
    customers.write_csv(folder / "customers.csv")
    posts, patches = sandbox.stats.methods["POST"], sandbox.stats.methods["PATCH"]

    outcome = await run_import(settings)

    assert outcome.exit_code == 0
    assert sandbox.stats.methods["POST"] == posts
    assert sandbox.stats.methods["PATCH"] == patches + 1
    assert counts(outcome, "updated") == {"customers": 1, "contacts": 0, "onboardings": 0}
    edited = [
        c
        for c in sandbox.objects(WORKSPACE, "customer")
        if c["metadata"]["external_id"] == edited_id
    ]
    assert [c["plan"] for c in edited] == ["enterprise-2027"]
    assert_workspace_matches_samples(sandbox, folder)


async def test_faults_including_committed_then_failed_writes_leave_an_exact_workspace(
    tmp_path: Path,
) -> None:
    config = SandboxConfig(rate_limit=0, test_rate_limit=0, fault_rate=0.1, fault_seed=11)
    async with running_sandbox(config) as sandbox:
        outcome = await run_import(import_settings(sandbox, tmp_path))

        assert outcome.exit_code == 0, outcome.error
        assert counts(outcome, "failed") == {"customers": 0, "contacts": 0, "onboardings": 0}
        assert sandbox.stats.faults["error_after"] + sandbox.stats.faults["drop_after"] > 0
        assert sandbox.stats.replays > 0
        assert outcome.summary.retries > 0
        assert_workspace_matches_samples(sandbox)


async def test_import_stays_within_a_small_rate_window(tmp_path: Path) -> None:
    config = SandboxConfig(rate_limit=20, test_rate_limit=20, window_s=1.0)
    async with running_sandbox(config) as sandbox:
        outcome = await run_import(import_settings(sandbox, tmp_path, passes=("customers",)))

        assert outcome.exit_code == 0, outcome.error
        assert counts(outcome, "created") == {"customers": 50}
        assert sandbox.stats.rate_limited == 0
        assert outcome.summary.rate_limited == 0


class _StderrWatch(io.StringIO):
    """A progress stream noting how many writes the sandbox had admitted when each warning
    was printed."""

    def __init__(self, sandbox: Sandbox) -> None:
        super().__init__()
        self.sandbox = sandbox
        self.writes_at_warning: list[int] = []

    def write(self, text: str) -> int:
        if text.startswith("Warning: "):
            self.writes_at_warning.append(self.sandbox.stats.writes)
        return super().write(text)


async def test_planning_warnings_are_printed_before_the_first_write(
    sandbox: Sandbox, tmp_path: Path
) -> None:
    source = tmp_path / "source"
    source.mkdir()
    (source / "customers.csv").write_text("external_id,name,Fax\nK1,Kappa,555\n")
    watch = _StderrWatch(sandbox)

    outcome = await run_import(
        import_settings(sandbox, tmp_path, source, quiet=False), ProgressFactory(stream=watch)
    )

    warning = "customers.csv: ignoring unknown column 'Fax'."
    assert watch.getvalue().count(f"Warning: {warning}") == 1
    assert watch.writes_at_warning == [0]  # told before the first request that writes
    assert sandbox.stats.writes == 1
    assert outcome.warnings == []  # the CLI's closing lines do not repeat it
    assert outcome.to_json()["warnings"] == [warning]  # the report has it
