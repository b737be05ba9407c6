"""The main job on generated data (what `make demo` runs).

Generates a Zipf trace shaped like the Criteo Kaggle tables of the `dlrm-kaggle` model, prints
its statistics, replays it through every cache policy, and simulates every training mode on
`h100-pcie5`, at two cache capacities. Results (with the configuration, seed and version that
made them) go to OUTPUT/results.json, written atomically; the trace stays in OUTPUT/trace.
Then two small sweeps over the same trace (their specs and results CSVs beside it) draw the
hit-rate curves, the iteration-time breakdown and the pipeline Gantt chart into
OUTPUT/figures (PNG and PDF).
"""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

from ._version import __version__
from .caches import POLICIES, replay
from .caches.base import resolve_capacity
from .errors import CapacityError
from .pipeline import MODES, simulate
from .plots import make_figures
from .sweep import run_sweep
from .trace import generate, trace_stats
from .workload import load_model

SEED = 2022
MODEL = "dlrm-kaggle"
HARDWARE = "h100-pcie5"
BATCHES = 200
ALPHA = 1.05
LOOKAHEAD = 4
CAPACITIES = ("10%", "25%")
POLICY_OPTIONS = {"scratchpipe": {"lookahead": LOOKAHEAD}, "oracle": {"lookahead": LOOKAHEAD}}
# The sweeps behind the figures: results file stem -> (spec body, figures drawn from it).
FIGURE_SWEEPS = {
    "sweep-policies": ("""[axes]
policy = ["lru", "fifo", "lfu", "static", "belady"]
capacity = ["5%", "10%", "25%", "50%"]
""", ["hit_rate"]),
    "sweep-modes": (f"""[axes]
mode = {json.dumps(list(MODES))}

[fixed]
hardware = "{HARDWARE}"
model = "{MODEL}"
capacity = "25%"
lookahead = {LOOKAHEAD}
""", ["breakdown", "gantt"]),
}


def _replay_rows(trace, capacity: int) -> list[dict]:
    rows = []
    for name in POLICIES:
        try:
            d = replay(trace, policy=name, capacity=capacity, **POLICY_OPTIONS.get(name, {}))
            rows.append(d.to_dict())
        except CapacityError as e:  # infeasible at this capacity: a result, not a crash
            rows.append({"policy": name, "capacity": capacity, "infeasible": str(e)})
    return rows


def _simulate_rows(trace, capacity: int) -> list[dict]:
    rows = []
    for mode in MODES:
        try:
            rows.append(simulate(trace, mode=mode, hardware=HARDWARE, model=MODEL,
                                 capacity=capacity, lookahead=LOOKAHEAD).to_dict())
        except CapacityError as e:
            rows.append({"mode": mode, "infeasible": str(e)})
    return rows


def _format_replay(rows: list[dict]) -> list[str]:
    out = [f"  {'policy':<12} {'hit rate':>9} {'misses':>12} {'evictions':>12}"]
    for d in rows:
        if "infeasible" in d:
            out.append(f"  {d['policy']:<12} infeasible: {d['infeasible']}")
        else:
            out.append(f"  {d['policy']:<12} {d['hit_rate']:>9.3f} {d['misses']:>12,} "
                       f"{d['evictions']:>12,}")
    return out


def _format_modes(rows: list[dict]) -> list[str]:
    sp = next((d for d in rows if d["mode"] == "scratchpipe" and "infeasible" not in d), None)
    out = [f"  {'mode':<15} {'iteration':>11} {'samples/s':>13} {'bottleneck':>10} "
           f"{'hit rate':>9} {'scratchpipe speedup':>20}"]
    for d in rows:
        if "infeasible" in d:
            out.append(f"  {d['mode']:<15} infeasible: {d['infeasible']}")
            continue
        speedup = (f"{d['iteration_time_s'] / sp['iteration_time_s']:.2f}x" if sp else "-")
        out.append(f"  {d['mode']:<15} {d['iteration_time_s'] * 1e3:>8.3f} ms "
                   f"{d['throughput_samples_per_s']:>13,.0f} {d['bottleneck']:>10} "
                   f"{d['hit_rate']:>9.3f} {speedup:>20}")
    return out


def demo(output="scratchsim-out", print_fn=print, batches: int = BATCHES) -> dict:
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    model = load_model(MODEL)
    trace = generate("zipf", out / "trace", model.table_rows, batch_size=model.batch_size,
                     num_batches=batches, seed=SEED, alpha=ALPHA,
                     table_names=[f"C{i + 1}" for i in range(len(model.table_rows))],
                     show_progress=False)
    print_fn(f"Generated {out / 'trace'}: Zipf {ALPHA} over the {len(model.table_rows)} "
             f"{MODEL} tables, {batches} batches of {model.batch_size} (seed {SEED})\n")
    stats = trace_stats(trace)
    print_fn(stats.format())
    result = {"scratchsim_version": __version__, "seed": SEED, "model": MODEL,
              "hardware": HARDWARE, "lookahead": LOOKAHEAD, "alpha": ALPHA, "batches": batches,
              "stats": stats.to_dict(), "capacities": []}
    for capacity_arg in CAPACITIES:
        capacity = resolve_capacity(trace, capacity_arg)
        replays = _replay_rows(trace, capacity)
        modes = _simulate_rows(trace, capacity)
        print_fn(f"\nCache of {capacity:,} rows ({capacity_arg} of the distinct rows)")
        print_fn("Replay (hit rate = hits / distinct rows of each batch, summed):")
        for line in _format_replay(replays):
            print_fn(line)
        print_fn(f"Training on {HARDWARE} with {MODEL} (scratchpipe: lookahead {LOOKAHEAD}):")
        for line in _format_modes(modes):
            print_fn(line)
        result["capacities"].append({"capacity": capacity, "capacity_arg": capacity_arg,
                                     "replay": replays, "simulate": modes})
    tmp = out / f".results.json.tmp-{os.getpid()}"
    tmp.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp, out / "results.json")
    figures = []
    for stem, (axes, names) in FIGURE_SWEEPS.items():
        spec = out / f"{stem}.toml"
        spec.write_text(f'[trace]\npath = "trace"\n\n{axes}')
        run_sweep(spec, out / f"{stem}.csv", progress=False)
        figures += make_figures(out / f"{stem}.csv", out / "figures", only=names)
    print_fn(f"\nFigures: {', '.join(str(p) for p in figures if p.suffix == '.png')}")
    print_fn(f"\nResults in {out / 'results.json'} ({time.perf_counter() - t0:.0f} s)")
    return result
