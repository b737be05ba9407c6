"""`scratchsim validate`: Kendall's tau with ties, the grid's coverage, the targets, the
measurement discipline (rounds in a seeded interleaved order, steal time, the noise floor, the
median profile), and tiny runs end to end (the grid and the held-out check) writing
results.csv with every round and per-stage columns, summary.json and the figure, atomically,
and exiting 1 when a target is missed."""

import csv
import json
from dataclasses import replace
from pathlib import Path

import pytest

pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator import OptionError  # noqa: E402
from simulator.backend import validation  # noqa: E402
from simulator.backend import backend_model  # noqa: E402
from simulator.backend.base import torch  # noqa: E402
from simulator.backend.validation import (FULL, QUICK, Grid, kendall_tau,  # noqa: E402
                                          measure, rank_pairs, scores)
from simulator.backend.validation.grid import label  # noqa: E402
from simulator.cli import main  # noqa: E402
from simulator.pipeline import default_warmup  # noqa: E402

ROOT = Path(__file__).resolve().parents[2]
MOVIELENS_MODEL = ROOT / "experiments" / "validation" / "movielens-two-table.toml"

# A grid that runs in seconds: every workload, mode and setting the real grids have, on a
# trace of a few hundred rows. 10% of its distinct rows cannot hold a batch: skipped.
TINY = Grid("full", tables=2, rows_per_table=300, batches=12, alpha=1.05, batch_sizes=(8, 16),
            dims=(4, 8), capacities=(10, 50), lookaheads=(1, 2), victims=("lru", "future"),
            alternate_victims=True)
SUMMARY_KEYS = {"kind", "device", "profile", "profile_source", "threads", "seed", "version",
                "grid", "configs", "skipped", "mape", "worst", "kendall_tau", "kendall_pairs",
                "targets", "checks", "passed", "wall_s", "rounds", "noise_floor", "noise",
                "notes"}


# -- Kendall's tau ------------------------------------------------------------------------------
@pytest.mark.parametrize("measured, predicted, pairs, tau", [
    ([1, 2, 3], [10, 20, 30], (3, 0, 0), 1.0),
    ([1, 2, 3], [3, 2, 1], (0, 3, 0), -1.0),
    # one swap among 4: (5 - 1) / 6
    ([1, 2, 3, 4], [1, 3, 2, 4], (5, 1, 0), 4 / 6),
    # 1.0 and 1.03 are within 5%: a tie, left out whatever the prediction says
    ([1.0, 1.03, 2.0], [2.0, 1.0, 3.0], (2, 0, 1), 1.0),
    # exactly 5% of the larger is still a tie; just over is not
    ([100, 95], [1, 2], (0, 0, 1), None),
    ([100, 94.9], [1, 2], (0, 1, 0), -1.0),
    # a pair the measurement separates and the prediction does not: discordant
    ([1, 2], [5, 5], (0, 1, 0), -1.0),
    # 3 pairs tied (all within 5%) except against 2.0: (0,3) and (1,3) and (2,3) count
    ([1.0, 1.01, 1.02, 2.0], [3.0, 2.0, 1.0, 0.5], (0, 3, 3), -1.0),
    ([1, 2, 3, 4, 5], [1, 2, 3, 5, 4], (9, 1, 0), 0.8),
    ([], [], (0, 0, 0), None),
])
def test_kendall_tau_by_hand(measured, predicted, pairs, tau):
    assert rank_pairs(measured, predicted) == pairs
    assert kendall_tau(measured, predicted) == (None if tau is None else pytest.approx(tau))


def test_kendall_tau_tie_threshold_is_relative_to_the_larger():
    # 0.05 * max(1.0, 1.052) = 0.0526 >= 0.052: a tie; at 1.06 it is not
    assert rank_pairs([1.0, 1.052], [2, 1]) == (0, 0, 1)
    assert rank_pairs([1.0, 1.06], [2, 1]) == (0, 1, 0)
    assert rank_pairs([1.0, 1.06], [2, 1], tie=0.1) == (0, 0, 1)


