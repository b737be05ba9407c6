"""`scratchsim validate`: train configurations for real and simulate the same ones with the same
trace, model and hardware profile; report measured against predicted per-iteration time, and
whether the predictions meet the targets.

The grid (Grid, FULL and QUICK below): workloads of every batch size x embedding dim, each with
its own model (grid_model) and, per batch size, a seeded Zipf trace shared by both dims; per
workload the configurations of workload_configs, at capacities given as percentages of the
trace's distinct rows. The trace sizes are chosen so that every capacity holds what a batch
and a scratchpad window need (min_capacity); a configuration that would not fit is skipped
and the summary says why. Calibration never sees these configurations: it runs
micro-benchmarks only.

A held-out check (validate(trace=..., model=...)) runs the five modes on a given trace and
model instead: gpu-only, hybrid, cache and cache-prefetch at 25%, scratchpipe at 25% with a
lookahead of 2 where that fits.

Measurement: torch's thread count is pinned for the whole run (calibration included; one
thread on the CPU unless told otherwise) and restored afterwards; each configuration trains
once, and its iteration time is the median of the per-iteration seconds after the warm-up
(pipeline.default_warmup: the pipeline fill, or a tenth of the run). The prediction is
simulate() with the same trace, model, profile, capacity, lookahead, victim and warm-up, and
its median (iteration_time_p50_s); per-stage times are medians too, on both sides, after the
same warm-up (the stage names are each side's own).

Scores: MAPE (a fraction), the worst configuration (largest |error|), and Kendall's tau of the
ranking over all pairs of configurations (rank_pairs: measured times within 5% are a tie).
The summary says PASS or FAIL against TARGETS; the command reports, it does not fail.

Output, written to a temporary directory and renamed into place: results.csv (one row per
configuration, with the per-stage medians measured and predicted), predicted_vs_measured.png,
summary.json, and profile.toml when this machine was calibrated first.
"""

from __future__ import annotations

import csv
import itertools
import json
import math
import shutil
import time
from dataclasses import asdict, dataclass, replace
from pathlib import Path

import numpy as np

from .._atomic import atomic_dir, output_path
from .._version import __version__
from ..caches import min_capacity, resolve_capacity
from ..errors import OptionError
from ..hardware import load_hardware
from ..pipeline import MODES, make_mode, simulate
from ..trace import generate, open_trace
from ..workload import ModelConfig

TIE = 0.05  # measured times within 5% of each other are a tie for Kendall's tau
TARGETS = {"full": {"mape": 0.10, "kendall_tau": 0.8, "worst": 0.25},
           "quick": {"mape": 0.15},
           "held-out": {"mape": 0.15}}
# On the CPU one thread by default: a run that shares its cores with other work is then slowed,
# not stalled (two OpenMP threads on two busy cores wait for each other at every op).
DEFAULT_CPU_THREADS = 1
HELD_OUT_CAPACITY = 25  # % of the trace's distinct rows
HELD_OUT_LOOKAHEAD = 2
HELD_OUT_VICTIMS = ("lru",)


@dataclass(frozen=True)
class Grid:
    """A validation grid: Zipf traces of `tables` x `rows_per_table` rows and `batches` batches
    (one per batch size), a model per embedding dim, and per workload the configurations of
    configs()."""

    name: str
    tables: int
    rows_per_table: int
    batches: int
    alpha: float
    batch_sizes: tuple[int, ...]
    dims: tuple[int, ...]
    capacities: tuple[int, ...]  # % of the trace's distinct rows
    lookaheads: tuple[int, ...]
    victims: tuple[str, ...]
    # True: each (capacity, lookahead) of a workload runs one victim policy, taken in turn
    # and shifted by one from workload to workload, so every (capacity, lookahead, victim)
    # still runs on some workloads at half the cost; False: every victim everywhere.
    alternate_victims: bool = False

    def workloads(self) -> list[tuple[int, int]]:
        return [(b, d) for b in self.batch_sizes for d in self.dims]

    def configs(self) -> list[dict]:
        """Every configuration, workload by workload (see workload_configs)."""
        out = []
        for j, (batch_size, dim) in enumerate(self.workloads()):
            if self.alternate_victims:
                victims = ((self.victims[k % len(self.victims)],) for k in itertools.count(j))
            else:
                victims = itertools.repeat(self.victims)
            out += workload_configs(batch_size, dim, self.capacities, self.lookaheads, victims)
        return out

    def describe(self) -> dict:
        return dict(asdict(self), kind=self.name, workloads=[list(w) for w in self.workloads()],
                    configurations=len(self.configs()), generator="zipf")


