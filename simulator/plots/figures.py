"""Paper-style figures, drawn only from a results table (nothing is simulated again).

Each plot_* function takes the results DataFrame and returns (figure, plotted data), or None
when the results hold nothing that figure needs; the plotted data is a DataFrame of exactly
the values drawn, so tests can compare it with the results rows.
"""

from __future__ import annotations

import json
import numbers
import textwrap

import matplotlib.pyplot as plt
import numpy as np
import pandas as pd
from matplotlib.ticker import NullFormatter

from ..errors import OptionError
from ..hardware import is_hardware_key
from ..pipeline import MODES
from ..pipeline.engine import RESOURCES
from ..sweep.spec import is_override, registered_options
from .style import (DOUBLE_COLUMN, MODE_COLORS, SINGLE_COLUMN, STAGE_ORDER, mode_color,
                    policy_color, stage_color)

BASELINES = ("hybrid", "cache", "cache-prefetch")


def _context(df: pd.DataFrame) -> list[str]:
    """Columns that set the scene of a simulated point apart from its mode and cache settings
    (the hardware, the model, the keys of either a sweep overrides, the trace): two points
    with equal context values are comparable."""
    return ["hardware", "model", "batch_size", *filter(is_override, df.columns), "alpha", "trace"]


def _feasible(df: pd.DataFrame, kind: str) -> pd.DataFrame:
    ok = df["kind"] == kind
    if "error" in df:
        ok &= df["error"].isna()
    return df[ok]


def _varying(df: pd.DataFrame, columns) -> list[str]:
    return [c for c in columns if c in df and df[c].nunique(dropna=True) > 1]


def _label(row, columns, sep=", ") -> str:
    """Names of numbers go with them (alpha 1.05, batch size 4096); names of presets are
    recognisable alone."""
    return sep.join(f"{c.replace('_', ' ')} {row[c]:g}" if isinstance(row[c], numbers.Number)
                    else f"{row[c]}" for c in columns)


def _describing(df: pd.DataFrame, columns) -> list[str]:
    """The columns that vary and describe a point; a generated trace's hash follows its recipe
    (batch size, alpha, model), so it names a point only for traces given by path."""
    varying = _varying(df, columns)
    named = [c for c in varying if c != "trace"] or varying
    # A column that follows from the ones before it (each model's own batch size) adds nothing.
    kept = []
    for c in named:
        if not kept or df.groupby(kept, dropna=False)[c].nunique(dropna=False).max() > 1:
            kept.append(c)
    return kept


def _first_per(df: pd.DataFrame, keys) -> pd.DataFrame:
    """One configuration per value of keys (a column or a tuple of them): the rows at the
    first value (in grid order) of every other axis."""
    keys = (keys,) if isinstance(keys, str) else keys
    varying = [c for c in _describing(df, _context(df) + ["capacity", *registered_options()])
               if c not in keys and c != "trace"]
    for c in varying:
        df = df[(df[c] == df[c].dropna().iloc[0]) | df[c].isna()]
    return df


# Figure 1's labels where the policy's name alone would mislead: Belady is the optimum of the
# caches that fetch on demand into an empty cache, and static is not one of them.
HIT_RATE_LABELS = {"belady": "belady (optimal demand cache)", "static": "static (preloaded)"}


def plot_hit_rate(df: pd.DataFrame):
    """(1) Hit rate against cache capacity, one line per policy. Belady (dashed) bounds every
    cache that fetches on demand and starts empty; a static hot set is loaded before the
    first batch, pays no compulsory misses, and can pass it."""
    rows = _feasible(df, "replay")
    if rows.empty or rows["capacity_rows"].nunique() < 2:
        return None
    rows = _first_per(rows, ("capacity_rows", "capacity"))
    data = rows[["policy", "capacity_rows", "hit_rate"]].sort_values(
        ["policy", "capacity_rows"], kind="stable").reset_index(drop=True)
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.4))
    for policy, g in data.groupby("policy", sort=False):
        label = HIT_RATE_LABELS.get(policy, policy)
        ax.plot(g["capacity_rows"], g["hit_rate"], marker="o", color=policy_color(policy),
                linestyle="--" if policy == "belady" else "-", label=label)
    if "lru_curve" in rows and rows["lru_curve"].notna().any():
        curve = np.array(json.loads(rows["lru_curve"].dropna().iloc[0]))
        ax.plot(curve[:, 0], curve[:, 1], color=policy_color("lru"), linewidth=0.8,
                alpha=0.6, label="lru (one pass)")
    ax.set(xscale="log", xlabel="cache capacity (rows)",
           ylabel="hit rate (fraction of distinct rows)", ylim=(0, 1))
    ax.xaxis.set_minor_formatter(NullFormatter())
    ax.legend(ncol=2, loc="lower right", fontsize=6, handlelength=1.5, columnspacing=0.8)
    return fig, data


