"""Replays that keep totals only (long one-lookup streams) agree with per-batch replays."""

import numpy as np
import pytest

from simulator import OptionError, generate, replay
from simulator.caches import POLICIES

OPTIONS = {"scratchpipe": {"lookahead": 2}, "oracle": {"lookahead": 2}}


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return generate("zipf", tmp_path_factory.mktemp("t") / "t", [300, 50], batch_size=8,
                    num_batches=120, seed=4, alpha=0.9, pooling="1-3", show_progress=False)


@pytest.mark.parametrize("policy", list(POLICIES))
def test_totals_equal_the_sums_of_the_per_batch_rows(trace, policy):
    kw = dict(policy=policy, capacity=150, max_lookups=97, **OPTIONS.get(policy, {}))
    full = replay(trace, per_batch=True, **kw)
    totals = replay(trace, per_batch=False, **kw)
    assert totals.stats is None and full.stats is not None
    assert totals.to_dict() == full.to_dict()
    assert full.peak_occupancy == full.column("occupancy").max()
    assert full.peak_held == full.column("held").max()
    assert full.misses == full.column("misses").sum() > 0


def test_per_batch_columns_need_per_batch_rows(trace):
    r = replay(trace, policy="lru", capacity=100, per_batch=False)
    with pytest.raises(OptionError, match="per_batch=True"):
        r.column("misses")
    assert np.array_equal(replay(trace, policy="lru", capacity=100).per_batch_misses,
                          replay(trace, policy="lru", capacity=100, per_batch=True).column("misses"))


def test_cli_per_batch_file_forces_per_batch_rows(trace, tmp_path, monkeypatch, capsys):
    import simulator.caches.base as base
    from simulator.cli import main

    monkeypatch.setattr(base, "PER_BATCH_LIMIT", 10)  # the trace has 120 batches
    assert replay(trace, policy="lru", capacity=100).stats is None
    code = main(["replay", str(trace.path), "--policy", "lru", "--capacity", "100",
                 "--per-batch", str(tmp_path / "pb.csv")])
    assert code == 0, capsys.readouterr().err
    assert len((tmp_path / "pb.csv").read_text().splitlines()) == 1 + 120
