"""`scratchsim validate`: train configurations for real and simulate the same ones with the same
trace, model and hardware profile; report measured against predicted per-iteration time, how
noisy the machine was, and whether the predictions meet the targets.

In its parts: grid.py (what runs: the grids and the held-out check, from the mode registry),
measure.py (rounds, a seeded interleaved order, calibration in every round, steal time),
scores.py (MAPE, Kendall's tau, spread, the noise floor, the targets), report.py (results.csv,
summary.json, the table) and plots/validation.py (the figure).

A held-out check (validate(trace=..., model=...)) runs the five modes on a given trace and
model instead of a grid: cache modes at 25%, scratchpipe with a lookahead of 2 where it fits.

Measurement: torch's thread count is pinned for the whole run (calibration included; one
thread on the CPU unless told otherwise) and restored afterwards. A run's figure is the median
of its per-iteration seconds after the warm-up (pipeline.default_warmup: the pipeline fill, or
a tenth of the run); a configuration's is the median of its rounds' figures. The prediction is
simulate() with the same trace, model, profile, capacity, lookahead, victim and warm-up, and
its median (iteration_time_p50_s); per-stage times are medians too, on both sides (the stage
names are each side's own).

The summary says PASS or FAIL against scores.TARGETS (`scratchsim validate` exits 1 on FAIL).
Output, written to a temporary directory and renamed into place: results.csv,
predicted_vs_measured.png, summary.json, and profile.toml (the median of the rounds'
calibrations) when this machine was calibrated.
"""

from __future__ import annotations

import shutil
import time
from dataclasses import replace
from pathlib import Path

import numpy as np

from ..._atomic import atomic_dir, output_path
from ..._version import __version__
from ...caches import min_capacity, resolve_capacity
from ...errors import OptionError
from ...hardware import load_hardware
from ...pipeline import make_mode, simulate
from ...trace import generate, open_trace
from . import scores
from .grid import FULL, QUICK, Grid, grid_model, held_out_configs, label, mode_options
from .measure import STEAL_LIMIT, measure_rounds, median_profile, profile_spread
from .report import FIXED_COLUMNS, format_summary, write
from .scores import TARGETS, kendall_tau, rank_pairs

# On the CPU one thread by default: a run that shares its cores with other work is then slowed,
# not stalled (two OpenMP threads on two busy cores wait for each other at every op).
DEFAULT_CPU_THREADS = 1
ROUNDS = 4  # an even number: the noise floor scores one half of the rounds against the other
# Each round's calibration takes this many timed repeats of every micro-benchmark: over the
# rounds, as many as one calibration on its own takes, interleaved with the runs.
CALIBRATION_REPEATS = 3
# Before the rounds every configuration trains this many batches once, unrecorded (pyperf's
# warm-ups): the process's first runs pay for its allocator's growth and first calls.
WARM_UP_ITERATIONS = 12


