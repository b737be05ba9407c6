"""`scratchsim replay` and `scratchsim mrc`: thin over simulator.replay and simulator.mrc."""

import csv
import json

import pytest

import simulator as sim
from simulator.cli import main


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return sim.generate("zipf", tmp_path_factory.mktemp("cli") / "z", [400, 300], batch_size=8,
                        num_batches=40, seed=2, show_progress=False)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_replay_json_matches_the_api(capsys, trace):
    code, out, err = run(capsys, "replay", trace.path, "--policy", "lfu", "--capacity", "25%",
                         "--json")
    assert code == 0 and err == ""
    d = json.loads(out)
    api = sim.replay(trace, "lfu", "25%")
    for key in ("policy", "capacity", "batches", "lookups", "unique", "hits", "misses",
                "evictions", "writebacks", "conflict_misses", "hit_rate"):
        assert d[key] == api.to_dict()[key], key
    assert d["policy"] == "lfu" and d["batches"] == 40


def test_replay_table_and_per_batch_csv(capsys, trace, tmp_path):
    out_csv = tmp_path / "per_batch.csv"
    code, out, _ = run(capsys, "replay", trace.path, "--policy", "setassoc", "--capacity", "100",
                       "--ways", "8", "--inner", "lfu", "--per-batch", out_csv)
    assert code == 0
    assert "hit rate" in out and "conflict misses" in out
    assert "ways=8 inner=lfu sets=12 effective_capacity=96" in out
    rows = list(csv.DictReader(out_csv.open()))
    assert len(rows) == 40 and rows[0]["lookups"] == "16"
    api = sim.replay(trace, "setassoc", 100, ways=8, inner="lfu")
    assert [int(r["misses"]) for r in rows] == api.per_batch_misses.tolist()
    assert [p.name for p in tmp_path.iterdir()] == ["per_batch.csv"]


def test_static_profile_batches_is_passed_on(capsys, trace):
    code, out, _ = run(capsys, "replay", trace.path, "--policy", "static", "--capacity", "50",
                       "--profile-batches", "10", "--json")
    d = json.loads(out)
    assert code == 0 and d["params"] == {"profile_batches": 10} and d["hot_rows"] == 50


@pytest.mark.parametrize("argv, message", [
    (["--policy", "lru", "--capacity", "50", "--ways", "4"], "policy lru takes no option ways"),
    (["--policy", "nope", "--capacity", "50"], "unknown policy 'nope'"),
    (["--policy", "lru", "--capacity", "lots"], "capacity 'lots'"),
    (["--policy", "lru", "--capacity", "50", "--ways", "0"],
     "--ways: ways must be an integer from 1 to 65534, got 0"),
    (["--policy", "setassoc", "--capacity", "50", "--inner", "fifo"], "invalid choice"),
    (["--policy", "lru", "--capacity", "2"], "batch 0 touches 14 distinct rows"),
    (["--policy", "lru", "--capacity", "50", "--per-batch", "/no/such/dir/x.csv"],
     "does not exist"),
])
def test_errors_are_one_line_and_exit_2(capsys, trace, argv, message):
    code, out, err = run(capsys, "replay", trace.path, *argv)
    assert code == 2 and out == ""
    assert message in err and err.count("\n") == 1


def test_missing_trace_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "mrc", tmp_path / "none")
    assert code == 2 and "is not a directory" in err and err.count("\n") == 1


def test_mrc_json_and_plot(capsys, trace, tmp_path):
    png = tmp_path / "mrc.png"
    code, out, _ = run(capsys, "mrc", trace.path, "--json", "--plot", png)
    assert code == 0
    d = json.loads(out)
    curve = sim.mrc(trace)
    assert d["min_capacity"] == curve.min_capacity == 16
    assert d["distinct_rows"] == curve.distinct_rows
    assert all(p["misses"] == sim.replay(trace, "lru", p["capacity"]).misses
               for p in d["points"][::5])
    assert png.read_bytes()[:4] == b"\x89PNG"


def test_mrc_table(capsys, trace):
    code, out, _ = run(capsys, "mrc", trace.path)
    assert code == 0 and "min capacity" in out and "miss ratio" in out


def test_one_capacity_rule_for_replay_and_sweeps(trace):
    """parse_capacity is the syntax both the API and a sweep spec check."""
    from simulator.caches.base import parse_capacity, resolve_capacity
    from simulator.sweep.spec import VALUE_CHECKS

    assert parse_capacity(500) == parse_capacity(" 500 ") == (500, None)
    assert parse_capacity("12.5%") == (None, 12.5)
    # 12.5% of the trace's distinct rows, rounded; at least one row however small
    distinct = sim.trace_stats(trace).unique_rows
    assert resolve_capacity(trace, "12.5%") == round(distinct * 0.125)
    assert resolve_capacity(trace, "1e-9%") == 1
    sweep_accepts = VALUE_CHECKS["capacity"][0]
    for bad in (0, -5, "0%", "inf%", "nan%", "lots", 1.5, True):
        with pytest.raises(sim.OptionError, match="capacity"):
            parse_capacity(bad)
        assert not sweep_accepts(bad), bad
    assert all(sweep_accepts(v) for v in (500, "500", "12.5%"))
