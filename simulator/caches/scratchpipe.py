"""ScratchPipe (Kwon & Rhu, ISCA 2022) as modelled here: a GPU scratchpad managed with the
known future of the data loader.

Iteration i trains batch i while batch j = i + W is planned (W: the lookahead). Batches
0..W are planned before batch 0 trains, then batch j at iteration j - W, so planning runs
through the batches in order and, when batch j is planned, the batches j-W..j (clamped at
0) are in flight: the window. A row is *held* while a batch of the window uses it; held
rows are never evicted, so training always hits.

Planning batch j: each unique row of j that is resident is a plan-time hit; each missing
row takes a free slot while the occupancy is below the capacity, else evicts a resident row
that is not held, chosen by the victim policy: 'lru', the smallest last use, or 'future',
the furthest next use after j (never-used-again first). Every eviction is a write-back.

The window of batch j holds |U(j-W) ∪ ... ∪ U(j)| rows, so min_capacity(trace, W), the
largest such union, is the exact feasibility bound: a smaller scratchpad cannot keep the
window of the batch that reaches it resident, and with a capacity at least as large,
whenever a missing row needs a slot the held resident rows number fewer than that union
(the row itself is held but not yet resident) and so fewer than the capacity, which leaves
a resident row that is not held to evict. A capacity below it raises CapacityError.

Cost per unique row is O(1) (lru) or O(log n) (future), with no scans over held rows: each
row keeps its last use, and a row becomes evictable when the window slides past its last
use. A ring buffer keeps the unique rows of the last W+1 planned batches, and per batch a
count of those used again since; planning j releases the rows of batch j-W-1 whose last use
it still is. For 'lru' all of that batch's rows join a FIFO queue, unchecked (release order
is last-use order, so the first live entry is the least recently used row that is not
held; the rows used again since are stale entries, skipped when they come out). For
'future' the released rows go to a max-heap keyed by next use, except those never used
again, which go to a stack and are evicted first. Entries of rows used again go stale
(lazy invalidation); the pools are compacted when they run out of room.
"""

from __future__ import annotations

import numba
import numpy as np

from ..errors import CapacityError
from ..options import Option
from ..trace.format import DEFAULT_CHUNK_LOOKUPS, open_trace
from .base import Policy, record_batch
from ._pools import (KEY, USE, fifo_evict, fifo_reserve, grow_pool, heap_pop_live, heap_push,
                     heap_reserve, never_used, new_pool, new_row_state, row_bits,
                     row_state_dtype, word_dtype)
from ._prefetch import ROWS_AHEAD, prefetch
from .future import NextUse

LOOKAHEAD = Option("lookahead", int, 4, "batches known ahead of training (W)", minimum=0)
VICTIM = Option("victim", str, "lru", "the victim policy: by past use or furthest next use",
                choices=("lru", "future"))


# -- the feasibility bound ----------------------------------------------------------------------
@numba.njit(cache=True)
def _window_union_chunk(ids, batch_ptr, first_batch, lookahead, last_use, rows_by_last_use,
                        state):
    """rows_by_last_use[b % (W+1)] counts the rows whose last use is batch b, for the W+1
    batches of the window; state = [rows in the window, largest such count so far]."""
    in_window, peak = state[0], state[1]
    ring = lookahead + 1
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        batch = first_batch + b
        slot = batch % ring
        # Batch - W - 1 leaves the window with the rows whose last use it still is.
        in_window -= rows_by_last_use[slot]
        rows_by_last_use[slot] = 0
        for k in range(batch_ptr[b], batch_ptr[b + 1]):
            prefetch(last_use, ids[min(k + ROWS_AHEAD, last)])
            r = ids[k]
            previous = last_use[r]
            if previous == batch:
                continue
            if previous >= batch - lookahead:
                # The ring slot of batch previous, without a division per row.
                previous_slot = slot - (batch - previous)
                rows_by_last_use[previous_slot + ring if previous_slot < 0 else previous_slot] -= 1
            else:
                in_window += 1
            rows_by_last_use[slot] += 1
            last_use[r] = batch
        peak = max(peak, in_window)
    state[0], state[1] = in_window, peak


