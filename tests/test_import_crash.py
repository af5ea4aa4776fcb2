"""Crash and resume: a real `bulk import` subprocess is SIGKILLed at several moments and run
again each time; the workspace ends exact, with nothing created twice."""

from __future__ import annotations

import os
import signal
import subprocess
import sys
import time
from collections.abc import Callable, Iterator
from pathlib import Path

import pytest
from helpers import SAMPLES, WORKSPACE, assert_workspace_matches_samples, kill_when

from bulk.sandbox import Sandbox, SandboxConfig, sandbox_in_thread

KILL_AFTER_POSTS = (0, 15, 70, 120, 165)
"""Moments to kill at: before any write (planning), and during each of the three passes."""


@pytest.fixture
def slow_sandbox() -> Iterator[Sandbox]:
    """Latency makes every request take long enough for a kill to land mid-pass."""
    with sandbox_in_thread(
        SandboxConfig(rate_limit=0, test_rate_limit=0, latency_ms=15)
    ) as sandbox:
        yield sandbox


def start_import(sandbox: Sandbox, checkpoint: Path) -> subprocess.Popen[bytes]:
    command = [
        sys.executable,
        "-m",
        "bulk",
        "import",
        str(SAMPLES),
        "--base-url",
        sandbox.base_url,
        "--checkpoint",
        str(checkpoint),
        "--quiet",
    ]
    environment = {**os.environ, "PIVOTAL_API_KEY": f"pivotal_{WORKSPACE}"}
    return subprocess.Popen(
        command, env=environment, stdout=subprocess.PIPE, stderr=subprocess.PIPE
    )


def posts_reach(sandbox: Sandbox, target: int) -> Callable[[], bool]:
    return lambda: sandbox.stats.methods["POST"] >= target


def test_killed_imports_resume_to_an_exact_workspace(slow_sandbox: Sandbox, tmp_path: Path) -> None:
    checkpoint = tmp_path / "import.sqlite"
    kills = 0
    for posts in KILL_AFTER_POSTS:
        process = start_import(slow_sandbox, checkpoint)
        if kill_when(process, posts_reach(slow_sandbox, posts)):
            kills += 1
    assert kills >= 4

    final = start_import(slow_sandbox, checkpoint)
    stdout, stderr = final.communicate(timeout=120)

    assert final.returncode == 0, stderr.decode()
    assert "onboardings" in stdout.decode()
    assert_workspace_matches_samples(slow_sandbox)
    # each kill landed just after the sandbox admitted a POST whose answer the client never
    # read: the resumed run re-sent it under the same key and got the first result back
    assert slow_sandbox.stats.replays >= 1


def test_ctrl_c_drains_in_flight_requests_saves_and_exits_130(
    slow_sandbox: Sandbox, tmp_path: Path
) -> None:
    checkpoint = tmp_path / "import.sqlite"
    process = start_import(slow_sandbox, checkpoint)
    target = 40
    deadline = time.monotonic() + 60
    while slow_sandbox.stats.methods["POST"] < target:
        assert process.poll() is None and time.monotonic() < deadline
        time.sleep(0.002)

    process.send_signal(signal.SIGINT)
    stdout, stderr = process.communicate(timeout=30)

    assert process.returncode == 130, stderr.decode()
    assert "Interrupted. The checkpoint is saved" in stderr.decode()
    assert "customers" in stdout.decode()  # the summary is printed
    status = subprocess.run(
        [sys.executable, "-m", "bulk", "status", str(checkpoint)],
        capture_output=True,
        text=True,
        check=True,
    )
    customers = status.stdout.splitlines()[1].split()
    assert customers[0] == "customers"
    assert customers[2] == "0"  # nothing left in flight: every started request was answered
    posts_when_stopped = slow_sandbox.stats.methods["POST"]
    assert int(customers[3]) == posts_when_stopped  # each POST that left is recorded done

    resumed = start_import(slow_sandbox, checkpoint)
    _, resumed_stderr = resumed.communicate(timeout=120)
    assert resumed.returncode == 0, resumed_stderr.decode()
    assert_workspace_matches_samples(slow_sandbox)
    assert slow_sandbox.stats.replays == 0  # a clean stop leaves nothing to replay
