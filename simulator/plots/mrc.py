"""The miss-ratio curve of a trace (caches/mrc.py) as an image."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt
import numpy as np

from .._atomic import atomic_path


def plot_mrc(curve, path) -> Path:
    """Miss ratio against capacity (log scale) of a MissRatioCurve, as an image whose format
    follows the file's suffix (png by default); written under a temporary name and renamed."""
    path = Path(path)
    caps = np.arange(max(curve.min_capacity, 1), curve.distinct_rows + 1)
    fig, ax = plt.subplots(figsize=(6, 4))
    try:
        if len(caps) and curve.unique:
            ax.plot(caps, curve.misses[caps] / curve.unique, drawstyle="steps-post")
        ax.set_xscale("log")
        ax.set_xlabel("capacity (rows)")
        ax.set_ylabel("miss ratio (LRU)")
        ax.set_ylim(0, 1.02)
        ax.grid(True, which="both", alpha=0.3)
        ax.set_title(f"LRU miss-ratio curve: {Path(curve.trace_path).name}")
        with atomic_path(path) as tmp:
            fig.savefig(tmp, format=path.suffix.lstrip(".") or "png", dpi=120,
                        bbox_inches="tight")
    finally:
        plt.close(fig)
    return path
