"""The planner of the backend's device row stores (cache, cache-prefetch, scratchpipe): the
directory of the slots and the incremental pools that choose victims. Planning a batch costs,
amortized, O(1) per row of the batch for lru and O(log capacity) for future (a heap push per
released row), never a scan of every slot. The kernels are compiled nogil: they release the
GIL, so that a planner thread of its own (scratchpipe's planner="thread") plans while the main
thread issues training.

The directory, host numpy arrays: slot_of_row (where each row is or is planned to be,
NOT_RESIDENT for none) and, per slot, the recency key of the row planned into it,
(batch << POSITION_BITS) | position of the row's first occurrence in the batch. The next uses
(victim=future) stay with the in-flight batches that were planned with them. Slots fill in
order, then are only ever reused by eviction.

Planning batch j with lookahead W (`cache` plans like W = 0): the batches j-W..j are in
flight and their rows held. Planning looks the batch's rows up and touches the hits (their
recency becomes batch j's), then releases batch j-W-1, whose rows not used since become
evictable, then takes one victim per missing row beyond the free slots, then gives the
missing rows the victims' slots, then free ones, and touches them. The pools keep the
invariant: every evictable row (resident, last used before j-W, not a row of batch j) has
exactly one live entry in its pool. An entry remembers the recency key its row had when it
was released; it is live while the slot's recency is still that key. Keys never repeat, so an
entry goes stale when its row is used again (touched) or evicted (its slot takes another row
that is touched); stale entries are skipped when they come out. Touching the hits before the
victim choice is what keeps a hit from being its own batch's victim. Which rows of a released
batch it used last is known without looking at their slots: a touch marks the in-flight batch
that used the row before (used_again).

Pools (victim policies):
- lru: a FIFO queue. Batches are released in order and a batch's rows in position order, so
  the queue is sorted by recency key, and its first live entry is the least recent evictable
  row.
- future: rows never used again go on a stack and are evicted first, the most recently
  released first (largest recency key); the others go into a 4-ary max-heap (half the
  levels of a binary one for a push to climb) on next use * rows + row (furthest next use
  first, ties: the larger row id). Stack entries never go stale: no later batch uses their
  rows, and only eviction (popping) removes them.
When a release would overflow the queue (or heap) it is compacted to its live entries. The
live entries and the rows being released are resident rows in different states, at most the
capacity, so a room of twice the capacity leaves room for a capacity's worth of pushes
between compactions: O(1) per row, amortized.

Torch ops per batch (what the backend dispatches, stage by stage; M: misses, E: evictions;
a wrap is torch.from_numpy, dispatched as aten.lift_fresh; on kind cpu `.to(device)` returns
the tensor itself and dispatches nothing, on CUDA each `.to` between host and device is one
aten._to_copy, counted below as "cuda +n"). `cache` runs every stage in program order;
`scratchpipe` and `cache-prefetch` run the same stages, in program order or, with overlap,
with plan and evict (the copy out) on the planner thread (planner="thread") or the main thread
(planner="main") and writeback, collect, transfer and insert on the host worker thread.
- plan: 1 op, the wrap of the batch's slots (which training indexes with). The lookup,
  victim choice, assignment, touch and next-use bookkeeping are numba kernels and numpy.
- evict, only when E > 0: 2 ops, the wrap of the victims' slots and their gather from the
  device store (aten.index_select). cuda +2 (the slots in, the values out), and with overlap
  on CUDA the values go through a pinned buffer instead: aten.empty.memory_format and
  aten.copy_ in place of the copy out.
- writeback, only when E > 0: 2 ops, the wrap of the victims' rows and the host scatter
  (aten.index_copy_).
- collect, only when M > 0: 3 ops, the wrap of the missing rows, the staging buffer
  (aten.empty.memory_format, pinned on CUDA), the host gather into it (aten.index_select.out).
- transfer, only when M > 0: 0 ops; cuda +1 (the staged rows in).
- insert, only when M > 0: 2 ops, the wrap of the missing rows' slots and the scatter into
  the store (aten.index_copy_); cuda +1 (the slots in).
- train: gpu-only's train stage, Trainer.train_rows: the gather of the batch's rows from the
  store (aten.index_select), the ops of train_step, the scatter of the updated rows
  (aten.index_copy_); cuda +1 (the slots in).
"""

