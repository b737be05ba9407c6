"""Where a prediction misses, op by op: one configuration trained on the CPU under
torch.profiler (the steady iterations only), each framework op's measured self time against
the time the model charges it, largest gaps first.

    .venv/bin/python experiments/validation/per_op.py PROFILE.toml [--batch-size 2048] [--dim 64]
        [--mode gpu-only] [--tables 8] [--rows 100000] [--capacity 25%] [--threads 1]

The trace and model are the full validation grid's (a seeded Zipf(1.05) trace, the backend's
default model at that dim); the profile is a calibrated one, e.g. the profile.toml that
`scratchsim validate` writes. The model's figure per op is its device work (dispatch is one
line of its own: the profiler splits an op's dispatch between the op and Python). The
profiler's names are aten's; the model's are the rule's (pipeline/ops.py), which for a few
ops name what autograd runs under another name (the embedding backward's sort and its dense
backward, `add` against `add_`).
"""

import argparse
import collections
import sys
import tempfile
from pathlib import Path

import numpy as np

import simulator
from simulator.backend import _trainer
from simulator.backend.base import torch
from simulator.backend.validation.grid import grid_model
from simulator.pipeline import make_mode, simulate
from simulator.pipeline.costs import StageCosts

WARMUP, ACTIVE = 8, 20


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("profile")
    parser.add_argument("--batch-size", type=int, default=2048)
    parser.add_argument("--dim", type=int, default=64)
    parser.add_argument("--mode", default="gpu-only")
    parser.add_argument("--tables", type=int, default=8)
    parser.add_argument("--rows", type=int, default=100_000)
    parser.add_argument("--capacity", default="25%")
    parser.add_argument("--threads", type=int, default=1, help="torch threads (the profile's)")
    args = parser.parse_args()
    from torch.profiler import ProfilerActivity, profile, schedule
    torch.set_num_threads(args.threads)
    hardware = simulator.load_hardware(args.profile)
    model = grid_model(args.dim, args.batch_size)
    settings = {"capacity": args.capacity} if make_mode(args.mode).uses_cache else {}
    with tempfile.TemporaryDirectory() as tmp:
        trace = simulator.generate("zipf", Path(tmp) / "t", table_rows=[args.rows] * args.tables,
                                   batch_size=args.batch_size, num_batches=WARMUP + ACTIVE + 2,
                                   seed=0, alpha=1.05, show_progress=False)
        timed = profile(activities=[ProfilerActivity.CPU],
                        schedule=schedule(wait=WARMUP - 2, warmup=2, active=ACTIVE))
        trainer = _trainer(args.mode)
        iteration = trainer.iteration
        trainer.iteration = lambda self, i: (iteration(self, i), timed.step())
        try:
            with timed:
                simulator.train(trace, args.mode, device="cpu", model=model, **settings)
        finally:
            trainer.iteration = iteration
        result = simulator.train(trace, args.mode, device="cpu", model=model, **settings)
        predicted = simulate(trace, args.mode, hardware=hardware, model=model, warmup=WARMUP,
                             **settings)
        measured = collections.defaultdict(float)
        for event in timed.key_averages():
            if event.key.startswith("aten::"):
                measured[event.key[6:]] += event.self_cpu_time_total / ACTIVE  # us
        costs = StageCosts(predicted.work, hardware, model, trace.num_tables)
        charged = collections.defaultdict(float)
        dispatch = 0.0
        for stage_ops in make_mode(args.mode).stage_ops(costs).values():
            for op in stage_ops:
                charged[op.name.split()[0]] += float(np.median(costs.prices.device(op))) * 1e6
                dispatch += float(np.median(np.asarray(op.count, float))) * \
                    hardware.cpu_dispatch_us
    steady = float(np.median(result.iteration_seconds[WARMUP:])) * 1e3
    print(f"{args.mode} B{args.batch_size} d{args.dim}: measured {steady:.3f} ms an iteration "
          f"(unprofiled), predicted {predicted.to_dict()['iteration_time_p50_s'] * 1e3:.3f} ms")
    print(f"aten ops' self time {sum(measured.values()):,.0f} us; the model's device work "
          f"{sum(charged.values()):,.0f} us and dispatch {dispatch:,.0f} us")
    print(f"{'op':34} {'measured us':>12} {'model us':>10} {'gap us':>9}")
    for name in sorted(set(measured) | set(charged),
                       key=lambda k: -abs(measured.get(k, 0) - charged.get(k, 0)))[:25]:
        m, c = measured.get(name, 0.0), charged.get(name, 0.0)
        print(f"{name:34} {m:12,.0f} {c:10,.0f} {m - c:+9,.0f}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
