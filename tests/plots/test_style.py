"""Colours for any policy, mode or stage name; figures draw what the rows record; the
miss-ratio curve's image."""

import matplotlib.colors as mcolors
import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
import pytest

import simulator as sim
from simulator.errors import OptionError
from simulator.plots.figures import (plot_breakdown, plot_gantt, plot_hit_rate, plot_lookahead,
                                     plot_pcie)
from simulator.plots.style import (MODE_COLORS, PALETTE, POLICY_COLORS, STAGE_COLORS,
                                   mode_color, policy_color, stage_color)


@pytest.fixture(autouse=True)
def close_figures():
    yield
    plt.close("all")


def test_known_names_keep_their_colours_and_any_other_name_gets_a_stable_one():
    assert all(policy_color(p) == c for p, c in POLICY_COLORS.items())
    assert all(mode_color(m) == c for m, c in MODE_COLORS.items())
    assert all(stage_color(s) == c for s, c in STAGE_COLORS.items())
    # zlib.crc32(b"my-policy") == 401540111, and 401540111 % 20 == 11: tab20's light brown
    assert policy_color("my-policy") == PALETTE[11] == "#c49c94"
    for name in ("my-policy", "toy-repeat", "", "x" * 100):
        assert policy_color(name) in PALETTE and mode_color(name) == policy_color(name)


def _line_colors(fig):
    return {line.get_label(): mcolors.to_hex(line.get_color()) for line in fig.axes[0].lines}


def test_an_unknown_policy_is_drawn_in_figure_1():
    df = pd.DataFrame({"kind": "replay", "error": np.nan,
                       "policy": ["lru", "lru", "my-policy", "my-policy"],
                       "capacity": ["10%", "20%", "10%", "20%"],
                       "capacity_rows": [10, 20, 10, 20], "hit_rate": [0.3, 0.5, 0.4, 0.6]})
    fig, data = plot_hit_rate(df)
    assert set(data["policy"]) == {"lru", "my-policy"}
    colors = _line_colors(fig)
    assert colors["my-policy"] == policy_color("my-policy")
    assert colors["lru"] == POLICY_COLORS["lru"]


def test_an_unknown_mode_stage_and_resource_are_drawn():
    df = pd.DataFrame({"kind": "simulate", "error": np.nan,
                       "mode": ["cache", "cache", "toy-mode", "toy-mode"],
                       "lookahead": [np.nan, np.nan, 1, 2],
                       "iteration_time_s": [2e-3, 2e-3, 1e-3, 0.8e-3],
                       "breakdown_train": [1e-3] * 4, "breakdown_toy_stage": [5e-4] * 4,
                       "timeline_head": ['[[0, "train", "gpu", 0.0, 0.001]]'] * 2
                       + ['[[0, "toy_stage", "toy_engine", 0.0, 0.0005]]'] * 2})
    fig, data = plot_lookahead(df)
    colors = _line_colors(fig)
    assert colors["toy-mode"] == mode_color("toy-mode")
    assert colors["cache"] == MODE_COLORS["cache"]

    fig, data = plot_breakdown(df)
    assert "toy_stage" in set(data["stage"]) and "toy-mode" in set(data["mode"])
    bars = {c.get_label(): mcolors.to_hex(c.patches[0].get_facecolor())
            for c in fig.axes[0].containers}
    assert bars["toy_stage"] == stage_color("toy_stage")

    fig, data = plot_gantt(df)
    assert "toy_engine" in set(data["resource"])


def test_pcie_draws_the_link_bandwidth_each_row_records():
    df = pd.DataFrame({"kind": "simulate", "error": np.nan, "hardware": "a100-pcie4",
                       "mode": ["cache"] * 3, "pcie_scale": [0.5, 1.0, 2.0],
                       "link_h2d_gb_per_s": [1.5, 3.0, 6.0],  # not the preset's: the row's
                       "iteration_time_s": [3e-3, 2e-3, 1.5e-3]})
    _, data = plot_pcie(df)
    assert data["link_h2d_gb_per_s"].tolist() == [1.5, 3.0, 6.0]
    with pytest.raises(OptionError, match="no link_h2d_gb_per_s column"):
        plot_pcie(df.drop(columns="link_h2d_gb_per_s"))


def test_plot_mrc_writes_an_image(tmp_path):
    trace = sim.generate("zipf", tmp_path / "t", [200], 8, 20, seed=0, show_progress=False)
    out = tmp_path / "images" / "mrc.png"
    out.parent.mkdir()
    assert sim.plot_mrc(sim.mrc(trace), out) == out
    assert out.read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"
    assert [p.name for p in out.parent.iterdir()] == ["mrc.png"]  # no temporary file left
