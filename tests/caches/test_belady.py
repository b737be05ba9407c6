"""Belady at batch granularity: libCacheSim's Belady on one-lookup-per-batch traces, a
Python reference on batched ones, and never worse than LRU."""

from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.caches._pools as pools_module
from conftest import libcachesim_misses
from simulator import CapacityError, TraceWriter, replay
from simulator.caches.base import EVICTIONS, HITS, MISSES, OCCUPANCY

MOVIELENS = Path("/work/shared/data/movielens-100k/ml-100k.inter")


def zipf_stream(alpha, n=50_000, rows=5_000, seed=0):
    rng = np.random.default_rng(seed)
    weights = np.arange(1, rows + 1, dtype=np.float64) ** -alpha
    return rng.permutation(rows)[rng.choice(rows, size=n, p=weights / weights.sum())]


@pytest.mark.parametrize("alpha", [0.6, 0.9, 1.2])
def test_agrees_with_libcachesim_on_zipf_streams(make_stream, alpha):
    ids = zipf_stream(alpha)
    trace = make_stream(ids, rows=5_000)
    for capacity in (10, 100, 1000):
        ours = replay(trace, "belady", capacity=capacity).misses
        assert ours == libcachesim_misses("Belady", ids, capacity), capacity


def movielens_item_stream() -> np.ndarray:
    """MovieLens-100k items in time order (stable), renumbered densely from 0."""
    if not MOVIELENS.is_file():
        pytest.skip(f"{MOVIELENS} is not here")
    table = np.loadtxt(MOVIELENS, delimiter="\t", skiprows=1, usecols=(1, 3), dtype=np.int64)
    items, timestamps = table[:, 0], table[:, 1]
    _, dense = np.unique(items, return_inverse=True)
    return dense[np.argsort(timestamps, kind="stable")]


def test_agrees_with_libcachesim_on_movielens(tmp_path):
    ids = movielens_item_stream()
    rows = int(ids.max()) + 1
    with TraceWriter(tmp_path / "ml", ["item"], 1, {"source": "movielens-100k"},
                     table_rows=[rows]) as writer:
        writer.append(ids.astype(np.int32), np.ones((len(ids), 1), dtype=np.int32))
        trace = writer.close()
    for capacity in (10, 100, 1000):
        ours = replay(trace, "belady", capacity=capacity).misses
        assert ours == libcachesim_misses("Belady", ids, capacity), capacity


def reference_belady(batches, capacity):
    """Per batch (hits, misses, evictions, occupancy): evict the resident rows not in the
    batch with the furthest next use. Ties are broken by row id; counts do not depend on it."""
    def next_use(row, after):
        return next((c for c in range(after + 1, len(batches)) if row in batches[c]), np.inf)

    resident, out = set(), []
    for b, batch in enumerate(batches):
        unique = set(batch)
        hits = len(unique & resident)
        evict = max(0, len(resident) + len(unique) - hits - capacity)
        victims = sorted(resident - unique, key=lambda r: (next_use(r, b), r))[::-1][:evict]
        resident = (resident - set(victims)) | unique
        out.append((hits, len(unique) - hits, evict, len(resident)))
    return out


batch_lists = st.lists(st.lists(st.integers(0, 11), min_size=1, max_size=5), min_size=1,
                       max_size=30)


@settings(max_examples=80, deadline=None)
@given(batches=batch_lists, extra=st.integers(0, 6), small_heap=st.booleans())
def test_matches_reference_on_batches(make_trace, batches, extra, small_heap):
    capacity = max(len(set(b)) for b in batches) + extra
    with pytest.MonkeyPatch.context() as patch:
        if small_heap:  # makes the heap's compaction and growth run on small traces
            patch.setattr(pools_module, "POOL_MIN_SLOTS", 2)
        result = replay(make_trace(batches), "belady", capacity=capacity, max_lookups=7)
    got = result.stats[:, [HITS, MISSES, EVICTIONS, OCCUPANCY]].tolist()
    assert got == [list(r) for r in reference_belady(batches, capacity)]


@settings(max_examples=80, deadline=None)
@given(batches=batch_lists, extra=st.integers(0, 6))
def test_never_misses_more_than_a_past_looking_policy(make_trace, batches, extra):
    trace = make_trace(batches)
    capacity = max(len(set(b)) for b in batches) + extra
    bound = replay(trace, "belady", capacity=capacity).misses
    for policy, options in (("lru", {}), ("fifo", {}), ("lfu", {}),
                            ("setassoc", {"ways": capacity}), ("scratchpipe", {"lookahead": 0})):
        assert bound <= replay(trace, policy, capacity=capacity, **options).misses, policy


def test_a_batch_larger_than_the_cache_is_an_error(make_trace, tmp_path):
    with pytest.raises(CapacityError, match="batch 1 touches 3 distinct rows"):
        replay(make_trace([[0], [1, 2, 3]]), "belady", capacity=2, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []  # the next-use file is gone


def test_next_use_file_is_removed_after_the_replay(make_trace, tmp_path):
    replay(make_trace([[0, 1], [1, 2], [0]]), "belady", capacity=2, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []

