"""Paper-style figures (PNG and PDF) from a sweep's results file, and the image of a trace's
miss-ratio curve."""

from __future__ import annotations

from pathlib import Path

import matplotlib.pyplot as plt

from .._atomic import atomic_path
from ..errors import OptionError
from ..sweep import load_results
from .figures import FIGURES
from .mrc import plot_mrc
from .style import RC

# No creation dates or software versions in the files: the same results give the same bytes.
_METADATA = {"png": {"Software": None}, "pdf": {"CreationDate": None, "Producer": None}}


def make_figures(results_path, out_dir, only=None) -> list[Path]:
    """Draw every figure the results hold data for (or just those named in only) into out_dir
    as NAME.png and NAME.pdf; return the paths written."""
    names = list(FIGURES) if only is None else [only] if isinstance(only, str) else list(only)
    for name in names:
        if name not in FIGURES:
            raise OptionError(f"unknown figure {name!r}; choose from {', '.join(FIGURES)}")
    results = load_results(results_path)
    out = Path(out_dir)
    out.mkdir(parents=True, exist_ok=True)
    written = []
    with plt.rc_context(RC):
        for name in names:
            stem, plot = FIGURES[name]
            drawn = plot(results)
            if drawn is None:
                if only is not None:
                    raise OptionError(f"{results_path}: holds no data for figure {name}; run a "
                                      "sweep that varies what it shows")
                continue
            fig, _ = drawn
            try:
                for fmt in ("png", "pdf"):
                    path = out / f"{stem}.{fmt}"
                    with atomic_path(path) as tmp:
                        fig.savefig(tmp, format=fmt, bbox_inches="tight", metadata=_METADATA[fmt])
                    written.append(path)
            finally:
                plt.close(fig)
    return written


__all__ = ["FIGURES", "make_figures", "plot_mrc"]
