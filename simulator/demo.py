"""The main job on generated data (what `make demo` runs).

1. Generates a Zipf trace shaped like the Criteo Kaggle tables of the `dlrm-kaggle` model,
   prints its statistics, replays it through every cache policy, and simulates every training
   mode on `h100-pcie5`, at two cache capacities.
2. Generates a trace like MLPerf's DLRM-DCNv2 (`mlperf-dlrm-dcnv2`: 26 multi-hot tables, 214
   lookups per sample), whose tables do not fit in HBM: gpu-only is refused, and the four modes
   that keep the tables in host memory compete at two scratchpad sizes. Its tables and batches
   are large, so it samples few batches (MLPERF_BATCHES), and says so.
Results (with the configuration, seed and version that made them) go to OUTPUT/results.json,
written atomically; the traces stay in OUTPUT/trace and OUTPUT/trace-mlperf. Then two small
sweeps over the first trace (their specs and results CSVs beside it) draw the hit-rate curves,
the iteration-time breakdown and the pipeline Gantt chart into OUTPUT/figures (PNG and PDF).
"""

from __future__ import annotations

import json
import time
from pathlib import Path

from ._atomic import atomic_open
from ._version import __version__
from .caches import POLICIES, replay
from .caches.base import resolve_capacity
from .errors import CapacityError
from .options import declared
from .pipeline import MODES, make_mode, simulate
from .plots import make_figures
from .sweep import run_sweep
from .trace import generate, trace_stats
from .workload import load_model

