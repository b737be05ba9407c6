"""The flat .npy id stream reader."""

import numpy as np
import pytest

import simulator as sim
from simulator.cli import main
from simulator.errors import InputError
from simulator.trace import id_stream


def _save(tmp_path, array, name="ids.npy"):
    path = tmp_path / name
    np.save(path, array)
    return path


def _only_input_left(tmp_path, *inputs):
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in inputs)


def test_one_table_named_after_the_file(tmp_path):
    path = _save(tmp_path, np.array([3, 1, 3, 0, 2], dtype=np.int16), "clicks.npy")
    trace = sim.import_ids(path, tmp_path / "t", batch_size=2, show_progress=False)
    assert [(t.name, t.rows) for t in trace.tables] == [("clicks", 4)]
    assert np.asarray(trace.indices).tolist() == [3, 1, 3, 0, 2]
    assert trace.pooling == 1 and trace.num_batches == 3 and trace.num_samples == 5
    assert [c.ids.tolist() for c in trace.chunks(max_lookups=2)] == [[3, 1], [3, 0], [2]]
    assert trace.provenance["source"] == "ids"
    assert trace.provenance["files"] == [str(path.resolve())]


def test_batch_size_one_is_one_lookup_per_batch(tmp_path):
    path = _save(tmp_path, np.array([7, 7, 0], dtype=np.uint8))
    trace = sim.import_ids(path, tmp_path / "t", batch_size=1, show_progress=False)
    assert trace.num_batches == 3 and trace.tables[0].rows == 8
    assert [trace.batch(b).ids.tolist() for b in range(3)] == [[7], [7], [0]]


def test_chunks_cut_batches_and_find_the_first_negative(tmp_path, monkeypatch):
    monkeypatch.setattr(id_stream, "_CHUNK_IDS", 3)
    ids = np.arange(10, dtype=np.int64)[::-1]
    trace = sim.import_ids(_save(tmp_path, ids), tmp_path / "t", batch_size=4,
                           show_progress=False)
    assert np.asarray(trace.indices).tolist() == ids.tolist()
    assert [trace.batch(b).ids.tolist() for b in range(3)] == [[9, 8, 7, 6], [5, 4, 3, 2],
                                                               [1, 0]]
    bad = _save(tmp_path, np.array([0, 5, 1, 2, -1, -3]), "bad.npy")
    with pytest.raises(InputError, match="id -1 at position 4 is negative"):
        sim.import_ids(bad, tmp_path / "u", batch_size=1, show_progress=False)
    assert not (tmp_path / "u").exists()


def test_ids_beyond_int32_are_stored_as_int64(tmp_path):
    path = _save(tmp_path, np.array([2**31, 5], dtype=np.int64))
    trace = sim.import_ids(path, tmp_path / "t", batch_size=2, show_progress=False)
    assert trace.tables[0].rows == 2**31 + 1 and trace.meta["index_dtype"] == "int64"
    assert np.asarray(trace.indices).tolist() == [2**31, 5]


def test_a_million_ids_round_trip(tmp_path):
    ids = np.random.default_rng(0).integers(0, 50_000, size=1_000_000, dtype=np.int64)
    trace = sim.import_ids(_save(tmp_path, ids), tmp_path / "t", batch_size=1,
                           show_progress=False)
    np.testing.assert_array_equal(trace.indices, ids)
    assert trace.num_batches == 1_000_000 and trace.tables[0].rows == ids.max() + 1


@pytest.mark.parametrize("content, match", [
    (np.array([1.0, 2.0]), "holds float64 values; row ids must be integers"),
    (np.array([True, False]), "holds bool values"),
    (np.zeros((2, 3), dtype=np.int32), r"shape \(2, 3\); give a 1-D array"),
    (np.array([], dtype=np.int64), "holds no ids"),
])
def test_bad_arrays(tmp_path, content, match):
    path = _save(tmp_path, content)
    with pytest.raises(InputError, match=match):
        sim.import_ids(path, tmp_path / "t", batch_size=1, show_progress=False)
    _only_input_left(tmp_path, path)


def test_bad_files(tmp_path):
    text = tmp_path / "ids.txt"
    text.write_text("1 2 3\n")
    npz = tmp_path / "ids.npz"
    np.savez(npz, ids=np.arange(3))
    truncated = _save(tmp_path, np.arange(100))
    truncated.write_bytes(truncated.read_bytes()[:300])
    for path, match in ((text, "is not a .npy file"), (npz, "is not a .npy file"),
                        (truncated, "is truncated or unreadable"),
                        (tmp_path / "none.npy", "does not exist"), (tmp_path, "is a directory")):
        with pytest.raises(InputError, match=match):
            sim.import_ids(path, tmp_path / "t", batch_size=1, show_progress=False)
    _only_input_left(tmp_path, text, npz, truncated)


def test_cli_error_is_one_line_and_leaves_nothing(tmp_path, capsys):
    path = _save(tmp_path, np.array([0, -2]))
    code = main(["trace", "import", "ids", str(path), "--batch-size", "1", "-o",
                 str(tmp_path / "t")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert "id -2 at position 1 is negative" in err
    _only_input_left(tmp_path, path)
