"""LRU: evict the least recently used row.

Recency is kept in a doubly linked list over row ids (arrays of size total rows: dense
embedding row ids need no hash table). Within a batch, rows take their new recency in
first-occurrence order whether they hit or miss, so the resident set at capacity C is
always the C most recent rows: LRU stays a stack algorithm at batch granularity, and the
one-pass miss-ratio curve (mrc.py) matches it at every capacity.

The list is the one of fifo.py: a row's two links side by side (one cache line per row), a
previous link of OUT for a row that is not resident, int32 links when the ids fit, and the
row of a batch a few batches ahead prefetched.
"""

import numba
import numpy as np

from ._prefetch import prefetch
from .base import (EVICTIONS, HITS, LOOKUPS, MISSES, OCCUPANCY, UNIQUE, WRITEBACKS, Policy,
                   batch_unique)
from .fifo import BATCHES_AHEAD, HEAD, NIL, OUT, PREV, TAIL, _push_front, _unlink


@numba.njit(cache=True)
def _lru_chunk(ids, batch_ptr, first_batch, capacity, links, ends, seen, state, uniq, stats):
    """state[0] = occupancy. Returns (failed batch or -1, rows it needs)."""
    batches = len(batch_ptr) - 1
    for b in range(batches):
        stamp = first_batch + b
        start, end = batch_ptr[b], batch_ptr[b + 1]
        if b + BATCHES_AHEAD < batches and batch_ptr[b + BATCHES_AHEAD] < len(ids):
            prefetch(links, 2 * ids[batch_ptr[b + BATCHES_AHEAD]])  # its first row's links
        if end - start == 1:  # a single lookup needs no deduplication
            uniq[0] = ids[start]
            n = 1
        else:
            n = batch_unique(ids, start, end, seen, stamp, uniq)
        if n > capacity:
            return b, n
        misses = 0
        for i in range(n):
            if links[uniq[i], PREV] == OUT:
                misses += 1
        # Evict from the tail, skipping rows of this batch (they are about to be used); only
        # a batch with hits has rows in the list to skip.
        evict = state[0] + misses - capacity
        evicted = 0
        r = ends[TAIL]
        while evicted < evict:
            p = links[r, PREV]
            if misses == n or seen[r] != stamp:
                _unlink(links, r, ends)
                links[r, PREV] = OUT
                evicted += 1
            r = p
        for i in range(n):
            r = uniq[i]
            if links[r, PREV] != OUT:
                _unlink(links, r, ends)
            _push_front(links, r, ends)
        state[0] += misses - evicted
        stats[b, LOOKUPS] = end - start
        stats[b, UNIQUE] = n
        stats[b, HITS] = n - misses
        stats[b, MISSES] = misses
        stats[b, EVICTIONS] = evicted
        stats[b, WRITEBACKS] = evicted
        stats[b, OCCUPANCY] = state[0]
    return -1, 0


class LRU(Policy):
    name = "lru"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        n = trace.total_rows
        link_type = np.int32 if n < 2**31 else np.int64
        self._links = np.full((n, 2), OUT, dtype=link_type)
        self._ends = np.full(2, NIL, dtype=link_type)  # head (most recent), tail (least)
        self._seen = np.full(n, -1, dtype=np.int64)
        self._state = np.zeros(1, dtype=np.int64)

    def process(self, chunk, stats):
        uniq = np.empty(int(np.diff(chunk.batch_ptr).max(initial=0)), dtype=np.int64)
        failed, needed = _lru_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, self.capacity,
                                    self._links, self._ends, self._seen, self._state, uniq,
                                    stats)
        self.check_batch(failed, needed, chunk.first_batch)
