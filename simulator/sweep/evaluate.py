"""One sweep point, evaluated: a pure function of the point's configuration and trace.

evaluate() takes the point's configuration (spec.CONFIG_KEYS, the options, the hardware and
model keys it overrides) plus `trace_dir` (where its trace lies) and `tables_from_trace` (the
model's table sizes give way to the trace's), and returns flat metrics: numbers and strings
only, so that a results row is one CSV line.
"""

from __future__ import annotations

import dataclasses
import json

from ..caches import POLICIES, replay
from ..caches.mrc import mrc
from ..errors import CapacityError
from ..hardware import load_hardware, split_overrides
from ..pipeline import MODES, simulate
from ..trace import open_trace, trace_stats
from ..workload import load_model
from .spec import CONFIG_KEYS, registered_options

# Iterations of the timeline kept for the Gantt figure.
TIMELINE_HEAD_ITERATIONS = 6
# Replay totals and summaries that become result columns (the rest are configuration).
_REPLAY_METRICS = ("lookups", "unique", "hits", "misses", "evictions", "writebacks",
                   "conflict_misses", "hit_rate", "peak_occupancy", "min_capacity",
                   "train_hit_rate", "hot_rows")


def _setting(point: dict):
    """The point's hardware profile and model, with the keys it overrides."""
    options, task = registered_options(), ("trace_dir", "tables_from_trace", "point_id")
    hardware, model = split_overrides({k: v for k, v in point.items() if v is not None and k
                                       not in CONFIG_KEYS + task and k not in options})
    model = load_model(point["model"], {**model, "batch_size": point["batch_size"]}
                       if point["batch_size"] else model)
    if point["tables_from_trace"]:
        model = dataclasses.replace(model, table_rows=None)
    return load_hardware(point["hardware"], hardware), model


def _replay_metrics(d: dict) -> dict:
    out = {k: d[k] for k in _REPLAY_METRICS if k in d}
    out["capacity_rows"] = d["capacity"]
    return out


def _evaluate_replay(point: dict, trace) -> dict:
    options = POLICIES[point["policy"]].resolve_options(point, strict=False)
    out = _replay_metrics(replay(trace, policy=point["policy"], capacity=point["capacity"],
                                 **options).to_dict())
    if point["policy"] == "lru":  # figure 1 draws the one-pass curve beside the replayed points
        curve = mrc(trace)
        out["lru_curve"] = json.dumps([[int(c), 1.0 - curve.miss_ratio(c)]
                                       for c in curve.capacities()])
    return out


def _evaluate_simulate(point: dict, trace) -> dict:
    hw, model = _setting(point)
    result = simulate(trace, mode=point["mode"], hardware=hw, model=model,
                      capacity=point["capacity"],
                      **MODES[point["mode"]].resolve_options(point, strict=False))
    d = result.to_dict()
    out = {k: d[k] for k in ("iteration_time_s", "iteration_time_p50_s", "iteration_time_p99_s",
                             "throughput_samples_per_s", "bottleneck", "hit_rate", "h2d_bytes",
                             "d2h_bytes", "iterations", "warmup_iterations")}
    out["link_h2d_gb_per_s"] = hw.link_h2d_gb_per_s  # after overrides (figure 5's axis)
    out.update({f"busy_{r}": v for r, v in d["busy"].items()})
    out.update({f"breakdown_{s}": v for s, v in d["breakdown"].items()})
    if d["replay"]:
        out.update({k: v for k, v in _replay_metrics(d["replay"]).items() if k != "hit_rate"})
    head = [list(row) for row in result.timeline() if row[0] < TIMELINE_HEAD_ITERATIONS]
    out["timeline_head"] = json.dumps(head)
    return out


def _evaluate_stats(trace) -> dict:
    s = trace_stats(trace)
    out = {k: getattr(s, k) for k in ("lookups", "unique_rows", "unique_per_batch_mean",
                                      "unique_per_batch_max", "coverage_top1pct",
                                      "coverage_top10pct", "coverage_top20pct", "zipf_alpha")}
    out.update({f"working_set_{w}": size for w, size in sorted(s.working_set.items())})
    return out


def evaluate(point: dict) -> dict:
    """The metrics of one point; an infeasible capacity is a result ({"error": ...})."""
    trace = open_trace(point["trace_dir"])
    try:
        if point["kind"] == "replay":
            return _evaluate_replay(point, trace)
        if point["kind"] == "simulate":
            return _evaluate_simulate(point, trace)
        return _evaluate_stats(trace)
    except CapacityError as e:
        return {"error": str(e)}
