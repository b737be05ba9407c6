"""`make bench`: every benchmark, measured side by side in one run on this machine.

Each bench/bench_*.py module has run(workdir, quick) returning (metric, value, unit) rows.
Usage: python bench/run.py [--quick] [--only NAME[,NAME...]] [--workdir DIR]
"""

import argparse
import importlib
import shutil
import sys
import tempfile
import time
from pathlib import Path

sys.path.insert(0, str(Path(__file__).resolve().parent))

SUITES = ["bench_import", "bench_stats", "bench_replay", "bench_scratchpipe", "bench_pipeline",
          "bench_backend"]


def main() -> int:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="small inputs (a smoke run)")
    p.add_argument("--only", help="comma-separated suite names, e.g. bench_replay")
    p.add_argument("--workdir", help="where to put generated inputs (default: a temp dir)")
    a = p.parse_args()
    suites = a.only.split(",") if a.only else SUITES
    workdir = Path(a.workdir or tempfile.mkdtemp(prefix="scratchsim-bench-"))
    workdir.mkdir(parents=True, exist_ok=True)
    print(f"{'metric':<60} {'value':>16}  unit")
    try:
        for name in suites:
            t0 = time.perf_counter()
            module = importlib.import_module(name)
            suite_dir = workdir / name
            suite_dir.mkdir(exist_ok=True)
            for metric, value, unit in module.run(suite_dir, quick=a.quick):
                print(f"{metric:<60} {value:>16,.2f}  {unit}", flush=True)
            shutil.rmtree(suite_dir, ignore_errors=True)
            print(f"{'(' + name + ' took ' + format(time.perf_counter() - t0, '.0f') + ' s)':<60}")
    finally:
        if not a.workdir:
            shutil.rmtree(workdir, ignore_errors=True)
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
