"""Timing: the discrete-event model of each training mode (one module per mode, chosen by name).

simulate() replays the trace through the mode's cache (if it has one), prices every stage of
every batch with the hardware profile and the model (costs.py), runs the mode's resource
programs in SimPy (engine.py) and summarises the schedule.
"""

from __future__ import annotations

import csv
from dataclasses import dataclass, field

import numpy as np

from .._atomic import atomic_open
from .._version import __version__
from ..caches import ReplayResult
from ..caches.base import batch_counts, resolve_capacity
from ..errors import CapacityError, OptionError
from ..hardware import HardwareProfile, load_hardware
from ..trace import Trace, open_trace
from ..workload import ModelConfig, load_model
from . import engine, ops
from .cache import Cache
from .cache_prefetch import CachePrefetch
from .costs import BatchWork, StageCosts
from .gpu_only import GpuOnly
from .hybrid import Hybrid
from .mode import MODES, Mode, default_warmup, get_mode, issue, make_mode, register_mode
from .scratchpipe import ScratchPipe

for _cls in (GpuOnly, Hybrid, Cache, CachePrefetch, ScratchPipe):
    register_mode(_cls)


@dataclass
class SimulationResult:
    mode: str
    config: dict
    schedule: engine.Schedule
    work: BatchWork
    bytes_h2d: int
    bytes_d2h: int
    hit_rate: float
    warmup: int
    settings: dict  # the mode's options
    replay: dict = field(default_factory=dict)
    op_counts: dict = field(default_factory=dict)  # stage -> framework ops per batch
    # stage -> resource -> seconds per batch of the stage's work that resource does, for the
    # stages whose span holds the work of several (the GPU stages on kind cuda); any other
    # stage's span is its resource's work.
    shares: dict = field(default_factory=dict)

    @property
    def iteration_end(self) -> np.ndarray:
        """When each batch's training step finished."""
        return self.schedule.end["train"]

    @property
    def iteration_times(self) -> np.ndarray:
        """Time between consecutive training steps' ends (the first from time 0)."""
        return np.diff(self.iteration_end, prepend=0.0)

    def _window(self) -> tuple[float, float]:
        t0 = float(self.iteration_end[self.warmup - 1]) if self.warmup > 0 else 0.0
        return t0, float(self.iteration_end[-1])

    @property
    def steady_iteration_times(self) -> np.ndarray:
        return self.iteration_times[self.warmup:]

    @property
    def iteration_time(self) -> float:
        t0, t1 = self._window()
        return (t1 - t0) / (len(self.work) - self.warmup)

    @property
    def throughput(self) -> float:
        t0, t1 = self._window()
        return float(self.work.samples[self.warmup:].sum()) / (t1 - t0) if t1 > t0 else float("inf")

    def busy(self) -> dict[str, float]:
        """Fraction of the steady-state window each resource works. A stage's span is its
        resource's work, but for a stage with shares: a GPU stage's span also holds its
        copies and the host's part of its ops (its dispatch; hybrid's pooling and row
        updates), which the GPU waits out; each resource counts its share of such a span,
        pro rata (the host's share is the stage's issue step, on its host thread)."""
        t0, t1 = self._window()
        out = dict.fromkeys(engine.RESOURCES, 0.0)
        if t1 <= t0:
            return out
        for stage, resource in self.schedule.stages.items():
            s, e = self.schedule.start[stage], self.schedule.end[stage]
            span = np.clip(e, t0, t1) - np.clip(s, t0, t1)
            for r, seconds in self.shares.get(stage, {resource: e - s}).items():
                worked = np.divide(seconds, e - s, out=np.zeros(len(span)), where=e > s)
                out[r] += float(np.sum(span * worked) / (t1 - t0))
        return out

    @property
    def bottleneck(self) -> str:
        busy = self.busy()
        return max(busy, key=busy.get)

    def breakdown(self) -> dict[str, float]:
        """Mean seconds per iteration of each stage (steady state)."""
        w = self.warmup
        return {s: float(np.mean(self.schedule.end[s][w:] - self.schedule.start[s][w:]))
                for s in self.schedule.stages}

    def to_dict(self) -> dict:
        it = self.steady_iteration_times
        return {
            "mode": self.mode,
            "iteration_time_s": self.iteration_time,
            "iteration_time_p50_s": float(np.percentile(it, 50)),
            "iteration_time_p99_s": float(np.percentile(it, 99)),
            "throughput_samples_per_s": self.throughput,
            "bottleneck": self.bottleneck,
            "busy": self.busy(),
            "breakdown": self.breakdown(),
            "ops_per_iteration": {s: float(np.mean(c)) for s, c in self.op_counts.items()},
            "hit_rate": self.hit_rate,
            "h2d_bytes": self.bytes_h2d,
            "d2h_bytes": self.bytes_d2h,
            "iterations": len(self.work),
            "warmup_iterations": self.warmup,
            "replay": self.replay,
            "config": self.config,
        }

    def format(self) -> str:
        """A readable summary."""
        d = self.to_dict()
        c = self.config
        setting = [f"{k.replace('_', ' ')} {v}" for k, v in self.settings.items()]
        setting += [] if c["capacity"] is None else [f"capacity {c['capacity']:,} rows"]
        setting = f" ({', '.join(setting)})" if setting else ""
        ms = lambda x: f"{x * 1e3:.4g} ms"  # noqa: E731
        busy = ", ".join(f"{r} {v:.0%}" for r, v in d["busy"].items())
        lines = [
            f"mode          {self.mode}{setting}",
            f"hardware      {c['hardware']}"
            + (f" (calibrated with {c['profile_threads']} torch threads: it predicts runs "
               "with as many)" if "profile_threads" in c else "")
            + f"    model {c['model']}    trace {c['trace']}",
            f"iteration     {ms(d['iteration_time_s'])} mean, {ms(d['iteration_time_p50_s'])} "
            f"p50, {ms(d['iteration_time_p99_s'])} p99 (after {self.warmup} warm-up iterations)",
            f"throughput    {d['throughput_samples_per_s']:,.0f} samples/s",
            f"bottleneck    {d['bottleneck']} (busy: {busy})",
            f"hit rate      {d['hit_rate']:.3f}",
            f"traffic       H2D {d['h2d_bytes'] / 1e9:.3f} GB, D2H {d['d2h_bytes'] / 1e9:.3f} GB",
            "breakdown     " + ", ".join(f"{s} {ms(v)}" for s, v in d["breakdown"].items()),
        ]
        return "\n".join(lines)

    def timeline(self):
        """(batch, stage, resource, start, end) of every stage, in order of start."""
        rows = [(b, s, r, float(self.schedule.start[s][b]), float(self.schedule.end[s][b]))
                for s, r in self.schedule.stages.items() for b in range(len(self.work))]
        rows.sort(key=lambda x: (x[3], x[4], x[0]))
        return rows

    def write_timeline_csv(self, path) -> None:
        with atomic_open(path, "w", newline="") as f:
            w = csv.writer(f)
            w.writerow(("batch", "stage", "resource", "start_s", "end_s"))
            w.writerows(self.timeline())


