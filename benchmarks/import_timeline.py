"""Where a whole `bulk import` process spends its wall time, phase by phase.

Runs `bulk import` of generated customers and contacts (limits off, 8 in flight) against a
sandbox in its own process, with the import's phases timed from inside the child process:
start-up (the interpreter and the modules), planning, each pass's sending, the errors and
results files. While a pass sends, a 1 ms ticker measures how long the event loop is held
(every hold of more than a few ms leaves a fast server idle), and the checkpoint statements
that took 3 ms or more are counted. Run by hand:

    python benchmarks/import_timeline.py
    python benchmarks/import_timeline.py --customers 100000 --latency-ms 5 --jitter-ms 5

The child wraps a few of bulk's functions to time them (measurement only; nothing changes
what they do). Issue 8 item 16 asks where the time goes: this prints it.
"""

from __future__ import annotations

import argparse
import asyncio
import os
import runpy
import subprocess
import sys
import tempfile
import time
from collections import Counter
from collections.abc import Callable
from pathlib import Path
from typing import Any

CHILD = "child"
PREFIX = "TIMELINE "
TICK_S = 0.001
HELD_REPORTED_S = 0.001
SLOW_STATEMENT_S = 0.003


def main() -> None:
    if len(sys.argv) > 1 and sys.argv[1] == CHILD:
        run_child(sys.argv[2:])
        return
    parser = argparse.ArgumentParser(description=__doc__.split("\n")[0])
    parser.add_argument("--customers", type=int, default=20_000, help="and as many contacts")
    parser.add_argument("--latency-ms", type=float, default=0.0)
    parser.add_argument("--jitter-ms", type=float, default=0.0)
    parser.add_argument("--runs", type=int, default=2)
    args = parser.parse_args()
    from rate_limits import write_sources
    from sandbox_process import running_server

    server_options = ["--rate-limit", "0", "--test-rate-limit", "0"]
    server_options += ["--latency-ms", str(args.latency_ms)]
    server_options += ["--latency-jitter-ms", str(args.jitter_ms)]
    with tempfile.TemporaryDirectory() as temp:
        source = write_sources(Path(temp) / "source", args.customers, args.customers)
        for number in range(args.runs):
            with running_server(*server_options) as server:
                checkpoint = Path(temp) / f"run-{number}.sqlite"
                print(f"run {number + 1}: {args.customers} customers + as many contacts")
                timed_run(source, server.base_url, checkpoint)


def timed_run(source: Path, base_url: str, checkpoint: Path) -> None:
    """Run the instrumented child and print its timeline, then the whole process's time."""
    command = [sys.executable, __file__, CHILD, "import", str(source), "--base-url", base_url]
    command += ["--api-key", "pivotal_timeline", "--checkpoint", str(checkpoint)]
    command += ["--quiet", "--concurrency", "8"]
    started = time.time()
    finished = subprocess.run(
        command,
        capture_output=True,
        text=True,
        check=False,
        env={**os.environ, "TIMELINE_STARTED": repr(started)},
    )
    wall = time.time() - started
    for line in finished.stderr.splitlines():
        if line.startswith(PREFIX):
            print("  " + line.removeprefix(PREFIX))
    print(f"  {wall:6.2f} s  the process has exited (exit code {finished.returncode})")


# -- the child: bulk itself, with timers around its phases


def run_child(arguments: list[str]) -> None:
    started = float(os.environ["TIMELINE_STARTED"])

    def tell(text: str) -> None:
        print(f"{PREFIX}{time.time() - started:6.2f} s  {text}", file=sys.stderr, flush=True)

    import bulk.checkpoint_errors as checkpoint_errors
    import bulk.importing.importer as importer
    from bulk.importing.sending import PassRunner

    tell("modules loaded")
    for name, what in (
        ("plan_import", "planning"),
        ("write_errors_file", "errors file"),
        ("write_results_file", "results file"),
    ):
        setattr(importer, name, _timed(getattr(importer, name), what, tell))
    slow = _count_slow_statements(checkpoint_errors.Database)
    _time_passes(PassRunner, tell, slow)
    sys.argv = ["bulk", *arguments]
    runpy.run_module("bulk", run_name="__main__")  # exits without returning (os._exit)


def _timed(function: Callable[..., Any], what: str, tell: Callable[[str], None]) -> Any:
    def timed(*args: Any, **kwargs: Any) -> Any:
        began = time.perf_counter()
        result = function(*args, **kwargs)
        tell(f"{what} done in {time.perf_counter() - began:.2f} s")
        return result

    return timed


def _count_slow_statements(database: Any) -> Counter[str]:
    """Checkpoint statements of `SLOW_STATEMENT_S` or more: their first word, count and ms."""
    slow: Counter[str] = Counter()
    execute = database.execute

    def timed_execute(self: Any, sql: str, parameters: Any = ()) -> Any:
        began = time.perf_counter()
        rows = execute(self, sql, parameters)
        took = time.perf_counter() - began
        if took >= SLOW_STATEMENT_S:
            verb = sql.split()[0]
            slow[f"{verb} count"] += 1
            slow[f"{verb} ms"] += round(took * 1000)
        return rows

    database.execute = timed_execute
    return slow


def _time_passes(runner: Any, tell: Callable[[str], None], slow: Counter[str]) -> None:
    run = runner.run

    async def timed_run(self: Any) -> None:
        holds: list[float] = []
        slow.clear()
        done = asyncio.Event()
        ticker = asyncio.create_task(_measure_holds(holds, done))
        began = time.perf_counter()
        try:
            await run(self)
        finally:
            took = time.perf_counter() - began
            done.set()
            await ticker
            tell(f"{self.pass_name} sent in {took:.2f} s; {_holds(holds)}; {_statements(slow)}")

    runner.run = timed_run


async def _measure_holds(holds: list[float], done: asyncio.Event) -> None:
    """How much later than asked each 1 ms sleep woke: the event loop was held that long."""
    while not done.is_set():
        began = time.perf_counter()
        await asyncio.sleep(TICK_S)
        late = time.perf_counter() - began - TICK_S
        if late >= HELD_REPORTED_S:
            holds.append(late)


def _holds(holds: list[float]) -> str:
    if not holds:
        return "the event loop was never held 1 ms"
    buckets = Counter("1-5 ms" if h < 0.005 else "5-20 ms" if h < 0.02 else ">20 ms" for h in holds)
    shown = ", ".join(f"{count} x {bucket}" for bucket, count in sorted(buckets.items()))
    return (
        f"event loop held {len(holds)} times ({shown}; {sum(holds):.2f} s in all, "
        f"longest {max(holds) * 1000:.0f} ms)"
    )


def _statements(slow: Counter[str]) -> str:
    verbs = sorted({key.split()[0] for key in slow})
    if not verbs:
        return "no checkpoint statement took 3 ms"
    parts = [f"{verb} x {slow[verb + ' count']} ({slow[verb + ' ms']} ms)" for verb in verbs]
    return "statements of 3 ms or more: " + ", ".join(parts)


if __name__ == "__main__":
    main()
