"""Static hot set (static.py): chosen from a profile, preloaded, never changed."""

import numpy as np
import pytest

import simulator as sim
from simulator import OptionError
from simulator.caches.static import hot_set

BATCHES = [[1, 1, 2], [3], [2], [3, 3], [4], [4], [4], [4]]


def test_hot_set_from_a_profile_prefix(make_trace):
    # The first 4 batches count 1:2, 2:2, 3:3; capacity 2 takes 3, and 1 over 2 (lower id).
    r = sim.replay(make_trace(BATCHES), "static", 2, profile_batches=4)
    assert r.per_batch_hits.tolist() == [1, 1, 0, 1, 0, 0, 0, 0]
    assert r.per_batch_misses.tolist() == [1, 0, 1, 0, 1, 1, 1, 1]
    assert (r.evictions, r.writebacks) == (0, 0)
    assert r.per_batch_occupancy.tolist() == [2] * 8
    assert r.params == {"profile_batches": 4}
    assert r.to_dict()["hot_rows"] == 2


def test_hot_set_from_the_whole_trace(make_trace):
    # Whole trace: 4:4, 3:3, then 1 and 2 with 2 each; capacity 2 takes 4 and 3.
    r = sim.replay(make_trace(BATCHES), "static", 2)
    assert r.per_batch_hits.tolist() == [0, 1, 0, 1, 1, 1, 1, 1]
    assert r.params == {"profile_batches": None}


def test_the_hot_set_is_preloaded_and_only_profiled_rows_enter_it(make_trace):
    # Room for 10 rows, but the profile (first batch) sees only 1 and 2.
    r = sim.replay(make_trace(BATCHES, rows=20), "static", 10, profile_batches=1)
    assert r.to_dict()["hot_rows"] == 2
    assert r.per_batch_hits.tolist() == [2, 0, 1, 0, 0, 0, 0, 0]
    assert r.peak_occupancy == 2


def test_hot_set_ties_at_the_threshold_go_to_lower_ids():
    counts = np.array([0, 5, 3, 3, 0, 3, 7, 1])
    assert hot_set(counts, 3).tolist() == [1, 2, 6]
    assert hot_set(counts, 4).tolist() == [1, 2, 3, 6]
    assert hot_set(counts, 10).tolist() == [1, 2, 3, 5, 6, 7]


def test_a_big_batch_is_no_error(make_trace):
    r = sim.replay(make_trace([list(range(10))]), "static", 3)
    assert (r.hits, r.misses) == (3, 7)


@pytest.mark.parametrize("value", [0, -1, 2.5, "3"])
def test_bad_profile_batches(make_trace, value):
    with pytest.raises(OptionError, match="profile_batches must be a positive integer"):
        sim.replay(make_trace([[1]]), "static", 1, profile_batches=value)