from __future__ import annotations

from collections import deque
from dataclasses import dataclass

import numba
import numpy as np

from ..errors import CapacityError
from .base import POSITION_BITS, torch

NOT_RESIDENT = -1
POSITION_MASK = (1 << POSITION_BITS) - 1


class TooFewVictims(CapacityError):
    """Fewer rows are evictable than a batch's misses need: the capacity is infeasible."""

    def __init__(self, batch: int, needed: int, evictable: int):
        super().__init__(f"batch {batch} needs {needed:,} victims but only {evictable:,} rows "
                         "are evictable; give a larger --capacity")
        self.batch = batch


@dataclass
class Plan:
    """What planning decided for one batch, as host arrays: the slot of each of its rows (in
    first-occurrence order, and wrapped as a tensor for training), the rows to fetch and their
    slots, the slots to evict and the rows they hold."""

    slots: np.ndarray
    slots_tensor: "torch.Tensor"
    missing: np.ndarray
    missing_slots: np.ndarray
    victims: np.ndarray
    evicted: np.ndarray


class Planner:
    """The directory of a store of `capacity` slots for `total_rows` rows, and the pool of its
    victim policy ('lru' or 'future'). Batches are planned in order, j = 0, 1, ...; `never` is
    the next use of a row that no later batch uses (victim=future)."""

    def __init__(self, total_rows: int, capacity: int, lookahead: int, victim: str = "lru",
                 never: int | None = None):
        self.capacity = capacity
        self.lookahead = lookahead
        self.slot_of_row = np.full(total_rows, NOT_RESIDENT, dtype=np.int64)
        self.recency = _faulted_in(capacity)
        self.occupancy = 0
        # The in-flight batches, oldest first: (batch, slots, rows, next uses) of each.
        self.window = deque()
        # used_again[b % (W + 2), k]: row k of in-flight batch b was used again by a later
        # batch, so b is not its last use. Set when the later batch touches the row (whose
        # recency it reads there anyway), it spares the release of b a scattered read of
        # each of its rows' slots.
        self.used_again = np.zeros((lookahead + 2, 0), dtype=np.bool_)
        self.pool = (FutureVictims(self, total_rows, never) if victim == "future"
                     else LruVictims(self))

    def plan(self, j: int, rows: np.ndarray, next_use: np.ndarray | None = None) -> Plan:
        """Plan batch j, whose distinct rows are `rows` (first-occurrence order) and, for
        victim=future, whose rows' next uses are `next_use`."""
        key = j << POSITION_BITS
        ring = len(self.used_again)
        if len(rows) > self.used_again.shape[1]:
            grown = np.zeros((ring, len(rows)), dtype=np.bool_)
            grown[:, :self.used_again.shape[1]] = self.used_again
            self.used_again = grown
        self.used_again[j % ring, :len(rows)] = False
        slots = np.empty(len(rows), dtype=np.int64)
        misses = _look_up(rows, key, j - self.lookahead - 1, self.slot_of_row, self.recency,
                          slots, self.used_again)
        if len(self.window) > self.lookahead:
            b, *released = self.window.popleft()
            self.pool.release(b << POSITION_BITS, *released, self.used_again[b % ring])
        evict = max(0, self.occupancy + misses - self.capacity)
        victims, evicted = self.pool.take(evict)
        if len(victims) < evict:
            raise TooFewVictims(j, evict, len(victims))
        missing = np.empty(misses, dtype=np.int64)
        missing_slots = np.empty(misses, dtype=np.int64)
        self.occupancy = _assign(rows, slots, key, victims, evicted, self.occupancy,
                                 self.slot_of_row, self.recency, missing, missing_slots)
        self.window.append((j, slots, rows, next_use))
        return Plan(slots, torch.from_numpy(slots), missing, missing_slots, victims, evicted)


