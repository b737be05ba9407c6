"""Next use: every lookup's next batch using the same row, from a backward streaming pass."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from simulator import OptionError, generate
from simulator.caches.future import NextUse


def reference_next_use(batches, never):
    """The next batch after each lookup's own that uses its row, by brute force."""
    out = []
    for b, batch in enumerate(batches):
        for r in batch:
            later = [c for c in range(b + 1, len(batches)) if r in batches[c]]
            out.append(later[0] if later else never)
    return np.array(out, dtype=np.int64)


def streamed(next_use, trace, max_lookups):
    """The next-use arrays of a forward replay's chunks, joined."""
    return np.concatenate([next_use.for_chunk(c) for c in trace.chunks(max_lookups)])


def test_hand_computed(make_trace, tmp_path):
    batches = [[1, 2, 1], [2], [3, 1], [2, 2]]
    with NextUse(make_trace(batches), tmp_dir=tmp_path) as next_use:
        never = next_use.never
        assert next_use.dtype == np.int32 and never == 4  # the number of batches
        assert streamed(next_use, next_use.trace, 1 << 20).tolist() == [
            2, 1, 2,   # row 1 is next used by batch 2, row 2 by batch 1 (repeats agree)
            3,
            never, never,
            never, never]
        # The file is a plain .npy of the whole trace.
        saved = np.load(next_use.dir / "next_use.npy")
        assert saved.tolist() == streamed(next_use, next_use.trace, 1).tolist()


batch_lists = st.lists(st.lists(st.integers(0, 9), min_size=1, max_size=6), min_size=1,
                       max_size=20)


@settings(max_examples=60, deadline=None)
@given(batches=batch_lists, build_chunk=st.integers(1, 8), read_chunk=st.integers(1, 8))
def test_matches_brute_force_for_any_chunking(make_trace, batches, build_chunk, read_chunk):
    trace = make_trace(batches)
    with NextUse(trace, max_lookups=build_chunk) as next_use:
        got = streamed(next_use, trace, read_chunk)
        assert got.tolist() == reference_next_use(batches, next_use.never).tolist()


def test_multi_table_trace_with_pooling(tmp_path):
    trace = generate("zipf", tmp_path / "z", [50, 30, 20], batch_size=8, num_batches=40, seed=3,
                     alpha=1.1, pooling=(1, 3), show_progress=False)
    batches = [c.ids.tolist() for c in (trace.batch(b) for b in range(trace.num_batches))]
    with NextUse(trace, max_lookups=100) as next_use:
        got = streamed(next_use, trace, 77)
        assert got.tolist() == reference_next_use(batches, next_use.never).tolist()


def test_temporary_file_lives_in_tmp_dir_and_goes_away_on_close(make_trace, tmp_path):
    next_use = NextUse(make_trace([[0], [1], [0]]), tmp_dir=tmp_path)
    assert next_use.dir.parent == tmp_path and (next_use.dir / "next_use.npy").is_file()
    next_use.close()
    assert not next_use.dir.exists() and next_use.closed
    next_use.close()  # idempotent


def test_temporary_file_goes_away_on_an_exception(make_trace, tmp_path):
    with pytest.raises(RuntimeError):
        with NextUse(make_trace([[0], [1], [0]]), tmp_dir=tmp_path):
            raise RuntimeError("boom")
    assert list(tmp_path.iterdir()) == []


def test_temporary_file_goes_away_when_collected(make_trace, tmp_path):
    next_use = NextUse(make_trace([[0], [1], [0]]), tmp_dir=tmp_path)
    directory = next_use.dir
    del next_use
    assert not directory.exists()


def test_missing_tmp_dir_is_a_user_error(make_trace, tmp_path):
    with pytest.raises(OptionError, match="does not exist"):
        NextUse(make_trace([[0]]), tmp_dir=tmp_path / "nope")