def _gpu_stage_shares(stage_ops, prices: ops.Costs, n: int, full_duplex: bool) -> dict:
    """What each resource works of a GPU stage (kind cuda), in seconds per batch: the GPU
    its kernels' device time, each direction of the link its copies."""
    shares = {"gpu": sum((prices.device(op) for op in stage_ops), np.zeros(n))}
    for op in stage_ops:
        if op.kind == "copy":
            link = op.direction if full_duplex else "h2d"
            shares[link] = shares.get(link, np.zeros(n)) + prices.link(op)
    return shares


def _half_duplex(programs: dict, stage_order) -> dict:
    """One link for both directions (so the D2H stages run on h2d): its steps in batch
    order, a batch's copies in the order the mode runs its stages."""
    position = {s: i for i, s in enumerate(stage_order)}
    link = programs.pop("h2d", []) + programs.pop("d2h", [])
    programs["h2d"] = sorted(link, key=lambda step: (step[1], position[step[0]]))
    return programs


def _check_memory(mode: Mode, trace: Trace, hw: HardwareProfile, model: ModelConfig,
                  capacity: int | None, ignore_capacity: bool) -> None:
    if ignore_capacity:
        return
    tables = model.embedding_bytes(model.table_sizes(trace))
    gib = 2**30
    hint = "or pass --ignore-capacity"
    if mode.tables_on_device and tables > hw.hbm_capacity_bytes:
        raise CapacityError(f"the tables need {tables / gib:,.1f} GiB with their optimizer state "
                            f"but {hw.name} has {hw.gpu_hbm_capacity_gib:g} GiB of HBM; choose a "
                            f"mode that keeps them in host memory {hint}")
    if not mode.tables_on_device and tables > hw.dram_capacity_bytes:
        raise CapacityError(f"the tables need {tables / gib:,.1f} GiB but {hw.name} has "
                            f"{hw.cpu_dram_capacity_gib:g} GiB of host memory {hint}")
    if capacity is not None:
        cache = capacity * model.row_bytes_with_state(0)
        if cache > hw.hbm_capacity_bytes:
            raise CapacityError(f"a cache of {capacity:,} rows needs {cache / gib:,.1f} GiB but "
                                f"{hw.name} has {hw.gpu_hbm_capacity_gib:g} GiB of HBM; give a "
                                f"smaller --capacity {hint}")


