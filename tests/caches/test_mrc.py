"""The one-pass LRU miss-ratio curve (mrc.py)."""

import json
import math

import numpy as np

import simulator as sim


def test_hand_computed_stack_distances(make_trace):
    # Recency, newest first, and the distances of each batch (taken before it renews rows):
    # [1 2]    cold, cold                      -> 2 1
    # [3 1]    3 cold; 1 has 2 newer: d=2      -> 1 3 2
    # [2 4 1]  2 has 1, 3 newer: d=3; 4 cold; 1: d=1 -> 1 4 2 3
    # [3]      1, 4, 2 newer: d=4
    curve = sim.mrc(make_trace([[1, 2], [3, 1], [2, 4, 1], [3]]))
    assert (curve.lookups, curve.unique, curve.cold_misses) == (8, 8, 4)
    assert (curve.distinct_rows, curve.min_capacity) == (4, 3)
    # misses(C) = 4 cold + distances above C; LRU needs C >= 3 (batch 2 has 3 rows).
    assert [curve.misses_at(c) for c in range(7)] == [None, None, None, 5, 4, 4, 4]
    assert np.isnan(curve.misses[:3]).all() and curve.misses[3:].tolist() == [5, 4]
    assert curve.miss_ratio(3) == 5 / 8 and math.isnan(curve.miss_ratio(2))
    assert curve.hits[3] == 3


def test_matches_separate_lru_replays_on_a_batched_zipf_trace(tmp_path):
    t = sim.generate("zipf", tmp_path / "z", [500, 300], batch_size=16, num_batches=60, seed=4,
                     alpha=1.0, pooling="1-3", show_progress=False)
    curve = sim.mrc(t)
    for c in (curve.min_capacity, curve.min_capacity + 1, 100, 333, curve.distinct_rows, 10**6):
        assert curve.misses_at(c) == sim.replay(t, "lru", c).misses


def test_to_dict_is_json_and_compact(make_stream):
    ids = np.random.default_rng(1).zipf(1.1, 3000) % 1000
    curve = sim.mrc(make_stream(ids, 1000))
    d = json.loads(json.dumps(curve.to_dict(points=20)))
    caps = [p["capacity"] for p in d["points"]]
    assert caps[0] == 1 and caps[-1] == curve.distinct_rows and len(caps) <= 20
    assert caps == sorted(caps)
    assert all(p["misses"] == curve.misses_at(p["capacity"]) for p in d["points"])
    assert "misses" not in d
    assert len(curve.to_dict(full=True)["misses"]) == curve.distinct_rows + 1
