"""Timing-model speed: simulated training iterations per second (SimPy, per stage).

The replay is made once and handed to simulate(), so the figure is the discrete-event model's
own speed. Target on a 2-core machine: >= 5,000 iterations/s for scratchpipe (W=4).
"""

import sys
import time
from pathlib import Path

import simulator as sim
from simulator.caches import replay


def run(workdir: Path, quick: bool = False):
    iterations = 1_000 if quick else 10_000
    trace = sim.generate("zipf", workdir / "trace", table_rows=[100_000] * 8, batch_size=256,
                         num_batches=iterations, seed=1, alpha=1.05, show_progress=False)
    model = workdir / "model.toml"
    model.write_text('embedding_dim = 64\nbottom_mlp = [13, 256, 64]\ntop_mlp = [256, 1]\n'
                     'interaction = "dot"\nbatch_size = 256\ndtype = "fp32"\noptimizer = "sgd"\n')
    capacity = 2 * sim.min_capacity(trace, lookahead=4)
    rows = []
    for mode, policy, params in (("scratchpipe", "scratchpipe", {"lookahead": 4}),
                                 ("cache", "lru", {})):
        decisions = replay(trace, policy=policy, capacity=capacity, **params)
        sim.simulate(trace, mode=mode, model=model, capacity=capacity, lookahead=4,
                     replay_result=decisions)  # warm-up
        t0 = time.perf_counter()
        sim.simulate(trace, mode=mode, model=model, capacity=capacity, lookahead=4,
                     replay_result=decisions)
        seconds = time.perf_counter() - t0
        label = f"simulate {mode}" + (" (W=4)" if mode == "scratchpipe" else " (lru)")
        rows.append((f"{label}, {iterations:,} iterations", iterations / seconds,
                     "iterations/s (target >= 5,000)" if mode == "scratchpipe" else "iterations/s"))
    return rows


if __name__ == "__main__":
    import tempfile

    with tempfile.TemporaryDirectory() as d:
        for metric, value, unit in run(Path(d), quick="--quick" in sys.argv):
            print(f"{metric:<55} {value:>14,.1f}  {unit}")
