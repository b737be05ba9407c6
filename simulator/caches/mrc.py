"""The LRU miss-ratio curve of a trace at every capacity, from one pass.

At batch granularity LRU (lru.py) is a stack algorithm: every unique row of a batch takes a
new recency in first-occurrence order, hit or miss, so at any capacity C that holds the
largest batch, the resident set after a batch is the C rows with the newest recency. A row
of batch b therefore hits at capacity C exactly when its stack distance, 1 + the number of
distinct rows more recent than it before batch b, is at most C; the distances of a batch
are all taken before any of its rows is renewed. Below the largest batch (in unique rows)
LRU cannot run at all, and the curve has no value there.

This module computes the curve only; plots/mrc.py draws it.

Recency is a position on a line that grows by one per (batch, row) event; a Fenwick tree
over the line counts the live positions (each row's latest), which gives a distance in
O(log M). So that memory follows the rows and not the trace length, the line is compacted
(live positions renumbered in order) whenever it fills, and doubled when compaction leaves
it more than half full: O(N log M) time for N events, O(total rows) memory.
"""

from __future__ import annotations

from dataclasses import dataclass

import numba
import numpy as np

from ..trace.format import DEFAULT_CHUNK_LOOKUPS, open_trace
from .base import batch_unique

# state: next free position on the line, live rows (distinct rows seen so far), cold misses,
# total unique rows over batches, largest batch in unique rows.
NEXT, LIVE, COLD, UNIQUE_TOTAL, MAX_UNIQUE = range(5)
MIN_LINE = 1024


@numba.njit(cache=True)
def _fenwick_add(tree, p, delta):
    i = p + 1
    while i < len(tree):
        tree[i] += delta
        i += i & -i


@numba.njit(cache=True)
def _fenwick_prefix(tree, p):
    """The number of live positions <= p."""
    total = 0
    i = p + 1
    while i > 0:
        total += tree[i]
        i -= i & -i
    return total


@numba.njit(cache=True)
def _compact(recency, row_at, state, new_row_at, new_tree):
    """Renumber the live positions 0..live-1 in order into new_row_at and new_tree (which
    may be row_at itself and the old tree, or larger arrays)."""
    q = 0
    for p in range(state[NEXT]):
        r = row_at[p]
        if recency[r] == p:
            new_row_at[q] = r
            recency[r] = q
            q += 1
    # A Fenwick tree over ones at positions 0..q-1: node i covers (i - lowbit(i), i].
    for i in range(1, len(new_tree)):
        lo = i - (i & -i)
        new_tree[i] = max(0, min(i, q) - lo)
    state[NEXT] = q


@numba.njit(cache=True)
def _mrc_chunk(ids, batch_ptr, first_batch, start_batch, recency, row_at, tree, seen, uniq,
               hist, state):
    """Accumulate the stack-distance histogram of batches start_batch.. of the chunk.
    Returns -1 when done, or the batch at which the line must grow (nothing of it is done)."""
    line = len(row_at)
    for b in range(start_batch, len(batch_ptr) - 1):
        start, end = batch_ptr[b], batch_ptr[b + 1]
        if state[NEXT] + (end - start) > line:
            _compact(recency, row_at, state, row_at, tree)
            if 2 * (state[NEXT] + (end - start)) > line:
                return b
        n = batch_unique(ids, start, end, seen, first_batch + b, uniq)
        live = state[LIVE]
        for i in range(n):
            p = recency[uniq[i]]
            if p < 0:
                state[COLD] += 1
            else:
                hist[1 + live - _fenwick_prefix(tree, p)] += 1
        for i in range(n):
            r = uniq[i]
            if recency[r] >= 0:
                _fenwick_add(tree, recency[r], -1)
            else:
                state[LIVE] += 1
            p = state[NEXT]
            state[NEXT] += 1
            recency[r] = p
            row_at[p] = r
            _fenwick_add(tree, p, 1)
        state[UNIQUE_TOTAL] += n
        if n > state[MAX_UNIQUE]:
            state[MAX_UNIQUE] = n
    return -1


