"""scratchsim simulate / hardware / model from the command line, and memory checks."""

import json

import pytest

from simulator import CapacityError, generate, simulate
from simulator.cli import main


@pytest.fixture(scope="module")
def kaggle(tmp_path_factory):
    from simulator import load_model

    rows = load_model("dlrm-kaggle").table_rows
    return generate("zipf", tmp_path_factory.mktemp("k") / "t", rows, batch_size=512,
                    num_batches=12, seed=1, show_progress=False)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize("mode", ["gpu-only", "hybrid", "cache", "cache-prefetch", "scratchpipe"])
def test_simulate_json(capsys, tmp_path, kaggle, mode):
    code, out, err = run(capsys, "simulate", kaggle.path, "--mode", mode, "--hardware",
                         "h100-pcie5", "--model", "dlrm-kaggle", "--capacity", "50%",
                         "--lookahead", "2", "--json", "--timeline", tmp_path / "tl.csv")
    assert code == 0, err
    d = json.loads(out)
    for key in ("mode", "iteration_time_s", "throughput_samples_per_s", "bottleneck",
                "breakdown", "hit_rate", "h2d_bytes", "d2h_bytes"):
        assert key in d
    assert d["mode"] == mode and d["iteration_time_s"] > 0
    assert d["throughput_samples_per_s"] == pytest.approx(512 / d["iteration_time_s"])
    assert d["config"]["hardware"] == "h100-pcie5" and d["config"]["model"] == "dlrm-kaggle"
    lines = (tmp_path / "tl.csv").read_text().splitlines()
    assert lines[0] == "batch,stage,resource,start_s,end_s"
    assert len(lines) == 1 + 12 * len(d["breakdown"])


def test_readable_output_and_presets(capsys, kaggle):
    code, out, _ = run(capsys, "simulate", kaggle.path, "--mode", "scratchpipe", "--hardware",
                       "a100-pcie4", "--model", "dlrm-kaggle", "--capacity", "90%")
    assert code == 0 and "bottleneck" in out and "samples/s" in out
    code, out, _ = run(capsys, "hardware", "list")
    assert code == 0 and "gh200-c2c" in out
    code, out, _ = run(capsys, "model", "show", "dlrm-kaggle", "--json")
    assert code == 0 and json.loads(out)["embedding_dim"] == 16


@pytest.mark.parametrize("argv, needles", [
    (["--mode", "cache"], ["--capacity"]),
    (["--mode", "warp"], ["invalid choice: 'warp'"]),
    (["--mode", "scratchpipe", "--capacity", "10"], ["at least"]),
    (["--mode", "gpu-only", "--hardware", "nowhere"], ["unknown hardware 'nowhere'"]),
])
def test_bad_simulate_options(capsys, kaggle, argv, needles):
    base = ["simulate", kaggle.path, "--hardware", "h100-pcie5", "--model", "dlrm-kaggle"]
    code, _, err = run(capsys, *(base + argv))
    assert code == 2 and err.count("\n") == 1 and "Traceback" not in err
    for n in needles:
        assert n in err


def test_model_and_trace_must_agree(capsys, tmp_path):
    t = generate("uniform", tmp_path / "u", [10, 10], batch_size=4, num_batches=3, seed=0,
                 show_progress=False)
    code, _, err = run(capsys, "simulate", t.path, "--mode", "gpu-only", "--hardware",
                       "h100-pcie5", "--model", "dlrm-kaggle")
    assert code == 2 and "has 26 tables" in err


def test_gpu_only_refuses_tables_larger_than_hbm(tmp_path):
    # 26 x 40M rows x 128 x 4 B: the terabyte model's tables need far more than 80 GiB.
    from simulator import load_model

    model = load_model("dlrm-terabyte")
    t = generate("uniform", tmp_path / "tb", list(model.table_rows), batch_size=16,
                 num_batches=2, seed=0, show_progress=False)
    with pytest.raises(CapacityError, match="GiB of HBM"):
        simulate(t, mode="gpu-only", hardware="h100-pcie5", model=model)
    r = simulate(t, mode="gpu-only", hardware="h100-pcie5", model=model, ignore_capacity=True)
    assert r.iteration_time > 0
