"""ScratchPipe replay speed, and replays of a trace far larger than one chunk in bounded memory.

1. Throughput (lookups/s) of scratchpipe (lookahead 4; victims lru and future) on a 26-table
   x 1M-row Zipf trace, batch 4096, ~20M lookups (quick: 2M), at twice its minimum capacity,
   beside lru at the same capacity and the min_capacity pass. numba is warmed up first, and
   the best of a few runs counts: the machine is shared, slower runs measure the others.
2. A ~500M-lookup trace of the same shape (quick: 20M; about 2 GB of int32 ids), generated
   once in workdir and removed afterwards, replayed by lru and scratchpipe each in its own
   subprocess: wall time of the replay, the peak resident memory of the subprocess, and the
   peak of its anonymous part. The subprocess reports its own VmHWM: on Linux a child's
   ru_maxrss (getrusage RUSAGE_CHILDREN, or wait4) starts from the parent's RSS at fork,
   here the parent's own replays. The pages of the memory-mapped trace that the subprocess
   has read count in its RSS (they are page cache, dropped under memory pressure), so the
   anonymous part (RssAnon, sampled from outside) is the memory the replay allocates.

Run alone: python bench/bench_scratchpipe.py [--quick] [--workdir DIR]
"""

import argparse
import json
import resource
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import simulator as sim
from _timing import best_time

TABLES = 26
ROWS_PER_TABLE = 1_000_000
BATCH_SIZE = 4096
LOOKAHEAD = 4
SPEED_LOOKUPS, QUICK_SPEED_LOOKUPS = 20_000_000, 2_000_000
LARGE_LOOKUPS, QUICK_LARGE_LOOKUPS = 500_000_000, 20_000_000
ANONYMOUS_SAMPLE_S = 0.01
# (label, policy, options) of the replays timed.
REPLAYS = [
    ("lru", "lru", {}),
    ("scratchpipe W=4 victim=lru", "scratchpipe", {"lookahead": LOOKAHEAD, "victim": "lru"}),
    ("scratchpipe W=4 victim=future", "scratchpipe",
     {"lookahead": LOOKAHEAD, "victim": "future"}),
]


