"""FIFO (fifo.py) on hand-computed traces."""

import pytest

import simulator as sim
from simulator import CapacityError


def test_hits_do_not_renew_a_row(make_trace):
    # Capacity 3: 1 2 3 enter; [1] hits but stays oldest; [4] evicts 1 (LRU would evict 2);
    # [1 5] both miss and evict 2 and 3.
    batches = [[1, 2], [3], [1], [4], [1, 5]]
    r = sim.replay(make_trace(batches), "fifo", 3)
    assert r.per_batch_hits.tolist() == [0, 0, 1, 0, 0]
    assert r.per_batch_evictions.tolist() == [0, 0, 0, 1, 2]
    assert r.per_batch_occupancy.tolist() == [2, 3, 3, 3, 3]
    assert sim.replay(make_trace(batches), "lru", 3).per_batch_hits.tolist() == [0, 0, 1, 0, 1]


def test_rows_of_the_batch_are_skipped_and_keep_their_place(make_trace):
    # Capacity 3, queue oldest first: 1 2 3. [1 4]: 1 is in the batch, so 2 goes: 1 3 4.
    # [5]: 1 is still the oldest and goes now: 3 4 5. [1] therefore misses under FIFO, while
    # LRU (which renewed 1 at [1 4] and then evicted 3) hits.
    batches = [[1], [2], [3], [1, 4], [5], [1]]
    fifo = sim.replay(make_trace(batches), "fifo", 3)
    assert fifo.per_batch_hits.tolist() == [0, 0, 0, 1, 0, 0]
    assert fifo.per_batch_evictions.tolist() == [0, 0, 0, 1, 1, 1]
    lru = sim.replay(make_trace(batches), "lru", 3)
    assert lru.per_batch_hits.tolist() == [0, 0, 0, 1, 0, 1]


def test_a_batch_larger_than_the_cache_is_an_error(make_trace):
    with pytest.raises(CapacityError, match=r"batch 1 touches 3 distinct rows but the fifo"):
        sim.replay(make_trace([[1], [1, 2, 3]]), "fifo", 2)
