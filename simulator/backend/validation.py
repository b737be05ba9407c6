"""`scratchsim validate`: train a small grid of configurations for real and simulate the same
ones with the same trace, model and hardware profile; report measured against predicted
per-iteration time.

The grid: gpu-only and hybrid, then cache, cache-prefetch and scratchpipe at two capacities
(the smallest the largest lookahead of the grid can run with, and twice that), scratchpipe at
each lookahead. Both sides leave out the same warm-up iterations (the pipeline's fill).
Output, written to a temporary directory and renamed into place: results.csv, a
predicted-against-measured figure (predicted_vs_measured.png) and summary.json (device,
profile, configurations, mean absolute percentage error, and whether the predicted order of
the configurations from fastest to slowest is the measured one).
"""

from __future__ import annotations

import csv
import json
import shutil
import tempfile
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..caches import min_capacity
from ..hardware import load_hardware
from ..pipeline import default_warmup, simulate
from ..trace import generate
from ..trace.format import replace_dir
from . import backend_model, train
from .calibration import calibrate as measure, write_profile

# (tables, rows per table, batch size, batches, lookaheads): the quick grid runs in seconds.
QUICK = (4, 2000, 128, 30, (2,))
FULL = (8, 20000, 1024, 80, (1, 4))
COLUMNS = ("mode", "capacity", "lookahead", "measured_s", "predicted_s", "error_pct")


def grid(trace, lookaheads) -> list[dict]:
    lowest = min_capacity(trace, lookahead=max(lookaheads))
    capacities = (lowest, min(2 * lowest, trace.total_rows))
    configs = [{"mode": "gpu-only"}, {"mode": "hybrid"}]
    for capacity in capacities:
        configs += [{"mode": "cache", "capacity": capacity},
                    {"mode": "cache-prefetch", "capacity": capacity}]
        configs += [{"mode": "scratchpipe", "capacity": capacity, "lookahead": w}
                    for w in lookaheads]
    return configs


def validate(output, device: str = "cpu", profile=None, quick: bool = False,
             seed: int = 0) -> dict:
    """Run the grid; write results.csv, predicted_vs_measured.png and summary.json into the
    directory `output`. profile: the hardware profile to predict with (a preset name or a
    TOML file); None calibrates this machine first and keeps the result as profile.toml.
    Returns the summary."""
    output = Path(output)
    work = Path(tempfile.mkdtemp(prefix=f".{output.name}.", dir=output.parent))
    try:
        hardware = None
        if profile is None:
            write_profile(measure(device, quick=quick), work / "profile.toml")
            # Recorded where it will be once the output is in place.
            hardware = replace(load_hardware(work / "profile.toml"),
                               source=str(output / "profile.toml"))
        hardware = hardware or load_hardware(profile)
        summary = _run_grid(work, device, hardware, quick, seed)
        replace_dir(work, output, lambda d: (d / "summary.json").is_file())
    except BaseException:
        shutil.rmtree(work, ignore_errors=True)
        raise
    return summary


def _run_grid(work: Path, device, hardware, quick, seed) -> dict:
    tables, rows, batch_size, batches, lookaheads = QUICK if quick else FULL
    trace = generate("zipf", work / "trace", table_rows=[rows] * tables, batch_size=batch_size,
                     num_batches=batches, seed=seed, show_progress=False)
    model = backend_model(trace, None)
    results = []
    for config in grid(trace, lookaheads):
        measured = train(trace, device=device, model=model, seed=seed, **config)
        predicted = simulate(trace, hardware=hardware, model=model, **config)
        warmup = default_warmup(batches, config.get("lookahead", 1)
                                if config["mode"] == "scratchpipe" else 1)
        measured_s = float(np.mean(measured.iteration_seconds[warmup:]))
        predicted_s = float(predicted.iteration_time)
        results.append({"mode": config["mode"], "capacity": config.get("capacity", ""),
                        "lookahead": config.get("lookahead", ""), "measured_s": measured_s,
                        "predicted_s": predicted_s,
                        "error_pct": 100.0 * (predicted_s - measured_s) / measured_s})
    measured = np.array([r["measured_s"] for r in results])
    predicted = np.array([r["predicted_s"] for r in results])
    summary = {"device": device, "profile": hardware.name, "profile_source": hardware.source,
               "quick": quick,
               "trace": {"tables": tables, "rows_per_table": rows, "batch_size": batch_size,
                         "batches": batches, "seed": seed},
               "model": model.name, "configs": results,
               "mape": float(np.mean(np.abs(predicted - measured) / measured)),  # a fraction
               "ranking_agrees": bool(np.array_equal(np.argsort(measured, kind="stable"),
                                                     np.argsort(predicted, kind="stable")))}
    with open(work / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=COLUMNS)
        writer.writeheader()
        writer.writerows(results)
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _figure(results, summary, work / "predicted_vs_measured.png")
    shutil.rmtree(work / "trace")
    return summary


def _figure(results, summary, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    fig, ax = plt.subplots(figsize=(5, 5))
    for mode in dict.fromkeys(r["mode"] for r in results):
        points = [(r["measured_s"] * 1e3, r["predicted_s"] * 1e3) for r in results
                  if r["mode"] == mode]
        ax.scatter(*zip(*points), label=mode)
    values = [v for r in results for v in (r["measured_s"] * 1e3, r["predicted_s"] * 1e3)]
    line = [min(values) / 1.5, max(values) * 1.5]
    ax.plot(line, line, color="gray", linewidth=0.8)
    ax.set(xscale="log", yscale="log", xlabel="measured ms per iteration",
           ylabel="predicted ms per iteration",
           title=f"{summary['device']}, profile {summary['profile']}: "
                 f"MAPE {summary['mape']:.0%}")
    ax.legend(fontsize=8)
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)
