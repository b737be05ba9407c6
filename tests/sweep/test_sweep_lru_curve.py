"""The one-pass LRU curve stored with LRU points agrees with the replays at their capacities."""

import json

import numpy as np
import pytest

from simulator import mrc, run_sweep
from simulator.plots.figures import plot_hit_rate


def test_lru_curve_matches_the_replayed_points(write_spec, tmp_path):
    spec = write_spec("""
        [axes]
        policy = ["lru", "belady"]
        capacity = ["20%", "50%", "90%"]
    """)
    df = run_sweep(spec, tmp_path / "r.csv", workers=1, progress=False)
    lru = df[df["policy"] == "lru"]
    curve = np.array(json.loads(lru["lru_curve"].iloc[0]))
    assert df.loc[df["policy"] == "belady", "lru_curve"].isna().all()
    trace_dir = next((tmp_path / "r.traces").iterdir())
    one_pass = mrc(trace_dir)
    for capacity, hit_rate in zip(lru["capacity_rows"], lru["hit_rate"]):
        assert 1 - one_pass.miss_ratio(int(capacity)) == pytest.approx(hit_rate, rel=1e-12)
    for capacity, hit_rate in curve:
        assert hit_rate == 1 - one_pass.miss_ratio(int(capacity))
    fig, _ = plot_hit_rate(df)
    labels = [line.get_label() for line in fig.axes[0].get_lines()]
    assert "lru (one pass)" in labels
