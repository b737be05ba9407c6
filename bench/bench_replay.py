"""Replay throughput: our LRU, FIFO and LFU beside libCacheSim's on the same id stream, and
the set-associative cache on a batched trace.

The stream is one Zipf(1.05) lookup per batch over 1M rows with room for 100,000, so every
policy is the classic per-access cache. The batched trace has 26 tables of 1M rows (Zipf
1.05), batches of 4096 samples, and a set-associative cache of 2,097,152 rows in sets of 32
ways.

libCacheSim runs its C loop (process_trace) over an oracleGeneral binary file of the same
ids; writing that file is not timed, reading it is, as our replay's reading of the trace is.
Our LRU and FIFO must miss exactly as libCacheSim's do (checked before timing). Its LFU
resets a row's counter on eviction and ours keeps it (FBGEMM's choice), so that pair
compares speed only.

Trace checks (issue 15): every chunk a replay reads is checked (ids inside their tables, bag
lengths against batch pointers) before a kernel sees it. The same replay of the same trace,
opened with and without those checks (Trace(path, check_chunks=False)), is timed in
alternation, best of CHECK_REPEATS each; the slowdown must stay within 3%. `trace verify`
(checksums plus the checked pass) is timed on the stream trace.
"""

import shutil
import sys
import tempfile
import time
from pathlib import Path

import libcachesim
import numpy as np

import simulator as sim
from _timing import best_time

