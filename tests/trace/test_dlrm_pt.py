"""The dlrm_datasets .pt reader, on small hand-made files."""

import gzip
import sys

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import simulator as sim  # noqa: E402
from simulator.cli import main  # noqa: E402
from simulator.errors import InputError, OptionError  # noqa: E402

# File A: 2 tables x 3 samples, table-major bags:
#   t0: s0 [5], s1 [1, 4], s2 []      t1: s0 [0], s1 [7], s2 [2, 2]
A_LENGTHS = [[1, 2, 0], [1, 1, 2]]
A_INDICES = [5, 1, 4, 0, 7, 2, 2]
A_OFFSETS = [0, 1, 3, 3, 4, 5, 7]
A_SAMPLE_MAJOR = [5, 0, 1, 4, 7, 2, 2]  # s0: t0 t1, s1: t0 t1, s2: t0 t1
A_LENGTHS_SAMPLE_MAJOR = [[1, 1], [2, 1], [0, 2]]
# File B (gzipped, offsets without the final entry):
#   t0: s0 [9], s1 [0], s2 [3]        t1: s0 [], s1 [], s2 [1]
B_LENGTHS = [[1, 1, 1], [0, 0, 1]]
B_INDICES = [9, 0, 3, 1]
B_OFFSETS = [0, 1, 2, 3, 3, 3]
B_SAMPLE_MAJOR = [9, 0, 3, 1]
B_LENGTHS_SAMPLE_MAJOR = [[1, 0], [1, 0], [1, 1]]


def _save(path, *tensors, gz=False):
    obj = tuple(torch.tensor(t) if isinstance(t, list) else t for t in tensors)
    if gz:
        with gzip.open(path, "wb") as f:
            torch.save(obj, f)
    else:
        torch.save(obj, path)
    return path


def _files(tmp_path):
    a = _save(tmp_path / "a.pt", A_INDICES, A_OFFSETS, A_LENGTHS)
    b = _save(tmp_path / "b.pt.gz", B_INDICES, B_OFFSETS, B_LENGTHS, gz=True)
    return a, b


def _only_input_left(tmp_path, *inputs):
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in inputs)


def test_each_file_is_one_batch_in_sample_major_order(tmp_path):
    a, b = _files(tmp_path)
    trace = sim.import_dlrm_pt([a, b], tmp_path / "t", show_progress=False)
    assert np.asarray(trace.indices).tolist() == A_SAMPLE_MAJOR + B_SAMPLE_MAJOR
    assert np.asarray(trace.lengths).tolist() == A_LENGTHS_SAMPLE_MAJOR + B_LENGTHS_SAMPLE_MAJOR
    assert [(t.name, t.rows) for t in trace.tables] == [("t0", 10), ("t1", 8)]
    assert trace.batch_size == 3 and trace.num_batches == 2
    assert np.asarray(trace.batch_ptr).tolist() == [0, 7, 11]
    # Global ids: table t1 starts at 10.
    assert trace.batch(1).ids.tolist() == [9, 0, 3, 11]
    assert trace.provenance == {"source": "dlrm-pt", "files": [str(a.resolve()), str(b.resolve())],
                                "scratchsim_version": sim.__version__}


def test_rebatching(tmp_path):
    a, b = _files(tmp_path)
    trace = sim.import_dlrm_pt([a, b], tmp_path / "t", batch_size=4, show_progress=False)
    # lookups per sample 2 3 2 1 1 2: batches of 4 samples start at lookups 0 and 8
    assert trace.num_batches == 2 and np.asarray(trace.batch_ptr).tolist() == [0, 8, 11]
    assert trace.batch(0).ids.tolist() == [5, 10, 1, 4, 17, 12, 12, 9]


def test_rebatching_accepts_files_of_different_batch_sizes(tmp_path):
    a = _save(tmp_path / "a.pt", A_INDICES, A_OFFSETS, A_LENGTHS)
    c = _save(tmp_path / "c.pt", [6, 1], [0, 1, 2], [[1], [1]])
    with pytest.raises(InputError, match="c.pt has batch size 1, .*a.pt has 3; give --batch-size"):
        sim.import_dlrm_pt([a, c], tmp_path / "t", show_progress=False)
    trace = sim.import_dlrm_pt([a, c], tmp_path / "t", batch_size=2, show_progress=False)
    assert np.asarray(trace.indices).tolist() == A_SAMPLE_MAJOR + [6, 1]
    assert trace.num_batches == 2 and [t.rows for t in trace.tables] == [7, 8]


