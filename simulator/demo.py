"""The main job on generated data (what `make demo` runs).

Writes a Criteo-format file (the real data may not be redistributed), imports it as a trace,
prints its statistics, and replays it through every cache policy at a few capacities.
Everything lands in one output directory; the results file is written atomically.
"""

from __future__ import annotations

import json
import os
import tempfile
import time
from pathlib import Path

from ._version import __version__
from .caches import POLICIES, replay
from .errors import CapacityError
from .trace import open_trace
from .trace.criteo import import_criteo, write_criteo_like
from .trace.stats import trace_stats

DEMO_SEED = 2022
DEMO_LINES = 400_000
DEMO_BATCH = 4096
CAPACITIES = ("5%", "20%")


def _policy_options(name: str) -> dict:
    return {"scratchpipe": {"lookahead": 4}, "oracle": {"lookahead": 4}}.get(name, {})


def demo(output="scratchsim-out", print_fn=print, lines: int = DEMO_LINES) -> dict:
    out = Path(output)
    out.mkdir(parents=True, exist_ok=True)
    t0 = time.perf_counter()
    with tempfile.TemporaryDirectory(prefix="scratchsim-demo-") as tmp:
        tsv = Path(tmp) / "criteo-like.tsv"
        write_criteo_like(tsv, lines, seed=DEMO_SEED)
        trace = import_criteo([tsv], out / "trace", batch_size=DEMO_BATCH, show_progress=False)
    trace = open_trace(out / "trace")
    print_fn(f"Generated a Criteo-format file of {lines:,} lines (seed {DEMO_SEED}) and imported "
             f"it as {out / 'trace'}\n")
    stats = trace_stats(trace)
    print_fn(stats.format())
    rows = []
    for capacity in CAPACITIES:
        for name in POLICIES:
            try:
                r = replay(trace, policy=name, capacity=capacity, **_policy_options(name))
            except CapacityError as e:  # infeasible at this capacity: a result, not a crash
                rows.append({"policy": name, "capacity_arg": capacity, "infeasible": str(e)})
                continue
            d = r.to_dict()
            d["capacity_arg"] = capacity
            rows.append(d)
    print_fn("\nCache replay (hit rate = hits / distinct rows per batch, summed over batches)")
    print_fn(f"{'capacity':>9} {'policy':<12} {'rows':>10} {'hit rate':>9} {'misses':>12} "
             f"{'evictions':>12}")
    for d in rows:
        if "infeasible" in d:
            print_fn(f"{d['capacity_arg']:>9} {d['policy']:<12} {'infeasible: ' + d['infeasible']}")
            continue
        print_fn(f"{d['capacity_arg']:>9} {d['policy']:<12} {d['capacity']:>10,} "
                 f"{d['hit_rate']:>9.3f} {d['misses']:>12,} {d['evictions']:>12,}")
    result = {"scratchsim_version": __version__, "seed": DEMO_SEED, "lines": lines,
              "batch_size": DEMO_BATCH, "stats": stats.to_dict(), "replay": rows}
    tmp_json = out / f".results.json.tmp-{os.getpid()}"
    tmp_json.write_text(json.dumps(result, indent=2) + "\n")
    os.replace(tmp_json, out / "results.json")
    print_fn(f"\nResults in {out / 'results.json'} ({time.perf_counter() - t0:.0f} s)")
    return result
