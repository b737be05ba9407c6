"""Independent parts of the simulator that must agree with each other."""

from pathlib import Path

import pytest

from simulator import generate, import_csv, min_capacity, mrc, replay, trace_stats

MOVIELENS = Path(__file__).resolve().parents[2] / "shared/data/movielens-100k/ml-100k.inter"


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return generate("drift", tmp_path_factory.mktemp("x") / "t", [5000, 300], batch_size=64,
                    num_batches=80, seed=11, alpha=0.9, pooling="1-3", show_progress=False)


def test_scratchpad_minimum_is_the_working_set_of_the_statistics(trace):
    # scratchpipe.min_capacity and trace.stats compute it with separate kernels.
    working_set = trace_stats(trace).working_set
    for w in (0, 1, 2, 4, 8, 16):
        assert min_capacity(trace, lookahead=w) == working_set[w]


def test_lru_needs_exactly_the_largest_batch(trace):
    # The one-pass curve, the statistics and the replay's own check name the same minimum.
    need = trace_stats(trace).to_dict()["unique_per_batch_max"]
    assert mrc(trace).min_capacity == need == min_capacity(trace, lookahead=0)
    assert replay(trace, "lru", capacity=need).misses >= replay(trace, "belady",
                                                               capacity=need).misses


@pytest.mark.skipif(not MOVIELENS.is_file(), reason="the MovieLens 100K log is not beside the repo")
def test_movielens_item_skew_matches_its_description(tmp_path):
    # ../shared/data/README.md: the top 10% of items take about 43% of item lookups.
    t = import_csv(MOVIELENS, tmp_path / "ml", columns=["user_id:token", "item_id:token"],
                   sep="\t", header=True, sort_by="timestamp:float", batch_size=256,
                   show_progress=False)
    stats = trace_stats(t).to_dict()
    assert stats["per_table_coverage_top10pct"][1] == pytest.approx(0.43, abs=0.01)
    assert stats["per_table_distinct"] == [943, 1682]