def plot_breakdown(df: pd.DataFrame):
    """(2) Mean time of each pipeline stage per iteration, stacked, one bar per mode; the dot
    is the iteration time (stages of pipelined modes overlap, so it can be below the stack)."""
    rows = _feasible(df, "simulate")
    if rows.empty:
        return None
    rows = _first_per(rows, "mode")
    stages = list(dict.fromkeys([*STAGE_ORDER, *(c.removeprefix("breakdown_") for c in rows
                                                 if c.startswith("breakdown_"))]))
    stages = [s for s in stages if f"breakdown_{s}" in rows]
    records = [{"mode": r["mode"], "stage": s, "seconds": r[f"breakdown_{s}"],
                "iteration_time_s": r["iteration_time_s"]}
               for _, r in rows.iterrows() for s in stages if pd.notna(r[f"breakdown_{s}"])]
    data = pd.DataFrame(records)
    modes = list(dict.fromkeys(data["mode"]))
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.6))
    drawn = set()
    for x, mode in enumerate(modes):
        bottom = 0.0
        g = data[data["mode"] == mode]
        for _, r in g.iterrows():
            ms = r["seconds"] * 1e3
            ax.bar(x, ms, bottom=bottom, color=stage_color(r["stage"]), width=0.6,
                   label=None if r["stage"] in drawn else r["stage"], edgecolor="white",
                   linewidth=0.3)
            drawn.add(r["stage"])
            bottom += ms
        ax.plot(x, g["iteration_time_s"].iloc[0] * 1e3, "o", color="black",
                label=None if "iteration" in drawn else "iteration time")
        drawn.add("iteration")
    ax.set_xticks(range(len(modes)), modes, rotation=20)
    ax.set_ylabel("time per iteration (ms)")
    ax.legend(ncol=4, fontsize=6, loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig, data


def _speedups(rows: pd.DataFrame) -> pd.DataFrame:
    context = _context(rows)
    records = []
    for _, sp in rows[rows["mode"] == "scratchpipe"].iterrows():
        equal = rows[context].eq(sp[context]) | (rows[context].isna() & sp[context].isna())
        same = equal.all(axis=1)
        for base in BASELINES:
            b = rows[same & (rows["mode"] == base)]
            if MODES[base].uses_cache:  # cached baselines are compared at the same capacity
                b = b[b["capacity"] == sp["capacity"]]
            if len(b):
                records.append({**{c: sp[c] for c in context}, "capacity": sp["capacity"],
                                "baseline": base,
                                "speedup": b["iteration_time_s"].iloc[0] / sp["iteration_time_s"]})
    return pd.DataFrame(records)


def plot_speedup(df: pd.DataFrame):
    """(3) Speedup of scratchpipe over each baseline mode, for each model, trace or capacity."""
    rows = _feasible(df, "simulate")
    if rows.empty or "scratchpipe" not in set(rows["mode"]):
        return None
    data = _speedups(rows)
    if data.empty:
        return None
    groups = _describing(data, _context(data) + ["capacity"]) or ["model"]
    # Long preset names break at their hyphens, so that neighbouring groups keep apart.
    data["group"] = ["\n".join(textwrap.fill(part, 13) for part in
                               _label(r, groups, sep="\n").split("\n"))
                     for _, r in data.iterrows()]
    labels = list(dict.fromkeys(data["group"]))
    bases = [b for b in BASELINES if b in set(data["baseline"])]
    width = 0.8 / len(bases)
    fig, ax = plt.subplots(figsize=(DOUBLE_COLUMN, 2.4))
    for i, base in enumerate(bases):
        g = data[data["baseline"] == base]
        xs = [labels.index(lab) + (i - (len(bases) - 1) / 2) * width for lab in g["group"]]
        ax.bar(xs, g["speedup"], width=width, color=mode_color(base), label=f"over {base}")
    ax.axhline(1.0, color="black", linewidth=0.6)
    ax.set_xticks(range(len(labels)), labels, fontsize=6)
    ax.set_ylabel("scratchpipe speedup (x)")
    ax.legend(ncol=len(bases), loc="lower center", bbox_to_anchor=(0.5, 1.0), frameon=False)
    return fig, data[["group", "baseline", "speedup"]]


def _mode_lines(ax, rows: pd.DataFrame, x: str, y: str, scale: float, xlabel: str,
                ylabel: str) -> pd.DataFrame:
    """One line of y (times scale, from zero) over x per mode; a mode without x values
    (nothing of x applies) is flat. Returns the data drawn."""
    data = rows[["mode", x, y]].sort_values(["mode", x], kind="stable").reset_index(drop=True)
    order = list(MODE_COLORS)
    for mode in sorted(set(data["mode"]), key=lambda m: (m not in order, order.index(m) if m in
                                                         order else m)):
        g, color = data[data["mode"] == mode], mode_color(mode)
        if g[x].notna().any():
            ax.plot(g[x], g[y] * scale, marker="o", color=color, label=mode)
        else:
            ax.axhline(g[y].iloc[0] * scale, color=color, linestyle="--", label=mode)
    ax.set(xlabel=xlabel, ylabel=ylabel, ylim=(0, None))
    ax.legend(fontsize=6)
    return data


def _iteration_time_figure(rows: pd.DataFrame, x: str, xlabel: str):
    """(figure, data) of iteration time (ms) against column x, one line per mode."""
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.4))
    return fig, _mode_lines(ax, rows, x, "iteration_time_s", 1e3, xlabel, "iteration time (ms)")


