import json

import numpy as np
import pytest

from simulator import OptionError, TraceFormatError, TraceWriter, open_trace


def write_small(path, pooling_fixed=False):
    """Two tables of 3 and 5 rows, batch size 2, three samples.

    sample 0: t0 [2]     t1 [0, 4]
    sample 1: t0 [0, 1]  t1 [3]
    sample 2: t0 [1]     t1 [4]
    """
    with TraceWriter(path, ["a", "b"], batch_size=2, provenance={"source": "test"},
                     table_rows=[3, 5], labels=True) as w:
        if pooling_fixed:
            w.append(np.array([2, 0, 0, 3, 1, 4]), None, pooling=1,
                     labels=np.array([1, 0, 1], dtype=np.float32))
        else:
            w.append(np.array([2, 0, 4, 0, 1, 3]), np.array([[1, 2], [2, 1]]),
                     labels=np.array([1, 0], dtype=np.float32))
            w.append(np.array([1, 4]), np.array([[1, 1]]), labels=np.array([1], dtype=np.float32))
        return w.close()


def test_round_trip_variable_pooling(tmp_path):
    t = write_small(tmp_path / "t")
    assert (t.num_tables, t.total_rows, t.batch_size) == (2, 8, 2)
    assert (t.num_batches, t.num_samples, t.num_lookups, t.pooling) == (2, 3, 8, None)
    assert t.table_offsets.tolist() == [0, 3]
    chunk = t.read(0, 2, labels=True)
    # Table b's ids are shifted by table a's 3 rows.
    assert chunk.ids.tolist() == [2, 3, 7, 0, 1, 6, 1, 7]
    assert chunk.batch_ptr.tolist() == [0, 6, 8]
    assert chunk.sample_ptr.tolist() == [0, 2, 3]
    assert chunk.lengths.tolist() == [[1, 2], [2, 1], [1, 1]]
    assert chunk.labels.tolist() == [1, 0, 1]
    assert t.batch(1).ids.tolist() == [1, 7]
    assert t.table_of(chunk.ids).tolist() == [0, 1, 1, 0, 0, 1, 0, 1]
    meta = json.loads((tmp_path / "t" / "meta.json").read_text())
    assert meta["provenance"]["source"] == "test"
    assert "scratchsim_version" in meta["provenance"]


def test_fixed_pooling_drops_lengths(tmp_path):
    t = write_small(tmp_path / "t", pooling_fixed=True)
    assert t.pooling == 1
    assert not (tmp_path / "t" / "lengths.npy").exists()
    assert not (tmp_path / "t" / "batch_ptr.npy").exists()
    chunk = t.read(0, 2)
    assert chunk.ids.tolist() == [2, 3, 0, 6, 1, 7]
    assert chunk.batch_ptr.tolist() == [0, 4, 6]


def test_chunks_are_bounded_whole_batches(tmp_path):
    rng = np.random.default_rng(0)
    n = 1000
    lengths = rng.integers(1, 5, size=(n, 3))
    ids = rng.integers(0, 50, size=int(lengths.sum()))
    with TraceWriter(tmp_path / "t", ["x", "y", "z"], 7, {}, table_rows=[50] * 3) as w:
        w.append(ids, lengths)
        t = w.close()
    full = t.read(0, t.num_batches)
    pieces = list(t.chunks(max_lookups=100))
    assert len(pieces) > 10
    for c in pieces:
        # Never more than the bound, except a single batch that alone exceeds it.
        assert len(c.ids) <= 100 or c.num_batches == 1
    assert np.array_equal(np.concatenate([c.ids for c in pieces]), full.ids)
    assert [c.first_batch for c in pieces] == sorted({c.first_batch for c in pieces})
    assert sum(c.num_batches for c in pieces) == t.num_batches


def test_chunk_bound_with_fixed_pooling(tmp_path):
    with TraceWriter(tmp_path / "t", ["x"], 1, {}, table_rows=[10]) as w:
        w.append(np.arange(1000) % 10)
        t = w.close()
    sizes = [len(c.ids) for c in t.chunks(max_lookups=64)]
    assert max(sizes) == 64 and sum(sizes) == 1000


