"""FIFO: evict the row that entered the cache first.

Insertion order is kept in a doubly linked list over row ids (head = newest), as in lru.py.
A hit does not move its row. Missing rows of a batch enter at the head in first-occurrence
order. Eviction walks from the tail and skips rows of the current batch (they are about to
be used): those stay where they are, so a row that entered long ago and is still in use
keeps its old place and is the first victim once a batch no longer uses it. With one lookup
per batch no row is ever skipped, and this is the classic FIFO.

The links of a row (previous, next) sit side by side in one (rows, 2) array, with a previous
link of OUT marking a row that is not resident: the per-lookup work then touches one cache
line per row, which is what bounds a replay over millions of rows. The links are int32 when
the row ids fit, and the row of a batch a few batches ahead is prefetched.
"""

import numba
import numpy as np

from ._prefetch import prefetch
from .base import Policy, batch_unique, record_batch

PREV, NEXT = 0, 1
NIL = -1  # no neighbour
OUT = -2  # as a previous link: the row is not resident
HEAD, TAIL = 0, 1
BATCHES_AHEAD = 16  # how far ahead to prefetch (measured best on a 1M-row Zipf stream)


@numba.njit(cache=True, inline="always")
def _unlink(links, r, ends):
    p, n = links[r, PREV], links[r, NEXT]
    if p != NIL:
        links[p, NEXT] = n
    else:
        ends[HEAD] = n
    if n != NIL:
        links[n, PREV] = p
    else:
        ends[TAIL] = p


@numba.njit(cache=True, inline="always")
def _push_front(links, r, ends):
    h = ends[HEAD]
    links[r, PREV] = NIL
    links[r, NEXT] = h
    if h != NIL:
        links[h, PREV] = r
    else:
        ends[TAIL] = r
    ends[HEAD] = r


@numba.njit(cache=True)
def _fifo_chunk(ids, batch_ptr, first_batch, capacity, links, ends, seen, state, uniq, stats):
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
        evict = state[0] + misses - capacity
        evicted = 0
        r = ends[TAIL]
        while evicted < evict:
            p = links[r, PREV]
            # Only a batch with hits has rows in the list to skip.
            if misses == n or seen[r] != stamp:
                _unlink(links, r, ends)
                links[r, PREV] = OUT
                evicted += 1
            r = p
        for i in range(n):
            r = uniq[i]
            if links[r, PREV] == OUT:
                _push_front(links, r, ends)
        state[0] += misses - evicted
        record_batch(stats, b, end - start, n, misses, evicted, state[0])
    return -1, 0


class FIFO(Policy):
    name = "fifo"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        n = trace.total_rows
        link_type = np.int32 if n < 2**31 else np.int64
        self._links = np.full((n, 2), OUT, dtype=link_type)
        self._ends = np.full(2, NIL, dtype=link_type)  # head (newest), tail (oldest)
        self._seen = np.full(n, -1, dtype=np.int64)
        self._state = np.zeros(1, dtype=np.int64)

    def process(self, chunk, stats):
        uniq = chunk.batch_buffer()
        failed, needed = _fifo_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch,
                                     self.capacity, self._links, self._ends, self._seen,
                                     self._state, uniq, stats)
        self.check_batch(failed, needed, chunk.first_batch)
