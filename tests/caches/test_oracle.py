"""Oracle (Bagpipe-style): a row stays resident after a use only if it is used again within
the lookahead."""

import math

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import CapacityError, OptionError, replay
from simulator.caches.base import EVICTIONS, HITS, MISSES, OCCUPANCY

COLUMNS = [HITS, MISSES, EVICTIONS, OCCUPANCY]
BATCHES = [[1, 2], [2, 3, 2], [1], [3], [2]]


def reference_oracle(batches, lookahead):
    """Per batch (lookups, unique, hits, misses, evictions, writebacks, 0, 0, occupancy)."""
    uniques = [set(b) for b in batches]

    def next_use(row, after):
        return next((c for c in range(after + 1, len(batches)) if row in uniques[c]), math.inf)

    resident, previous_use, out = set(), {}, []
    for b, unique in enumerate(uniques):
        hits = len(unique & resident)
        # The same hits, told from the past: the previous use is at most L batches back.
        assert hits == sum(b - previous_use.get(r, -math.inf) <= lookahead for r in unique)
        resident |= unique
        during = len(resident)
        expiring = {r for r in unique if next_use(r, b) > b + lookahead}
        resident -= expiring
        previous_use.update(dict.fromkeys(unique, b))
        out.append([len(batches[b]), len(unique), hits, len(unique) - hits, len(expiring),
                    len(expiring), 0, 0, during])
    return out


def test_hand_computed_lookahead_1(make_trace):
    result = replay(make_trace(BATCHES), "oracle", capacity=None, lookahead=1)
    assert result.stats[:, COLUMNS].tolist() == [
        # hits, misses, expiring, occupancy during the batch
        [0, 2, 1, 2],   # 1 is next used 2 batches later: expires; 2 is kept
        [1, 1, 2, 2],   # 2 hits; 2 (next at 4) and 3 (next at 3) expire
        [0, 1, 1, 1],
        [0, 1, 1, 1],
        [0, 1, 1, 1],
    ]
    assert result.capacity is None
    assert result.extra == {"peak_occupancy": 2, "lookahead": 1}


def test_hand_computed_lookahead_2(make_trace):
    result = replay(make_trace(BATCHES), "oracle", capacity=None, lookahead=2)
    assert result.stats[:, COLUMNS].tolist() == [
        [0, 2, 0, 2],   # 1 (next at 2) and 2 (next at 1) are both kept
        [1, 1, 1, 3],   # 2 expires (next at 4 > 1 + 2); 3 is kept for batch 3
        [1, 0, 1, 2],   # 1 hits and expires (never used again)
        [1, 0, 1, 1],
        [0, 1, 1, 1],
    ]
    assert result.column("writebacks").tolist() == result.column("evictions").tolist()
    assert result.extra["peak_occupancy"] == 3


def test_a_capacity_below_the_peak_names_the_batch_and_the_peak(make_trace):
    trace = make_trace(BATCHES)
    assert replay(trace, "oracle", capacity=3, lookahead=2).hits == 3
    with pytest.raises(CapacityError, match=r"from batch 1 on; .* at least 3 rows"):
        replay(trace, "oracle", capacity=2, lookahead=2)


def test_lookahead_zero_keeps_nothing(make_trace):
    result = replay(make_trace(BATCHES), "oracle", capacity=None, lookahead=0)
    assert result.hits == 0 and result.evictions == result.unique


batch_lists = st.lists(st.lists(st.integers(0, 11), min_size=1, max_size=5), min_size=1,
                       max_size=30)


@settings(max_examples=100, deadline=None)
@given(batches=batch_lists, lookahead=st.integers(0, 40), max_lookups=st.integers(1, 9))
def test_matches_the_reference(make_trace, batches, lookahead, max_lookups):
    result = replay(make_trace(batches), "oracle", capacity=None, lookahead=lookahead,
                    max_lookups=max_lookups)
    assert result.stats.tolist() == reference_oracle(batches, lookahead)
    # Every fetched row is written back exactly once, when it expires.
    assert result.misses == result.evictions == result.total("writebacks")


def test_capacity_none_is_refused_by_other_policies(make_trace):
    with pytest.raises(OptionError, match="capacity"):
        replay(make_trace(BATCHES), "lru", capacity=None)


def test_next_use_file_is_removed_also_after_a_capacity_error(make_trace, tmp_path):
    with pytest.raises(CapacityError):
        replay(make_trace(BATCHES), "oracle", capacity=1, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


def test_bad_lookahead_is_a_user_error(make_trace):
    with pytest.raises(OptionError, match="lookahead"):
        replay(make_trace(BATCHES), "oracle", capacity=None, lookahead=-2)
