"""Timing helpers shared by the benchmarks."""

import time

REPEATS = 3


def best_time(fn, *args, **kwargs) -> float:
    """The fastest of a few runs: the machine may be shared, and slower runs measure the others."""
    best = float("inf")
    for _ in range(REPEATS):
        t0 = time.perf_counter()
        fn(*args, **kwargs)
        best = min(best, time.perf_counter() - t0)
    return best
