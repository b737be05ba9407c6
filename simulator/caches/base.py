"""The replay interface shared by every cache policy.

Semantics (DESIGN.md §4): the batch is the unit. The unique rows U of a batch are looked up
together: hits = |U ∩ resident|, misses = |U \\ resident|. A policy that holds the batch
during training needs capacity >= |U|; victims are chosen among rows not in U; every row
used is dirty, so every eviction is a write-back. With one lookup per batch this is the
classic per-access cache.

A policy is a class with a name, built from (trace, capacity, **params), whose process()
replays one chunk of whole batches in a numba kernel and fills that chunk's rows of the
per-batch statistics table. Kernels report "this batch does not fit" through an error
code instead of raising, and process() turns it into a CapacityError.

Lifecycle: a policy object replays one trace once. run_replay() calls process() for every
chunk in order, then finish() (checks that need the whole replay), and close() in any case,
also after an error: close() releases what the replay holds beyond memory, such as the
next-use file of the future-aware policies (future.py), so that no policy has to detect
the end of the trace by itself.
"""

from __future__ import annotations

import csv
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np

from .._atomic import atomic_open
from ..errors import CapacityError, OptionError
from ..options import Configurable
from ..trace.format import DEFAULT_CHUNK_LOOKUPS, Chunk, Trace

# Columns of the per-batch statistics table, in order.
STATS = ("lookups", "unique", "hits", "misses", "evictions", "writebacks", "conflict_misses",
         "held", "occupancy")
LOOKUPS, UNIQUE, HITS, MISSES, EVICTIONS, WRITEBACKS, CONFLICT_MISSES, HELD, OCCUPANCY = range(9)
# Per-batch statistics that are summed into totals (held and occupancy are levels, not flows).
FLOW_STATS = STATS[:7]


@numba.njit(cache=True)
def batch_unique(ids, start, end, seen, stamp, out):
    """Write the distinct rows of ids[start:end] to out in first-occurrence order and return
    their count. seen[row] == stamp marks a row already taken; stamps must never repeat
    (use a running counter, e.g. the global batch index)."""
    n = 0
    for k in range(start, end):
        r = ids[k]
        if seen[r] != stamp:
            seen[r] = stamp
            out[n] = r
            n += 1
    return n


@numba.njit(cache=True, inline="always")
def record_batch(stats, b, lookups, unique, misses, evicted, occupancy, conflicts=0, held=0):
    """Add batch b's statistics (every eviction is a write-back) into the zeroed table stats:
    into its row b when the replay keeps per-batch rows, or into its only row when it keeps
    totals (flows add up; held and occupancy keep their peak)."""
    row = stats[b if stats.shape[0] > 1 else 0]
    row[LOOKUPS] += lookups
    row[UNIQUE] += unique
    row[HITS] += unique - misses
    row[MISSES] += misses
    row[EVICTIONS] += evicted
    row[WRITEBACKS] += evicted
    row[CONFLICT_MISSES] += conflicts
    row[HELD] = max(row[HELD], held)
    row[OCCUPANCY] = max(row[OCCUPANCY], occupancy)


@numba.njit(cache=True)
def _count_distinct(ids, seen):
    n = 0
    for r in ids:
        if not seen[r]:
            seen[r] = True
            n += 1
    return n


def distinct_rows(trace: Trace, max_lookups: int = DEFAULT_CHUNK_LOOKUPS) -> int:
    """The number of distinct rows the trace touches (one streaming pass)."""
    seen = np.zeros(trace.total_rows, dtype=np.bool_)
    return sum(_count_distinct(c.ids, seen) for c in trace.chunks(max_lookups))


