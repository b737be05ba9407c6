"""LRU: evict the least recently used row.

Within a batch, rows take their new recency in first-occurrence order whether they hit or
miss, so the resident set at capacity C is always the C most recent rows: LRU stays a stack
algorithm at batch granularity, and the one-pass miss-ratio curve (mrc.py) matches it at
every capacity.

Recency is a queue of uses in the order they happened: the first lookup of a row in a batch
appends the row at the next position, and the row's state word keeps that position (and
whether the row is resident). An entry is live only while it is its row's last use, so the
first live entry from the head is the least recently used row, and stale entries are
skipped as the head passes them. Compared with a linked list a hit moves nothing (an append
is sequential), so a lookup touches one word of per-row state at random: dense embedding row
ids need no hash table. A position also tells batches apart: a row whose last use is at or
after the batch's first position was already looked up in this batch.

The queue is a ring indexed by position. When the span from head to tail would outgrow it,
the live entries move, in order, to new positions after the tail, so the ring holds about
the resident rows plus one chunk of uses; positions restart from zero before they would
overflow the state word.
"""

import numba
import numpy as np

from ._pools import INT32_MAX, word_dtype
from ._prefetch import ROWS_AHEAD, VICTIMS_AHEAD, prefetch
from .base import Policy, record_batch

NEVER = -1  # the position of a row never used
# Positions below this fit a 32-bit state word (position << 1 | resident).
INT32_POSITIONS = (INT32_MAX >> 1) + 1


@numba.njit(cache=True, inline="always")
def _evict_lru(ring, mask, head, tail, state):
    """Pass stale entries from the head to the least recently used resident row, mark it
    evicted, and return the new head."""
    while True:
        # The coming victims are read in queue order: fetch their state early.
        prefetch(state, ring[min(head + VICTIMS_AHEAD, tail - 1) & mask])
        r = ring[head & mask]
        word = state[r]
        live = word >> 1 == head and word & 1
        head += 1
        if live:
            state[r] = word & ~1
            return head


@numba.njit(cache=True)
def _lru_stream(ids, capacity, state, ring, ends, stats):
    """Batches of one lookup each (the classic per-access LRU). state[row] = position of
    last use << 1 | resident; ring[head..tail) = the uses, oldest first; ends = [head, tail,
    occupancy]. Totals are kept in registers unless stats has a row per batch."""
    mask = len(ring) - 1
    head, tail, occupancy = ends[0], ends[1], ends[2]
    per_batch = stats.shape[0] > 1
    hits = evictions = 0
    last = len(ids) - 1
    for k in range(len(ids)):
        prefetch(state, ids[min(k + ROWS_AHEAD, last)])
        r = ids[k]
        hit = state[r] & 1
        state[r] = (tail << 1) | 1
        ring[tail & mask] = r
        tail += 1
        evicted = 0
        if not hit:
            if occupancy < capacity:
                occupancy += 1
            else:  # the row just used is not resident yet, so it is never the victim
                head = _evict_lru(ring, mask, head, tail, state)
                evicted = 1
        hits += hit
        evictions += evicted
        if per_batch:
            record_batch(stats, k, 1, 1, 1 - hit, evicted, occupancy)
    if not per_batch:  # occupancy never falls, so its last value is its peak
        n = len(ids)
        record_batch(stats, 0, n, n, n - hits, evictions, occupancy)
    ends[0], ends[1], ends[2] = head, tail, occupancy