def test_one_table_chunks_keep_narrow_ids_and_spot_one_lookup_batches(tmp_path):
    """A one-table trace hands kernels its stored int32 ids (row_ids) and makes the int64
    ids only when asked; a chunk knows when every batch is a single lookup."""
    with TraceWriter(tmp_path / "s", ["x"], 1, {}, table_rows=[10]) as w:
        w.append(np.array([3, 1, 4, 1, 5]))
        stream = w.close()
    c = stream.read(1, 4)
    assert c.row_ids.dtype == np.int32 and c.row_ids.tolist() == [1, 4, 1]
    assert c.ids.dtype == np.int64 and c.ids.tolist() == [1, 4, 1]
    assert c.batch_ptr.tolist() == [0, 1, 2, 3] and c.one_lookup_per_batch
    # Variable pooling with single-lookup batches counts too, an empty batch does not.
    singles = write_batches_of(tmp_path / "v", [[2], [0], [2]])
    assert singles.read(0, 3).one_lookup_per_batch
    gaps = write_batches_of(tmp_path / "g", [[2], [], [0, 1]])
    assert not gaps.read(0, 3).one_lookup_per_batch
    two_tables = write_small(tmp_path / "t", pooling_fixed=True).read(0, 2)
    assert two_tables.row_ids.dtype == np.int64 and not two_tables.one_lookup_per_batch
    # The short last batch of a fixed-pooling trace ends its pointer arrays.
    assert two_tables.sample_ptr.tolist() == [0, 2, 3]


def write_batches_of(path, batches):
    """One table of 3 rows, batch size 1, one bag per sample holding batches[b]."""
    with TraceWriter(path, ["x"], 1, {}, table_rows=[3]) as w:
        w.append(np.array([i for b in batches for i in b], dtype=np.int32),
                 np.array([[len(b)] for b in batches]))
        return w.close()


def test_exception_leaves_nothing(tmp_path):
    dest = tmp_path / "t"
    with pytest.raises(RuntimeError):
        with TraceWriter(dest, ["x"], 4, {}, table_rows=[10]) as w:
            w.append(np.arange(8))
            raise RuntimeError("interrupted")
    assert list(tmp_path.iterdir()) == []


def test_out_of_range_id_is_refused_and_nothing_written(tmp_path):
    with pytest.raises(OptionError, match="row id 10 is out of range"):
        with TraceWriter(tmp_path / "t", ["x"], 4, {}, table_rows=[10]) as w:
            w.append(np.array([1, 10]))
            w.close()
    assert list(tmp_path.iterdir()) == []


def test_replaces_a_previous_trace_but_not_other_directories(tmp_path):
    write_small(tmp_path / "t")
    t = write_small(tmp_path / "t", pooling_fixed=True)
    assert t.pooling == 1
    other = tmp_path / "data"
    other.mkdir()
    (other / "keep.txt").write_text("x")
    with pytest.raises(OptionError, match="not a previous output"):
        write_small(other)
    assert (other / "keep.txt").exists()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["data", "t"]


def test_not_a_trace(tmp_path):
    with pytest.raises(TraceFormatError, match="not a directory"):
        open_trace(tmp_path / "missing")
    with pytest.raises(TraceFormatError, match="no meta.json"):
        open_trace(tmp_path)
    (tmp_path / "meta.json").write_text("{oops")
    with pytest.raises(TraceFormatError, match="not valid JSON"):
        open_trace(tmp_path)
    (tmp_path / "meta.json").write_text('{"format": "other"}')
    with pytest.raises(TraceFormatError, match="not a scratchsim trace"):
        open_trace(tmp_path)


def test_truncated_arrays_are_detected(tmp_path):
    write_small(tmp_path / "t")
    p = tmp_path / "t" / "indices.npy"
    p.write_bytes(p.read_bytes()[:-8])
    with pytest.raises(TraceFormatError, match="indices.npy"):
        open_trace(tmp_path / "t")
    (tmp_path / "t" / "lengths.npy").unlink()
    with pytest.raises(TraceFormatError):
        open_trace(tmp_path / "t")


def test_bad_writer_options(tmp_path):
    with pytest.raises(OptionError, match="batch size must be positive"):
        TraceWriter(tmp_path / "t", ["x"], 0, {})
    with pytest.raises(OptionError, match="does not exist"):
        TraceWriter(tmp_path / "no" / "t", ["x"], 1, {})
    with pytest.raises(OptionError, match="empty"):
        with TraceWriter(tmp_path / "t", ["x"], 1, {}, table_rows=[3]) as w:
            w.close()
    assert list(tmp_path.iterdir()) == []