class LruVictims:
    """Evictable rows in a FIFO queue of (recency key, slot, row) entries, [head, tail) of
    the arrays, oldest first."""

    def __init__(self, planner: Planner):
        self.recency = planner.recency
        room = max(2 * planner.capacity, 1)
        self.keys, self.slots, self.rows = (_faulted_in(room) for _ in range(3))
        self.head = self.tail = 0

    def release(self, key, slots, rows, next_use, used_again) -> None:
        if self.tail + len(slots) > len(self.keys):
            self.tail = _compact_queue(self.recency, self.keys, self.slots, self.rows,
                                       self.head, self.tail)
            self.head = 0
        self.tail = _push_released(key, slots, rows, used_again, self.keys, self.slots,
                                   self.rows, self.tail)

    def take(self, count: int):
        """The `count` least recent evictable slots and their rows (fewer if fewer are)."""
        victims = np.empty(count, dtype=np.int64)
        rows = np.empty(count, dtype=np.int64)
        found, self.head = _pop_queue(count, self.recency, self.keys, self.slots, self.rows,
                                      self.head, self.tail, victims, rows)
        return victims[:found], rows[:found]


class FutureVictims:
    """Evictable rows never used again on a stack of (slot, row), [0, top); the others in a
    4-ary max-heap of (next use * rows + row, recency key, slot) entries, [0, size): the
    children of entry i are 4i+1..4i+4."""

    def __init__(self, planner: Planner, total_rows: int, never: int):
        self.recency = planner.recency
        self.total_rows = total_rows
        self.never = never
        room = max(planner.capacity, 1)
        self.stack_slots, self.stack_rows = (_faulted_in(room) for _ in range(2))
        self.top = 0
        self.order, self.keys, self.slots = (_faulted_in(2 * room) for _ in range(3))
        self.size = 0

    def release(self, key, slots, rows, next_use, used_again) -> None:
        if self.size + len(slots) > len(self.order):
            self.size = _compact_heap(self.recency, self.order, self.keys, self.slots,
                                      self.size)
        self.top, self.size = _push_released_future(
            key, slots, rows, next_use, used_again, self.never, self.total_rows,
            self.stack_slots, self.stack_rows, self.top, self.order, self.keys, self.slots,
            self.size)

    def take(self, count: int):
        """The never-used-again slots, most recently released first, then the furthest next
        uses; and their rows (fewer than `count` if fewer are evictable)."""
        victims = np.empty(count, dtype=np.int64)
        rows = np.empty(count, dtype=np.int64)
        found, self.top, self.size = _pop_future(
            count, self.recency, self.total_rows, self.stack_slots, self.stack_rows, self.top,
            self.order, self.keys, self.slots, self.size, victims, rows)
        return victims[:found], rows[:found]


def _faulted_in(n: int) -> np.ndarray:
    """An int64 array whose pages are mapped now (written once), so that no batch pays the
    page faults of a pool growing into fresh memory."""
    return np.full(n, 0, dtype=np.int64)


# -- kernels ------------------------------------------------------------------------------------
@numba.njit(cache=True, nogil=True)
def _look_up(rows, key, oldest, slot_of_row, recency, slots, used_again):
    """Each row's slot into `slots` (NOT_RESIDENT: a miss); the hits take their recency key
    (key + position), and the in-flight batch (from `oldest` on) that used a hit before
    marks it used again. Returns the number of misses."""
    # Gather first, without branches, so that the loads of scattered rows overlap.
    misses = 0
    for k in range(len(rows)):
        slot = slot_of_row[rows[k]]
        slots[k] = slot
        misses += slot == NOT_RESIDENT
    ring = used_again.shape[0]
    for k in range(len(rows)):
        slot = slots[k]
        if slot == NOT_RESIDENT:
            continue
        previous = recency[slot]
        batch = previous >> POSITION_BITS
        if batch >= oldest:
            used_again[batch % ring, previous & POSITION_MASK] = True
        recency[slot] = key + k
    return misses


@numba.njit(cache=True, nogil=True)
def _assign(rows, slots, key, victims, evicted, occupancy, slot_of_row, recency, missing,
            missing_slots):
    """The victims' rows leave; the missing rows (NOT_RESIDENT in `slots`) take the victims'
    slots, then free ones from `occupancy` on, and their recency keys. Fills missing and
    missing_slots; returns the new occupancy."""
    for v in range(len(evicted)):
        slot_of_row[evicted[v]] = NOT_RESIDENT
    m = 0
    for k in range(len(rows)):
        if slots[k] != NOT_RESIDENT:
            continue
        if m < len(victims):
            slot = victims[m]
        else:
            slot = occupancy
            occupancy += 1
        slots[k] = slot
        slot_of_row[rows[k]] = slot
        recency[slot] = key + k
        missing[m] = rows[k]
        missing_slots[m] = slot
        m += 1
    return occupancy