def validate(output, device: str = "cpu", profile=None, quick: bool = False, seed: int = 0,
             trace=None, model=None, threads: int | None = None, rounds: int = ROUNDS,
             progress=None) -> dict:
    """Run the grid (QUICK with quick, else FULL), or with `trace` the held-out check on that
    trace and `model` (a preset, a TOML file or a ModelConfig; default: the backend's model),
    each configuration in `rounds` rounds; write results.csv, predicted_vs_measured.png and
    summary.json into the directory `output`. profile: the hardware profile to predict with (a
    preset name or a TOML file); None calibrates this machine in every round and keeps the
    median as profile.toml. threads: torch's intra-op threads for the whole run, calibration
    included (default: 1 on the CPU, torch's current number on CUDA), restored at the end.
    progress: called with one line of text per run. Returns the summary."""
    from .. import backend_model
    from ..base import check_device, torch

    check_device(device)
    if model is not None and trace is None:
        raise OptionError("--model goes with --trace (the held-out check); the grid builds "
                          "its own models")
    if trace is not None and quick:
        raise OptionError("--quick shrinks the built-in grid; the held-out check (--trace) "
                          "runs its own five configurations")
    if threads is not None and int(threads) <= 0:
        raise OptionError(f"threads must be positive, got {threads}")
    if int(rounds) < 1:
        raise OptionError(f"rounds must be at least 1 (3 or more to see the noise), got {rounds}")
    held_out = None
    if trace is not None:
        held_out = open_trace(trace)
        model = backend_model(held_out, model)
        model.check_trace(held_out)
    output = output_path(output)
    previous_threads = torch.get_num_threads()
    threads = int(threads) if threads else DEFAULT_CPU_THREADS if device == "cpu" else \
        previous_threads
    started = time.perf_counter()
    torch.set_num_threads(threads)
    try:
        with atomic_dir(output, _replaceable) as work:  # refuses a foreign output before work
            hardware = None if profile is None else load_hardware(profile)
            if held_out is not None:
                workloads = _held_out(held_out, model)
                kind, description = "held-out", _describe_held_out(held_out, model,
                                                                    len(workloads[0][2]))
            else:
                grid = QUICK if quick else FULL
                kind, description = "quick" if quick else "full", grid.describe()
                workloads = _grid_workloads(grid, work, seed)
            context = {"device": device, "seed": int(seed),
                       "progress": progress or (lambda line: None)}
            items, skipped = _feasible(workloads, context["progress"])
            notes = _thread_notes(hardware, device, threads)
            measured = measure_rounds(
                [item["label"] for item in items], int(rounds), int(seed),
                measure=lambda k: _train(items[k], context),
                calibrate_round=None if hardware else lambda: _calibrate(device, quick),
                progress=context["progress"], warm_up=lambda k: _warm_up(items[k], context))
            if hardware is None:
                hardware = _median_profile(measured.profiles, work, output)
            configs = [_row(item, runs, _predict(item, hardware))
                       for item, runs in zip(items, measured.runs)]
            summary = _summary(kind, configs, skipped, description, hardware, device, threads,
                               int(seed), measured, notes)
            summary["wall_s"] = time.perf_counter() - started
            for path in work.glob("trace-*"):
                shutil.rmtree(path)
            write(work, configs, summary)
    finally:
        torch.set_num_threads(previous_threads)
    return summary


def _replaceable(directory: Path) -> bool:
    return (directory / "summary.json").is_file()


# -- what runs ------------------------------------------------------------------------------
def _grid_workloads(grid: Grid, work: Path, seed: int) -> list[tuple]:
    """(trace, model, configs) of every workload; the traces in `work`, removed at the end."""
    out = []
    configs = grid.configs()
    for batch_size in grid.batch_sizes:
        trace = generate("zipf", work / f"trace-b{batch_size}",
                         table_rows=[grid.rows_per_table] * grid.tables, batch_size=batch_size,
                         num_batches=grid.batches, seed=seed, alpha=grid.alpha,
                         show_progress=False)
        for dim in grid.dims:
            out.append((trace, grid_model(dim, batch_size),
                        [c for c in configs if (c["batch_size"], c["dim"]) == (batch_size, dim)]))
    return out


def _held_out(trace, model) -> list[tuple]:
    dim = model.embedding_dim if isinstance(model.embedding_dim, int) else list(model.embedding_dim)
    return [(trace, model, held_out_configs(trace.batch_size, dim))]


def _describe_held_out(trace, model, configurations: int) -> dict:
    from .grid import HELD_OUT_CAPACITY, HELD_OUT_LOOKAHEAD, HELD_OUT_VICTIMS
    return {"kind": "held-out", "trace": str(trace.path), "model": model.name,
            "model_source": model.source, "tables": trace.num_tables,
            "table_rows": [int(r) for r in trace.table_rows],
            "batch_size": trace.batch_size, "batches": trace.num_batches,
            "capacities": [HELD_OUT_CAPACITY], "lookaheads": [HELD_OUT_LOOKAHEAD],
            "victims": list(HELD_OUT_VICTIMS),
            "configurations": configurations}


