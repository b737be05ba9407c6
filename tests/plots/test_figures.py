"""Figures come from the results file alone, and what they draw is what the results hold."""

import json

import matplotlib.pyplot as plt
import pandas as pd
import pytest

from simulator import make_figures
from simulator.errors import OptionError
from simulator.plots.figures import (plot_breakdown, plot_gantt, plot_hit_rate, plot_lookahead,
                                     plot_speedup, plot_working_set)
from simulator.sweep import load_results, run_sweep

TRACE = """
[trace]
generator = "zipf"
table_rows = [3000, 800, 100]
batch_size = 64
batches = 30
seed = 3
alpha = 1.05
"""
SPECS = {
    "replay": """
        [axes]
        policy = ["lru", "belady"]
        capacity = ["30%", "60%", "90%"]
    """,
    "simulate": """
        [axes]
        mode = ["hybrid", "cache", "scratchpipe"]
        lookahead = [1, 2]
        [fixed]
        capacity = "70%"
    """,
    "stats": """
        [axes]
        alpha = [0.9, 1.2]
    """,
}


@pytest.fixture(scope="module")
def results(tmp_path_factory):
    d = tmp_path_factory.mktemp("results")
    out = {}
    for name, axes in SPECS.items():
        spec = d / f"{name}.toml"
        spec.write_text(TRACE + axes.replace("\n        ", "\n"))
        run_sweep(spec, d / f"{name}.csv", workers=1, progress=False)
        out[name] = d / f"{name}.csv"
    return out


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def _ok(df, kind):
    return df[(df["kind"] == kind) & df["error"].isna()]


def test_hit_rate_plots_the_results_rows(results):
    df = load_results(results["replay"])
    _, data = plot_hit_rate(df)
    expected = _ok(df, "replay")[["policy", "capacity_rows", "hit_rate"]]
    merged = data.merge(expected, on=["policy", "capacity_rows"], suffixes=("", "_results"))
    assert len(merged) == len(data) == len(expected)
    assert (merged["hit_rate"] == merged["hit_rate_results"]).all()


def test_lookahead_breakdown_speedup_and_gantt_plot_the_results_rows(results):
    df = load_results(results["simulate"])
    ok = _ok(df, "simulate")
    _, data = plot_lookahead(df)
    pd.testing.assert_frame_equal(
        data, ok[["mode", "lookahead", "iteration_time_s"]].sort_values(
            ["mode", "lookahead"], kind="stable").reset_index(drop=True))

    _, data = plot_breakdown(df)
    for _, r in data.iterrows():
        row = ok[ok["mode"] == r["mode"]].iloc[0]
        assert r["seconds"] == row[f"breakdown_{r['stage']}"]

    _, data = plot_speedup(df)
    sp = ok[(ok["mode"] == "scratchpipe") & (ok["lookahead"] == 1)].iloc[0]
    hybrid = ok[ok["mode"] == "hybrid"].iloc[0]
    got = data[data["baseline"] == "hybrid"]["speedup"].iloc[0]
    assert got == hybrid["iteration_time_s"] / sp["iteration_time_s"]

    _, data = plot_gantt(df)
    for mode, g in data.groupby("mode"):
        head = json.loads(ok[ok["mode"] == mode]["timeline_head"].iloc[0])
        assert g[["batch", "stage", "resource", "start", "end"]].values.tolist() == head


def test_working_set_plots_the_stats_rows(results):
    df = load_results(results["stats"])
    _, data = plot_working_set(df)
    for _, r in data.iterrows():
        alpha = float(r["trace"].split()[-1])
        assert r["working_set"] == df[df["alpha"] == alpha][f"working_set_{r['window']}"].iloc[0]


def test_make_figures_writes_png_and_pdf_of_what_the_results_hold(results, tmp_path):
    paths = make_figures(results["simulate"], tmp_path)
    names = sorted(p.name for p in paths)
    assert "fig4_lookahead.png" in names and "fig7_gantt.pdf" in names
    assert "fig1_hit_rate.png" not in names  # no replay rows
    assert all(p.stat().st_size > 0 for p in paths)
    assert not [p for p in tmp_path.iterdir() if p.name.startswith(".")]  # no temporary files
    with pytest.raises(OptionError, match="holds no data for figure hit_rate"):
        make_figures(results["simulate"], tmp_path, only=["hit_rate"])
    with pytest.raises(OptionError, match="unknown figure"):
        make_figures(results["simulate"], tmp_path, only="pie")


def test_figures_command(results, tmp_path, capsys):
    from simulator.cli import main

    assert main(["figures", str(results["simulate"]), "-o", str(tmp_path), "--only",
                 "lookahead,gantt"]) == 0
    assert capsys.readouterr().out.split() == [str(tmp_path / f) for f in (
        "fig4_lookahead.png", "fig4_lookahead.pdf", "fig7_gantt.png", "fig7_gantt.pdf")]