def test_the_targets_are_checked_strictly():
    full = scores.checks("full", 0.10, 0.8, 0.25)
    assert [c["metric"] for c in full] == ["mape", "kendall_tau", "worst"]
    assert all(c["ok"] for c in full)
    assert [c["ok"] for c in scores.checks("full", 0.1001, 0.8, 0.25)] == [False, True, True]
    assert [c["ok"] for c in scores.checks("full", 0.05, 0.79, 0.1)] == [True, False, True]
    assert [c["ok"] for c in scores.checks("full", 0.05, None, 0.1)] == [True, False, True]
    assert [c["ok"] for c in scores.checks("full", 0.05, 0.9, 0.26)] == [True, True, False]
    assert [c["metric"] for c in scores.checks("quick", 0.15, None, 0.9)] == ["mape"]
    assert scores.checks("quick", 0.15, None, 0.9)[0]["ok"]
    assert not scores.checks("held-out", 0.151, 1.0, 0.0)[0]["ok"]


# -- the grid -----------------------------------------------------------------------------------
def test_the_full_grid_covers_every_setting():
    configs = FULL.configs()
    assert len(configs) >= 24
    assert {c["mode"] for c in configs} == set(simulator.TRAIN_MODES)
    assert {c["batch_size"] for c in configs} == {512, 2048} == set(FULL.batch_sizes)
    assert len({c["dim"] for c in configs}) == 2
    for mode in ("cache", "cache-prefetch", "scratchpipe"):
        assert {c["capacity_pct"] for c in configs if c["mode"] == mode} == \
            set(FULL.capacities)
    scratch = [c for c in configs if c["mode"] == "scratchpipe"]
    assert {c["lookahead"] for c in scratch} == {1, 2, 4}
    assert {c["victim"] for c in scratch} == {"lru", "future"}
    # every (capacity, lookahead, victim) runs somewhere; every mode on every workload
    assert len({(c["capacity_pct"], c["lookahead"], c["victim"]) for c in scratch}) == \
        len(FULL.capacities) * 3 * 2
    for workload in FULL.workloads():
        assert {c["mode"] for c in configs
                if (c["batch_size"], c["dim"]) == workload} == set(simulator.TRAIN_MODES)
    assert len({label(c) for c in configs}) == len(configs)  # no duplicates


def test_the_quick_grid_is_smaller_and_has_every_mode():
    assert len(QUICK.configs()) < len(FULL.configs())
    assert {c["mode"] for c in QUICK.configs()} == set(simulator.TRAIN_MODES)


def test_grid_models_match_the_dot_interaction():
    for dim in (16, 64):
        model = validation.grid_model(dim, 512)
        assert model.dim() == dim and model.bottom_mlp[-1] == dim
        assert model.interaction == "dot" and model.batch_size == 512


# -- tiny runs end to end -----------------------------------------------------------------------
def _read(out):
    with open(out / "results.csv") as f:
        rows = list(csv.DictReader(f))
    return rows, json.loads((out / "summary.json").read_text())


@pytest.fixture
def tiny_grid(monkeypatch):
    monkeypatch.setattr(validation, "FULL", TINY)
    monkeypatch.setattr(validation, "QUICK", TINY)
    return TINY


