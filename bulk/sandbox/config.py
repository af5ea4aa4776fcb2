"""The sandbox's settings, with the real API's defaults."""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from pathlib import Path

DEFAULT_HOST = "127.0.0.1"
DEFAULT_PORT = 8765
LIVE_RATE_LIMIT = 60
TEST_RATE_LIMIT = 30
RATE_WINDOW_S = 60.0
MAX_BODY_BYTES = 1024 * 1024
IDEMPOTENCY_TTL_S = 24 * 60 * 60


@dataclass(frozen=True)
class SandboxConfig:
    """How a sandbox behaves. A limit of 0 turns rate limiting (and its headers) off."""

    host: str = DEFAULT_HOST
    port: int = 0
    """0 picks a free port."""
    db_path: Path | None = None
    """SQLite file (WAL) so data survives a restart; None keeps everything in memory."""
    rate_limit: int = LIVE_RATE_LIMIT
    """Requests per window for a live key."""
    test_rate_limit: int = TEST_RATE_LIMIT
    """Requests per window for a test key, counted in its own bucket."""
    window_s: float = RATE_WINDOW_S
    latency_ms: float = 0.0
    """Added to every authenticated request, while it holds its idempotency key."""
    latency_jitter_ms: float = 0.0
    """Up to this much more, drawn anew for each request (a network whose latency varies)."""
    fault_rate: float = 0.0
    fault_seed: int | None = None
    revoked_keys: frozenset[str] = field(default=frozenset(), repr=False)
    extra_fields: bool = False
    """Behave like a newer API version: objects carry fields and enum values `bulk` does not
    know (see `bulk.sandbox.newer`)."""
    max_body_bytes: int = MAX_BODY_BYTES
    clock: Callable[[], float] = field(default=time.time, repr=False)
    """Wall clock in epoch seconds: timestamps, windows and idempotency expiry follow it."""