def parse_capacity(capacity) -> tuple[int | None, float | None]:
    """(rows, None) or (None, percent) from an int, a digit string or 'X%' (of the trace's
    distinct rows): the syntax, checked without a trace."""
    text = str(capacity).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 < pct < float("inf"):
                raise ValueError
            return None, pct
        rows = int(text)
    except ValueError:
        raise OptionError(f"capacity {capacity!r}: give a number of rows or a percentage of the "
                          "trace's distinct rows such as 20%") from None
    if rows <= 0:
        raise OptionError(f"capacity must be positive, got {rows}")
    return rows, None


def resolve_capacity(trace: Trace, capacity) -> int:
    """Capacity in rows from an int, a digit string, or 'X%' of the trace's distinct rows."""
    rows, pct = parse_capacity(capacity)
    if pct is not None:
        rows = max(int(round(distinct_rows(trace) * pct / 100.0)), 1)
    return rows


class Policy(Configurable, ABC):
    """One replacement policy. Subclasses set `name`, declare their `options` and implement
    process(); each option's value is an attribute of the same name."""

    kind = "policy"
    on_demand: ClassVar[bool] = True  # fetches a batch's misses (the cache mode can use it)

    def __init__(self, trace: Trace, capacity: int, **params):
        super().__init__(**params)
        self.trace = trace
        self.capacity = capacity

    @abstractmethod
    def process(self, chunk: Chunk, stats: np.ndarray) -> None:
        """Replay the chunk's batches; stats is the (chunk batches, len(STATS)) int64 view of
        the per-batch table to fill."""

    def summary(self) -> dict:
        """Policy-specific results beyond the per-batch table (e.g. peak occupancy)."""
        return {}

    def finish(self) -> None:
        """Called once after the last chunk: checks that need the whole replay (they may
        raise, e.g. a CapacityError found only at the end)."""

    def close(self) -> None:
        """Release what the replay holds beyond memory (temporary files). run_replay()
        calls it after the replay, also when it fails; it must be safe to call twice."""

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False

    def check_batch(self, failed_batch: int, needed: int, first_batch: int) -> None:
        """Raise the error for a kernel's 'batch does not fit' code (failed_batch < 0: none),
        with the capacity the whole trace needs (its largest batch), found by one more pass."""
        if failed_batch >= 0:
            b = first_batch + failed_batch
            largest = int(batch_counts(self.trace)[1].max())
            raise CapacityError(f"batch {b} touches {needed:,} distinct rows but the {self.name} "
                                f"cache holds {self.capacity:,}; this trace needs a capacity of "
                                f"at least {largest:,} rows (its largest batch)")


# Above this many batches replay() keeps totals only (unless asked): per-batch rows cost 72
# bytes a batch, which for a one-lookup-per-batch stream would outgrow the tables themselves.
PER_BATCH_LIMIT = 1 << 20


@dataclass
class ReplayResult:
    """Totals of one replay, and its per-batch statistics (numpy arrays) when they were kept."""

    policy: str
    capacity: int
    params: dict
    batches: int
    totals: np.ndarray          # len(STATS): flows summed; held and occupancy at their peak
    stats: np.ndarray | None    # (batches, len(STATS)) int64, or None
    extra: dict = field(default_factory=dict)
    trace_path: str = ""

    def column(self, name: str) -> np.ndarray:
        """One per-batch statistic, e.g. column("misses")."""
        if self.stats is None:
            raise OptionError(f"this replay of {self.batches:,} batches kept totals only; "
                              "replay with per_batch=True for per-batch statistics")
        return self.stats[:, STATS.index(name)]

    def __getattr__(self, attr: str):
        # per_batch_misses, per_batch_hits, ...: the per-batch columns by name.
        if attr.startswith("per_batch_") and attr[len("per_batch_"):] in STATS:
            return self.column(attr[len("per_batch_"):])
        raise AttributeError(attr)

    def total(self, name: str) -> int:
        return int(self.totals[STATS.index(name)])

    lookups = property(lambda self: self.total("lookups"))
    unique = property(lambda self: self.total("unique"))
    hits = property(lambda self: self.total("hits"))
    misses = property(lambda self: self.total("misses"))
    evictions = property(lambda self: self.total("evictions"))
    writebacks = property(lambda self: self.total("writebacks"))
    conflict_misses = property(lambda self: self.total("conflict_misses"))
    peak_occupancy = property(lambda self: self.total("occupancy"))
    peak_held = property(lambda self: self.total("held"))

    @property
    def hit_rate(self) -> float:
        return self.hits / self.unique if self.unique else 0.0

    def to_dict(self) -> dict:
        d = {"policy": self.policy, "capacity": self.capacity, "params": self.params,
             "trace": self.trace_path, "batches": self.batches}
        d.update({name: self.total(name) for name in FLOW_STATS})
        d["hit_rate"] = self.hit_rate
        d["peak_occupancy"] = self.peak_occupancy
        d.update(self.extra)
        return d

    def write_per_batch_csv(self, path) -> None:
        """One line per batch; written under a temporary name and renamed."""
        self.column("lookups")  # per-batch statistics must have been kept
        stats = self.stats
        path = Path(path)
        with atomic_open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("batch",) + STATS)
            for b, row in enumerate(stats.tolist()):
                w.writerow([b] + row)


