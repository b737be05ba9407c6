"""One look for every figure: two-column paper sizes, and one fixed colour per policy, per
mode and per pipeline stage, the same in every figure.

policy_color(), mode_color() and stage_color() give a colour for any name: the names below
keep theirs, and a name registered elsewhere (a new policy, mode or stage) gets a colour of
PALETTE picked by a checksum of the name, the same in every run and every figure."""

import zlib
from functools import partial

import matplotlib

matplotlib.use("Agg")  # files only; no display is needed or assumed

# Widths of a two-column paper, in inches.
SINGLE_COLUMN = 3.5
DOUBLE_COLUMN = 7.0

# Colours from matplotlib's tab10/tab20 so that neighbouring series stay distinguishable.
POLICY_COLORS = {
    "lru": "#1f77b4", "fifo": "#ff7f0e", "lfu": "#2ca02c", "setassoc": "#9467bd",
    "static": "#8c564b", "belady": "#7f7f7f", "scratchpipe": "#d62728", "oracle": "#e377c2",
}
MODE_COLORS = {
    "gpu-only": "#7f7f7f", "hybrid": "#8c564b", "cache": "#1f77b4",
    "cache-prefetch": "#17becf", "scratchpipe": "#d62728",
}
STAGE_COLORS = {
    "input": "#c7c7c7", "plan": "#bcbd22", "evict": "#ff9896", "d2h": "#ff7f0e",
    "writeback": "#ffbb78", "collect": "#c5b0d5", "transfer": "#1f77b4", "insert": "#aec7e8",
    "train": "#2ca02c",
    # The host's issue of GPU stages (kind cuda): the host-thread twins of the GPU's stages.
    "issue_evict": "#f7b6d2", "issue_insert": "#dbdb8d", "issue_train": "#98df8a",
}
# matplotlib's tab20, for names without a colour of their own.
PALETTE = (
    "#1f77b4", "#aec7e8", "#ff7f0e", "#ffbb78", "#2ca02c", "#98df8a", "#d62728", "#ff9896",
    "#9467bd", "#c5b0d5", "#8c564b", "#c49c94", "#e377c2", "#f7b6d2", "#7f7f7f", "#c7c7c7",
    "#bcbd22", "#dbdb8d", "#17becf", "#9edae5",
)


def color(colors: dict, name: str) -> str:
    """colors[name], or for a name it lacks a colour of PALETTE chosen by the name's CRC-32
    (stable across runs, unlike hash())."""
    return colors.get(name) or PALETTE[zlib.crc32(str(name).encode()) % len(PALETTE)]


policy_color = partial(color, POLICY_COLORS)
mode_color = partial(color, MODE_COLORS)
stage_color = partial(color, STAGE_COLORS)

# Stages bottom to top in stacked bars: the order data moves through an iteration.
STAGE_ORDER = tuple(STAGE_COLORS)

RC = {
    "font.size": 8, "axes.titlesize": 8, "axes.labelsize": 8, "legend.fontsize": 7,
    "xtick.labelsize": 7, "ytick.labelsize": 7, "lines.linewidth": 1.2, "lines.markersize": 4,
    "axes.grid": True, "grid.alpha": 0.3, "savefig.dpi": 200, "figure.dpi": 100,
    "svg.hashsalt": "scratchsim",
}
