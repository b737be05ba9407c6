"""The validation figure: predicted against measured iteration time, one point per
configuration in its mode's colour, the range of its rounds as a horizontal bar."""

from __future__ import annotations

import matplotlib

matplotlib.use("Agg")
import matplotlib.pyplot as plt  # noqa: E402
from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter  # noqa: E402

from .._atomic import atomic_path  # noqa: E402
from .style import mode_color  # noqa: E402


def _percent(value) -> str:
    return "n/a" if value is None else f"{value:.1%}"


def plot_validation(configs: list[dict], summary: dict, path) -> None:
    """configs: the summary's rows (mode, measured_s, predicted_s, rounds_s); summary: its
    title's figures (title, mape, kendall_tau, noise_floor, passed)."""
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for mode in dict.fromkeys(c["mode"] for c in configs):
        rows = [c for c in configs if c["mode"] == mode]
        x = [c["measured_s"] * 1e3 for c in rows]
        y = [c["predicted_s"] * 1e3 for c in rows]
        low = [c["measured_s"] * 1e3 - min(c["rounds_s"]) * 1e3 for c in rows]
        high = [max(c["rounds_s"]) * 1e3 - c["measured_s"] * 1e3 for c in rows]
        ax.errorbar(x, y, xerr=[low, high], fmt="o", markersize=4, elinewidth=0.8,
                    alpha=0.8, label=mode, color=mode_color(mode))
    values = [v for c in configs for v in (*c["rounds_s"], c["predicted_s"])]
    if values:
        line = [min(values) * 1e3 / 1.5, max(values) * 1e3 * 1.5]
        ax.plot(line, line, color="gray", linewidth=0.8, label="y = x")
        ax.set(xscale="log", yscale="log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    tau = summary["kendall_tau"]
    ax.set(xlabel="measured ms per iteration (median of rounds; bar: their range)",
           ylabel="predicted ms per iteration (median)",
           title=f"{summary['title']}\nMAPE {_percent(summary['mape'])} (noise floor "
                 f"{_percent(summary['noise_floor'])}), Kendall τ "
                 f"{'n/a' if tau is None else f'{tau:.2f}'}: "
                 f"{'PASS' if summary['passed'] else 'FAIL'}")
    ax.title.set_fontsize(9)
    fig.tight_layout()
    with atomic_path(path) as tmp:
        fig.savefig(tmp, format="png", dpi=120, metadata={"Software": None})
    plt.close(fig)
