"""With one lookup per batch, our LRU and FIFO are the classic per-access caches: they must
agree miss for miss with libCacheSim's (DESIGN.md §4)."""

from pathlib import Path

import numpy as np
import pytest

import simulator as sim
from simulator import TraceWriter

from conftest import libcachesim_misses

pytest.importorskip("libcachesim")

MOVIELENS = Path(__file__).resolve().parents[2].parent / "shared/data/movielens-100k/ml-100k.inter"
CAPACITIES = (10, 100, 1000)


@pytest.fixture(scope="module", params=[0.6, 0.9, 1.2], ids=lambda a: f"zipf-{a}")
def zipf_stream(request, tmp_path_factory):
    path = tmp_path_factory.mktemp("zipf") / "t"
    trace = sim.generate("zipf", path, [5000], batch_size=1, num_batches=50_000, seed=11,
                         alpha=request.param, show_progress=False)
    return trace, np.asarray(trace.indices, dtype=np.int64)


@pytest.fixture(scope="module")
def movielens_stream(tmp_path_factory):
    """MovieLens-100k item ids in time order (stable), densely renumbered, one per batch."""
    if not MOVIELENS.is_file():
        pytest.skip(f"{MOVIELENS} is not here")
    table = np.loadtxt(MOVIELENS, delimiter="\t", skiprows=1, usecols=(1, 3), dtype=np.int64)
    items, ids = np.unique(table[:, 0], return_inverse=True)
    ids = ids[np.argsort(table[:, 1], kind="stable")]
    path = tmp_path_factory.mktemp("movielens") / "t"
    with TraceWriter(path, ["item_id"], 1, {"source": str(MOVIELENS)},
                     table_rows=[len(items)]) as w:
        w.append(ids.astype(np.int32), np.ones((len(ids), 1), dtype=np.int32))
        trace = w.close()
    return trace, ids


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_zipf_streams_agree_with_libcachesim(zipf_stream, policy):
    trace, ids = zipf_stream
    for capacity in CAPACITIES:
        ours = sim.replay(trace, policy, capacity).misses
        assert ours == libcachesim_misses(policy.upper(), ids, capacity), capacity


@pytest.mark.parametrize("policy", ["lru", "fifo"])
def test_movielens_agrees_with_libcachesim(movielens_stream, policy):
    trace, ids = movielens_stream
    assert len(ids) == 100_000
    for capacity in CAPACITIES:
        ours = sim.replay(trace, policy, capacity).misses
        assert ours == libcachesim_misses(policy.upper(), ids, capacity), capacity


def test_mrc_agrees_with_libcachesim_lru(movielens_stream):
    trace, ids = movielens_stream
    curve = sim.mrc(trace)
    for capacity in (1, 7, 50, 400, 1500):
        assert curve.misses_at(capacity) == libcachesim_misses("LRU", ids, capacity), capacity
