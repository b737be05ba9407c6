"""Set-associative cache: sets x ways slots, a hash of the row id picks the set, LRU or LFU
chooses the victim inside it (the layout of FBGEMM's and HugeCTR's GPU embedding caches).

Options: ways and inner (the policy in a set: 'lru' or 'lfu'). There are
capacity // ways sets; a capacity that is not a multiple of ways is rounded down to one
(params records the effective capacity). The set of a row is a fixed hash (the splitmix64
finalizer) of its global id modulo the number of sets, so it does not depend on the trace.

Per batch, the unique rows U go in first-occurrence order. A missing row takes an empty way
of its set, else evicts the way whose row is least recently used (lru) or has the smallest
counter, ties by least recent use (lfu; counters grow by the row's lookups per batch and are
kept while the row is evicted, as in lfu.py), among the ways whose row is not in U. When
every way of the set holds a row of this batch, the row bypasses the cache: it is read from
host memory for this batch only, and counts as a miss and a conflict miss, never resident.
So no batch is too big for the cache, and there is no capacity error.

Each way stores its row and its key: the sequence number of the row's last use (both inner
policies) and its counter (lfu). Sequence numbers are global, given in first-occurrence
order within a batch, so a way belongs to the current batch exactly when its number is at
least the batch's first one; an empty way has number and counter -1, so it is the first
choice of either policy without a test of its own.

One pass over the batch's lookups deduplicates them and settles the hits, so every resident
row of the batch carries its new number before any victim is chosen; a second pass places
the misses. Per row the cache keeps one int64 tag, (stamp of the last batch that used the
row) << WAY_BITS | (way + 1, or 0 when not resident), so that a lookup costs one random
memory access for the row, however many tables the trace has. Both passes prefetch what
they will need a few steps ahead: the tags of coming lookups, the sets of coming misses;
the tags of evicted rows are cleared when the batch ends, in a third pass that can prefetch
them too.
"""

import numba
import numpy as np

from ..errors import OptionError
from ..options import Option
from ._pools import word_dtype
from ._prefetch import prefetch
from .base import Policy, record_batch

EMPTY = -1
WAY_BITS = 16
WAY_MASK = (1 << WAY_BITS) - 1
MAX_WAYS = WAY_MASK - 1
# state: occupancy, next sequence number.
OCC, NEXT_SEQ = 0, 1
# How far ahead to prefetch: lookups in the first pass, misses in the second (measured best
# on 26 tables x 1M rows).
TAG_AHEAD, SET_AHEAD = 32, 8
WAYS_PER_LINE = 8  # int64 keys per 64-byte cache line


@numba.njit(cache=True, inline="always")
def set_of(row, sets):
    """The splitmix64 finalizer of the row id, modulo the number of sets."""
    x = np.uint64(row)
    x = (x ^ (x >> np.uint64(30))) * np.uint64(0xBF58476D1CE4E5B9)
    x = (x ^ (x >> np.uint64(27))) * np.uint64(0x94D049BB133111EB)
    x = x ^ (x >> np.uint64(31))
    return np.int64(x % np.uint64(sets))


@numba.njit(cache=True, inline="always")
def _lru_victim(slot_seq, s, ways):
    """The way with the smallest number (an empty one first). The minimum is found first,
    without branches (it vectorizes), then its way."""
    numbers = slot_seq[s]
    best = numbers[0]
    for w in range(1, ways):
        best = min(best, numbers[w])
    victim = 0
    while numbers[victim] != best:
        victim += 1
    return victim, best


@numba.njit(cache=True, inline="always")
def _lfu_victim(slot_freq, slot_seq, s, ways, base):
    """The way with the smallest (counter, number) among those not used by this batch
    (an empty one first); -1 when every way is used by it. Written without branches on the
    data (selects only), which mispredict on every set."""
    in_use = np.iinfo(np.int64).max
    victim = 0
    best_freq = in_use
    best_seq = in_use
    for w in range(ways):
        seq = slot_seq[s, w]
        f = slot_freq[s, w] if seq < base else in_use
        better = f < best_freq or (f == best_freq and seq < best_seq)
        victim = w if better else victim
        best_freq = f if better else best_freq
        best_seq = seq if better else best_seq
    return victim if best_freq != in_use else -1