def _feasible(workloads, progress) -> tuple[list[dict], list[dict]]:
    """The configurations to run, each with its trace, model, mode options, capacity in rows
    and warm-up; and those skipped because their capacity cannot hold what they need."""
    items, skipped = [], []
    for trace, model, configs in workloads:
        needs = {}  # lookahead -> the distinct rows of the largest window of W + 1 batches
        for config in configs:
            options = mode_options(config)
            mode = make_mode(config["mode"], **options)
            item = {"config": config, "label": label(config), "trace": trace, "model": model,
                    "options": options, "capacity": None,
                    "warmup": mode.warmup(trace.num_batches)}
            if config["capacity_pct"] is not None:
                capacity = resolve_capacity(trace, f"{config['capacity_pct']}%")
                window = mode.window()
                if window not in needs:
                    needs[window] = min_capacity(trace, lookahead=window)
                if capacity < needs[window]:
                    what = ("its largest batch" if window == 0 else
                            f"a window of {window + 1} batches")
                    note = (f"{item['label']}: {capacity:,} rows cannot hold {what} "
                            f"({needs[window]:,} distinct rows)")
                    skipped.append({"config": item["label"], **config, "capacity_rows": capacity,
                                    "needed_rows": needs[window], "reason": note})
                    progress(f"skipped: {note}")
                    continue
                item["capacity"] = capacity
            items.append(item)
    return items, skipped


# -- measuring and predicting ---------------------------------------------------------------
def _settings(item) -> dict:
    return dict(item["options"], **({} if item["capacity"] is None
                                    else {"capacity": item["capacity"]}))


def _run(item, context, iterations: int | None = None):
    from .. import train
    return train(item["trace"], item["config"]["mode"], device=context["device"],
                 model=item["model"], seed=context["seed"], iterations=iterations,
                 **_settings(item))


def _warm_up(item, context) -> None:
    _run(item, context, min(WARM_UP_ITERATIONS, item["trace"].num_batches))


def _train(item, context) -> tuple[float, dict]:
    result = _run(item, context)
    w = item["warmup"]
    return (float(np.median(result.iteration_seconds[w:])),
            {k: float(np.median(v[w:])) for k, v in result.stage_seconds.items()})


def _predict(item, hardware):
    return simulate(item["trace"], item["config"]["mode"], hardware=hardware,
                    model=item["model"], warmup=item["warmup"], **_settings(item))


def _calibrate(device: str, quick: bool) -> dict:
    from ..calibration import calibrate
    return calibrate(device, quick=quick, repeats=CALIBRATION_REPEATS)


def _median_profile(profiles, work: Path, output: Path):
    from ..calibration import write_profile
    write_profile(median_profile(profiles), work / "profile.toml")
    # Recorded where it will be once the output is in place.
    return replace(load_hardware(work / "profile.toml"), source=str(output / "profile.toml"))


def _thread_notes(hardware, device: str, threads: int) -> list[str]:
    """A profile measured with other torch threads than this run's predicts other runs."""
    if hardware is None or hardware.kind != "cpu" or device != "cpu" \
            or hardware.cpu_threads == threads:
        return []
    return [f"profile {hardware.name} was calibrated with {hardware.cpu_threads} torch "
            f"threads, this run uses {threads}: calibrate with --threads {threads} (or "
            f"validate without --profile) for predictions of these runs"]


def _predicted_stages(result) -> dict[str, float]:
    """Median seconds of each simulated stage after the warm-up."""
    w = result.warmup
    return {stage: float(np.median(result.schedule.end[stage][w:]
                                   - result.schedule.start[stage][w:]))
            for stage in result.schedule.stages}


