"""`bulk undo` killed and resumed: a real subprocess is SIGKILLed at several moments of its
three passes (and stopped by SIGTERM once), then run again with the same command until it
finishes; the workspace ends exactly as it was before the import, nothing deleted that was not
ours, and a finished undo run again sends no write."""

from __future__ import annotations

import random
import signal
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import SAMPLES, WORKSPACE, kill_when
from safe_runs_support import finish, start_bulk, wait_until
from undo_support import (
    assert_put_back,
    assert_samples_imported,
    import_samples,
    live_ids,
    seed_workspace,
    undo,
)

from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread

KILL_AFTER_DELETES = (0, 12, 60, 110, 150)
"""Before any write (the reads of the first pass), then in each pass: onboardings (40),
contacts (99 deleted, one restored), customers."""


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    """Latency makes every request take long enough for a kill to land mid-pass."""
    with sandbox_in_thread(
        SandboxConfig(rate_limit=0, test_rate_limit=0, latency_ms=10)
    ) as sandbox:
        yield sandbox


def deletes_reach(sandbox: Sandbox, target: int) -> Callable[[], bool]:
    start = sandbox.stats.methods["DELETE"]
    return lambda: sandbox.stats.methods["DELETE"] - start >= target


def test_killed_undos_resume_to_the_workspace_as_it_was(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    seeded = seed_workspace(slow_sandbox)
    checkpoint = tmp_path / "import.sqlite"
    assert import_samples(slow_sandbox, checkpoint).exit_code == 0
    created = set().union(*live_ids(slow_sandbox).values()) - seeded.ids
    kills = 0
    for deletes in KILL_AFTER_DELETES:
        process = start_bulk(
            "undo", str(checkpoint), "--base-url", slow_sandbox.base_url, "--quiet",
            cwd=tmp_path,
        )  # fmt: skip
        if kill_when(process, deletes_reach(slow_sandbox, deletes)):
            kills += 1
    assert kills >= 4

    final = finish(
        start_bulk("undo", str(checkpoint), "--base-url", slow_sandbox.base_url, cwd=tmp_path),
        120,
        "the resumed undo",
    )

    assert final.returncode == 0, final.stderr
    assert_put_back(slow_sandbox, seeded)
    writes = slow_sandbox.stats.writes
    again = undo(slow_sandbox, checkpoint)
    assert again.exit_code == 0, again.output
    assert slow_sandbox.stats.writes == writes
    assert import_samples(slow_sandbox, checkpoint).exit_code == 0
    assert_samples_imported(slow_sandbox, seeded, created)


def test_sigterm_stops_the_undo_cleanly_with_143_and_it_resumes(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    seeded = seed_workspace(slow_sandbox)
    checkpoint = tmp_path / "import.sqlite"
    assert import_samples(slow_sandbox, checkpoint).exit_code == 0
    process = start_bulk(
        "undo", str(checkpoint), "--base-url", slow_sandbox.base_url, "--quiet", cwd=tmp_path
    )
    wait_until(deletes_reach(slow_sandbox, 30), "30 deletes")

    process.send_signal(signal.SIGTERM)
    stopped = finish(process, 30, "the stopped undo")

    assert stopped.returncode == 143, stopped.stderr
    assert "Interrupted. The checkpoint is saved" in stopped.stderr
    assert "onboardings" in stopped.stdout  # the summary is printed
    status = start_bulk("status", str(checkpoint), cwd=tmp_path)
    shown = finish(status, 30, "bulk status")
    undo_table = shown.stdout.split("\n\n")[1].splitlines()
    assert undo_table[0].split() == [
        "undo",
        "undo_pending",
        "undo_in_flight",
        "undone",
        "conflict",
        "failed",
    ]
    onboardings = undo_table[1].split()
    assert onboardings[0] == "onboardings" and onboardings[2] == "0"  # nothing left in flight

    resumed = undo(slow_sandbox, checkpoint)
    assert resumed.exit_code == 0, resumed.output
    assert_put_back(slow_sandbox, seeded)


def test_an_import_killed_mid_pass_is_undone_and_what_it_left_unanswered_is_said(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "import.sqlite"
    importing = start_bulk(
        "import", str(SAMPLES), "--checkpoint", str(checkpoint), "--base-url",
        slow_sandbox.base_url, "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert kill_when(importing, lambda: slow_sandbox.stats.methods["POST"] >= 30)

    first = undo(slow_sandbox, checkpoint)

    unanswered = "creates never got an answer (the import was stopped mid-request)"
    if first.exit_code == 1:  # a POST was in flight at the kill: its record may exist
        assert unanswered in first.stderr
    else:
        assert first.exit_code == 0, first.output
        assert slow_sandbox.objects(WORKSPACE, "customer") == []
    resumed = start_bulk(
        "import", str(SAMPLES), "--checkpoint", str(checkpoint), "--base-url",
        slow_sandbox.base_url, "--quiet", cwd=tmp_path,
    )  # fmt: skip
    assert finish(resumed, 120, "the resumed import").returncode == 0
    second = undo(slow_sandbox, checkpoint)
    assert second.exit_code == 0, second.output
    assert unanswered not in second.stderr
    assert live_ids(slow_sandbox) == {"customer": set(), "contact": set(), "onboarding": set()}


@pytest.fixture
def no_backoff(monkeypatch: pytest.MonkeyPatch) -> None:
    """Every backoff draws 0 (a legal full-jitter draw): retries take milliseconds."""
    monkeypatch.setattr(random.Random, "uniform", lambda self, a, b: min(a, b))


def test_under_ten_percent_faults_the_undo_still_puts_the_workspace_back_exactly(
    no_backoff: None, tmp_path: Path
) -> None:
    """The workspace is seeded on a sound API; then the same data is served by one where 10 %
    of requests fail with a 500 or a dropped connection, half of them after the write was
    committed: the import, the undo and the re-import each run again until they finish."""
    data = tmp_path / "sandbox.sqlite"
    with sandbox_in_thread(SandboxConfig(rate_limit=0, test_rate_limit=0, db_path=data)) as sound:
        seeded = seed_workspace(sound)
    faulty = SandboxConfig(
        rate_limit=0, test_rate_limit=0, db_path=data, fault_rate=0.1, fault_seed=11
    )
    checkpoint = tmp_path / "import.sqlite"
    with sandbox_in_thread(faulty) as sandbox:
        until_done(lambda: import_samples(sandbox, checkpoint).exit_code)
        created = set().union(*live_ids(sandbox).values()) - seeded.ids
        deletes_before = sandbox.stats.methods["DELETE"]

        until_done(lambda: undo(sandbox, checkpoint).exit_code)

        assert_put_back(sandbox, seeded)
        assert sandbox.stats.methods["DELETE"] - deletes_before > len(created)  # resent
        assert sandbox.stats.faults["error_after"] + sandbox.stats.faults["drop_after"] > 0
        until_done(lambda: import_samples(sandbox, checkpoint).exit_code)
        assert_samples_imported(sandbox, seeded, created)


def until_done(run: Callable[[], int], attempts: int = 5) -> None:
    """Run again, as the user would, until it exits 0 (a row whose every retry met a fault
    fails alone and is retried by the next run)."""
    for _ in range(attempts):
        if run() == 0:
            return
    raise AssertionError(f"still not done after {attempts} runs")
