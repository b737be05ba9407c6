"""LFU: evict the resident row with the fewest lookups, ties by least recent use.

Counters are per row and kept while the row is evicted, as FBGEMM's LFU cache keeps them:
a row that comes back resumes its count. A row's counter grows by the number of its lookups
in a batch (not by one per batch), so a row looked up by many samples of a batch counts as
hot as it is. Ties go to the least recent batch first, then within a batch to the row that
occurred first in it: every unique row of a batch gets the next number of a global sequence
in first-occurrence order, and the victim is the smallest (counter, sequence) pair.

Resident rows live in a binary min-heap keyed by (counter, sequence) with the heap position
of each row tracked, so a hit is an increase-key (sift down) and a miss a pop and a push:
O(log capacity) per unique row, no scan. Rows of the current batch popped while looking for
victims are pushed back with their new key, never evicted. The counter and heap position of
the row of a batch a few batches ahead are prefetched (see _prefetch.py).
"""

import numba
import numpy as np

from ._pools import word_dtype
from ._prefetch import prefetch
from .base import Policy, batch_unique, record_batch

# Columns of a heap node: counter and sequence (the key), and the row it holds.
FREQ, SEQ, ROW = 0, 1, 2
BATCHES_AHEAD = 16  # how far ahead to prefetch a row's counter and heap position
# state: heap size (the occupancy between batches), next sequence number.
SIZE, NEXT_SEQ = 0, 1


@numba.njit(cache=True, inline="always")
def _before(f1, s1, f2, s2):
    return f1 < f2 or (f1 == f2 and s1 < s2)


@numba.njit(cache=True)
def _place(heap, pos, i, f, s, r):
    heap[i, FREQ] = f
    heap[i, SEQ] = s
    heap[i, ROW] = r
    pos[r] = i


@numba.njit(cache=True)
def _sift_down(heap, pos, size, i, f, s, r):
    """Put the node (f, s, r) at hole i and move it down to its place."""
    while True:
        c = 2 * i + 1
        if c >= size:
            break
        if c + 1 < size and _before(heap[c + 1, FREQ], heap[c + 1, SEQ],
                                    heap[c, FREQ], heap[c, SEQ]):
            c += 1
        if not _before(heap[c, FREQ], heap[c, SEQ], f, s):
            break
        _place(heap, pos, i, heap[c, FREQ], heap[c, SEQ], heap[c, ROW])
        i = c
    _place(heap, pos, i, f, s, r)


@numba.njit(cache=True)
def _sift_up(heap, pos, i, f, s, r):
    """Put the node (f, s, r) at hole i and move it up to its place."""
    while i > 0:
        p = (i - 1) >> 1
        if not _before(f, s, heap[p, FREQ], heap[p, SEQ]):
            break
        _place(heap, pos, i, heap[p, FREQ], heap[p, SEQ], heap[p, ROW])
        i = p
    _place(heap, pos, i, f, s, r)


@numba.njit(cache=True)
def _pop_min(heap, pos, state):
    r = heap[0, ROW]
    pos[r] = -1
    state[SIZE] -= 1
    last = state[SIZE]
    if last > 0:
        _sift_down(heap, pos, last, 0, heap[last, FREQ], heap[last, SEQ], heap[last, ROW])
    return r


@numba.njit(cache=True)
def _lfu_chunk(ids, batch_ptr, first_batch, capacity, freq, heap, pos, seen, state, uniq, stats):
    """A row is resident iff it is in the heap (pos >= 0), except for rows of the current
    batch popped while finding victims. Returns (failed batch or -1, rows it needs)."""
    batches = len(batch_ptr) - 1
    for b in range(batches):
        stamp = first_batch + b
        start, end = batch_ptr[b], batch_ptr[b + 1]
        if b + BATCHES_AHEAD < batches and batch_ptr[b + BATCHES_AHEAD] < len(ids):
            ahead = ids[batch_ptr[b + BATCHES_AHEAD]]  # the first row of a coming batch
            prefetch(freq, ahead)
            prefetch(pos, ahead)
        if end - start == 1:  # a single lookup needs no deduplication
            uniq[0] = ids[start]
            n = 1
        else:
            n = batch_unique(ids, start, end, seen, stamp, uniq)
        if n > capacity:
            return b, n
        for k in range(start, end):
            freq[ids[k]] += 1
        misses = 0
        for i in range(n):
            if pos[uniq[i]] < 0:
                misses += 1
        evict = state[SIZE] + misses - capacity
        evicted = 0
        while evicted < evict:
            r = _pop_min(heap, pos, state)
            # Rows of this batch (only a batch with hits has them) stay: they are pushed back
            # below.
            if misses == n or seen[r] != stamp:
                evicted += 1
        for i in range(n):
            r = uniq[i]
            s = state[NEXT_SEQ]
            state[NEXT_SEQ] += 1
            if pos[r] >= 0:  # a key only grows: sift down from where the row is
                _sift_down(heap, pos, state[SIZE], pos[r], freq[r], s, r)
            else:
                state[SIZE] += 1
                _sift_up(heap, pos, state[SIZE] - 1, freq[r], s, r)
        record_batch(stats, b, end - start, n, misses, evicted, state[SIZE])
    return -1, 0


class LFU(Policy):
    name = "lfu"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        n = trace.total_rows
        self._freq = np.zeros(n, dtype=np.int64)
        self._heap = np.empty((min(capacity, n), 3), dtype=np.int64)
        self._pos = np.full(n, -1, dtype=word_dtype(len(self._heap) - 1))  # heap index or -1
        self._seen = np.full(n, -1, dtype=np.int64)
        self._state = np.zeros(2, dtype=np.int64)

    def process(self, chunk, stats):
        uniq = chunk.batch_buffer()
        failed, needed = _lfu_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, self.capacity,
                                    self._freq, self._heap, self._pos, self._seen, self._state,
                                    uniq, stats)
        self.check_batch(failed, needed, chunk.first_batch)