def _data_ticks(ax, values) -> None:
    """A log2 x axis ticked at the values swept, written out in full."""
    ticks = sorted(set(values.dropna()))
    ax.set_xscale("log", base=2)
    ax.set_xticks(ticks, [f"{t:g}" for t in ticks])
    ax.minorticks_off()


def plot_lookahead(df: pd.DataFrame):
    """(4) Iteration time against scratchpipe's lookahead W (other modes do not look ahead)."""
    rows = _feasible(df, "simulate")
    if rows.empty or "lookahead" not in rows or rows["lookahead"].nunique() < 2:
        return None
    return _iteration_time_figure(_first_per(rows, "lookahead"), "lookahead",
                                  "lookahead W (batches)")


def plot_pcie(df: pd.DataFrame):
    """(5) Iteration time against host-link bandwidth (hardware presets, or their link keys or
    pcie_scale overridden), as each results row records it (link_h2d_gb_per_s)."""
    rows = _feasible(df, "simulate")
    keys = [c for c in rows if is_override(c) and is_hardware_key(c)]
    if "link_h2d_gb_per_s" not in rows and _varying(rows, ["hardware", *keys]):
        raise OptionError("these results have no link_h2d_gb_per_s column (they were made "
                          "before rows recorded it); sweep again into a new results file to "
                          "draw figure pcie")
    if rows.empty or "link_h2d_gb_per_s" not in rows or rows["link_h2d_gb_per_s"].nunique() < 2:
        return None
    fig, data = _iteration_time_figure(_first_per(rows, ("hardware", *keys, "trace")),
                                       "link_h2d_gb_per_s", "host link bandwidth, H2D (GB/s)")
    _data_ticks(fig.axes[0], data["link_h2d_gb_per_s"])
    return fig, data


def plot_batch_dim(df: pd.DataFrame):
    """(6) Throughput against batch size (left) and embedding dimension (right)."""
    rows = _feasible(df, "simulate")
    axes_present = [c for c in ("batch_size", "embedding_dim") if c in rows
                    and rows[c].nunique() > 1]
    if rows.empty or not axes_present:
        return None
    fig, axes = plt.subplots(1, len(axes_present), figsize=(DOUBLE_COLUMN if len(axes_present) > 1
                                                          else SINGLE_COLUMN, 2.4), squeeze=False)
    parts = []
    for ax, key in zip(axes[0], axes_present):
        at = _first_per(rows, key)
        others = [c for c in axes_present if c != key]
        if others:  # say where the other axis was held
            ax.set_title(_label(at.iloc[0], others))
        part = _mode_lines(ax, at, key, "throughput_samples_per_s", 1e-6,
                           "batch size (samples)" if key == "batch_size"
                           else "embedding dimension (elements)", "throughput (M samples/s)")
        _data_ticks(ax, part[key])
        parts.append(part.rename(columns={key: "value"}).assign(axis=key))
    return fig, pd.concat(parts, ignore_index=True)[["axis", "mode", "value",
                                                    "throughput_samples_per_s"]]


