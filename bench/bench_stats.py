"""Throughput of trace_stats on a generated Zipf trace, beside a bare read of the same trace.

The bare read (trace.chunks() alone: load and linearize the ids) is the floor any streaming
pass pays, so the ratio shows what the statistics themselves cost.
"""

import shutil
import sys
import tempfile
from pathlib import Path

import simulator as sim
from _timing import best_time

TABLES = 26
ROWS_PER_TABLE = 1_000_000
BATCH_SIZE = 4096
FULL_LOOKUPS = 100_000_000
QUICK_LOOKUPS = 5_000_000




def _read_all(trace) -> None:
    for _ in trace.chunks():
        pass


def run(workdir: Path, quick: bool = False) -> list[tuple[str, float, str]]:
    workdir = Path(workdir)
    # Compile (or load from numba's cache) every kernel before timing.
    warm = sim.generate("zipf", workdir / "warm-up", [100, 50], batch_size=8, num_batches=4,
                        seed=0, show_progress=False)
    sim.trace_stats(warm)
    lookups = QUICK_LOOKUPS if quick else FULL_LOOKUPS
    batches = max(1, lookups // (TABLES * BATCH_SIZE))
    path = workdir / "zipf-stats"
    try:
        trace = sim.generate("zipf", path, [ROWS_PER_TABLE] * TABLES, batch_size=BATCH_SIZE,
                             num_batches=batches, seed=1, alpha=1.05, show_progress=False)
        read_s = best_time(lambda: _read_all(trace))
        stats_s = best_time(lambda: sim.trace_stats(trace))
        n = trace.num_lookups
    finally:
        shutil.rmtree(path, ignore_errors=True)
        shutil.rmtree(workdir / "warm-up", ignore_errors=True)
    shape = f"{TABLES}x{ROWS_PER_TABLE // 1_000_000}M rows, {n / 1e6:.0f}M lookups"
    return [
        (f"stats: trace_stats ({shape})", n / stats_s, "lookups/s"),
        (f"stats: bare chunk read ({shape})", n / read_s, "lookups/s"),
        ("stats: trace_stats time / bare read time", stats_s / read_s, "x"),
    ]


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="bench-stats-") as tmp:
        for metric, value, unit in run(Path(tmp), quick=quick):
            print(f"{metric:<60} {value:>16,.2f}  {unit}")
