"""Design-space sweeps: a TOML spec (spec.py) spans a grid of points; the runner evaluates them
on a local process pool or a Dask cluster (runner.py, evaluate.py) and the store keeps every
finished point so that an interrupted sweep resumes where it stopped (store.py)."""

from .evaluate import evaluate
from .runner import run_sweep
from .spec import SweepSpec, load_spec, point_id
from .store import load_results

__all__ = ["SweepSpec", "evaluate", "load_results", "load_spec", "point_id", "run_sweep"]
