"""LRU: evict the least recently used row.

Recency is kept in a doubly linked list over row ids (arrays of size total rows: dense
embedding row ids need no hash table). Within a batch, rows take their new recency in
first-occurrence order whether they hit or miss, so the resident set at capacity C is
always the C most recent rows: LRU stays a stack algorithm at batch granularity, and the
one-pass miss-ratio curve (mrc.py) matches it at every capacity.
"""

import numba
import numpy as np

from .base import (EVICTIONS, HITS, LOOKUPS, MISSES, OCCUPANCY, UNIQUE, WRITEBACKS, Policy,
                   batch_unique)

NIL = -1


@numba.njit(cache=True)
def _unlink(r, prev, nxt, ends):
    p, n = prev[r], nxt[r]
    if p != NIL:
        nxt[p] = n
    else:
        ends[0] = n  # r was the head (most recent)
    if n != NIL:
        prev[n] = p
    else:
        ends[1] = p  # r was the tail (least recent)


@numba.njit(cache=True)
def _push_front(r, prev, nxt, ends):
    prev[r] = NIL
    nxt[r] = ends[0]
    if ends[0] != NIL:
        prev[ends[0]] = r
    else:
        ends[1] = r
    ends[0] = r


@numba.njit(cache=True)
def _lru_chunk(ids, batch_ptr, first_batch, capacity, prev, nxt, ends, resident, seen, state,
               uniq, stats):
    """state[0] = occupancy. Returns (failed batch or -1, rows it needs)."""
    for b in range(len(batch_ptr) - 1):
        n = batch_unique(ids, batch_ptr[b], batch_ptr[b + 1], seen, first_batch + b, uniq)
        if n > capacity:
            return b, n
        misses = 0
        for i in range(n):
            if not resident[uniq[i]]:
                misses += 1
        # Evict from the tail, skipping rows of this batch (they are about to be used).
        evict = state[0] + misses - capacity
        evicted = 0
        r = ends[1]
        while evicted < evict:
            p = prev[r]
            if seen[r] != first_batch + b:
                _unlink(r, prev, nxt, ends)
                resident[r] = False
                evicted += 1
            r = p
        for i in range(n):
            r = uniq[i]
            if resident[r]:
                _unlink(r, prev, nxt, ends)
            resident[r] = True
            _push_front(r, prev, nxt, ends)
        state[0] += misses - evicted
        row = stats[b]
        row[LOOKUPS] = batch_ptr[b + 1] - batch_ptr[b]
        row[UNIQUE] = n
        row[HITS] = n - misses
        row[MISSES] = misses
        row[EVICTIONS] = evicted
        row[WRITEBACKS] = evicted
        row[OCCUPANCY] = state[0]
    return -1, 0


class LRU(Policy):
    name = "lru"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        n = trace.total_rows
        self._prev = np.full(n, NIL, dtype=np.int64)
        self._next = np.full(n, NIL, dtype=np.int64)
        self._ends = np.array([NIL, NIL], dtype=np.int64)  # head, tail
        self._resident = np.zeros(n, dtype=np.bool_)
        self._seen = np.full(n, -1, dtype=np.int64)
        self._state = np.zeros(1, dtype=np.int64)

    def process(self, chunk, stats):
        uniq = np.empty(int(np.diff(chunk.batch_ptr).max(initial=0)), dtype=np.int64)
        failed, needed = _lru_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, self.capacity,
                                    self._prev, self._next, self._ends, self._resident,
                                    self._seen, self._state, uniq, stats)
        self.check_batch(failed, needed, chunk.first_batch)