def test_a_tiny_grid_end_to_end(tiny_grid, tmp_path, monkeypatch):
    threads = torch.get_num_threads()
    lines = []
    out = tmp_path / "val"
    summary = simulator.validate(out, device="cpu", profile="h100-pcie5", seed=1, rounds=3,
                                 progress=lines.append)
    assert torch.get_num_threads() == threads  # restored
    assert sorted(p.name for p in out.iterdir()) == ["predicted_vs_measured.png",
                                                     "results.csv", "summary.json"]
    assert [p.name for p in tmp_path.iterdir()] == ["val"]  # no temporary left behind
    rows, written = _read(out)
    assert written == json.loads(json.dumps(summary))
    assert SUMMARY_KEYS <= set(summary)
    assert summary["kind"] == "full" and summary["threads"] == 1 and summary["seed"] == 1
    assert summary["version"] == simulator.__version__ and summary["profile"] == "h100-pcie5"
    assert summary["grid"]["configurations"] == len(TINY.configs())
    assert len(rows) == len(summary["configs"])
    assert len(rows) + len(summary["skipped"]) == len(TINY.configs())
    ran = len(TINY.configs()) - len(summary["skipped"])
    # a line per skipped configuration, one for the warm-up, then one per run (redone runs
    # say nothing)
    assert len(lines) == len(summary["skipped"]) + 1 + 3 * ran
    assert summary["rounds"] == 3 and len(summary["noise"]["orders"]) == 3
    for order in summary["noise"]["orders"]:  # every round runs every configuration once
        assert sorted(order) == list(range(ran))
    assert summary["noise"]["orders"][0] != summary["noise"]["orders"][1]  # shuffled anew
    assert summary["noise"]["profile_spread"] is None  # a preset: nothing calibrated
    assert summary["noise_floor"] == scores.noise_floor([c["rounds_s"] for c in
                                                         summary["configs"]])
    assert summary["noise"]["unstable"] == sum(c["unstable"] for c in summary["configs"])
    for s in summary["skipped"]:  # 10% of ~100 distinct rows cannot hold a batch or window
        assert s["capacity_pct"] == 10 and "cannot hold" in s["reason"]
        assert s["capacity_rows"] < s["needed_rows"]
    assert {r["mode"] for r in rows} == set(simulator.TRAIN_MODES)
    assert {(r["batch_size"], r["dim"]) for r in rows} == {("8", "4"), ("8", "8"),
                                                           ("16", "4"), ("16", "8")}
    header = set(rows[0])
    assert set(validation.FIXED_COLUMNS) <= header
    assert {"measured_train_s", "predicted_train_s"} <= header
    assert any(h.startswith("measured_") and h not in ("measured_s", "measured_train_s")
               for h in header)
    for r, c in zip(rows, summary["configs"]):
        rounds = [float(r[f"round{k}_s"]) for k in (1, 2, 3)]
        assert rounds == c["rounds_s"] and float(r["measured_s"]) == pytest.approx(
            sorted(rounds)[1])  # the median of three
        assert float(r["spread_pct"]) == pytest.approx(
            100 * (max(rounds) - min(rounds)) / sorted(rounds)[1])
        assert r["unstable"] == str(float(r["spread_pct"]) > 10)
        measured, predicted = float(r["measured_s"]), float(r["predicted_s"])
        assert measured > 0 and predicted > 0
        assert float(r["error_pct"]) == pytest.approx(100 * (predicted - measured) / measured)
        assert float(r["measured_train_s"]) > 0
        if r["mode"] == "gpu-only":
            assert r["capacity_rows"] == "" and r["lookahead"] == "" and r["measured_plan_s"] == ""
        if r["mode"] == "scratchpipe":
            assert int(r["capacity_rows"]) > 0 and r["victim"] in ("lru", "future")
            assert int(r["warmup"]) == default_warmup(TINY.batches, int(r["lookahead"]))
    errors = [abs(c["error_pct"]) / 100 for c in summary["configs"]]
    assert summary["mape"] == pytest.approx(sum(errors) / len(errors))
    assert summary["worst"]["error"] == pytest.approx(max(errors))
    assert summary["kendall_tau"] == kendall_tau([c["measured_s"] for c in summary["configs"]],
                                                 [c["predicted_s"] for c in summary["configs"]])
    assert summary["targets"] == {"mape": 0.10, "kendall_tau": 0.8, "worst": 0.25}
    assert summary["passed"] == all(c["ok"] for c in summary["checks"])
    # run again into the same directory (a one-workload grid): the output is replaced
    monkeypatch.setattr(validation, "QUICK", replace(TINY, batch_sizes=(8,), dims=(4,)))
    simulator.validate(out, device="cpu", profile="h100-pcie5", quick=True, threads=2,
                       rounds=1)
    assert json.loads((out / "summary.json").read_text())["threads"] == 2
    assert torch.get_num_threads() == threads