def workload_configs(batch_size, dim, capacities, lookaheads, victims) -> list[dict]:
    """A workload's configurations: batch_size, dim, mode, capacity_pct, lookahead, victim
    (None where the mode has no such setting). gpu-only and hybrid; cache and cache-prefetch
    at each capacity; scratchpipe at each capacity x lookahead with the victim policies of
    the tuple that the iterator `victims` gives for that pair."""
    base = {"batch_size": batch_size, "dim": dim, "capacity_pct": None, "lookahead": None,
            "victim": None}
    out = [dict(base, mode="gpu-only"), dict(base, mode="hybrid")]
    for pct in capacities:
        out += [dict(base, mode=m, capacity_pct=pct) for m in ("cache", "cache-prefetch")]
        for w in lookaheads:
            out += [dict(base, mode="scratchpipe", capacity_pct=pct, lookahead=w, victim=v)
                    for v in next(victims)]
    return out


# Sizes measured on the 2-core development machine: every capacity fits (the 5 batches a
# lookahead of 4 holds touch at most 9% of the distinct rows, one batch 3%); the full run
# (68 configurations) takes 2-3 minutes with calibration, the quick one (10) 10-20 seconds.
FULL = Grid("full", tables=8, rows_per_table=100_000, batches=150, alpha=1.05,
            batch_sizes=(512, 2048), dims=(16, 64), capacities=(10, 25, 50),
            lookaheads=(1, 2, 4), victims=("lru", "future"), alternate_victims=True)
QUICK = Grid("quick", tables=4, rows_per_table=20_000, batches=150, alpha=1.05,
             batch_sizes=(256,), dims=(16,), capacities=(10, 50), lookaheads=(2,),
             victims=("lru", "future"))


def grid_model(dim: int, batch_size: int) -> ModelConfig:
    """The model of a grid workload: the backend's default model at this dim (the dot
    interaction needs the bottom MLP's output equal to the embedding dim)."""
    from . import DEFAULT_MODEL
    return ModelConfig.from_dict(
        dict(DEFAULT_MODEL, name=f"validation-d{dim}", embedding_dim=dim, batch_size=batch_size,
             bottom_mlp=DEFAULT_MODEL["bottom_mlp"][:-1] + [dim]), source="validation grid")