@dataclass
class MissRatioCurve:
    """Misses of batch-granular LRU at every capacity C = 0..distinct_rows.

    misses[C] is NaN for C < min_capacity (the largest batch in unique rows), where LRU
    cannot hold a batch; beyond distinct_rows only cold misses remain."""

    misses: np.ndarray  # float64, index = capacity in rows
    lookups: int
    unique: int  # sum over batches of the batch's unique rows: hits + misses at any capacity
    cold_misses: int
    distinct_rows: int
    min_capacity: int
    trace_path: str = ""

    @property
    def hits(self) -> np.ndarray:
        return self.unique - self.misses

    def misses_at(self, capacity: int) -> int | None:
        """Misses at a capacity in rows; None where LRU cannot run (below min_capacity)."""
        if capacity < self.min_capacity:
            return None
        return int(self.misses[min(int(capacity), self.distinct_rows)])

    def miss_ratio(self, capacity: int) -> float:
        """Misses per unique row looked up; NaN below min_capacity."""
        m = self.misses_at(capacity)
        if m is None:
            return float("nan")
        return m / self.unique if self.unique else 0.0

    def capacities(self, points: int = 40) -> np.ndarray:
        """About `points` log-spaced feasible capacities from min_capacity to distinct_rows."""
        lo, hi = max(self.min_capacity, 1), max(self.distinct_rows, 1)
        if lo >= hi:
            return np.array([lo])
        return np.unique(np.geomspace(lo, hi, points).round().astype(np.int64))

    def to_dict(self, points: int = 40, full: bool = False) -> dict:
        d = {"trace": self.trace_path, "lookups": self.lookups, "unique": self.unique,
             "cold_misses": self.cold_misses, "distinct_rows": self.distinct_rows,
             "min_capacity": self.min_capacity,
             "points": [{"capacity": int(c), "misses": self.misses_at(c),
                         "miss_ratio": self.miss_ratio(c)} for c in self.capacities(points)]}
        if full:
            d["misses"] = [None if np.isnan(m) else int(m) for m in self.misses]
        return d

    def format(self, points: int = 12) -> str:
        lines = [f"trace          {self.trace_path}",
                 f"lookups        {self.lookups:,}",
                 f"unique         {self.unique:,}  (sum over batches of distinct rows)",
                 f"distinct rows  {self.distinct_rows:,}  (cold misses {self.cold_misses:,})",
                 f"min capacity   {self.min_capacity:,}  (largest batch; LRU needs at least this)",
                 "",
                 f"{'capacity':>14}  {'misses':>14}  {'miss ratio':>10}"]
        for c in self.capacities(points):
            lines.append(f"{int(c):>14,}  {self.misses_at(c):>14,}  {self.miss_ratio(c):>10.4f}")
        return "\n".join(lines)


def mrc(trace, max_lookups: int = DEFAULT_CHUNK_LOOKUPS) -> MissRatioCurve:
    """The batch-granular LRU miss-ratio curve of a trace, at every capacity, in one pass."""
    trace = open_trace(trace)
    n = trace.total_rows
    recency = np.full(n, -1, dtype=np.int64)
    seen = np.full(n, -1, dtype=np.int64)
    hist = np.zeros(n + 2, dtype=np.int64)
    state = np.zeros(5, dtype=np.int64)
    row_at = np.empty(MIN_LINE, dtype=np.int64)
    tree = np.zeros(MIN_LINE + 1, dtype=np.int64)
    for chunk in trace.chunks(max_lookups):
        uniq = chunk.batch_buffer()
        b = 0
        while (b := _mrc_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, b, recency,
                               row_at, tree, seen, uniq, hist, state)) >= 0:
            batch = int(chunk.batch_ptr[b + 1] - chunk.batch_ptr[b])
            size = max(2 * len(row_at), 2 * (int(state[NEXT]) + batch))
            grown_row_at = np.empty(size, dtype=np.int64)
            grown_tree = np.zeros(size + 1, dtype=np.int64)
            _compact(recency, row_at, state, grown_row_at, grown_tree)
            row_at, tree = grown_row_at, grown_tree
    distinct = int(state[LIVE])
    hist = hist[:distinct + 2]
    # misses(C) = cold + events with distance > C = cold + sum(hist[C + 1:]).
    tail = np.concatenate((np.cumsum(hist[::-1])[::-1], [0]))
    misses = (state[COLD] + tail[1:distinct + 2]).astype(np.float64)
    min_capacity = int(state[MAX_UNIQUE])
    misses[:min_capacity] = np.nan
    return MissRatioCurve(misses=misses, lookups=trace.num_lookups, unique=int(state[UNIQUE_TOTAL]),
                          cold_misses=int(state[COLD]), distinct_rows=distinct,
                          min_capacity=min_capacity, trace_path=str(trace.path))
