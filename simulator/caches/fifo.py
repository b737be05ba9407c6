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

from ._pools import word_dtype
from ._prefetch import ROWS_AHEAD, VICTIMS_AHEAD, prefetch
from .base import Policy, record_batch

NEVER = -1  # the last use of a row never used


@numba.njit(cache=True, inline="always")
def take_batch(ids, start, end, last, state, stamp, uniq):
    """Mark the rows of ids[start:end] used by batch `stamp` in their state words and list
    the distinct ones in uniq, in first-occurrence order. Returns (distinct rows, how many of
    them are not resident)."""
    n = 0
    misses = 0
    for k in range(start, end):
        prefetch(state, ids[min(k + ROWS_AHEAD, last)])
        r = ids[k]
        word = state[r]
        if word >> 1 != stamp:  # first lookup of r in this batch
            uniq[n] = r
            n += 1
            misses += 1 - (word & 1)
            state[r] = (stamp << 1) | (word & 1)
    return n, misses


@numba.njit(cache=True)
def _fifo_stream(ids, capacity, state, ring, ends, stats):
    """Batches of one lookup each (the classic per-access FIFO): no row is ever skipped, and
    only the resident bit of a state word changes. Totals are kept in registers unless stats
    has a row per batch."""
    head, count = ends[0], ends[1]
    size = len(ring)
    per_batch = stats.shape[0] > 1
    hits = evictions = 0
    last = len(ids) - 1
    for k in range(len(ids)):
        prefetch(state, ids[min(k + ROWS_AHEAD, last)])
        r = ids[k]
        word = state[r]
        hit = word & 1
        evicted = 0
        if not hit:
            state[r] = word | 1
            if count < capacity:
                tail = head + count
                ring[tail if tail < size else tail - size] = r
                count += 1
            else:  # the oldest row leaves and the new one takes its place in the ring
                ahead = head + VICTIMS_AHEAD
                ahead = ahead if ahead < size else ahead - size
                if ahead < size:  # (a ring smaller than the distance wraps more than once)
                    prefetch(state, ring[ahead])
                state[ring[head]] &= ~1
                ring[head] = r
                head = head + 1 if head + 1 < size else 0
                evicted = 1
        hits += hit
        evictions += evicted
        if per_batch:
            record_batch(stats, k, 1, 1, 1 - hit, evicted, count)
    if not per_batch:  # the ring never shrinks, so its last size is its peak
        n = len(ids)
        record_batch(stats, 0, n, n, n - hits, evictions, count)
    ends[0], ends[1] = head, count


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


def _word_type(trace):
    """State words hold last use << 1 | resident (and the never-used mark), the ring row ids."""
    return word_dtype(2 * trace.num_batches - 1, NEVER << 1, trace.total_rows - 1)


class FIFO(Policy):
    name = "fifo"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        # 32-bit words when batch numbers and row ids fit: half the memory traffic.
        word = _word_type(trace)
        self._state = np.full(trace.total_rows, NEVER << 1, dtype=word)
        # Never more resident rows than the cache holds, or than the trace has.
        self._ring = np.zeros(max(1, min(capacity, trace.total_rows)), dtype=word)
        self._ends = np.zeros(2, dtype=np.int64)  # head, count

    def process(self, chunk, stats):
        if chunk.one_lookup_per_batch:
            _fifo_stream(chunk.row_ids, self.capacity, self._state, self._ring, self._ends,
                         stats)
            return
        uniq = chunk.batch_buffer()
        failed, needed = _fifo_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch,
                                     self.capacity, self._state, self._ring, self._ends, uniq,
                                     np.empty_like(uniq), stats)
        self.check_batch(failed, needed, chunk.first_batch)
