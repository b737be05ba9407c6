"""`scratchsim train`: weights saved under stable names, equal across modes; bad options are
one-line errors with exit status 2; torch stays optional for the rest of the package."""

import os
import subprocess
import sys

import numpy as np
import pytest

pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator import OptionError, min_capacity  # noqa: E402
from simulator.backend import base  # noqa: E402
from simulator.cli import main  # noqa: E402


@pytest.fixture(scope="module")
def trace_dir(tmp_path_factory):
    path = tmp_path_factory.mktemp("cli") / "t"
    simulator.generate("zipf", path, table_rows=[100, 40], batch_size=8, num_batches=12,
                       seed=3, show_progress=False)
    return str(path)


def test_train_saves_the_same_weights_in_every_mode(trace_dir, tmp_path, capsys):
    cap = str(min_capacity(trace_dir, lookahead=2))
    saved = {}
    for mode, extra in (("gpu-only", []), ("scratchpipe", ["--capacity", cap, "--lookahead", "2",
                                                           "--victim", "future"])):
        out = tmp_path / f"{mode}.npz"
        code = main(["train", trace_dir, "--mode", mode, "--device", "cpu", "--iterations", "10",
                     "--optimizer", "rowwise-adagrad", "--save-weights", str(out), "--json"] + extra)
        assert code == 0
        assert '"mode"' in capsys.readouterr().out
        with np.load(out) as f:
            saved[mode] = {k: f[k] for k in f.files}
    names = set(saved["gpu-only"])
    assert {"table.0", "table.1", "table.0.state", "bottom.0.weight", "bottom.0.bias",
            "top.0.weight"} <= names
    assert saved["gpu-only"]["table.0"].shape == (100, 16)
    for name in names:
        assert np.array_equal(saved["gpu-only"][name], saved["scratchpipe"][name]), name
    # written atomically: no temporary file is left beside them
    assert sorted(p.name for p in tmp_path.iterdir()) == ["gpu-only.npz", "scratchpipe.npz"]


def test_train_prints_a_table(trace_dir, capsys):
    assert main(["train", trace_dir, "--mode", "hybrid", "--device", "cpu"]) == 0
    out = capsys.readouterr().out
    assert "hybrid on cpu: 12 iterations" in out and "train" in out


@pytest.mark.parametrize("argv, message", [
    (["--mode", "nope", "--device", "cpu"], "invalid choice"),
    (["--mode", "cache", "--device", "cpu"], "needs a capacity"),
    (["--mode", "cache", "--device", "cpu", "--capacity", "ten"], "capacity 'ten'"),
    (["--mode", "gpu-only", "--device", "cpu", "--iterations", "13"], "iterations must be"),
    (["--mode", "gpu-only", "--device", "cpu", "--save-weights", "w.txt"], "must end in .npz"),
    (["--mode", "gpu-only", "--device", "cpu", "--model", "dlrm-kaggle"], "26 tables"),
])
def test_bad_options_are_one_line_errors(trace_dir, capsys, argv, message):
    assert main(["train", trace_dir] + argv) == 2
    err = capsys.readouterr().err
    assert message in err and err.count("\n") == 1


def test_missing_torch_is_an_option_error(monkeypatch):
    monkeypatch.setitem(sys.modules, "torch", None)
    with pytest.raises(OptionError, match="pip install torch"):
        base.import_torch()


def test_the_package_imports_without_torch():
    code = "import sys, simulator, simulator.cli; assert 'torch' not in sys.modules"
    env = dict(os.environ, PYTHONPATH=os.pathsep.join(sys.path))
    subprocess.run([sys.executable, "-c", code], check=True, env=env)