def plot_gantt(df: pd.DataFrame):
    """(7) The first iterations of each mode as a Gantt chart: one lane per resource."""
    rows = _feasible(df, "simulate")
    if rows.empty or "timeline_head" not in rows:
        return None
    rows = _first_per(rows, "mode").drop_duplicates("mode")
    records = [{"mode": r["mode"], "batch": b, "stage": s, "resource": res, "start": t0,
                "end": t1}
               for _, r in rows.iterrows() for b, s, res, t0, t1 in json.loads(r["timeline_head"])]
    data = pd.DataFrame(records)
    modes = list(dict.fromkeys(data["mode"]))
    fig, axes = plt.subplots(len(modes), 1, figsize=(DOUBLE_COLUMN, 0.9 * len(modes) + 0.6),
                             sharex=True, squeeze=False)
    drawn = set()
    for ax, mode in zip(axes[:, 0], modes):
        g = data[data["mode"] == mode]
        # Known resources in their order, then any other in order of appearance.
        lanes = list(dict.fromkeys([r for r in RESOURCES if r in set(g["resource"])]
                                   + list(g["resource"])))
        for _, r in g.iterrows():
            y = lanes.index(r["resource"])
            ax.barh(y, (r["end"] - r["start"]) * 1e3, left=r["start"] * 1e3, height=0.7,
                    color=stage_color(r["stage"]), edgecolor="black", linewidth=0.2,
                    label=None if r["stage"] in drawn else r["stage"])
            drawn.add(r["stage"])
        ax.set_yticks(range(len(lanes)), lanes)
        ax.invert_yaxis()
        ax.set_ylabel(mode, rotation=0, ha="right", va="center")
        ax.grid(axis="y", visible=False)
    axes[-1, 0].set_xlabel("time (ms)")
    fig.legend(loc="upper center", ncol=min(len(drawn), 8), fontsize=6, frameon=False)
    fig.tight_layout(rect=(0, 0, 1, 1 - 0.35 / fig.get_figheight()))
    return fig, data


def plot_working_set(df: pd.DataFrame):
    """(8) Working set (distinct rows of W + 1 consecutive batches) against the lookahead W."""
    rows = _feasible(df, "stats")
    cols = [c for c in rows.columns if c.startswith("working_set_")]
    if rows.empty or not cols:
        return None
    varying = _describing(rows, ["alpha", "batch_size", "model", "trace"])
    records = [{"trace": _label(r, varying) or "trace", "window": int(c.rsplit("_", 1)[1]),
                "working_set": r[c]} for _, r in rows.iterrows() for c in cols]
    data = pd.DataFrame(records)
    # Colour follows the first varying column, the dash pattern the second.
    firsts = list(dict.fromkeys(rows[varying[0]])) if varying else [None]
    seconds = list(dict.fromkeys(rows[varying[1]])) if len(varying) > 1 else [None]
    cmap = plt.get_cmap("viridis")
    fig, ax = plt.subplots(figsize=(SINGLE_COLUMN, 2.4))
    for (_, r), (label, g) in zip(rows.iterrows(), data.groupby("trace", sort=False)):
        i = firsts.index(r[varying[0]]) if varying else 0
        j = seconds.index(r[varying[1]]) if len(varying) > 1 else 0
        ax.plot(g["window"], g["working_set"], marker="o", label=label,
                color=cmap(0.85 * i / max(1, len(firsts) - 1)),
                linestyle=("-", "--", ":", "-.")[j % 4])
    ax.set_xscale("symlog", base=2, linthresh=1)
    ax.set_xticks(sorted(set(data["window"])), [str(w) for w in sorted(set(data["window"]))])
    ax.set(xlabel="lookahead W (batches)", ylabel="working set (distinct rows)", ylim=(0, None))
    ax.legend(fontsize=6)
    return fig, data


# name -> (file stem, function), in the paper's order
FIGURES = {
    "hit_rate": ("fig1_hit_rate", plot_hit_rate),
    "breakdown": ("fig2_breakdown", plot_breakdown),
    "speedup": ("fig3_speedup", plot_speedup),
    "lookahead": ("fig4_lookahead", plot_lookahead),
    "pcie": ("fig5_pcie", plot_pcie),
    "batch_dim": ("fig6_batch_dim", plot_batch_dim),
    "gantt": ("fig7_gantt", plot_gantt),
    "working_set": ("fig8_working_set", plot_working_set),
}
