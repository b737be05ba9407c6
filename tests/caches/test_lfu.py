"""LFU (lfu.py): counters kept across evictions, ties by least recent use."""

import pytest

import simulator as sim
from simulator import CapacityError


def test_counters_survive_eviction_and_ties_go_to_the_least_recent(make_trace):
    # Capacity 3; (counter, last use) of each row:
    # [1 1 1] 1:(3,0); [2] 2:(1,1); [3] 3:(1,2); [2] hit 2:(2,3);
    # [4] evicts 3 (1,2) -> 4:(1,4); [3] evicts 4 (1,4) -> 3:(2,5), its count kept;
    # [4] evicts 2 (2,3): 2 and 3 tie on 2 and 2 is less recent -> 4:(2,6);
    # [2] misses (an LFU that reset counters would have evicted 3 instead), evicts 3 (2,5);
    # [1] hits.
    batches = [[1, 1, 1], [2], [3], [2], [4], [3], [4], [2], [1]]
    r = sim.replay(make_trace(batches), "lfu", 3)
    assert r.per_batch_hits.tolist() == [0, 0, 0, 1, 0, 0, 0, 0, 1]
    assert r.per_batch_evictions.tolist() == [0, 0, 0, 0, 1, 1, 1, 1, 0]
    assert r.per_batch_occupancy.tolist() == [1, 2, 3, 3, 3, 3, 3, 3, 3]


@pytest.mark.parametrize("first, second, hit", [(5, 6, 1), (6, 5, 0)])
def test_ties_within_a_batch_go_to_the_first_occurrence(make_trace, first, second, hit):
    # 5 and 6 enter in one batch with equal counts; the one that occurred first is older.
    r = sim.replay(make_trace([[first, second], [7], [6]]), "lfu", 2)
    assert r.per_batch_hits.tolist() == [0, 0, hit]


def test_counters_grow_by_lookups_not_by_batches(make_trace):
    # [1 2 2]: 2 has two lookups, 1 one; [3] evicts 1 although 2 occurred later.
    r = sim.replay(make_trace([[1, 2, 2], [3], [2], [1]]), "lfu", 2)
    assert r.per_batch_hits.tolist() == [0, 0, 1, 0]


def test_a_batch_larger_than_the_cache_is_an_error(make_trace):
    with pytest.raises(CapacityError, match=r"batch 0 touches 3 distinct rows but the lfu"):
        sim.replay(make_trace([[1, 2, 3]]), "lfu", 2)
