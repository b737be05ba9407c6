"""State words, per-row state and pools of victim candidates shared by the cache policies.

State words. A policy keeps per-row (or per-slot) state in numpy words: 32-bit while every
value the words take fits, which halves the memory traffic of the random accesses a replay
is made of, else 64-bit. word_dtype() is the one rule; each caller names the extreme values
its words hold.

Row state of the future-aware policies (belady.py, scratchpipe.py): one (rows, 2) array, so
that a row's fields share a cache line. row_state[r, USE] = last use * 2 + resident bit,
row_state[r, KEY] = the row's next use after its last use (the number of batches: never).
A row not used yet has the last use never_used(trace), below every batch and window start.

Pools. Entries are (key, row) packed into one int64, key << row_bits | row, so that one
comparison orders them (ties go to the larger row). They are invalidated lazily: an entry
stays in its pool after its row was used again or evicted, is recognised as stale when it
comes out, and pools are compacted (and grown if still half full) when they run out of room,
so their size stays within a constant factor of the live entries.
- A 4-ary max-heap keyed by next use (belady, scratchpipe victim 'future'): an entry is live
  while its row is resident and its key equals the row's KEY.
- A FIFO queue keyed by release batch (scratchpipe victim 'lru'): an entry is live while its
  row is resident and its USE still says that batch was its last use.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import OptionError
from ._prefetch import ROWS_AHEAD, prefetch

INT32_MIN, INT32_MAX = int(np.iinfo(np.int32).min), int(np.iinfo(np.int32).max)


def word_dtype(*values: int) -> np.dtype:
    """int32 when each of values (the largest and the smallest a state array will hold)
    fits a signed 32-bit word, else int64."""
    fits = all(INT32_MIN <= int(v) <= INT32_MAX for v in values)
    return np.dtype(np.int32 if fits else np.int64)


# -- row state of the future-aware policies ------------------------------------------------------
USE, KEY = 0, 1


def never_used(trace) -> int:
    """The last use of a row not used yet: below j - W - 1 for any batch j and W <= batches."""
    return -(trace.num_batches + 2)


def row_state_dtype(trace) -> np.dtype:
    """Words that hold every USE (last use * 2 + 1 up to the last batch, never_used * 2) and
    every KEY (a next use up to the never-again mark, the number of batches)."""
    return word_dtype(2 * never_used(trace), 2 * trace.num_batches + 1)


def new_row_state(trace, with_key: bool = True) -> np.ndarray:
    """Every row absent and never used. Without with_key only the USE column is kept."""
    state = np.zeros((trace.total_rows, 2 if with_key else 1), dtype=row_state_dtype(trace))
    state[:, USE] = never_used(trace) * 2
    return state


# -- pools of (key, row) entries packed into one int64: key << row_bits | row ------------------
POOL_MIN_SLOTS = 1 << 10


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


@numba.njit(cache=True)
def grow_pool(pool, live, extra):
    """pool, or a copy of its first `live` entries twice as large when they and `extra`
    more would fill more than half of it."""
    if 2 * (live + extra) <= len(pool):
        return pool
    grown = np.empty(max(2 * len(pool), 2 * (live + extra)), dtype=pool.dtype)
    grown[:live] = pool[:live]
    return grown


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
def _heap_live(row_state, item, bits):
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
        if _heap_live(row_state, item, bits):
            return item & ((1 << bits) - 1), size
    return -1, 0


@numba.njit(cache=True)
def heap_reserve(heap, size, extra, row_state, bits):
    """Make room for `extra` pushes: drop stale entries when full, and grow the array when
    the live ones still fill half. Returns (heap, size), the heap possibly a new array."""
    if size + extra <= len(heap):
        return heap, size
    live = 0
    for i in range(size):
        if _heap_live(row_state, heap[i], bits):
            heap[live] = heap[i]
            live += 1
    heap = grow_pool(heap, live, extra)
    for i in range((live - 2) // 4, -1, -1):
        _sift_down(heap, live, i)
    return heap, live


# -- a FIFO queue of (release batch, row) entries --------------------------------------------
@numba.njit(cache=True)
def _fifo_live(row_state, item, bits):
    return row_state[item & ((1 << bits) - 1), USE] == ((item >> bits) << 1) | 1


@numba.njit(cache=True)
def fifo_evict(fifo, head, tail, count, row_state, bits):
    """Evict the rows of the first `count` live entries from head on (fewer if the queue
    runs out). Returns (rows evicted, new head). The loop body has no branch, so that the
    processor runs ahead and the cache misses on cold rows overlap."""
    evicted = 0
    columns = row_state.shape[1]
    mask = (1 << bits) - 1
    while evicted < count and head < tail:
        prefetch(row_state, (fifo[min(head + ROWS_AHEAD, tail - 1)] & mask) * columns)
        item = fifo[head]
        row = item & mask
        live = _fifo_live(row_state, item, bits)
        row_state[row, USE] &= ~np.int64(live)  # clears the resident bit of a live entry
        evicted += live
        head += 1
    return evicted, head


@numba.njit(cache=True)
def fifo_reserve(fifo, head, tail, extra, row_state, bits):
    """Room for `extra` appends: move the live entries to the front, in order, and grow the
    array when they still fill half. Returns (fifo, head, tail)."""
    if tail + extra <= len(fifo):
        return fifo, head, tail
    live = 0
    for i in range(head, tail):
        if _fifo_live(row_state, fifo[i], bits):
            fifo[live] = fifo[i]
            live += 1
    return grow_pool(fifo, live, extra), 0, live