def min_capacity(trace, lookahead: int = LOOKAHEAD.default,
                 max_lookups: int = DEFAULT_CHUNK_LOOKUPS) -> int:
    """The smallest scratchpad (in rows) that ScratchPipe with this lookahead can run the
    trace with: the largest working set of W+1 consecutive batches, max over j of
    |U(j-W) ∪ ... ∪ U(j)|. One streaming pass; memory O(total rows)."""
    trace = open_trace(trace)
    w = min(LOOKAHEAD.check(lookahead), trace.num_batches)  # longer windows add nothing
    last_use = np.full(trace.total_rows, never_used(trace), dtype=row_state_dtype(trace))
    rows_by_last_use = np.zeros(w + 1, dtype=np.int64)
    state = np.zeros(2, dtype=np.int64)
    for chunk in trace.chunks(max_lookups):
        _window_union_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, w, last_use,
                            rows_by_last_use, state)
    return int(state[1])


# -- the planner ------------------------------------------------------------------------------
# state indices
_OCCUPANCY, _HELD, _PEAK_HELD, _POOL_HEAD, _POOL_TAIL, _UNUSED_ROWS = range(6)


@numba.njit(cache=True)
def _plan_chunk(ids, next_use, never, batch_ptr, first_batch, lookahead, capacity, future,
                row_state, ring, ring_len, reused, pool, bits, unused, state, missing, stats):
    """Plan the chunk's batches. row_state as in _pools.py (KEY only with future). The pool
    of evictable rows is a FIFO queue (lru) or a max-heap by next use (future) of packed
    entries with lazy invalidation; with future, the evictable rows never used again are
    apart, in the stack `unused`: they are the first victims, in any order, and can neither
    be used again nor leave otherwise, so they need no heap and no check. reused[slot]
    counts the rows of that ring slot's batch used again since.
    Returns (failed batch or -1, rows its window holds, pool, unused)."""
    occupancy, held, peak_held = state[_OCCUPANCY], state[_HELD], state[_PEAK_HELD]
    head, tail, unused_rows = state[_POOL_HEAD], state[_POOL_TAIL], state[_UNUSED_ROWS]
    ring_size = lookahead + 1
    columns = row_state.shape[1]
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        j = first_batch + b
        slot = j % ring_size
        # Release the rows of batch j-W-1, in this ring slot, that no later batch has used:
        # they are resident, since held rows are never evicted. The ones batch j uses again
        # go stale in the loop below, which then refills the slot with batch j's rows.
        released = j - lookahead - 1
        released_rows = ring_len[slot] if released >= 0 else 0
        if released_rows > 0 and future:
            pool, tail = heap_reserve(pool, tail, released_rows, row_state, bits)
            unused = grow_pool(unused, unused_rows, released_rows)
            released_use = (released << 1) | 1
            for i in range(released_rows):
                prefetch(row_state, ring[slot, min(i + ROWS_AHEAD, released_rows - 1)] * columns)
                r = ring[slot, i]
                if row_state[r, USE] != released_use:
                    continue
                key = row_state[r, KEY]
                if key == never:
                    unused[unused_rows] = r
                    unused_rows += 1
                else:
                    tail = heap_push(pool, tail, (np.int64(key) << bits) | r)
        elif released_rows > 0:
            # Every row goes in, unchecked: the ones used again are stale on arrival and
            # skipped when they come out, which saves a cold load per released row.
            pool, head, tail = fifo_reserve(pool, head, tail, released_rows, row_state, bits)
            for i in range(released_rows):
                pool[tail + i] = (released << bits) | ring[slot, i]
            tail += released_rows
        n = 0
        m = 0
        for k in range(batch_ptr[b], batch_ptr[b + 1]):
            prefetch(row_state, ids[min(k + ROWS_AHEAD, last)] * columns)
            r = ids[k]
            use = row_state[r, USE]
            previous = use >> 1
            if previous == j:
                continue
            resident = use & 1
            row_state[r, USE] = (j << 1) | resident
            # held counts the rows used by batches j-W-1..j-1 until the release below.
            if previous < j - lookahead - 1:
                held += 1
            else:
                # The ring slot of batch previous, without a division per row.
                previous_slot = slot - (j - previous)
                reused[previous_slot + ring_size if previous_slot < 0 else previous_slot] += 1
            if future:
                row_state[r, KEY] = next_use[k]
            if resident == 0:
                missing[m] = r
                m += 1
            ring[slot, n] = r
            n += 1
        held -= released_rows - reused[slot]
        reused[slot] = 0
        ring_len[slot] = n
        # The missing rows take the free slots, then evict one victim each.
        evictions = max(0, occupancy + m - capacity)
        if future:
            for _ in range(evictions):
                if unused_rows > 0:
                    unused_rows -= 1
                    victim = unused[unused_rows]
                else:
                    victim, tail = heap_pop_live(pool, tail, row_state, bits)
                    if victim < 0:
                        return b, held, pool, unused
                row_state[victim, USE] &= ~1
        else:
            evicted, head = fifo_evict(pool, head, tail, evictions, row_state, bits)
            if evicted < evictions:
                return b, held, pool, unused
        occupancy += m - evictions
        for i in range(m):
            row_state[missing[i], USE] |= 1
        peak_held = max(peak_held, held)
        record_batch(stats, b, batch_ptr[b + 1] - batch_ptr[b], n, m, evictions, occupancy,
                     held=held)
    state[_OCCUPANCY], state[_HELD], state[_PEAK_HELD] = occupancy, held, peak_held
    state[_POOL_HEAD], state[_POOL_TAIL], state[_UNUSED_ROWS] = head, tail, unused_rows
    return -1, 0, pool, unused


