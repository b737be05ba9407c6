"""The held-out check on a Criteo-shaped trace: 26 tables, batches of 256, the backend's dim-16
model, torch's default threads (calibrated with the same threads), in rounds.

    .venv/bin/python experiments/validation/criteo26.py OUTPUT_DIR [--rounds R]

The Criteo-format file is the one the tests write (simulator.write_criteo_like: seeded,
Criteo Kaggle's cardinalities capped at 1M, Zipf 1.05; never Criteo's data), imported as
`scratchsim trace import criteo` does. Exits 1 when the check misses its target, as
`scratchsim validate` does.
"""

import argparse
import sys
import tempfile
from pathlib import Path

import simulator
from simulator.backend.base import torch
from simulator.backend.validation import ROUNDS, format_summary

LINES = 256 * 120  # 120 batches of 256 samples


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("output")
    parser.add_argument("--rounds", type=int, default=ROUNDS)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        tsv = Path(tmp) / "criteo-like.tsv"
        simulator.write_criteo_like(tsv, LINES, seed=0)
        trace = simulator.import_criteo([tsv], Path(tmp) / "criteo26", batch_size=256,
                                        show_progress=False)
        summary = simulator.validate(
            args.output, device="cpu", trace=trace, threads=torch.get_num_threads(),
            rounds=args.rounds, progress=lambda line: print(line, file=sys.stderr, flush=True))
    print(format_summary(summary, args.output))
    return 0 if summary["passed"] else 1


if __name__ == "__main__":
    sys.exit(main())
