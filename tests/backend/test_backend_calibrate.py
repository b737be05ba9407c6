"""`scratchsim calibrate` writes a profile load_hardware reads; `scratchsim validate` writes
results.csv, the figure and summary.json for a small grid trained and simulated."""

import csv
import json

import pytest

pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator.cli import main  # noqa: E402


def test_calibrate_writes_a_loadable_profile(tmp_path, capsys):
    out = tmp_path / "cpu.toml"
    assert main(["calibrate", "--device", "cpu", "--quick", "-o", str(out)]) == 0
    assert "calibrated-cpu" in capsys.readouterr().out
    profile = simulator.load_hardware(out)
    assert profile.kind == "cpu"  # the device is the host: one resource runs every op
    for value in (profile.link_h2d_gb_per_s, profile.link_d2h_gb_per_s,
                  profile.link_pageable_gb_per_s, profile.cpu_dram_gb_per_s,
                  profile.cpu_thread_gb_per_s, profile.cpu_dispatch_us, profile.gpu_hbm_gb_per_s,
                  profile.gpu_matrix_tflops["fp32"]):
        assert value > 0
    assert sorted(profile.gpu_gather_efficiency) == [16, 64, 256, 512]
    assert all(0 < e <= 1 for e in profile.gpu_gather_efficiency.values())
    grid = profile.gpu_gemm_efficiency["fp32"]
    # A full grid of the quick shapes, against the best rate any of them reached.
    assert len(grid) == 3 * 4 * 4 and max(grid.values()) == 1.0
    assert profile.gpu_launch_us == 0  # on the CPU an op's fixed cost is its dispatch
    # Batched products timed by their shape: every side with every other, each a time > 0
    from simulator.backend.calibration import BATCHED_SIDES
    from simulator.hardware.profile import BMM_LAYOUTS
    assert profile.batched_gemm_by_shape
    assert sorted(profile.gpu_batched_gemm_ns) == sorted(BMM_LAYOUTS)
    for grid in profile.gpu_batched_gemm_ns.values():
        assert len(grid) == len(BATCHED_SIDES) ** 3 and all(ns > 0 for ns in grid.values())
    assert [p.name for p in tmp_path.iterdir()] == ["cpu.toml"]


def test_calibrate_refuses_a_file_that_is_not_toml(tmp_path, capsys):
    assert main(["calibrate", "--device", "cpu", "--quick", "-o", str(tmp_path / "p.txt")]) == 2
    assert "must end in .toml" in capsys.readouterr().err
    assert list(tmp_path.iterdir()) == []


def test_validate_writes_results_figure_and_summary(tmp_path, capsys):
    out = tmp_path / "val"
    # A GPU's profile predicting the CPU: whether it meets the target, the exit status says
    status = main(["validate", "--device", "cpu", "--profile", "h100-pcie5", "--quick",
                   "--rounds", "1", "-o", str(out)])
    assert "MAPE" in capsys.readouterr().out
    assert sorted(p.name for p in out.iterdir()) == ["predicted_vs_measured.png",
                                                     "results.csv", "summary.json"]
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    modes = {r["mode"] for r in rows}
    assert modes == set(simulator.TRAIN_MODES)
    assert all(float(r["measured_s"]) > 0 and float(r["predicted_s"]) > 0 for r in rows)
    summary = json.loads((out / "summary.json").read_text())
    assert summary["device"] == "cpu" and summary["profile"] == "h100-pcie5"
    assert len(summary["configs"]) == len(rows) and summary["mape"] >= 0
    assert status == (0 if summary["passed"] else 1) and summary["rounds"] == 1
    assert [p.name for p in tmp_path.iterdir()] == ["val"]  # no temporary left behind
