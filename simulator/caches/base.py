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
"""

from __future__ import annotations

import csv
import os
from abc import ABC, abstractmethod
from dataclasses import dataclass, field
from pathlib import Path
from typing import ClassVar

import numba
import numpy as np

from ..errors import CapacityError, OptionError
from ..trace.format import DEFAULT_CHUNK_LOOKUPS, Chunk, Trace, open_trace

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


def resolve_capacity(trace: Trace, capacity) -> int:
    """Capacity in rows from an int, a digit string, or 'X%' of the trace's distinct rows."""
    text = str(capacity).strip()
    try:
        if text.endswith("%"):
            pct = float(text[:-1])
            if not 0 < pct:
                raise ValueError
            rows = int(round(distinct_rows(trace) * pct / 100.0))
            return max(rows, 1)
        rows = int(text)
    except ValueError:
        raise OptionError(f"capacity {capacity!r}: give a number of rows or a percentage of the "
                          "trace's distinct rows such as 20%") from None
    if rows <= 0:
        raise OptionError(f"capacity must be positive, got {rows}")
    return rows


class Policy(ABC):
    """One replacement policy. Subclasses set `name` and implement process()."""

    name: ClassVar[str]

    def __init__(self, trace: Trace, capacity: int, **params):
        if params:
            raise OptionError(f"policy {self.name} takes no option {', '.join(sorted(params))}")
        self.trace = trace
        self.capacity = capacity

    @abstractmethod
    def process(self, chunk: Chunk, stats: np.ndarray) -> None:
        """Replay the chunk's batches; stats is the (chunk batches, len(STATS)) int64 view of
        the per-batch table to fill."""

    def params(self) -> dict:
        """The policy's options as they were resolved (recorded with the result)."""
        return {}

    def summary(self) -> dict:
        """Policy-specific results beyond the per-batch table (e.g. peak occupancy)."""
        return {}

    def check_batch(self, failed_batch: int, needed: int, first_batch: int) -> None:
        """Raise the error for a kernel's 'batch does not fit' code (failed_batch < 0: none)."""
        if failed_batch >= 0:
            b = first_batch + failed_batch
            raise CapacityError(f"batch {b} touches {needed:,} distinct rows but the {self.name} "
                                f"cache holds {self.capacity:,}; give a capacity of at least "
                                f"{needed:,} rows")


@dataclass
class ReplayResult:
    """Per-batch statistics (numpy arrays) and totals of one replay."""

    policy: str
    capacity: int
    params: dict
    stats: np.ndarray  # (batches, len(STATS)) int64
    extra: dict = field(default_factory=dict)
    trace_path: str = ""

    def __post_init__(self):
        for i, name in enumerate(STATS):
            setattr(self, f"per_batch_{name}", self.stats[:, i])

    def column(self, name: str) -> np.ndarray:
        return self.stats[:, STATS.index(name)]

    @property
    def batches(self) -> int:
        return self.stats.shape[0]

    def total(self, name: str) -> int:
        return int(self.column(name).sum())

    lookups = property(lambda self: self.total("lookups"))
    unique = property(lambda self: self.total("unique"))
    hits = property(lambda self: self.total("hits"))
    misses = property(lambda self: self.total("misses"))
    evictions = property(lambda self: self.total("evictions"))
    writebacks = property(lambda self: self.total("writebacks"))
    conflict_misses = property(lambda self: self.total("conflict_misses"))

    @property
    def hit_rate(self) -> float:
        return self.hits / self.unique if self.unique else 0.0

    @property
    def peak_occupancy(self) -> int:
        return int(self.column("occupancy").max()) if self.batches else 0

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
        path = Path(path)
        tmp = path.parent / f".{path.name}.tmp-{os.getpid()}"
        try:
            with open(tmp, "w", newline="") as f:
                w = csv.writer(f)
                w.writerow(("batch",) + STATS)
                for b, row in enumerate(self.stats.tolist()):
                    w.writerow([b] + row)
            os.replace(tmp, path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def run_replay(policy: Policy, trace: Trace, max_lookups: int = DEFAULT_CHUNK_LOOKUPS) -> ReplayResult:
    stats = np.zeros((trace.num_batches, len(STATS)), dtype=np.int64)
    for chunk in trace.chunks(max_lookups):
        policy.process(chunk, stats[chunk.first_batch:chunk.first_batch + chunk.num_batches])
    return ReplayResult(policy.name, policy.capacity, policy.params(), stats, policy.summary(),
                        str(trace.path))