class ScratchPipe(Policy):
    """Options: LOOKAHEAD (W) and VICTIM; tmp_dir, where victim 'future' keeps its next-use
    file during the replay (default: the system's temporary directory; 4 bytes per lookup).

    Per planned batch j (row j of the table): hits are plan-time hits, misses the rows
    fetched, evictions = write-backs, held the rows of the window j-W..j, occupancy after
    planning j. Training always hits."""

    name = "scratchpipe"
    options = (LOOKAHEAD, VICTIM)
    on_demand = False

    def __init__(self, trace, capacity, tmp_dir=None, **params):
        super().__init__(trace, capacity, **params)
        self._future = self.victim == "future"
        # A window longer than the trace acts as the whole trace; clamping keeps the
        # never-used mark of new_row_state below every window start.
        self._window = min(self.lookahead, trace.num_batches)
        self._row_state = new_row_state(trace, with_key=self._future)
        self._ring = np.empty((self._window + 1, 0), dtype=np.int64)
        self._ring_len = np.zeros(self._window + 1, dtype=np.int64)
        self._reused = np.zeros(self._window + 1, dtype=np.int64)
        self._bits = row_bits(trace)
        self._pool = new_pool()
        self._unused = new_pool()
        self._state = np.zeros(6, dtype=np.int64)
        # Last: a constructor that fails leaves no file behind.
        self._next_use = NextUse(trace, tmp_dir=tmp_dir) if self._future else None

    def _ensure_ring_width(self, width: int) -> None:
        if width > self._ring.shape[1]:
            ring = np.empty((self._window + 1, width), dtype=np.int64)
            ring[:, :self._ring.shape[1]] = self._ring
            self._ring = ring

    def process(self, chunk, stats):
        width = min(int(np.diff(chunk.batch_ptr).max(initial=0)), self.trace.total_rows)
        self._ensure_ring_width(width)
        missing = np.empty(width, dtype=np.int64)
        next_use = (self._next_use.for_chunk(chunk) if self._future
                    else np.empty(0, dtype=word_dtype(self.trace.num_batches)))
        failed, window_rows, self._pool, self._unused = _plan_chunk(
            chunk.ids, next_use, self.trace.num_batches, chunk.batch_ptr, chunk.first_batch,
            self._window, self.capacity, self._future, self._row_state, self._ring,
            self._ring_len, self._reused, self._pool, self._bits, self._unused, self._state,
            missing, stats)
        if failed >= 0:
            j = chunk.first_batch + failed
            needed = min_capacity(self.trace, self.lookahead)
            raise CapacityError(
                f"a scratchpad of {self.capacity:,} rows cannot hold the window of batch {j} "
                f"(batches {max(0, j - self.lookahead)}..{j} use {window_rows:,} rows); "
                f"lookahead {self.lookahead} needs a capacity of at least {needed:,} rows "
                "for this trace")

    def close(self):
        if self._next_use is not None:
            self._next_use.close()

    def summary(self):
        return {"train_hit_rate": 1.0, "min_capacity": int(self._state[_PEAK_HELD]),
                "lookahead": self.lookahead, "victim": self.victim}