def test_ids_beyond_int32_restart_with_int64(tmp_path):
    path = _save(tmp_path / "wide.pt", [1, 2**31], [0, 1, 2], [[1], [1]])
    trace = sim.import_dlrm_pt([path], tmp_path / "t", show_progress=False)
    assert trace.meta["index_dtype"] == "int64"
    assert np.asarray(trace.indices).tolist() == [1, 2**31]
    assert [t.rows for t in trace.tables] == [2, 2**31 + 1]


def test_a_table_without_lookups_has_one_row(tmp_path):
    path = _save(tmp_path / "a.pt", [4], [0, 1, 1], [[1], [0]])
    trace = sim.import_dlrm_pt([path], tmp_path / "t", show_progress=False)
    assert [t.rows for t in trace.tables] == [5, 1]


@pytest.mark.parametrize("tensors, match", [
    (([0, 1], [0, 1, 2]), r"holds a tuple of 2 items; expected a tuple \(indices, offsets, lengths\)"),
    (([0, 1], [0, 1, 2], [1, 1]), r"lengths has shape \(2,\), expected 2-D"),
    (([0, 1], [0, 1, 3], [[1, 1]]), r"offsets\[2\] is 3 but the lengths before it add up to 2"),
    (([0, 1], [0, 1, 2, 2], [[1, 1]]),
     r"offsets has shape \(4,\), expected \(3,\) or \(2,\) for lengths of shape \(1, 2\)"),
    (([0, 1, 2], [0, 1, 2], [[1, 1]]), r"indices has shape \(3,\), but the lengths add up to 2"),
    (([0.0, 1.0], [0, 1, 2], [[1, 1]]), "indices holds torch.float32 values"),
    (([0, -1], [0, 1, 2], [[1, 1]]), r"indices\[1\] is -1"),
    (([0, 1], [0, 1, 2], [[-1, 3]]), "negative bag size -1"),
])
def test_malformed_files(tmp_path, tensors, match):
    path = _save(tmp_path / "bad.pt", *tensors)
    with pytest.raises(InputError, match=match):
        sim.import_dlrm_pt([path], tmp_path / "t", show_progress=False)
    _only_input_left(tmp_path, path)


def test_table_count_differs_between_files(tmp_path):
    a = _save(tmp_path / "a.pt", A_INDICES, A_OFFSETS, A_LENGTHS)
    c = _save(tmp_path / "c.pt", [0, 1, 2], [0, 1, 2, 3], [[1, 1, 1]])
    with pytest.raises(InputError, match="c.pt has 1 tables, .*a.pt has 2"):
        sim.import_dlrm_pt([a, c], tmp_path / "t", batch_size=2, show_progress=False)
    _only_input_left(tmp_path, a, c)


def test_files_that_are_not_tensor_tuples(tmp_path):
    text = tmp_path / "x.pt"
    text.write_text("not a tensor file")
    one = tmp_path / "one.pt"
    torch.save(torch.tensor([1, 2]), one)
    for path, match in ((text, "is not a PyTorch tensor file"),
                        (one, r"holds a Tensor; expected a tuple \(indices, offsets, lengths\)"),
                        (tmp_path / "none.pt", "does not exist")):
        with pytest.raises(InputError, match=match):
            sim.import_dlrm_pt([path], tmp_path / "t", show_progress=False)
    _only_input_left(tmp_path, text, one)


def test_without_torch(tmp_path, monkeypatch):
    a, b = _files(tmp_path)
    monkeypatch.setitem(sys.modules, "torch", None)  # makes `import torch` fail
    with pytest.raises(OptionError, match="reading .pt files needs PyTorch: pip install torch"):
        sim.import_dlrm_pt([a], tmp_path / "t", show_progress=False)


def test_cli(tmp_path, capsys):
    a, b = _files(tmp_path)
    assert main(["trace", "import", "dlrm-pt", str(a), str(b), "-o", str(tmp_path / "t")]) == 0
    assert sim.open_trace(tmp_path / "t").batch_size == 3
    capsys.readouterr()
    c = _save(tmp_path / "c.pt", [0, 1], [0, 1, 3], [[1, 1]])
    code = main(["trace", "import", "dlrm-pt", str(a), str(c), "-o", str(tmp_path / "u")])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err and "offsets[2] is 3" in err
    assert not (tmp_path / "u").exists()
    _only_input_left(tmp_path, a, b, c, tmp_path / "t")
