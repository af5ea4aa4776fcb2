"""Text keys and the line each first appeared on, for a whole source, in little memory.

The planner remembers every key of a source (and every customer's slug) to name the first line
of a duplicate, and the customers a child may point at. As Python dictionaries these took about
250 bytes a key (the str, the int, the slot): 497 MiB for the 1.9M rows of a 200 MB CSV, more
than reading the file. `KeyLines` keeps them in polars frames instead — a 64-bit hash, the key
as Arrow text, the line: 45 MiB for those 1.9M keys, 69 MiB for their slugs — sorted by hash in
a few runs whose sizes halve (merged as they fill, like a binary counter, up to `RUN_LIMIT`
keys), so a batch of keys is looked up with one vectorised binary search per run.

The map is filled and read a batch at a time, as the planner reads its source: `start_batch`
looks the batch's keys up in the runs at once, and `get`/`setdefault` then answer from memory
(a key nobody announced is looked up alone: right, only slower). Keys added during a batch
stay in a dictionary until the next `start_batch` turns them into a run.

A hash only finds candidates: every hit is confirmed against the stored key, so two keys that
share a hash stay two keys and a collision can never make a valid row a duplicate.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable

import polars as pl

RUN_LIMIT = 1 << 19
"""Runs stop growing at about this many keys: merging two runs briefly holds both and their
merge, so a 1.3M-key run added ~90 MiB to the peak; a source with more keys has a few more
runs, each one more binary search per batch."""

Hasher = Callable[[pl.Series], pl.Series]
"""Text → UInt64 hashes, the same for the same text within the process."""


def polars_hash(keys: pl.Series) -> pl.Series:
    """polars' own hash: vectorised, and stable within one process (all a plan needs)."""
    return keys.hash(seed=0)


class LineLookup(ABC):
    """`in` and `[]` over a `get` that answers a key's line, or None."""

    @abstractmethod
    def get(self, key: str) -> int | None: ...

    def __contains__(self, key: str) -> bool:
        return self.get(key) is not None

    def __getitem__(self, key: str) -> int:
        line = self.get(key)
        if line is None:
            raise KeyError(key)
        return line


class KeyLines(LineLookup):
    """A map from text keys to lines where the first line given for a key stays."""

    def __init__(self, hasher: Hasher = polars_hash) -> None:
        self._hasher = hasher
        self._runs: list[pl.DataFrame] = []
        """Sorted by hash; each at most half the size of the one before (about)."""
        self._batch: dict[str, int] = {}
        """Keys added since the last `start_batch`."""
        self._looked_up: dict[str, int | None] = {}
        """The runs' answer for keys looked up since the last `start_batch` (None: absent)."""

    def __len__(self) -> int:
        return sum(run.height for run in self._runs) + len(self._batch)

    def get(self, key: str) -> int | None:
        """The key's line, None if it has none."""
        line = self._batch.get(key)
        if line is not None or not self._runs:
            return line
        if key not in self._looked_up:
            self._look_up([key])
        return self._looked_up[key]

    def setdefault(self, key: str, line: int) -> int:
        """The key's line, after giving it `line` if it had none."""
        known = self.get(key)
        if known is not None:
            return known
        self._batch[key] = line
        return line

    def start_batch(self, keys: Iterable[str]) -> None:
        """Store the last batch's keys in the runs, then look up these keys all at once."""
        self._store_batch()
        self._looked_up.clear()
        self._look_up(keys)

    def _store_batch(self) -> None:
        if not self._batch:
            return
        keys = pl.Series("key", list(self._batch), dtype=pl.String)
        lines = pl.Series("line", list(self._batch.values()), dtype=pl.Int64)
        run = pl.DataFrame([self._hasher(keys).alias("hash"), keys, lines]).sort("hash")
        self._batch.clear()
        while self._runs and _mergeable(self._runs[-1], run):
            run = self._runs.pop().merge_sorted(run, "hash")
        self._runs.append(run.rechunk())

    def _look_up(self, keys: Iterable[str]) -> None:
        """Record the runs' answer for each key not already answered this batch."""
        if not self._runs:
            return
        wanted = [key for key in dict.fromkeys(keys) if key not in self._looked_up]
        if not wanted:
            return
        self._looked_up.update(dict.fromkeys(wanted))
        texts = pl.Series("key", wanted, dtype=pl.String)
        probes = pl.DataFrame([self._hasher(texts).alias("hash"), texts]).sort("hash")
        for run in self._runs:
            self._looked_up.update(_found_in(run, probes))


def _mergeable(earlier: pl.DataFrame, later: pl.DataFrame) -> bool:
    """Merge runs of about the same size (so each key is merged O(log n) times), up to
    `RUN_LIMIT` keys."""
    return earlier.height <= later.height and earlier.height + later.height <= RUN_LIMIT


def _found_in(run: pl.DataFrame, probes: pl.DataFrame) -> dict[str, int]:
    """The probes' keys that the run holds, and their lines.

    A binary search finds each probe's first entry of equal hash; most probes end there, on
    another hash (absent) or on their own key. A probe whose hash is there but whose key is
    not collides: it is looked for among all the entries of its hash.
    """
    hashes = run.get_column("hash")
    at = hashes.search_sorted(probes.get_column("hash"), side="left").clip(0, run.height - 1)
    same_hash = hashes.gather(at) == probes.get_column("hash")
    if not same_hash.any():
        return {}
    candidates = probes.filter(same_hash)
    entries = run.select("key", "line").gather(at.filter(same_hash))
    same_key = entries.get_column("key") == candidates.get_column("key")
    found = dict(
        zip(
            candidates.get_column("key").filter(same_key).to_list(),
            entries.get_column("line").filter(same_key).to_list(),
            strict=True,
        )
    )
    collided = candidates.filter(~same_key)
    if collided.height:
        beside = run.filter(pl.col("hash").is_in(collided.get_column("hash").implode()))
        matches = beside.join(collided, on=["hash", "key"], how="semi")
        found.update(zip(matches.get_column("key"), matches.get_column("line"), strict=True))
    return found