def test_the_cli_prints_a_table_and_pass_or_fail(tiny_grid, tmp_path, capsys):
    out = tmp_path / "q"
    # calibrated in each of 2 rounds; a kind-cpu profile of this machine predicts the CPU
    # runs, but whether a tiny grid meets the targets is the machine's: 0 or 1, as it says
    status = main(["validate", "--device", "cpu", "--quick", "--rounds", "2", "-o", str(out)])
    captured = capsys.readouterr()
    summary = json.loads((out / "summary.json").read_text())
    assert status == (0 if summary["passed"] else 1)
    assert summary["rounds"] == 2
    spread = summary["noise"]["profile_spread"]
    assert spread["by_key"]["cpu.dispatch_us"] == spread["cpu.dispatch_us"] >= 0
    assert "noise: 2 rounds, noise floor" in captured.out
    assert "predicted ms" in captured.out and "Kendall tau" in captured.out
    last = captured.out.strip().splitlines()[-1]
    assert last.startswith(("PASS", "FAIL")) and "mape" in last
    assert "[1/" in captured.err  # progress
    assert summary["kind"] == "quick" and summary["targets"] == {"mape": 0.15}
    assert (out / "profile.toml").is_file()  # calibrated first
    assert summary["profile_source"] == str(out / "profile.toml")
    status = main(["validate", "--device", "cpu", "--quick", "--profile", "h100-pcie5",
                   "--rounds", "1", "--json", "-o", str(out)])
    summary = json.loads(capsys.readouterr().out)
    assert summary["profile"] == "h100-pcie5" and status == (0 if summary["passed"] else 1)
    assert summary["noise_floor"] is None  # one round: no halves to compare


@pytest.mark.parametrize("target, status, verdict", [(1e9, 0, "PASS"), (0.0, 1, "FAIL")])
def test_validate_exits_1_when_a_target_is_missed(tiny_grid, tmp_path, monkeypatch, capsys,
                                                  target, status, verdict):
    # a MAPE of at most 1e9 is always met; of at most 0, never (no prediction is exact)
    monkeypatch.setitem(scores.TARGETS, "quick", {"mape": target})
    assert main(["validate", "--device", "cpu", "--quick", "--profile", "h100-pcie5",
                 "--rounds", "1", "-o", str(tmp_path / "q")]) == status
    assert capsys.readouterr().out.strip().splitlines()[-1].startswith(verdict)


def test_held_out_trace_and_model(tmp_path, capsys):
    trace = tmp_path / "t"
    simulator.generate("zipf", trace, table_rows=[200, 80], batch_size=8, num_batches=14,
                       seed=2, show_progress=False)
    model = tmp_path / "m.toml"
    model.write_text('name = "tiny-held-out"\nembedding_dim = 8\nbottom_mlp = [5, 8, 8]\n'
                     'top_mlp = [4, 1]\ninteraction = "dot"\nbatch_size = 8\ndtype = "fp32"\n'
                     'optimizer = "sgd"\ntable_rows = [200, 80]\n')
    out = tmp_path / "h"
    assert main(["validate", "--device", "cpu", "--profile", "h100-pcie5", "--trace",
                 str(trace), "--model", str(model), "--rounds", "2", "-o", str(out)]) in (0, 1)
    last = capsys.readouterr().out.strip().splitlines()[-1]
    assert last.startswith(("PASS", "FAIL")) and str(out) in last
    rows, summary = _read(out)
    assert summary["kind"] == "held-out" and summary["targets"] == {"mape": 0.15}
    assert summary["grid"]["model"] == "tiny-held-out"
    assert summary["grid"]["trace"] == str(trace)
    ran = [(r["mode"], r["capacity_pct"], r["lookahead"]) for r in rows]
    skipped = [(s["mode"], s["capacity_pct"], s["lookahead"]) for s in summary["skipped"]]
    assert sorted(ran + [(m, str(p), "" if w is None else str(w)) for m, p, w in skipped]) == \
        sorted([("gpu-only", "", ""), ("hybrid", "", ""), ("cache", "25", ""),
                ("cache-prefetch", "25", ""), ("scratchpipe", "25", "2")])
    assert all(r["dim"] == "8" and r["batch_size"] == "8" for r in rows)
    assert SUMMARY_KEYS <= set(summary)


