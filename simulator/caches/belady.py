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

Per-row state (shared with scratchpipe.py) is one (rows, 2) array, so that a row's fields
share a cache line: row_state[r, USE] = last use * 2 + resident bit, row_state[r, KEY] =
the row's next use after its last use.
"""

import numba
import numpy as np

from ..errors import OptionError
from .base import Policy, record_batch
from ._prefetch import ROWS_AHEAD, prefetch
from .future import NextUse

USE, KEY = 0, 1
POOL_MIN_SLOTS = 1 << 10


def new_row_state(trace, with_key: bool = True) -> np.ndarray:
    """Every row absent and never used: a last use below every batch and window start.
    Without with_key only the USE column is kept."""
    state = np.zeros((trace.total_rows, 2 if with_key else 1), dtype=row_state_dtype(trace))
    state[:, USE] = never_used(trace) * 2
    return state


def row_state_dtype(trace) -> np.dtype:
    # int32 halves the memory traffic; it holds last use * 2 and the never-used mark while
    # the batch count stays below 2**29, and every next use including NextUse's sentinel.
    return np.dtype(np.int32 if trace.num_batches < (1 << 29) - 2 else np.int64)


def never_used(trace) -> int:
    """The last use of a row not used yet: below j - W - 1 for any batch j and W <= batches."""
    return -(trace.num_batches + 2)


# -- pools of (key, row) entries packed into one int64: key << row_bits | row ------------------
def row_bits(trace) -> int:
    """Bits of the row part of a packed entry; the key (a batch index up to the number of
    batches, the never-used-again mark) takes the bits above."""
    bits = max(1, (trace.total_rows - 1).bit_length())
    if bits + trace.num_batches.bit_length() > 63:
        raise OptionError(f"{trace.total_rows:,} rows and {trace.num_batches:,} batches are too "
                          "many for the future-aware policies; split the trace")
    return bits


def new_pool() -> np.ndarray:
    return np.empty(POOL_MIN_SLOTS, dtype=np.int64)


# A 4-ary max-heap: half the levels of a binary one, and the four children of a node are
# adjacent in memory.
@numba.njit(cache=True)
def _sift_down(heap, size, i):
    item = heap[i]
    while True:
        first = 4 * i + 1
        if first >= size:
            break
        best = first
        for child in range(first + 1, min(first + 4, size)):
            if heap[child] > heap[best]:
                best = child
        if heap[best] <= item:
            break
        heap[i] = heap[best]
        i = best
    heap[i] = item


@numba.njit(cache=True)
def heap_push(heap, size, item):
    """Push into a heap of `size` entries (room must be reserved); returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 2
        if heap[parent] >= item:
            break
        heap[i] = heap[parent]
        i = parent
    heap[i] = item
    return size + 1


@numba.njit(cache=True)
def _live(row_state, item, bits):
    row = item & ((1 << bits) - 1)
    return (row_state[row, USE] & 1) == 1 and row_state[row, KEY] == item >> bits


@numba.njit(cache=True)
def heap_pop_live(heap, size, row_state, bits):
    """Pop entries until a live one (row resident with this key) comes out.
    Returns (row, new size), row -1 when the heap holds no live entry."""
    while size > 0:
        item = heap[0]
        size -= 1
        if size > 0:
            heap[0] = heap[size]
            _sift_down(heap, size, 0)
        if _live(row_state, item, bits):
            return item & ((1 << bits) - 1), size
    return -1, 0


@numba.njit(cache=True)
def grow_pool(pool, live, extra):
    """pool, or a copy of its first `live` entries twice as large when they and `extra`
    more would fill more than half of it."""
    if 2 * (live + extra) <= len(pool):
        return pool
    grown = np.empty(max(2 * len(pool), 2 * (live + extra)), dtype=pool.dtype)
    grown[:live] = pool[:live]
    return grown


@numba.njit(cache=True)
def heap_reserve(heap, size, extra, row_state, bits):
    """Make room for `extra` pushes: drop stale entries when full, and grow the array when
    the live ones still fill half. Returns (heap, size), the heap possibly a new array."""
    if size + extra <= len(heap):
        return heap, size
    live = 0
    for i in range(size):
        if _live(row_state, heap[i], bits):
            heap[live] = heap[i]
            live += 1
    heap = grow_pool(heap, live, extra)
    for i in range((live - 2) // 4, -1, -1):
        _sift_down(heap, live, i)
    return heap, live


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
        if failed >= 0 or chunk.first_batch + chunk.num_batches >= self.trace.num_batches:
            self._next_use.close()  # the replay is over: free the disk now
        self.check_batch(failed, needed, chunk.first_batch)