def _row(item, runs, predicted) -> dict:
    rounds_s = [r.seconds for r in runs]
    measured_s = scores.figure(rounds_s)
    predicted_s = float(predicted.to_dict()["iteration_time_p50_s"])
    spread = scores.spread(rounds_s)
    return {"config": item["label"], **item["config"], "capacity_rows": item["capacity"],
            "warmup": item["warmup"], "iterations": item["trace"].num_batches,
            "measured_s": measured_s, "predicted_s": predicted_s,
            "error_pct": 100.0 * (predicted_s - measured_s) / measured_s,
            "rounds_s": rounds_s, "rounds_steal": [r.steal for r in runs],
            "spread_pct": 100.0 * spread, "unstable": spread > scores.UNSTABLE_SPREAD,
            "stolen_rounds": sum(r.stolen for r in runs),
            "redone_rounds": sum(r.redone for r in runs),
            "measured_stages": {k: float(np.median([r.stages.get(k, np.nan) for r in runs]))
                                for k in runs[0].stages},
            "predicted_stages": _predicted_stages(predicted)}


# -- the summary ----------------------------------------------------------------------------
def _noise(configs, measured) -> dict:
    steals = [s for c in configs for s in c["rounds_steal"] if s is not None]
    spreads = [c["spread_pct"] / 100 for c in configs]
    moved = None
    if len(measured.profiles) > 1:
        by_key = profile_spread(measured.profiles)
        moved = {"median": float(np.median(list(by_key.values()))),
                 "max": max(by_key.values()), "max_key": max(by_key, key=by_key.get),
                 "cpu.dispatch_us": by_key.get("cpu.dispatch_us", 0.0), "by_key": by_key}
    return {"noise_floor": scores.noise_floor([c["rounds_s"] for c in configs]),
            "median_spread": float(np.median(spreads)) if spreads else None,
            "unstable": sum(c["unstable"] for c in configs),
            "unstable_spread": scores.UNSTABLE_SPREAD,
            "steal_available": bool(steals) or any(s is not None
                                                   for s in measured.calibration_steal),
            "steal_max": max(steals) if steals else None,
            "steal_median": float(np.median(steals)) if steals else None,
            "calibration_steal": measured.calibration_steal,
            "round_steal": measured.round_steal,
            "steal_limit": STEAL_LIMIT,
            "stolen_runs": sum(c["stolen_rounds"] for c in configs),
            "redone_runs": sum(c["redone_rounds"] for c in configs),
            "orders": measured.orders, "profile_spread": moved}


def _summary(kind, configs, skipped, description, hardware, device, threads, seed, measured,
             notes) -> dict:
    measured_s = [c["measured_s"] for c in configs]
    predicted_s = [c["predicted_s"] for c in configs]
    mape = scores.mape(measured_s, predicted_s)
    worst = None
    if configs:
        c = max(configs, key=lambda c: abs(c["error_pct"]))
        worst = {"config": c["config"], "error": abs(c["error_pct"]) / 100,
                 "error_pct": c["error_pct"], "measured_s": c["measured_s"],
                 "predicted_s": c["predicted_s"]}
    concordant, discordant, tied = rank_pairs(measured_s, predicted_s)
    tau = kendall_tau(measured_s, predicted_s)
    checks = scores.checks(kind, mape, tau, worst["error"] if worst else None)
    noise = _noise(configs, measured)
    return {
        "kind": kind, "device": device, "profile": hardware.name,
        "profile_source": hardware.source, "threads": threads, "seed": seed,
        "version": __version__, "quick": kind == "quick", "grid": description,
        "rounds": len(measured.orders), "configs": configs, "skipped": skipped,
        "mape": mape, "worst": worst, "kendall_tau": tau,
        "kendall_pairs": {"concordant": concordant, "discordant": discordant, "tied": tied,
                          "tie_within": scores.TIE},
        "noise_floor": noise["noise_floor"], "noise": noise, "notes": notes,
        "targets": TARGETS[kind], "checks": checks,
        "passed": bool(configs) and all(c["ok"] for c in checks),
    }


__all__ = ["FIXED_COLUMNS", "FULL", "QUICK", "ROUNDS", "TARGETS", "Grid", "format_summary",
           "kendall_tau", "rank_pairs", "validate"]