def test_held_out_with_the_default_model(tmp_path):
    trace = tmp_path / "t"
    simulator.generate("zipf", trace, table_rows=[60, 60], batch_size=4, num_batches=12,
                       seed=0, show_progress=False, alpha=1.4)
    summary = simulator.validate(tmp_path / "o", profile="h100-pcie5", trace=trace, rounds=1)
    assert {c["mode"] for c in summary["configs"]} >= {"gpu-only", "hybrid"}
    assert {c["mode"] for c in summary["configs"]} | {s["mode"] for s in summary["skipped"]} \
        == set(simulator.TRAIN_MODES)
    assert summary["grid"]["model"] == "backend-small"


def test_bad_combinations_are_option_errors(tmp_path):
    trace = tmp_path / "t"
    simulator.generate("zipf", trace, table_rows=[50], batch_size=4, num_batches=4, seed=0,
                       show_progress=False)
    with pytest.raises(OptionError, match="--model goes with --trace"):
        simulator.validate(tmp_path / "o", model="dlrm-kaggle")
    with pytest.raises(OptionError, match="--quick"):
        simulator.validate(tmp_path / "o", quick=True, trace=trace)
    with pytest.raises(OptionError, match="26 tables"):
        simulator.validate(tmp_path / "o", trace=trace, model="dlrm-kaggle")
    with pytest.raises(OptionError, match="threads"):
        simulator.validate(tmp_path / "o", threads=0)
    with pytest.raises(OptionError, match="rounds must be at least 1"):
        simulator.validate(tmp_path / "o", rounds=0)
    (tmp_path / "taken").mkdir()
    (tmp_path / "taken" / "notes.txt").write_text("mine")
    with pytest.raises(OptionError, match="not a previous output"):  # before any work
        simulator.validate(tmp_path / "taken", profile="no-such-profile")
    with pytest.raises(OptionError, match="does not exist"):
        simulator.validate(tmp_path / "missing" / "o")
    assert (tmp_path / "taken" / "notes.txt").read_text() == "mine"
    (tmp_path / "taken" / "notes.txt").unlink()
    (tmp_path / "taken").rmdir()
    assert sorted(p.name for p in tmp_path.iterdir()) == ["t"]


def test_the_movielens_model_fits_the_imported_log(tmp_path):
    model = simulator.load_model(MOVIELENS_MODEL)
    assert model.name == "movielens-two-table" and model.table_rows == (943, 1682)
    assert model.interaction == "dot" and model.bottom_mlp[-1] == model.dim() == 24
    # a log shaped like the import (users and items numbered first-seen) passes check_trace
    trace = simulator.generate("uniform", tmp_path / "t", table_rows=[943, 1682],
                               batch_size=model.batch_size, num_batches=2, seed=0,
                               show_progress=False)
    model.check_trace(trace)
    assert backend_model(trace, MOVIELENS_MODEL).name == model.name


# -- measurement discipline ---------------------------------------------------------------------
def test_spread_and_noise_floor_by_hand():
    assert scores.spread([1.0, 1.1, 0.9]) == pytest.approx(0.2)  # (1.1 - 0.9) / 1.0
    assert scores.figure([3.0, 1.0, 2.0, 10.0]) == 2.5  # the median of the rounds
    # first half's median 1.0 against the second's 2.0: |1 - 2| / 2 = 50%; the other
    # configuration is steady (0%): the floor is their mean, 25%
    assert scores.noise_floor([[1.0, 1.0, 2.0, 2.0], [3.0, 3.0, 3.0, 3.0]]) == pytest.approx(0.25)
    # three rounds: the middle one is left out; 1.0 against 1.2: 0.2 / 1.2
    assert scores.noise_floor([[1.0, 5.0, 1.2]]) == pytest.approx(0.2 / 1.2)
    assert scores.noise_floor([[1.0]]) is None and scores.noise_floor([]) is None


