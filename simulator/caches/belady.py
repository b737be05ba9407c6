"""Belady: evict the resident row whose next use is furthest away (never-used-again first).

At batch granularity the victims are chosen among the resident rows not in the batch,
by their next use after the current batch (future.py). Resident rows sit in a max-heap
keyed by next use, with lazy invalidation: a row's entry is live while the row is resident
and its key equals the row's current next use; reusing a row pushes a new entry and leaves
the old one stale. The heap is compacted (and grown if still half full) when it runs out
of room, so its size stays within a constant factor of the occupancy. An entry is one
int64, key << row_bits | row, so one comparison orders it (ties go to the larger row).

With one lookup per batch this is the classic offline-optimal cache, and agrees miss for
miss with libCacheSim's Belady. Ties between rows with the same next use do not change any
count: such rows are all used again in the same batch (or never), so either choice leaves
the same multiset of next uses behind.

What it bounds: Belady is optimal among demand-fetched caches that start empty (lru, lfu,
fifo, setassoc): none of them can hit more at the same capacity. It does not bound a cache
that is filled before the trace starts: `static` preloads its hot set and so pays no
compulsory misses, and it can hit more than Belady at the same capacity.

The row state (USE, KEY) and the heap are those of _pools.py, shared with scratchpipe.py.
"""

import numba
import numpy as np

from .base import Policy, record_batch
from ._pools import (KEY, USE, heap_pop_live, heap_push, heap_reserve, new_pool, new_row_state,
                     row_bits)
from ._prefetch import ROWS_AHEAD, prefetch
from .future import NextUse


# -- the policy ----------------------------------------------------------------------------------
@numba.njit(cache=True)
def _belady_chunk(ids, next_use, batch_ptr, first_batch, capacity, row_state, heap, bits, state,
                  uniq, stats):
    """state = [occupancy, heap size]. Returns (failed batch or -1, rows it needs, heap)."""
    occupancy, size = state[0], state[1]
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        batch = first_batch + b
        n = 0
        hits = 0
        for k in range(batch_ptr[b], batch_ptr[b + 1]):
            prefetch(row_state, ids[min(k + ROWS_AHEAD, last)] * 2)  # rows of 2 columns
            r = ids[k]
            use = row_state[r, USE]
            if use >> 1 == batch:
                continue
            row_state[r, USE] = (batch << 1) | (use & 1)
            # The old key (== batch) is no longer needed: the row's entry goes stale.
            row_state[r, KEY] = next_use[k]
            hits += use & 1
            uniq[n] = r
            n += 1
        if n > capacity:
            state[0], state[1] = occupancy, size
            return b, n, heap
        misses = n - hits
        # Only rows outside the batch have live entries now, and capacity >= n leaves enough.
        evict = max(0, occupancy + misses - capacity)
        for _ in range(evict):
            r, size = heap_pop_live(heap, size, row_state, bits)
            row_state[r, USE] &= ~1
        heap, size = heap_reserve(heap, size, n, row_state, bits)
        for i in range(n):
            r = uniq[i]
            row_state[r, USE] |= 1
            size = heap_push(heap, size, (np.int64(row_state[r, KEY]) << bits) | r)
        occupancy += misses - evict
        record_batch(stats, b, batch_ptr[b + 1] - batch_ptr[b], n, misses, evict, occupancy)
    state[0], state[1] = occupancy, size
    return -1, 0, heap


class Belady(Policy):
    """Options: tmp_dir, where the next-use file is kept during the replay (default: the
    system's temporary directory; it needs 4 bytes per lookup)."""

    name = "belady"

    def __init__(self, trace, capacity, tmp_dir=None, **params):
        super().__init__(trace, capacity, **params)
        self._bits = row_bits(trace)
        self._row_state = new_row_state(trace)
        self._heap = new_pool()
        self._state = np.zeros(2, dtype=np.int64)
        self._next_use = NextUse(trace, tmp_dir=tmp_dir)

    def process(self, chunk, stats):
        uniq = chunk.batch_buffer()
        failed, needed, self._heap = _belady_chunk(
            chunk.ids, self._next_use.for_chunk(chunk), chunk.batch_ptr, chunk.first_batch,
            self.capacity, self._row_state, self._heap, self._bits, self._state, uniq, stats)
        self.check_batch(failed, needed, chunk.first_batch)

    def close(self):
        self._next_use.close()
