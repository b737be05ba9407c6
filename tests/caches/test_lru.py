"""LRU (lru.py) on hand-computed traces."""

import pytest

import simulator as sim
from simulator import CapacityError


def test_hand_computed_lru(make_trace):
    # Capacity 3. Recency after each batch, least recent first:
    # [1 2] -> 1 2;  [3] -> 1 2 3;  [1] hit -> 2 3 1;  [4] evicts 2 -> 3 1 4;
    # [2 3]: 3 hits and is skipped at the tail, so 2 evicts 1 -> 4 2 3.
    r = sim.replay(make_trace([[1, 2], [3], [1], [4], [2, 3]]), "lru", 3)
    assert r.per_batch_hits.tolist() == [0, 0, 1, 0, 1]
    assert r.per_batch_misses.tolist() == [2, 1, 0, 1, 1]
    assert r.per_batch_evictions.tolist() == [0, 0, 0, 1, 1]
    assert r.per_batch_occupancy.tolist() == [2, 3, 3, 3, 3]
    assert (r.hits, r.misses, r.writebacks, r.unique, r.lookups) == (2, 5, 2, 7, 7)


def test_repeated_lookups_in_a_batch_count_once(make_trace):
    r = sim.replay(make_trace([[5, 5, 5, 6], [6, 6]]), "lru", 2)
    assert r.per_batch_lookups.tolist() == [4, 2]
    assert r.per_batch_unique.tolist() == [2, 1]
    assert r.per_batch_hits.tolist() == [0, 1]


def test_a_batch_larger_than_the_cache_is_an_error_naming_it(make_trace):
    t = make_trace([[1], [2, 3], [1, 2, 3, 4]])
    with pytest.raises(CapacityError, match=r"batch 2 touches 4 distinct rows.*at least 4"):
        sim.replay(t, "lru", 3)


def test_capacity_as_a_percentage_of_distinct_rows(make_trace):
    t = make_trace([[0, 1], [2, 3], [0, 1]], rows=100)
    assert sim.replay(t, "lru", "50%").capacity == 2
    assert sim.replay(t, "lru", "50%").hits == 0
    assert sim.replay(t, "lru", "100%").hits == 2


def test_lru_takes_no_options(make_trace):
    with pytest.raises(sim.OptionError, match="takes no option ways"):
        sim.replay(make_trace([[1]]), "lru", 1, ways=4)
