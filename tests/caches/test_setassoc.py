"""Set-associative cache (setassoc.py): sets, ways, bypass on conflict, LRU or LFU inside."""

import numpy as np
import pytest

import simulator as sim
from simulator import OptionError
from simulator.caches.setassoc import set_of


def test_a_full_set_of_rows_in_use_makes_the_next_row_bypass(make_trace):
    # One set of two ways; the batch's third row finds both ways held by the batch.
    r = sim.replay(make_trace([[1, 2, 3], [3], [1, 2]]), "setassoc", 2, ways=2)
    assert r.per_batch_misses.tolist() == [3, 1, 1]
    assert r.per_batch_conflict_misses.tolist() == [1, 0, 0]
    assert r.per_batch_hits.tolist() == [0, 0, 1]
    assert r.per_batch_evictions.tolist() == [0, 1, 1]
    assert r.per_batch_occupancy.tolist() == [2, 2, 2]
    # [3] evicts 1 (LRU: 1 came before 2 in batch 0); [1 2]: 2 hits, 1 evicts 3.


@pytest.mark.parametrize("inner, last_hits", [("lru", 0), ("lfu", 1)])
def test_inner_policy_picks_the_victim(make_trace, inner, last_hits):
    # One set of two ways. [3] evicts 1 under LRU (least recent), 2 under LFU (1 has three
    # lookups), so the final [1] hits only under LFU.
    batches = [[1, 1, 1], [2], [3], [1]]
    r = sim.replay(make_trace(batches), "setassoc", 2, ways=2, inner=inner)
    assert r.per_batch_hits.tolist() == [0, 0, 0, last_hits]


def test_lfu_counters_are_kept_while_a_row_is_evicted(make_trace):
    # One set of two ways, LFU; (counter, last use) per row:
    # [1 1] 1:(2,0); [2 2 2] 2:(3,1); [3 3 3] evicts 1 -> 3:(3,2);
    # [1] comes back with counter 3 and evicts 2 (3,1) -> 1:(3,3);
    # [4] evicts 3 (3,2), the older of the tie; [1] hits. Had 1's counter been reset on
    # eviction, [4] would have evicted 1 (1,3) and the last batch would miss.
    batches = [[1, 1], [2, 2, 2], [3, 3, 3], [1], [4], [1]]
    r = sim.replay(make_trace(batches), "setassoc", 2, ways=2, inner="lfu")
    assert r.per_batch_hits.tolist() == [0, 0, 0, 0, 0, 1]


def test_rows_only_compete_within_their_set(make_trace):
    sets = 4
    by_set = {}
    for row in range(200):
        by_set.setdefault(set_of(row, sets), []).append(row)
    a = by_set[0][:3]
    b = by_set[1][:1]
    # 4 sets x 2 ways: three rows of set 0 in one batch conflict even though the cache holds
    # 8 rows; the row of set 1 is unaffected.
    r = sim.replay(make_trace([a + b, b], rows=200), "setassoc", 8, ways=2)
    assert r.per_batch_conflict_misses.tolist() == [1, 0]
    assert r.per_batch_hits.tolist() == [0, 1]
    assert r.per_batch_occupancy.tolist() == [3, 3]


def splitmix64_finalizer(x):
    mask = (1 << 64) - 1
    x = ((x ^ (x >> 30)) * 0xBF58476D1CE4E5B9) & mask
    x = ((x ^ (x >> 27)) * 0x94D049BB133111EB) & mask
    return x ^ (x >> 31)


def test_the_set_is_the_splitmix64_finalizer_of_the_row_modulo_sets():
    for row in (0, 1, 2, 12345, 2**31 - 1, 2**40 + 7):
        for sets in (1, 7, 1000, 2**20):
            assert set_of(row, sets) == splitmix64_finalizer(row) % sets
    rows = np.arange(100_000)
    counts = np.bincount([set_of(r, 64) for r in rows], minlength=64)
    assert counts.min() > 0.9 * counts.mean()


def test_capacity_is_rounded_down_to_whole_sets(make_trace):
    r = sim.replay(make_trace([[1, 2, 3]]), "setassoc", 10, ways=4)
    assert r.params == {"ways": 4, "inner": "lru", "sets": 2, "effective_capacity": 8}
    assert r.capacity == 10


def test_a_big_batch_is_no_error(make_trace):
    r = sim.replay(make_trace([list(range(10))]), "setassoc", 4, ways=4)
    assert (r.misses, r.conflict_misses, r.peak_occupancy) == (10, 6, 4)


@pytest.mark.parametrize("params, message", [
    ({"ways": 0}, "ways must be an integer from 1 to 65534"),
    ({"ways": 64}, "less than one set of 64 ways"),
    ({"inner": "fifo"}, "setassoc: inner 'fifo' is not one of lru, lfu"),
    ({"lookahead": 2}, "takes no option lookahead"),
])
def test_bad_options(make_trace, params, message):
    with pytest.raises(OptionError, match=message):
        sim.replay(make_trace([[1]]), "setassoc", 32, **params)
