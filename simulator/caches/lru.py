"""LRU: evict the least recently used row.

Within a batch, rows take their new recency in first-occurrence order whether they hit or
miss, so the resident set at capacity C is always the C most recent rows: LRU stays a stack
algorithm at batch granularity, and the one-pass miss-ratio curve (mrc.py) matches it at
every capacity.

Recency is a queue of (row, batch) uses in the order they happened, with stale entries left
in place: every use appends, and an entry is live only while its batch is still the row's
last use. The head's first live entry is then the least recently used row. Compared with a
linked list this moves nothing on a hit (an append is sequential), so a lookup touches one
word of per-row state at random (last use and residency packed together: dense embedding
row ids need no hash table). Stale entries are compacted away when the queue fills, so it
holds at most the resident rows plus one chunk of uses.
"""

import numba
import numpy as np

from ._prefetch import prefetch
from .base import Policy, record_batch

NEVER = -1          # last use of a row never used
ROWS_AHEAD = 16     # how far ahead to prefetch a lookup's row state
VICTIMS_AHEAD = 8   # and a coming victim's


@numba.njit(cache=True, inline="always")
def _last_use(word):
    return word >> 1


@numba.njit(cache=True, inline="always")
def take_batch(ids, start, end, last, state, stamp, uniq):
    """Mark the rows of ids[start:end] used by batch `stamp` in their packed state words
    (last use << 1 | resident) and list the distinct ones in uniq, in first-occurrence order.
    Returns (distinct rows, how many of them are not resident)."""
    if end - start == 1:  # the classic one-lookup stream: nothing to deduplicate
        prefetch(state, ids[min(start + ROWS_AHEAD, last)])
        r = ids[start]
        word = state[r]
        uniq[0] = r
        state[r] = (stamp << 1) | (word & 1)
        return 1, 1 - (word & 1)
    n = 0
    misses = 0
    for k in range(start, end):
        prefetch(state, ids[min(k + ROWS_AHEAD, last)])
        r = ids[k]
        word = state[r]
        if _last_use(word) != stamp:  # first lookup of r in this batch
            uniq[n] = r
            n += 1
            misses += 1 - (word & 1)
            state[r] = (stamp << 1) | (word & 1)  # a use now: queued entries of r go stale
    return n, misses


@numba.njit(cache=True)
def _lru_chunk(ids, batch_ptr, first_batch, capacity, state, queue, ends, occupancy, uniq,
               stats):
    """state[row] = last use << 1 | resident; queue[ends[0]:ends[1]] = (row, batch) uses,
    oldest first. Returns (failed batch or -1, rows it needs); occupancy[0] is updated."""
    head, tail = ends[0], ends[1]
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        stamp = first_batch + b
        start, end = batch_ptr[b], batch_ptr[b + 1]
        n, misses = take_batch(ids, start, end, last, state, stamp, uniq)
        if n > capacity:
            ends[0], ends[1] = head, tail
            return b, n
        evict = occupancy[0] + misses - capacity
        evicted = 0
        while evicted < evict:
            # The coming victims are read in queue order: fetch their state early.
            prefetch(state, queue[min(head + VICTIMS_AHEAD, tail - 1), 0])
            r, used = queue[head, 0], queue[head, 1]
            head += 1
            word = state[r]
            if _last_use(word) == used and word & 1:  # live: the least recent resident row
                state[r] = word & ~1
                evicted += 1
        for i in range(n):
            r = uniq[i]
            state[r] |= 1
            queue[tail, 0] = r
            queue[tail, 1] = stamp
            tail += 1
        occupancy[0] += misses - evicted
        record_batch(stats, b, end - start, n, misses, evicted, occupancy[0])
    ends[0], ends[1] = head, tail
    return -1, 0


@numba.njit(cache=True)
def _compact(queue, ends, state):
    """Move the live entries to the front, in order; returns their count."""
    live = 0
    last = ends[1] - 1
    for i in range(ends[0], ends[1]):
        prefetch(state, queue[min(i + VICTIMS_AHEAD, last), 0])
        r, used = queue[i, 0], queue[i, 1]
        word = state[r]
        if _last_use(word) == used and word & 1:
            queue[live, 0] = r
            queue[live, 1] = used
            live += 1
    ends[0], ends[1] = 0, live
    return live


def word_type(trace):
    """int32 when a batch number shifted left by one and a row id both fit."""
    return np.int32 if max(trace.num_batches, trace.total_rows) < 2**30 else np.int64


class LRU(Policy):
    name = "lru"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        # 32-bit words when batch numbers and row ids fit: half the memory traffic.
        self._state = np.full(trace.total_rows, NEVER << 1, dtype=word_type(trace))
        self._queue = np.empty((0, 2), dtype=word_type(trace))
        self._ends = np.zeros(2, dtype=np.int64)
        self._occupancy = np.zeros(1, dtype=np.int64)

    def _make_room(self, uses: int) -> None:
        """Room for `uses` more appends: compact stale entries, and grow when that is not
        enough."""
        if self._ends[1] + uses <= len(self._queue):
            return
        live = _compact(self._queue, self._ends, self._state)
        if live + uses > len(self._queue):
            grown = np.empty((max(2 * len(self._queue), live + uses), 2),
                             dtype=self._queue.dtype)
            grown[:live] = self._queue[:live]
            self._queue = grown

    def process(self, chunk, stats):
        self._make_room(len(chunk.ids))
        uniq = chunk.batch_buffer()
        failed, needed = _lru_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch,
                                    self.capacity, self._state, self._queue, self._ends,
                                    self._occupancy, uniq, stats)
        self.check_batch(failed, needed, chunk.first_batch)
