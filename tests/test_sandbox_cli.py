"""`bulk sandbox`: its help, a busy port, and a real subprocess served, used, stopped and killed."""

from __future__ import annotations

import json
import os
import select
import signal
import socket
import subprocess
import sys
import urllib.error
import urllib.request
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from bulk.cli import main

STARTUP_TIMEOUT_S = 20.0
BANNER = "Pivotal sandbox listening on "


def test_help_lists_the_options() -> None:
    result = CliRunner().invoke(main, ["sandbox", "--help"])
    assert result.exit_code == 0, result.output
    assert "Serve a local Pivotal API on loopback, with SQLite storage." in result.output
    for option in (
        "--host",
        "--port",
        "--db",
        "--rate-limit",
        "--test-rate-limit",
        "--rate-window",
        "--latency-ms",
        "--latency-jitter-ms",
        "--fault-rate",
        "--fault-seed",
        "--revoke-key",
    ):
        assert option in result.output, option


def test_a_busy_port_is_one_line_and_exit_code_2() -> None:
    with socket.socket() as busy:
        busy.bind(("127.0.0.1", 0))
        busy.listen()
        port = busy.getsockname()[1]
        result = CliRunner().invoke(main, ["sandbox", "--port", str(port)])
    assert result.exit_code == 2, result.output
    assert result.stderr == (
        f"Error: Cannot listen on 127.0.0.1:{port}: Address already in use. "
        "Pass another --port, or 0 for a free one.\n"
    )


def test_a_bad_option_is_a_usage_error() -> None:
    result = CliRunner().invoke(main, ["sandbox", "--fault-rate", "2"])
    assert result.exit_code == 2
    assert "Invalid value for '--fault-rate'" in result.stderr


@contextmanager
def served(*options: str) -> Iterator[tuple[subprocess.Popen[str], str]]:
    """`python -m bulk sandbox --port 0 …` in a subprocess, with the base URL it announced."""
    process = subprocess.Popen(
        [sys.executable, "-m", "bulk", "sandbox", "--port", "0", *options],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env={**os.environ, "PYTHONUNBUFFERED": "1"},
    )
    try:
        assert process.stdout is not None
        ready, _, _ = select.select([process.stdout], [], [], STARTUP_TIMEOUT_S)
        assert ready, "the sandbox printed nothing"
        first_line = process.stdout.readline()
        assert first_line.startswith(BANNER), first_line
        base_url = first_line.removeprefix(BANNER).strip()
        assert base_url.startswith("http://127.0.0.1:") and base_url.endswith("/api/v1")
        yield process, base_url
    finally:
        if process.poll() is None:
            process.kill()
        process.wait(timeout=10)
        for stream in (process.stdout, process.stderr):
            if stream is not None:
                stream.close()


def call(
    base_url: str, method: str, path: str, body: object = None, key: str = "pivotal_acme"
) -> tuple[int, dict[str, Any]]:
    request = urllib.request.Request(
        base_url + path,
        method=method,
        data=None if body is None else json.dumps(body).encode(),
        headers={"Authorization": f"Bearer {key}", "Content-Type": "application/json"},
    )
    try:
        with urllib.request.urlopen(request, timeout=10) as response:
            return response.status, json.loads(response.read())
    except urllib.error.HTTPError as error:
        with error:
            return error.code, json.loads(error.read())


@pytest.mark.parametrize("signum", [signal.SIGINT, signal.SIGTERM], ids=["SIGINT", "SIGTERM"])
def test_a_subprocess_serves_and_stops_cleanly(signum: signal.Signals) -> None:
    with served("--revoke-key", "pivotal_revoked") as (process, base_url):
        status, customer = call(base_url, "POST", "/customers", {"name": "Café Crème, Inc."})
        assert status == 201
        assert (customer["display_id"], customer["slug"]) == (1, "caf-cr-me-inc")
        status, page = call(base_url, "GET", "/customers")
        assert (status, page) == (
            200,
            {"object": "list", "data": [customer], "has_more": False, "next_cursor": None},
        )
        status, refused = call(base_url, "GET", "/customers", key="pivotal_revoked")
        assert (status, refused["error"]["code"]) == (401, "api_key_revoked")

        process.send_signal(signum)
        assert process.wait(timeout=10) == 0
        assert process.stdout is not None and process.stderr is not None
        rest = process.stdout.read()
        assert "Example key: pivotal_sandbox" in rest
        assert "Press Ctrl-C to stop." in rest
        assert process.stderr.read() == ""


def test_a_killed_subprocess_keeps_its_data(tmp_path: Path) -> None:
    database = tmp_path / "sandbox.db"
    with served("--db", str(database)) as (process, base_url):
        status, customer = call(base_url, "POST", "/customers", {"name": "Acme"})
        assert status == 201
        process.kill()
        assert process.wait(timeout=10) == -signal.SIGKILL
    with served("--db", str(database)) as (process, base_url):
        status, page = call(base_url, "GET", "/customers")
        assert (status, page["data"]) == (200, [customer])
        status, second = call(base_url, "POST", "/customers", {"name": "Globex"})
        assert (status, second["display_id"]) == (201, 2)
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0


def test_extra_fields_makes_it_a_newer_api() -> None:
    with served("--extra-fields") as (process, base_url):
        status, customer = call(base_url, "POST", "/customers", {"name": "Future Corp"})
        assert status == 201
        assert (customer["status"], customer["monthly_orders"]) == ("paused_billing", 10)
        assert customer["address"]["city"] == "Springfield"
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
    with served() as (process, base_url):
        status, customer = call(base_url, "POST", "/customers", {"name": "Future Corp"})
        assert (status, customer["status"]) == (201, "onboarding")
        assert "monthly_orders" not in customer
        process.send_signal(signal.SIGINT)
        assert process.wait(timeout=10) == 0