@numba.njit(cache=True)
def _lru_batches(ids, batch_ptr, capacity, state, ring, ends, stats):
    """Batches of any size; same state as _lru_stream. Returns (failed batch or -1, rows it
    needs)."""
    mask = len(ring) - 1
    head, tail, occupancy = ends[0], ends[1], ends[2]
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        start, end = batch_ptr[b], batch_ptr[b + 1]
        first = tail  # this batch's uses take positions first..tail-1
        misses = 0
        for k in range(start, end):
            prefetch(state, ids[min(k + ROWS_AHEAD, last)])
            r = ids[k]
            word = state[r]
            if word >> 1 < first:  # the first lookup of r in this batch
                misses += 1 - (word & 1)
                state[r] = (tail << 1) | (word & 1)  # its older entries go stale
                ring[tail & mask] = r
                tail += 1
        unique = tail - first
        if unique > capacity:
            return b, unique
        # Victims are older than this batch's entries: the unique <= capacity rows of the
        # batch leave at least `evict` resident rows before them.
        evict = max(0, occupancy + misses - capacity)
        for _ in range(evict):
            head = _evict_lru(ring, mask, head, first, state)
        for p in range(first, tail):
            state[ring[p & mask]] |= 1
        occupancy += misses - evict
        record_batch(stats, b, end - start, unique, misses, evict, occupancy)
    ends[0], ends[1], ends[2] = head, tail, occupancy
    return -1, 0


@numba.njit(cache=True)
def _live_entries(ring, head, tail, state, out):
    """Copy the live entries of ring[head..tail) to out, oldest first; returns their count."""
    mask = len(ring) - 1
    live = 0
    for p in range(head, tail):
        prefetch(state, ring[min(p + VICTIMS_AHEAD, tail - 1) & mask])
        r = ring[p & mask]
        word = state[r]
        if word >> 1 == p and word & 1:
            out[live] = r
            live += 1
    return live


@numba.njit(cache=True)
def _place(rows, first, ring, state):
    """Put rows at positions first, first + 1, ... as resident rows."""
    mask = len(ring) - 1
    for i in range(len(rows)):
        ring[(first + i) & mask] = rows[i]
        state[rows[i]] = ((first + i) << 1) | 1


class LRU(Policy):
    name = "lru"

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        # 32-bit words (half the memory traffic) while they fit: the ring holds row ids, and
        # positions restart before they outgrow the state words (_make_room widens them).
        words = word_dtype(trace.total_rows - 1, NEVER << 1)
        self._state = np.full(trace.total_rows, NEVER << 1, dtype=words)
        self._ring = np.empty(0, dtype=words)
        self._ends = np.zeros(3, dtype=np.int64)  # head, tail, occupancy

    def _position_limit(self) -> int:
        return INT32_POSITIONS if self._state.dtype == np.int32 else 2**62

    def _make_room(self, uses: int) -> None:
        """Room in the ring, and in the positions, for `uses` more entries."""
        head, tail, occupancy = (int(x) for x in self._ends)
        if tail - head + uses <= len(self._ring) and tail + uses < self._position_limit():
            return
        live = np.empty(occupancy, dtype=self._ring.dtype)
        count = _live_entries(self._ring, head, tail, self._state, live)
        if count != occupancy:  # every resident row has exactly one live entry
            raise AssertionError(f"LRU queue holds {count} live rows, occupancy {occupancy}")
        if tail + occupancy + uses >= self._position_limit():
            # Restart positions from zero. Rows not resident forget their last use, which a
            # new position could otherwise be taken for.
            if occupancy + uses >= self._position_limit():
                self._state = self._state.astype(np.int64)
            tail = 0
            self._state.fill(NEVER << 1)
        size = 1 << (2 * (occupancy + uses) - 1).bit_length()  # a power of two: a cheap mask
        if size > len(self._ring):
            self._ring = np.empty(size, dtype=self._ring.dtype)
        _place(live, tail, self._ring, self._state)
        self._ends[:] = tail, tail + occupancy, occupancy

    def process(self, chunk, stats):
        ids = chunk.row_ids
        self._make_room(len(ids))
        if chunk.one_lookup_per_batch:
            _lru_stream(ids, self.capacity, self._state, self._ring, self._ends, stats)
            return
        failed, needed = _lru_batches(ids, chunk.batch_ptr, self.capacity, self._state,
                                      self._ring, self._ends, stats)
        self.check_batch(failed, needed, chunk.first_batch)