SEED = 2022
MODEL = "dlrm-kaggle"
HARDWARE = "h100-pcie5"
BATCHES = 200
ALPHA = 1.05
CAPACITIES = ("10%", "25%")
# The MLPerf study: batches sampled (enough for the pipelines' steady state after their warm-up,
# few enough for the demo's time), and the scratchpad sizes, as HBM set aside for it.
MLPERF_MODEL = "mlperf-dlrm-dcnv2"
MLPERF_BATCHES = 24
MLPERF_SCRATCHPAD_GIB = (5, 8)
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
""", ["breakdown", "gantt"]),
}


def _replay_rows(trace, capacity: int) -> list[dict]:
    rows = []
    for name in POLICIES:
        try:
            d = replay(trace, policy=name, capacity=capacity)  # its options' defaults
            rows.append(d.to_dict())
        except CapacityError as e:  # infeasible at this capacity: a result, not a crash
            rows.append({"policy": name, "capacity": capacity, "infeasible": str(e)})
    return rows


def _simulate_rows(trace, capacity: int, model: str = MODEL) -> list[dict]:
    rows = []
    for mode in MODES:
        try:
            rows.append(simulate(trace, mode=mode, hardware=HARDWARE, model=model,
                                 capacity=capacity).to_dict())
        except CapacityError as e:
            rows.append({"mode": mode, "infeasible": str(e)})
    return rows


def _print_replay(rows: list[dict], print_fn) -> None:
    print_fn(f"  {'policy':<12} {'hit rate':>9} {'misses':>12} {'evictions':>12}")
    for d in rows:
        if "infeasible" in d:
            print_fn(f"  {d['policy']:<12} infeasible: {d['infeasible']}")
        else:
            print_fn(f"  {d['policy']:<12} {d['hit_rate']:>9.3f} {d['misses']:>12,} "
                     f"{d['evictions']:>12,}")


def _print_modes(rows: list[dict], print_fn) -> None:
    sp = next((d for d in rows if d["mode"] == "scratchpipe" and "infeasible" not in d), None)
    print_fn(f"  {'mode':<15} {'iteration':>11} {'samples/s':>13} {'bottleneck':>10} "
             f"{'hit rate':>9} {'scratchpipe speedup':>20}")
    for d in rows:
        if "infeasible" in d:
            print_fn(f"  {d['mode']:<15} infeasible: {d['infeasible']}")
            continue
        speedup = (f"{d['iteration_time_s'] / sp['iteration_time_s']:.2f}x" if sp else "-")
        print_fn(f"  {d['mode']:<15} {d['iteration_time_s'] * 1e3:>8.3f} ms "
                 f"{d['throughput_samples_per_s']:>13,.0f} {d['bottleneck']:>10} "
                 f"{d['hit_rate']:>9.3f} {speedup:>20}")


def _mlperf_study(out: Path, print_fn, batches: int) -> dict:
    """MLPerf DLRM-DCNv2 on h100-pcie5: the host-memory modes at two scratchpad sizes."""
    model = load_model(MLPERF_MODEL)
    shape = model.generator_options()
    trace = generate("zipf", out / "trace-mlperf", batch_size=model.batch_size,
                     num_batches=batches, seed=SEED, alpha=ALPHA, show_progress=False,
                     **shape)
    per_sample = trace.num_lookups // trace.num_samples
    weights = model.embedding_bytes(optimizer_state=False) / 2**30
    print_fn(f"\n{MLPERF_MODEL}: {trace.num_tables} tables of {sum(shape['table_rows']):,} rows, "
             f"{weights:.1f} GiB of weights and {model.embedding_bytes() / 2**30 - weights:.1f} "
             f"GiB of {model.optimizer} state; {per_sample} lookups per sample "
             f"({shape['multi_hot']} multi-hot bags)")
    print_fn(f"Sampled {batches} batches of {model.batch_size} (Zipf {ALPHA} over the "
             f"first id of each bag, seed {SEED}): enough for every pipeline's steady state, "
             "with caches that start empty")
    result = {"model": MLPERF_MODEL, "batches": batches, "scratchpads": []}
    for gib in MLPERF_SCRATCHPAD_GIB:
        capacity = gib * 2**30 // model.row_bytes_with_state()
        modes = _simulate_rows(trace, capacity, model=MLPERF_MODEL)
        print_fn(f"\nScratchpad or cache of {gib} GiB of HBM ({capacity:,} rows with their "
                 f"state), on {HARDWARE}:")
        _print_modes(modes, print_fn)
        result["scratchpads"].append({"hbm_gib": gib, "capacity": capacity, "simulate": modes})
    return result


def demo(output="scratchsim-out", print_fn=print, batches: int = BATCHES,
         mlperf_batches: int = MLPERF_BATCHES) -> dict:
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
    options = {n: o.default for n, (o, _) in declared([*POLICIES.values(), *MODES.values()])
               .items() if o.default is not None}
    result = {"scratchsim_version": __version__, "seed": SEED, "model": MODEL,
              "hardware": HARDWARE, "options": options, "alpha": ALPHA, "batches": batches,
              "stats": stats.to_dict(), "capacities": []}
    for capacity_arg in CAPACITIES:
        capacity = resolve_capacity(trace, capacity_arg)
        replays = _replay_rows(trace, capacity)
        modes = _simulate_rows(trace, capacity)
        print_fn(f"\nCache of {capacity:,} rows ({capacity_arg} of the distinct rows)")
        print_fn("Replay (hit rate = hits / distinct rows of each batch, summed):")
        _print_replay(replays, print_fn)
        settings = {k: v for mode in MODES for k, v in make_mode(mode).settings().items()}
        print_fn(f"Training on {HARDWARE} with {MODEL} (" + ", ".join(
            f"{k.replace('_', ' ')} {v}" for k, v in settings.items()) + "):")
        _print_modes(modes, print_fn)
        result["capacities"].append({"capacity": capacity, "capacity_arg": capacity_arg,
                                     "replay": replays, "simulate": modes})
    result["mlperf"] = _mlperf_study(out, print_fn, mlperf_batches)
    with atomic_open(out / "results.json", "w") as f:
        f.write(json.dumps(result, indent=2) + "\n")
    figures = []
    for stem, (axes, names) in FIGURE_SWEEPS.items():
        spec = out / f"{stem}.toml"
        spec.write_text(f'[trace]\npath = "trace"\n\n{axes}')
        run_sweep(spec, out / f"{stem}.csv", progress=False)
        figures += make_figures(out / f"{stem}.csv", out / "figures", only=names)
    print_fn(f"\nFigures: {', '.join(str(p) for p in figures if p.suffix == '.png')}")
    print_fn(f"\nResults in {out / 'results.json'} ({time.perf_counter() - t0:.0f} s)")
    return result
