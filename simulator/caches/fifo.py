"""FIFO: evict the row that entered the cache first.

Insertion order is a ring of the resident rows, oldest at the head. A hit does not move its
row. Missing rows of a batch enter at the tail in first-occurrence order. Eviction takes rows
from the head and skips rows of the current batch (they are about to be used): those stay
where they are, at the head, so a row that entered long ago and is still in use keeps its
old place and is the first victim once a batch no longer uses it. With one lookup per batch
no row is ever skipped, and this is the classic FIFO.

A row's state is one word (the last batch that used it, and whether it is resident): dense
embedding row ids need no hash table, and a lookup touches that word and nothing else at
random; the ring is read and written in order.
"""

import numba
import numpy as np

from ._prefetch import prefetch
from .base import Policy, record_batch
from .lru import NEVER, VICTIMS_AHEAD, take_batch, word_type



@numba.njit(cache=True)
def _fifo_chunk(ids, batch_ptr, first_batch, capacity, state, ring, ends, uniq, skipped,
                stats):
    """state[row] = last use << 1 | resident; ring[ends[0]...] holds ends[1] resident rows,
    oldest first (wrapping around). Returns (failed batch or -1, rows it needs)."""
    head, count = ends[0], ends[1]
    size = len(ring)
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        stamp = first_batch + b
        start, end = batch_ptr[b], batch_ptr[b + 1]
        n, misses = take_batch(ids, start, end, last, state, stamp, uniq)
        if n > capacity:
            ends[0], ends[1] = head, count
            return b, n
        evict = count + misses - capacity
        evicted = 0
        kept = 0
        while evicted < evict:
            # The coming victims are read in ring order: fetch their state early.
            prefetch(state, ring[(head + VICTIMS_AHEAD) % size])
            r = ring[head]
            head = head + 1 if head + 1 < size else 0
            count -= 1
            if state[r] >> 1 == stamp:  # in use by this batch: it keeps its place
                skipped[kept] = r
                kept += 1
            else:
                state[r] &= ~1
                evicted += 1
        for i in range(kept - 1, -1, -1):  # back at the head, in their order
            head = head - 1 if head > 0 else size - 1
            ring[head] = skipped[i]
            count += 1
        for i in range(n):
            r = uniq[i]
            if not state[r] & 1:
                tail = head + count
                ring[tail if tail < size else tail - size] = r
                count += 1
                state[r] |= 1
        record_batch(stats, b, end - start, n, misses, evicted, count)
    ends[0], ends[1] = head, count
    return -1, 0


class FIFO(Policy):
    name = "fifo"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        # 32-bit words when batch numbers and row ids fit: half the memory traffic.
        word = word_type(trace)
        self._state = np.full(trace.total_rows, NEVER << 1, dtype=word)
        # Never more resident rows than the cache holds, or than the trace has.
        self._ring = np.zeros(max(1, min(capacity, trace.total_rows)), dtype=word)
        self._ends = np.zeros(2, dtype=np.int64)  # head, count

    def process(self, chunk, stats):
        uniq = chunk.batch_buffer()
        failed, needed = _fifo_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch,
                                     self.capacity, self._state, self._ring, self._ends, uniq,
                                     np.empty_like(uniq), stats)
        self.check_batch(failed, needed, chunk.first_batch)