@numba.njit(cache=True)
def _setassoc_chunk(ids, batch_ptr, first_batch, use_lfu, slot_row, slot_freq, slot_seq, tag,
                    freq, state, miss_row, miss_set, miss_seq, stats):
    sets, ways = slot_row.shape
    for b in range(len(batch_ptr) - 1):
        start, end = batch_ptr[b], batch_ptr[b + 1]
        stamp = first_batch + b + 1  # 0 in a tag: never used
        if use_lfu:  # the keys of this batch's rows carry all of its lookups
            for k in range(start, end):
                if k + TAG_AHEAD < end:
                    prefetch(freq, ids[k + TAG_AHEAD])
                freq[ids[k]] += 1
        base = state[NEXT_SEQ]
        n = 0
        misses = 0
        for k in range(start, end):
            if k + TAG_AHEAD < end:
                prefetch(tag, ids[k + TAG_AHEAD])
            r = ids[k]
            t = tag[r]
            if t >> WAY_BITS == stamp:
                continue
            way = (t & WAY_MASK) - 1
            tag[r] = (stamp << WAY_BITS) | (t & WAY_MASK)
            s = set_of(r, sets)
            if way >= 0:
                slot_seq[s, way] = base + n
                if use_lfu:
                    slot_freq[s, way] = freq[r]
            else:
                miss_row[misses] = r
                miss_set[misses] = s
                miss_seq[misses] = base + n
                misses += 1
            n += 1
        state[NEXT_SEQ] += n
        evicted = 0
        conflicts = 0
        for j in range(misses):
            if j + SET_AHEAD < misses:
                ahead = miss_set[j + SET_AHEAD] * ways
                for w in range(0, ways, WAYS_PER_LINE):
                    prefetch(slot_seq, ahead + w)
                    if use_lfu:
                        prefetch(slot_freq, ahead + w)
                prefetch(slot_row, ahead)
                prefetch(slot_row, ahead + ways - 1)
            r, s = miss_row[j], miss_set[j]
            if use_lfu:
                victim = _lfu_victim(slot_freq, slot_seq, s, ways, base)
            else:
                victim, seq = _lru_victim(slot_seq, s, ways)
                if seq >= base:
                    victim = -1
            if victim < 0:  # every way holds a row of this batch: read from host
                conflicts += 1
                continue
            old = slot_row[s, victim]
            if old == EMPTY:
                state[OCC] += 1
            else:
                miss_row[evicted] = old  # (rows of misses before j are placed)
                evicted += 1
            slot_row[s, victim] = r
            slot_seq[s, victim] = miss_seq[j]
            if use_lfu:
                slot_freq[s, victim] = freq[r]
            tag[r] = (stamp << WAY_BITS) | (victim + 1)
        # Evicted rows are not in this batch, so their tags can wait until it ends, when
        # they are known in advance and can be fetched ahead.
        for j in range(evicted):
            if j + TAG_AHEAD < evicted:
                prefetch(tag, miss_row[j + TAG_AHEAD])
            tag[miss_row[j]] &= ~WAY_MASK
        record_batch(stats, b, end - start, n, misses, evicted, state[OCC], conflicts)


class SetAssociative(Policy):
    name = "setassoc"
    options = (Option("ways", int, 32, "ways per set", minimum=1, maximum=MAX_WAYS),
               Option("inner", str, "lru", "the policy inside a set", choices=("lru", "lfu")))

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        ways, inner = self.ways, self.inner
        if capacity < ways:
            raise OptionError(f"setassoc: capacity {capacity:,} is less than one set of {ways} "
                              f"ways; give a capacity of at least {ways} rows or fewer ways")
        self.sets = capacity // self.ways
        n = trace.total_rows
        shape = (self.sets, self.ways)
        self._slot_row = np.full(shape, EMPTY, dtype=word_dtype(n - 1, EMPTY))
        self._slot_seq = np.full(shape, -1, dtype=np.int64)
        lfu = inner == "lfu"
        self._slot_freq = np.full(shape if lfu else (0, 0), -1, dtype=np.int64)
        self._freq = np.zeros(n if lfu else 0, dtype=np.int64)
        self._tag = np.zeros(n, dtype=np.int64)
        self._state = np.zeros(2, dtype=np.int64)

    def settings(self):
        # What the capacity became, recorded beside the options.
        return {**super().settings(), "sets": self.sets,
                "effective_capacity": self.sets * self.ways}

    def process(self, chunk, stats):
        most = int(np.diff(chunk.batch_ptr).max(initial=0))
        miss_row, miss_set, miss_seq = (np.empty(most, dtype=np.int64) for _ in range(3))
        _setassoc_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, self.inner == "lfu",
                        self._slot_row, self._slot_freq, self._slot_seq, self._tag, self._freq,
                        self._state, miss_row, miss_set, miss_seq, stats)