STREAM_ROWS = 1_000_000
STREAM_CAPACITY = 100_000
STREAM_LOOKUPS, QUICK_STREAM_LOOKUPS = 20_000_000, 2_000_000
ALPHA = 1.05
TABLES, ROWS_PER_TABLE, BATCH_SIZE = 26, 1_000_000, 4096
BATCHED_LOOKUPS, QUICK_BATCHED_LOOKUPS = 20_000_000, 2_000_000
SETASSOC_CAPACITY, SETASSOC_WAYS = 1 << 21, 32
POLICIES = (("lru", "LRU"), ("fifo", "FIFO"), ("lfu", "LFU"))
# libCacheSim's oracleGeneral record: time, object id, size, next access (-1: unknown).
ORACLE_GENERAL = np.dtype([("time", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"),
                           ("next_access", "<i8")])
CHECK_REPEATS = 7


def _check_cost_rows(path: Path, shape: str, policy: str, capacity: int,
                     **params) -> list[tuple[str, float, str]]:
    """The replay with the per-chunk trace checks beside the same replay without them."""
    checked = sim.open_trace(path)
    unchecked = sim.Trace(path, check_chunks=False)
    best = {True: float("inf"), False: float("inf")}
    for _ in range(CHECK_REPEATS):  # alternate, so that both see the same machine
        for on, trace in ((True, checked), (False, unchecked)):
            t0 = time.perf_counter()
            sim.replay(trace, policy, capacity, **params)
            best[on] = min(best[on], time.perf_counter() - t0)
    n = checked.num_lookups
    name = policy if not params else f"{policy}/{params.get('inner', '')}"
    return [(f"replay: {name} with trace checks ({shape})", n / best[True], "lookups/s"),
            (f"replay: {name} without trace checks ({shape})", n / best[False], "lookups/s"),
            (f"replay: {name} slowdown from trace checks ({shape})",
             100.0 * (best[True] / best[False] - 1.0), "% (target <= 3)")]


def _verify_rows(path: Path, shape: str) -> list[tuple[str, float, str]]:
    trace = sim.open_trace(path)
    size = sum((path / name).stat().st_size for name in trace.array_files())
    seconds = best_time(sim.verify_trace, path, show_progress=False)
    return [(f"trace verify: checksums + checked pass ({shape})", size / seconds / 1e6, "MB/s")]




def _libcachesim_run(policy: str, path: Path, capacity: int) -> float:
    """libCacheSim's miss ratio over the oracleGeneral trace at path."""
    reader = libcachesim.TraceReader(str(path), libcachesim.TraceType.ORACLE_GENERAL_TRACE)
    cache = getattr(libcachesim, policy)(cache_size=capacity)
    return cache.process_trace(reader)[0]


def _warm_up(workdir: Path) -> None:
    """Compile (or load from numba's cache) every kernel before timing."""
    warm = sim.generate("zipf", workdir / "warm-up", [100, 50], batch_size=8, num_batches=4,
                        seed=0, show_progress=False)
    for policy, _ in POLICIES:
        sim.replay(warm, policy, 64)
    sim.replay(warm, "setassoc", 64, ways=SETASSOC_WAYS)


def _stream_rows(workdir: Path, lookups: int) -> list[tuple[str, float, str]]:
    trace = sim.generate("zipf", workdir / "stream", [STREAM_ROWS], batch_size=1,
                         num_batches=lookups, seed=1, alpha=ALPHA, show_progress=False)
    records = np.zeros(trace.num_lookups, dtype=ORACLE_GENERAL)
    records["obj_id"] = trace.indices
    records["obj_size"] = 1
    records["next_access"] = -1
    lcs_path = workdir / "stream.oracleGeneral"
    records.tofile(lcs_path)
    del records
    n = trace.num_lookups
    shape = f"{n / 1e6:.0f}M-lookup stream"
    rows = []
    for ours, theirs in POLICIES:
        ours_misses = sim.replay(trace, ours, STREAM_CAPACITY).misses
        their_ratio = _libcachesim_run(theirs, lcs_path, STREAM_CAPACITY)
        if ours != "lfu" and ours_misses != round(their_ratio * n):
            raise AssertionError(f"{ours}: {ours_misses} misses, libCacheSim "
                                 f"{round(their_ratio * n)}")
        ours_s = best_time(sim.replay, trace, ours, STREAM_CAPACITY)
        theirs_s = best_time(_libcachesim_run, theirs, lcs_path, STREAM_CAPACITY)
        rows += [(f"replay: {ours} ({shape})", n / ours_s, "lookups/s"),
                 (f"replay: libCacheSim {theirs} ({shape})", n / theirs_s, "lookups/s"),
                 (f"replay: {ours} speed / libCacheSim {theirs} speed", theirs_s / ours_s,
                  "x (target >= 10)" if ours in ("lru", "fifo") else "x")]
    rows += _check_cost_rows(workdir / "stream", shape, "lru", STREAM_CAPACITY)
    rows += _verify_rows(workdir / "stream", shape)
    return rows


def _setassoc_rows(workdir: Path, lookups: int) -> list[tuple[str, float, str]]:
    batches = max(1, lookups // (TABLES * BATCH_SIZE))
    trace = sim.generate("zipf", workdir / "batched", [ROWS_PER_TABLE] * TABLES,
                         batch_size=BATCH_SIZE, num_batches=batches, seed=2, alpha=ALPHA,
                         show_progress=False)
    n = trace.num_lookups
    shape = f"{TABLES}x{ROWS_PER_TABLE // 1_000_000}M rows, {n / 1e6:.0f}M lookups"
    rows = []
    for inner in ("lru", "lfu"):
        seconds = best_time(sim.replay, trace, "setassoc", SETASSOC_CAPACITY,
                             ways=SETASSOC_WAYS, inner=inner)
        rows.append((f"replay: setassoc/{inner} ({shape})", n / seconds,
                     "lookups/s (target >= 30M)" if inner == "lru" else "lookups/s"))
    rows += _check_cost_rows(workdir / "batched", shape, "setassoc", SETASSOC_CAPACITY,
                             ways=SETASSOC_WAYS, inner="lru")
    return rows


def _variable_pooling_rows(workdir: Path, lookups: int) -> list[tuple[str, float, str]]:
    """The check's cost where it does the most: bags of 1 to 4 ids (lengths and batch
    pointers are checked too)."""
    batches = max(1, lookups // (TABLES * BATCH_SIZE * 5 // 2))
    trace = sim.generate("zipf", workdir / "variable", [ROWS_PER_TABLE] * TABLES,
                         batch_size=BATCH_SIZE, num_batches=batches, seed=3, alpha=ALPHA,
                         pooling=(1, 4), show_progress=False)
    shape = (f"{TABLES}x{ROWS_PER_TABLE // 1_000_000}M rows, bags of 1-4, "
             f"{trace.num_lookups / 1e6:.0f}M lookups")
    return _check_cost_rows(workdir / "variable", shape, "lru", SETASSOC_CAPACITY)


def run(workdir: Path, quick: bool = False) -> list[tuple[str, float, str]]:
    workdir = Path(workdir)
    try:
        _warm_up(workdir)
        rows = _stream_rows(workdir, QUICK_STREAM_LOOKUPS if quick else STREAM_LOOKUPS)
        shutil.rmtree(workdir / "stream", ignore_errors=True)
        rows += _setassoc_rows(workdir, QUICK_BATCHED_LOOKUPS if quick else BATCHED_LOOKUPS)
        shutil.rmtree(workdir / "batched", ignore_errors=True)
        rows += _variable_pooling_rows(workdir,
                                       QUICK_BATCHED_LOOKUPS if quick else BATCHED_LOOKUPS)
    finally:
        for name in ("warm-up", "stream", "batched", "variable"):
            shutil.rmtree(workdir / name, ignore_errors=True)
        (workdir / "stream.oracleGeneral").unlink(missing_ok=True)
    return rows


if __name__ == "__main__":
    quick = "--quick" in sys.argv[1:]
    with tempfile.TemporaryDirectory(prefix="bench-replay-") as tmp:
        for metric, value, unit in run(Path(tmp), quick=quick):
            print(f"{metric:<60} {value:>16,.2f}  {unit}")