def _generate(path: Path, lookups: int):
    batches = max(1, lookups // (TABLES * BATCH_SIZE))
    return sim.generate("zipf", path, [ROWS_PER_TABLE] * TABLES, batch_size=BATCH_SIZE,
                        num_batches=batches, seed=1, alpha=1.05, show_progress=False)




def _warm_up(workdir: Path) -> None:
    """Compile (or load from numba's cache) every kernel the timed runs use."""
    warm = sim.generate("zipf", workdir / "warm-up", [100, 50], batch_size=8, num_batches=6,
                        seed=0, show_progress=False)
    capacity = sim.min_capacity(warm, LOOKAHEAD)
    for _, policy, options in REPLAYS:
        sim.replay(warm, policy, capacity=capacity, **_replay_options(options, workdir))
    shutil.rmtree(workdir / "warm-up", ignore_errors=True)


def _replay_options(options: dict, workdir: Path) -> dict:
    # The next-use file of victim=future goes beside the trace, not to the system's /tmp.
    return {**options, "tmp_dir": str(workdir)} if options.get("victim") == "future" else options


def _speed(workdir: Path, quick: bool) -> list[tuple[str, float, str]]:
    path = workdir / "zipf-speed"
    try:
        trace = _generate(path, QUICK_SPEED_LOOKUPS if quick else SPEED_LOOKUPS)
        n = trace.num_lookups
        shape = f"{TABLES}x1M rows, batch {BATCH_SIZE}, {n / 1e6:.0f}M lookups"
        rows = []
        seconds = best_time(lambda: sim.min_capacity(trace, LOOKAHEAD))
        capacity = 2 * sim.min_capacity(trace, LOOKAHEAD)
        rows.append((f"scratchpipe: min_capacity W={LOOKAHEAD} ({shape})", n / seconds,
                     "lookups/s"))
        for label, policy, options in REPLAYS:
            opts = _replay_options(options, workdir)
            seconds = best_time(lambda: sim.replay(trace, policy, capacity=capacity, **opts))
            target = " (target >= 30M)" if label == f"scratchpipe W={LOOKAHEAD} victim=lru" else ""
            rows.append((f"scratchpipe: replay {label} at 2x min capacity ({shape})",
                         n / seconds, "lookups/s" + target))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return rows


def _status_kib(pid, field: str) -> int | None:
    """A memory field of /proc/PID/status in KiB (None once the process is gone)."""
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith(field + ":"):
                return int(line.split()[1])
    except (OSError, ValueError):
        pass
    return None


def _measure_child(trace_path: Path, label: str, capacity: int,
                   workdir: Path) -> tuple[float, float, float]:
    """(replay seconds, peak RSS in MB, peak anonymous RSS in MB) of one replay in a fresh
    subprocess. The anonymous part (what the replay allocates, without the pages of the
    memory-mapped trace) is sampled from outside every few milliseconds."""
    child = subprocess.Popen([sys.executable, __file__, "--child", str(trace_path), label,
                              str(capacity), str(workdir)], stdout=subprocess.PIPE, text=True)
    anonymous_peak = 0
    while child.poll() is None:
        anonymous_peak = max(anonymous_peak, _status_kib(child.pid, "RssAnon") or 0)
        time.sleep(ANONYMOUS_SAMPLE_S)
    out, _ = child.communicate()
    if child.returncode != 0:
        raise RuntimeError(f"the {label} replay failed with status {child.returncode}")
    report = json.loads(out)
    return report["seconds"], report["peak_rss_kib"] / 1024, anonymous_peak / 1024


def _child(trace_path: str, label: str, capacity: str, workdir: str) -> None:
    policy, options = next((p, o) for name, p, o in REPLAYS if name == label)
    t0 = time.perf_counter()
    sim.replay(trace_path, policy, capacity=int(capacity),
               **_replay_options(options, Path(workdir)))
    peak = _status_kib("self", "VmHWM") or resource.getrusage(resource.RUSAGE_SELF).ru_maxrss
    print(json.dumps({"seconds": time.perf_counter() - t0, "peak_rss_kib": peak}))


def _bounded_memory(workdir: Path, quick: bool) -> list[tuple[str, float, str]]:
    path = workdir / "zipf-large"
    rows = []
    try:
        trace = _generate(path, QUICK_LARGE_LOOKUPS if quick else LARGE_LOOKUPS)
        n = trace.num_lookups
        size_gb = sum(f.stat().st_size for f in path.iterdir()) / 1e9
        shape = f"{n / 1e6:.0f}M lookups, {size_gb:.1f} GB"
        capacity = 2 * sim.min_capacity(trace, LOOKAHEAD)
        for label, _, _ in REPLAYS:
            seconds, rss_mb, anonymous_mb = _measure_child(path, label, capacity, workdir)
            name = f"scratchpipe: large trace, {label} ({shape})"
            rows.append((f"{name} wall", seconds, "s"))
            rows.append((f"{name} speed", n / seconds, "lookups/s"))
            rows.append((f"{name} peak RSS", rss_mb, "MB"))
            rows.append((f"{name} peak anonymous RSS", anonymous_mb, "MB"))
    finally:
        shutil.rmtree(path, ignore_errors=True)
    return rows


def run(workdir: Path, quick: bool = False) -> list[tuple[str, float, str]]:
    workdir = Path(workdir)
    _warm_up(workdir)
    return _speed(workdir, quick) + _bounded_memory(workdir, quick)


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small inputs (a smoke run)")
    p.add_argument("--workdir", help="where to put generated inputs (default: a temp dir)")
    p.add_argument("--child", nargs=4, metavar=("TRACE", "LABEL", "CAPACITY", "WORKDIR"),
                   help=argparse.SUPPRESS)
    a = p.parse_args()
    if a.child:
        _child(*a.child)
        return 0
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="scratchsim-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    try:
        for metric, value, unit in run(workdir, quick=a.quick):
            print(f"{metric:<90} {value:>16,.2f}  {unit}", flush=True)
    finally:
        if not a.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