def simulate(trace, mode: str = "scratchpipe", hardware="h100-pcie5", model="dlrm-kaggle",
             capacity=None, ignore_capacity: bool = False, warmup: int | None = None,
             replay_result: ReplayResult | None = None, **options) -> SimulationResult:
    """Predict the training timeline of a trace in one mode.

    hardware/model: a preset name, a TOML path, or a loaded profile/config.
    capacity: cache or scratchpad rows (or "X%" of the trace's distinct rows); needed by
    the modes with a cache. options: the mode's (MODES[mode].options, e.g. lookahead and
    victim); those of other modes are ignored. replay_result: reuse a replay already made
    with the same settings."""
    trace = open_trace(trace)
    hw = load_hardware(hardware)
    mdl = load_model(model)
    mdl.check_trace(trace)
    m = make_mode(mode, **options)
    cap = None
    if m.uses_cache:
        if capacity is None:
            raise OptionError(f"mode {mode} keeps a cache in HBM: give its --capacity (rows or "
                              "a percentage such as 20%)")
        cap = resolve_capacity(trace, capacity)
    _check_memory(m, trace, hw, mdl, cap, ignore_capacity)
    n = trace.num_batches
    samples = np.minimum(trace.batch_size, trace.num_samples - np.arange(n) * trace.batch_size)
    rep = replay_result if replay_result is not None else m.replay(trace, cap)
    if rep is not None:
        work = BatchWork(samples, rep.column("lookups"), rep.column("unique"),
                         rep.column("misses"), rep.column("evictions"))
    else:
        lookups, unique = batch_counts(trace)
        zeros = np.zeros(n, dtype=np.int64)
        work = BatchWork(samples, lookups, unique, zeros, zeros)
    costs = StageCosts(work, hw, mdl, trace.num_tables)
    stage_ops = m.stage_ops(costs)
    seconds = {s: costs.time(o) for s, o in stage_ops.items()}
    if hw.kind == "cpu":
        # One resource runs every op in order, as the backend does on the CPU: nothing
        # overlaps, so nothing waits for anything but its turn.
        stages = {s: ("cpu", d) for s, d in seconds.items()}
        schedule = engine.run(stages, {"cpu": m.serial_program(stages, n)}, lambda s, b: ())
        shares = {}
    else:
        programs = m.programs(n)
        if not hw.link_full_duplex:
            programs = _half_duplex(programs, stage_ops)
        where = {s: r for r, steps in programs.items() for s, _ in steps}
        # A host thread issues each GPU stage: it is busy with the stage's dispatch (and any
        # host work of the stage's ops) while the GPU runs the stage.
        gpu = [s for s in stage_ops if where[s] == "gpu"]  # in order: deterministic
        for s in gpu:
            seconds[issue(s)] = sum((costs.prices.host(op) for op in stage_ops[s]), np.zeros(n))
        stages = {s: (where[s], d) for s, d in seconds.items()}
        schedule = engine.run(stages, programs, lambda s, b: tuple(m.depends(s, b)) + (
            (engine.started(issue(s), b),) if s in gpu else ()))
        shares = {s: _gpu_stage_shares(stage_ops[s], costs.prices, n, hw.link_full_duplex)
                  for s in gpu}
    h2d_bytes, d2h_bytes = (int(np.sum(x)) for x in m.traffic(costs))
    config = {"trace": str(trace.path), "mode": mode, "hardware": hw.name, "model": mdl.name,
              "capacity": cap, **m.settings(), "batches": n, "batch_size": trace.batch_size,
              "trace_seed": trace.provenance.get("seed"), "scratchsim_version": __version__}
    if hw.kind == "cpu":  # a CPU's profile predicts runs with the torch threads it measured
        config["profile_threads"] = hw.cpu_threads
    replay_summary = {}
    if rep is not None:
        replay_summary = {k: v for k, v in rep.to_dict().items()
                          if k in ("policy", "capacity", "params", "hits", "misses", "evictions",
                                   "unique", "min_capacity", "train_hit_rate")}
    op_counts = {s: ops.count(o, n) for s, o in stage_ops.items()}
    return SimulationResult(mode, config, schedule, work, h2d_bytes, d2h_bytes, m.hit_rate(rep),
                            m.warmup(n) if warmup is None else min(max(0, warmup), n - 1),
                            m.settings(), replay_summary, op_counts, shares)


__all__ = ["MODES", "SimulationResult", "default_warmup", "get_mode", "make_mode",
           "register_mode", "simulate"]