def _fold(totals: np.ndarray, rows: np.ndarray) -> None:
    """Add a block of per-batch rows into totals (levels: keep the peak)."""
    if len(rows):
        totals[:len(FLOW_STATS)] += rows[:, :len(FLOW_STATS)].sum(axis=0)
        totals[len(FLOW_STATS):] = np.maximum(totals[len(FLOW_STATS):],
                                              rows[:, len(FLOW_STATS):].max(axis=0))


def run_replay(policy: Policy, trace: Trace, max_lookups: int = DEFAULT_CHUNK_LOOKUPS,
               per_batch: bool | None = None) -> ReplayResult:
    """Replay every chunk of the trace through the policy, then finish() and close() it
    (close() also on an error). per_batch: keep per-batch statistics (default: when the
    trace has at most PER_BATCH_LIMIT batches); otherwise only totals."""
    nb = trace.num_batches
    if per_batch is None:
        per_batch = nb <= PER_BATCH_LIMIT
    totals = np.zeros(len(STATS), dtype=np.int64)
    stats = np.zeros((nb, len(STATS)), dtype=np.int64) if per_batch else None
    try:
        for chunk in trace.chunks(max_lookups):
            if per_batch:
                policy.process(chunk, stats[chunk.first_batch:chunk.first_batch
                                            + chunk.num_batches])
            else:
                policy.process(chunk, totals[None, :])  # one row: the kernels add into it
        policy.finish()
    finally:
        policy.close()
    if per_batch:
        _fold(totals, stats)
    return ReplayResult(policy.name, policy.capacity, policy.settings(), nb, totals, stats,
                        policy.summary(), str(trace.path))


@numba.njit(cache=True)
def _batch_counts_chunk(ids, batch_ptr, first_batch, seen, uniq, lookups, unique):
    for b in range(len(batch_ptr) - 1):
        lookups[b] = batch_ptr[b + 1] - batch_ptr[b]
        unique[b] = batch_unique(ids, batch_ptr[b], batch_ptr[b + 1], seen, first_batch + b, uniq)


def batch_counts(trace: Trace, max_lookups: int = DEFAULT_CHUNK_LOOKUPS):
    """Lookups and distinct rows of every batch (what a cache-less placement works on)."""
    lookups = np.zeros(trace.num_batches, dtype=np.int64)
    unique = np.zeros(trace.num_batches, dtype=np.int64)
    seen = np.full(trace.total_rows, -1, dtype=np.int64)
    for c in trace.chunks(max_lookups):
        sl = slice(c.first_batch, c.first_batch + c.num_batches)
        _batch_counts_chunk(c.ids, c.batch_ptr, c.first_batch, seen, c.batch_buffer(), lookups[sl],
                            unique[sl])
    return lookups, unique