def test_rounds_run_every_configuration_in_a_seeded_order():
    calls, calibrations = [], []

    def run(k):
        calls.append(k)
        return 0.001 * (k + 1), {"train": 0.0005}

    warmed = []
    out = measure.measure_rounds(list("abcde"), 3, seed=7, measure=run,
                                 calibrate_round=lambda: calibrations.append(len(calls))
                                 or {"x": 1.0}, warm_up=lambda k: warmed.append((k, len(calls))))
    assert warmed == [(k, 0) for k in range(5)]  # each once, before anything is measured
    assert calibrations == [0, 5, 10]  # at the start of each round
    assert out.profiles == [{"x": 1.0}] * 3
    assert [sorted(o) for o in out.orders] == [list(range(5))] * 3
    assert calls == [k for o in out.orders for k in o]  # the orders are what ran
    assert len({tuple(o) for o in out.orders}) > 1  # reshuffled between rounds
    assert [[r.seconds for r in runs] for runs in out.runs] == \
        [[0.001 * (k + 1)] * 3 for k in range(5)]
    again = measure.measure_rounds(list("abcde"), 3, seed=7, measure=run)
    assert again.orders == out.orders and again.profiles == []  # same seed, same order


def test_a_run_with_much_stolen_time_is_run_again(tmp_path, monkeypatch):
    # A fake /proc/stat whose steal grows by 10 of 100 ticks during runs 0 and 2 (of 0..3):
    # those two are redone at the end of the round, and the redo (no steal) is kept.
    stat = tmp_path / "stat"
    ticks = {"total": 0, "steal": 0}

    def write():
        stat.write_text(f"cpu  {ticks['total'] - ticks['steal']} 0 0 0 0 0 0 {ticks['steal']}"
                        " 0 0\ncpu0 0 0 0 0 0 0 0 0 0 0\n")

    write()
    monkeypatch.setattr(measure, "PROC_STAT", stat)
    calls = []

    def run(k):
        calls.append(k)
        ticks["total"] += 100
        if len(calls) in (1, 3):  # the first and third runs of the round are stolen from
            ticks["steal"] += 10
        write()
        return float(len(calls)), {}

    out = measure.measure_rounds(list("abcd"), 1, seed=0, measure=run)
    order = out.orders[0]
    assert calls == order + [order[0], order[2]]
    kept = {k: runs[0] for k, runs in enumerate(out.runs)}
    assert kept[order[0]].seconds == 5.0 and kept[order[0]].redone  # the redo, 0% stolen
    assert kept[order[2]].seconds == 6.0 and kept[order[2]].steal == 0.0
    assert kept[order[1]].steal == 0.0 and not kept[order[1]].redone
    # steal: 10 of the 100 ticks (each tick counted once in the first line's total)
    with measure.StealMeter() as meter:
        ticks["total"] += 200
        ticks["steal"] += 50
        write()
    assert meter.fraction == pytest.approx(0.25)
    monkeypatch.setattr(measure, "PROC_STAT", tmp_path / "missing")
    with measure.StealMeter() as meter:
        pass
    assert meter.fraction is None


def test_the_median_profile_and_how_much_it_moved():
    profiles = [{"name": "a", "kind": "cpu", "cpu": {"threads": 1, "dispatch_us": 4.0,
                                                     "full": True, "grid": {"16": 0.2}}},
                {"name": "b", "kind": "cpu", "cpu": {"threads": 2, "dispatch_us": 6.0,
                                                     "full": False, "grid": {"16": 0.4}}},
                {"name": "c", "kind": "cpu", "cpu": {"threads": 2, "dispatch_us": 5.0,
                                                     "full": True, "grid": {"16": 0.3}}}]
    assert measure.median_profile(profiles) == {
        "name": "a", "kind": "cpu",
        "cpu": {"threads": 2, "dispatch_us": 5.0, "full": True, "grid": {"16": 0.3}}}
    moved = measure.profile_spread(profiles)
    # (6 - 4) / 5, (2 - 1) / 2, (0.4 - 0.2) / 0.3; flags and text left out
    assert moved == pytest.approx({"cpu.dispatch_us": 0.4, "cpu.threads": 0.5,
                                   "cpu.grid.16": 2 / 3})


def test_a_profile_of_other_threads_is_noted(tmp_path):
    from simulator.backend.validation import _thread_notes
    hw = replace(simulator.load_hardware("h100-pcie5"), kind="cpu", cpu_threads=2)
    assert _thread_notes(hw, "cpu", 2) == []
    [note] = _thread_notes(hw, "cpu", 1)
    assert "calibrated with 2 torch threads, this run uses 1" in note
    assert _thread_notes(simulator.load_hardware("h100-pcie5"), "cuda", 1) == []