@numba.njit(cache=True, nogil=True)
def _push_released(key, slots, rows, used_again, keys, queue_slots, queue_rows, tail):
    """Queue the rows of a released batch that it used last. Every entry is written and
    only those are kept (room for all is reserved): no branch to mispredict."""
    for k in range(len(slots)):
        keys[tail] = key + k
        queue_slots[tail] = slots[k]
        queue_rows[tail] = rows[k]
        tail += not used_again[k]
    return tail


@numba.njit(cache=True, nogil=True)
def _compact_queue(recency, keys, queue_slots, queue_rows, head, tail):
    """Move the live entries of [head, tail) to the front, in order; returns their count."""
    live = 0
    for e in range(head, tail):
        keys[live] = keys[e]
        queue_slots[live] = queue_slots[e]
        queue_rows[live] = queue_rows[e]
        live += recency[queue_slots[e]] == keys[e]
    return live


@numba.njit(cache=True, nogil=True)
def _pop_queue(count, recency, keys, queue_slots, queue_rows, head, tail, victims, rows):
    """Up to `count` live entries from the head into victims and rows; returns (how many,
    the new head)."""
    found = 0
    while found < count and head < tail:
        slot = queue_slots[head]
        if recency[slot] == keys[head]:
            victims[found] = slot
            rows[found] = queue_rows[head]
            found += 1
        head += 1
    return found, head


@numba.njit(cache=True, nogil=True)
def _heap_push(order, keys, slots, size, item, key, slot):
    """Push onto a max-heap of `size` entries ordered by `order`; returns the new size."""
    i = size
    while i > 0:
        parent = (i - 1) >> 2
        if order[parent] >= item:
            break
        order[i], keys[i], slots[i] = order[parent], keys[parent], slots[parent]
        i = parent
    order[i], keys[i], slots[i] = item, key, slot
    return size + 1


@numba.njit(cache=True, nogil=True)
def _sift_down(order, keys, slots, size, i):
    item, key, slot = order[i], keys[i], slots[i]
    while True:
        first = 4 * i + 1
        if first >= size:
            break
        best = first
        for child in range(first + 1, min(first + 4, size)):
            if order[child] > order[best]:
                best = child
        if order[best] <= item:
            break
        order[i], keys[i], slots[i] = order[best], keys[best], slots[best]
        i = best
    order[i], keys[i], slots[i] = item, key, slot


@numba.njit(cache=True, nogil=True)
def _push_released_future(key, slots, rows, next_use, used_again, never, total_rows,
                          stack_slots, stack_rows, top, order, keys, heap_slots, size):
    """Stack (never used again) or heap the rows of a released batch that it used last."""
    for k in range(len(slots)):
        if used_again[k]:
            continue
        if next_use[k] == never:
            stack_slots[top] = slots[k]
            stack_rows[top] = rows[k]
            top += 1
        else:
            size = _heap_push(order, keys, heap_slots, size, next_use[k] * total_rows + rows[k],
                              key + k, slots[k])
    return top, size


@numba.njit(cache=True, nogil=True)
def _compact_heap(recency, order, keys, slots, size):
    """Keep the live entries and rebuild the heap over them; returns their count."""
    live = 0
    for e in range(size):
        order[live], keys[live], slots[live] = order[e], keys[e], slots[e]
        live += recency[slots[e]] == keys[e]
    for i in range((live - 2) // 4, -1, -1):
        _sift_down(order, keys, slots, live, i)
    return live


@numba.njit(cache=True, nogil=True)
def _pop_future(count, recency, total_rows, stack_slots, stack_rows, top, order, keys, slots,
                size, victims, rows):
    """Up to `count` victims: the stack's top first, then the heap's live maxima. Returns
    (how many, the new top, the new size)."""
    found = 0
    while found < count and top > 0:
        top -= 1
        victims[found] = stack_slots[top]
        rows[found] = stack_rows[top]
        found += 1
    while found < count and size > 0:
        item, key, slot = order[0], keys[0], slots[0]
        size -= 1
        if size > 0:
            order[0], keys[0], slots[0] = order[size], keys[size], slots[size]
            _sift_down(order, keys, slots, size, 0)
        if recency[slot] == key:
            victims[found] = slot
            rows[found] = item % total_rows
            found += 1
    return found, top, size