# -- scores -------------------------------------------------------------------------------------
def rank_pairs(measured, predicted, tie: float = TIE) -> tuple[int, int, int]:
    """(concordant, discordant, tied) over all pairs of configurations. A pair is tied when
    its measured times are within `tie` of the larger (|a - b| <= tie * max(a, b)); otherwise
    it is concordant when the prediction orders it the same way, and discordant when it
    orders it the other way or not at all (equal predictions)."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if m.shape != p.shape or m.ndim != 1:
        raise ValueError("measured and predicted must be 1-d and of the same length")
    i, j = np.triu_indices(len(m), k=1)
    tied = np.abs(m[i] - m[j]) <= tie * np.maximum(m[i], m[j])
    agree = np.sign(m[i] - m[j]) * np.sign(p[i] - p[j])
    concordant = int(np.sum(~tied & (agree > 0)))
    return concordant, int(np.sum(~tied)) - concordant, int(np.sum(tied))


def kendall_tau(measured, predicted, tie: float = TIE) -> float | None:
    """Kendall's tau of the predicted ranking against the measured one, (C - D) / (C + D)
    over the pairs rank_pairs does not tie; None when every pair is tied."""
    concordant, discordant, _ = rank_pairs(measured, predicted, tie)
    if concordant + discordant == 0:
        return None
    return (concordant - discordant) / (concordant + discordant)


def _checks(kind: str, mape: float, tau: float | None, worst: float) -> list[dict]:
    values = {"mape": mape, "kendall_tau": tau, "worst": worst}
    out = []
    for metric, target in TARGETS[kind].items():
        value = values[metric]
        at_least = metric == "kendall_tau"  # tau has a floor, the errors a ceiling
        ok = value is not None and (value >= target if at_least
                                    else math.isfinite(value) and value <= target)
        out.append({"metric": metric, "value": value, "target": target,
                    "comparison": ">=" if at_least else "<=", "ok": bool(ok)})
    return out


# -- running ------------------------------------------------------------------------------------
def validate(output, device: str = "cpu", profile=None, quick: bool = False, seed: int = 0,
             trace=None, model=None, threads: int | None = None, progress=None) -> dict:
    """Run the grid (QUICK with quick, else FULL), or with `trace` the held-out check on that
    trace and `model` (a preset, a TOML file or a ModelConfig; default: the backend's model);
    write results.csv, predicted_vs_measured.png and summary.json into the directory
    `output`. profile: the hardware profile to predict with (a preset name or a TOML file);
    None calibrates this machine first and keeps the result as profile.toml. threads: torch's
    intra-op threads for the whole run, calibration included (default: 1 on the CPU, torch's
    current number on CUDA), restored at the end. progress: called with one line of text per
    configuration. Returns the summary."""
    from . import backend_model, calibrate
    from .base import check_device, torch

    check_device(device)
    if model is not None and trace is None:
        raise OptionError("--model goes with --trace (the held-out check); the grid builds "
                          "its own models")
    if trace is not None and quick:
        raise OptionError("--quick shrinks the built-in grid; the held-out check (--trace) "
                          "runs its own five configurations")
    if threads is not None and int(threads) <= 0:
        raise OptionError(f"threads must be positive, got {threads}")
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
            if profile is None:
                calibrate(work / "profile.toml", device, quick=quick)
                # Recorded where it will be once the output is in place.
                hardware = replace(load_hardware(work / "profile.toml"),
                                   source=str(output / "profile.toml"))
            else:
                hardware = load_hardware(profile)
            context = {"device": device, "hardware": hardware, "seed": int(seed),
                       "progress": progress or (lambda line: None)}
            if held_out is not None:
                kind = "held-out"
                results, skipped, description = _run_held_out(held_out, model, context)
            else:
                kind = "quick" if quick else "full"
                results, skipped, description = _run_grid(QUICK if quick else FULL, work,
                                                          context)
            summary = _summary(kind, results, skipped, description, hardware, device, threads,
                               int(seed))
            summary["wall_s"] = time.perf_counter() - started
            _write(work, results, summary)
    finally:
        torch.set_num_threads(previous_threads)
    return summary


def _replaceable(directory: Path) -> bool:
    return (directory / "summary.json").is_file()


def _run_grid(grid: Grid, work: Path, context) -> tuple[list, list, dict]:
    results, skipped = [], []
    configs = grid.configs()
    for batch_size in grid.batch_sizes:
        path = work / f"trace-b{batch_size}"  # removed once its workloads have run
        trace = generate("zipf", path, table_rows=[grid.rows_per_table] * grid.tables,
                         batch_size=batch_size, num_batches=grid.batches, seed=context["seed"],
                         alpha=grid.alpha, show_progress=False)
        needs = _needs(trace, grid.lookaheads)
        for dim in grid.dims:
            model = grid_model(dim, batch_size)
            # configs() lists the workloads in this loop's order: k is the run's number
            for k, config in enumerate(configs, 1):
                if (config["batch_size"], config["dim"]) == (batch_size, dim):
                    _run_one(trace, model, config, needs, context, results, skipped,
                             f"[{k}/{len(configs)}]")
        del trace
        shutil.rmtree(path)
    return results, skipped, grid.describe()


def _run_held_out(trace, model, context) -> tuple[list, list, dict]:
    dim = model.embedding_dim if isinstance(model.embedding_dim, int) else list(model.embedding_dim)
    configs = workload_configs(trace.batch_size, dim, (HELD_OUT_CAPACITY,),
                               (HELD_OUT_LOOKAHEAD,), itertools.repeat(HELD_OUT_VICTIMS))
    needs = _needs(trace, (HELD_OUT_LOOKAHEAD,))
    results, skipped = [], []
    for k, config in enumerate(configs, 1):
        _run_one(trace, model, config, needs, context, results, skipped, f"[{k}/{len(configs)}]")
    description = {"kind": "held-out", "trace": str(trace.path), "model": model.name,
                   "model_source": model.source, "tables": trace.num_tables,
                   "table_rows": [int(r) for r in trace.table_rows],
                   "batch_size": trace.batch_size, "batches": trace.num_batches,
                   "capacities": [HELD_OUT_CAPACITY], "lookaheads": [HELD_OUT_LOOKAHEAD],
                   "victims": list(HELD_OUT_VICTIMS), "configurations": len(configs)}
    return results, skipped, description


def _needs(trace, lookaheads) -> dict[int, int]:
    """What each mode needs of a capacity, by lookahead W: the distinct rows of the largest
    window of W + 1 batches (cache: W = 0, the largest batch; cache-prefetch: W = 1)."""
    return {w: min_capacity(trace, lookahead=w) for w in sorted({0, 1, *lookaheads})}


def _label(config: dict) -> str:
    parts = [f"B{config['batch_size']} d{config['dim']}", config["mode"]]
    if config["capacity_pct"] is not None:
        parts.append(f"{config['capacity_pct']:g}%")
    if config["lookahead"] is not None:
        parts.append(f"W{config['lookahead']} {config['victim']}")
    return " ".join(parts)


def _run_one(trace, model, config, needs, context, results, skipped, counter) -> None:
    """Train and simulate one configuration and add its row to `results`, or a note to
    `skipped` when its capacity cannot hold what it needs."""
    from . import train
    mode = config["mode"]
    label = _label(config)
    options = {k: config[k] for k in ("lookahead", "victim") if config[k] is not None}
    settings = dict(options)
    if config["capacity_pct"] is not None:
        capacity = resolve_capacity(trace, f"{config['capacity_pct']}%")
        window = {"cache": 0, "cache-prefetch": 1}.get(mode, config["lookahead"])
        need = needs[window]
        if capacity < need:
            what = ("its largest batch" if window == 0 else
                    f"a window of {window + 1} batches")
            note = (f"{label}: {capacity:,} rows cannot hold {what} ({need:,} distinct rows)")
            skipped.append({"config": label, **config, "capacity_rows": capacity,
                            "needed_rows": need, "reason": note})
            context["progress"](f"{counter} skipped: {note}")
            return
        settings["capacity"] = capacity
    n = trace.num_batches
    warmup = make_mode(mode, **options).warmup(n)
    measured = train(trace, mode, device=context["device"], model=model, seed=context["seed"],
                     **settings)
    predicted = simulate(trace, mode, hardware=context["hardware"], model=model,
                         warmup=warmup, **settings)
    measured_s = float(np.median(measured.iteration_seconds[warmup:]))
    predicted_s = float(predicted.to_dict()["iteration_time_p50_s"])
    row = {"config": label, **config, "capacity_rows": settings.get("capacity"),
           "warmup": warmup, "iterations": n, "measured_s": measured_s,
           "predicted_s": predicted_s,
           "error_pct": 100.0 * (predicted_s - measured_s) / measured_s,
           "measured_stages": {k: float(np.median(v[warmup:]))
                               for k, v in measured.stage_seconds.items()},
           "predicted_stages": _predicted_stages(predicted)}
    results.append(row)
    context["progress"](f"{counter} {label}: measured {measured_s * 1e3:.3f} ms, predicted "
                        f"{predicted_s * 1e3:.3f} ms ({row['error_pct']:+.1f}%)")


def _predicted_stages(result) -> dict[str, float]:
    """Median seconds of each simulated stage after the warm-up (the stages breakdown()
    reports; its mean where the schedule does not give the spans)."""
    w = result.warmup
    out = {}
    for stage, mean in result.breakdown().items():
        try:
            spans = (np.asarray(result.schedule.end[stage])[w:]
                     - np.asarray(result.schedule.start[stage])[w:])
            out[stage] = float(np.median(spans)) if len(spans) else float(mean)
        except (AttributeError, KeyError, TypeError, IndexError):
            out[stage] = float(mean)
    return out


def _summary(kind, results, skipped, description, hardware, device, threads, seed) -> dict:
    measured = np.array([r["measured_s"] for r in results], dtype=float)
    predicted = np.array([r["predicted_s"] for r in results], dtype=float)
    errors = np.abs(predicted - measured) / measured
    mape = worst = None
    if len(results):
        mape = float(np.mean(errors))
        k = int(np.argmax(errors))
        worst = {"config": results[k]["config"], "error": float(errors[k]),
                 "error_pct": results[k]["error_pct"], "measured_s": results[k]["measured_s"],
                 "predicted_s": results[k]["predicted_s"]}
    concordant, discordant, tied = rank_pairs(measured, predicted)
    tau = kendall_tau(measured, predicted)
    checks = _checks(kind, mape, tau, worst["error"] if worst else None)
    passed = bool(results) and all(c["ok"] for c in checks)
    return {
        "kind": kind, "device": device, "profile": hardware.name,
        "profile_source": hardware.source, "threads": threads, "seed": seed,
        "version": __version__, "quick": kind == "quick", "grid": description,
        "configs": results, "skipped": skipped,
        "mape": mape, "worst": worst, "kendall_tau": tau,
        "kendall_pairs": {"concordant": concordant, "discordant": discordant, "tied": tied,
                          "tie_within": TIE},
        # Kept for older readers: the predicted order is exactly the measured one.
        "ranking_agrees": bool(np.array_equal(np.argsort(measured, kind="stable"),
                                              np.argsort(predicted, kind="stable"))),
        "targets": TARGETS[kind], "checks": checks, "passed": passed,
    }


# -- output -------------------------------------------------------------------------------------
FIXED_COLUMNS = ("workload", "batch_size", "dim", "mode", "capacity_rows", "capacity_pct",
                 "lookahead", "victim", "warmup", "iterations", "measured_s", "predicted_s",
                 "error_pct")


def _write(work: Path, results, summary) -> None:
    stages = {side: list(dict.fromkeys(s for r in results for s in r[f"{side}_stages"]))
              for side in ("measured", "predicted")}
    columns = list(FIXED_COLUMNS) + [f"{side}_{s}_s" for side in stages for s in stages[side]]
    with open(work / "results.csv", "w", newline="") as f:
        writer = csv.DictWriter(f, fieldnames=columns)
        writer.writeheader()
        for r in results:
            row = {c: r.get(c) for c in FIXED_COLUMNS}
            row["workload"] = f"B{r['batch_size']} d{r['dim']}"
            row.update({f"{side}_{s}_s": r[f"{side}_stages"].get(s)
                        for side in stages for s in stages[side]})
            writer.writerow({k: "" if v is None else v for k, v in row.items()})
    (work / "summary.json").write_text(json.dumps(summary, indent=2) + "\n")
    _figure(results, summary, work / "predicted_vs_measured.png")


def _figure(results, summary, path) -> None:
    import matplotlib
    matplotlib.use("Agg")
    import matplotlib.pyplot as plt
    from matplotlib.ticker import FuncFormatter, LogLocator, NullFormatter

    from ..plots.style import mode_color  # the colours every figure gives the modes
    fig, ax = plt.subplots(figsize=(5.5, 5.5))
    for mode in MODES:
        points = [(r["measured_s"] * 1e3, r["predicted_s"] * 1e3) for r in results
                  if r["mode"] == mode]
        if points:
            ax.scatter(*zip(*points), label=mode, color=mode_color(mode), s=18, alpha=0.8)
    values = [v for r in results for v in (r["measured_s"] * 1e3, r["predicted_s"] * 1e3)]
    if values:
        line = [min(values) / 1.5, max(values) * 1.5]
        ax.plot(line, line, color="gray", linewidth=0.8, label="y = x")
        ax.set(xscale="log", yscale="log")
        for axis in (ax.xaxis, ax.yaxis):
            axis.set_major_locator(LogLocator(base=10, subs=(1.0, 2.0, 5.0)))
            axis.set_major_formatter(FuncFormatter(lambda v, _: f"{v:g}"))
            axis.set_minor_formatter(NullFormatter())
        ax.legend(fontsize=8)
    ax.set(xlabel="measured ms per iteration (median)",
           ylabel="predicted ms per iteration (median)",
           title=f"{KIND_NAMES[summary['kind']]} on {summary['device']}, profile "
                 f"{summary['profile']}\n"
                 f"MAPE {_or_na(summary['mape'], '.1%')}, Kendall τ "
                 f"{_or_na(summary['kendall_tau'], '.2f')}: {_verdict(summary)}")
    fig.tight_layout()
    fig.savefig(path, dpi=120)
    plt.close(fig)


KIND_NAMES = {"full": "full grid", "quick": "quick grid", "held-out": "held-out check"}


def _or_na(value, spec: str) -> str:
    return "n/a" if value is None else format(value, spec)


def _verdict(summary: dict) -> str:
    return "PASS" if summary["passed"] else "FAIL"


def format_summary(summary: dict, output=None) -> str:
    """The readable table and the PASS/FAIL line of `scratchsim validate`."""
    header = (f"{'workload':<11} {'mode':<15} {'capacity':>15} {'W':>2} {'victim':<6} "
              f"{'measured ms':>11} {'predicted ms':>12} {'error':>8}")
    lines = [header]
    for c in summary["configs"]:
        capacity = ("" if c["capacity_rows"] is None
                    else f"{c['capacity_rows']:,} ({c['capacity_pct']:g}%)")
        lines.append(f"{'B%s d%s' % (c['batch_size'], c['dim']):<11} {c['mode']:<15} "
                     f"{capacity:>15} {'' if c['lookahead'] is None else c['lookahead']!s:>2} "
                     f"{c['victim'] or '':<6} {c['measured_s'] * 1e3:11.3f} "
                     f"{c['predicted_s'] * 1e3:12.3f} {c['error_pct']:+7.1f}%")
    for s in summary["skipped"]:
        lines.append(f"skipped: {s['reason']}")
    worst, pairs = summary["worst"], summary["kendall_pairs"]
    worst_text = "n/a" if worst is None else f"{worst['error']:.1%} ({worst['config']})"
    lines.append(
        f"{KIND_NAMES[summary['kind']]}, {len(summary['configs'])} configurations on "
        f"{summary['device']} (torch threads: {summary['threads']}), profile "
        f"{summary['profile']}: "
        f"MAPE {_or_na(summary['mape'], '.1%')}, worst {worst_text}, Kendall tau "
        f"{_or_na(summary['kendall_tau'], '.2f')} "
        f"({pairs['concordant']} concordant, {pairs['discordant']} discordant, "
        f"{pairs['tied']} tied pairs)")
    checks = []
    for c in summary["checks"]:
        if c["metric"] == "kendall_tau":
            value, target = _or_na(c["value"], ".3f"), c["target"]
        else:
            value, target = _or_na(c["value"], ".2%"), f"{c['target']:.0%}"
        checks.append(f"{c['metric']} {value} {c['comparison']} {target} "
                      f"{'ok' if c['ok'] else 'MISSED'}")
    lines.append(f"{_verdict(summary)} against the targets: "
                 + ", ".join(checks) + (f"; written to {output}" if output is not None else ""))
    return "\n".join(lines)
