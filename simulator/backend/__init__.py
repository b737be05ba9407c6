"""The real backend: a DLRM-like model trained with PyTorch, on the CPU or a CUDA device, in
each training mode of pipeline/ (its twin: the Trainer of the same name in the module of the
same name here; the modes and their options are the pipeline's), on a trace's batches.

train() returns measured per-iteration and per-stage times and, per batch, the rows fetched
into and evicted from the device, which must equal the cache replay's misses and evictions;
every mode's final weights must equal gpu-only's bit for bit. torch is imported here only:
the rest of the package runs without it.
"""

from __future__ import annotations

import importlib
from pathlib import Path

import numpy as np

from .._atomic import atomic_open
from ..errors import OptionError
from ..pipeline import MODES as TRAIN_MODES, make_mode  # one registry of modes
from ..trace import open_trace
from ..workload import ModelConfig, load_model
from .validation import validate


def _trainer(mode: str):
    """The backend's twin of a pipeline mode."""
    from .base import Trainer
    module = f"{__package__}.{mode.replace('-', '_')}"
    try:
        return next(c for c in vars(importlib.import_module(module)).values()
                    if isinstance(c, type) and issubclass(c, Trainer) and c.name == mode)
    except (ModuleNotFoundError, StopIteration) as e:
        if getattr(e, "name", module) != module:
            raise
        raise OptionError(f"mode {mode} has no twin in the backend (a Trainer named {mode!r} "
                          f"in {module})") from None
# The model when none is given: small enough to train on a CPU in seconds.
DEFAULT_MODEL = {"name": "backend-small", "embedding_dim": 16, "bottom_mlp": [13, 32, 16],
                 "top_mlp": [32, 1], "interaction": "dot", "batch_size": 1, "dtype": "fp32",
                 "optimizer": "sgd"}


def backend_model(trace, model=None) -> ModelConfig:
    """The model train() uses for this trace: a preset name, a TOML file or a ModelConfig,
    checked against the trace, or by default a small dot-interaction model."""
    return _model_for(open_trace(trace), model)[0]


def _model_for(trace, model) -> tuple[ModelConfig, np.ndarray, int]:
    """The model config, each table's dim and the dense feature count for this trace."""
    if model is None:
        data = dict(DEFAULT_MODEL, batch_size=trace.batch_size)
        if trace.dense_features:
            data["bottom_mlp"] = [trace.dense_features] + data["bottom_mlp"][1:]
        model = ModelConfig.from_dict(data, source="backend default model")
    else:
        model = load_model(model)
        model.check_trace(trace)
    dims = np.array([model.dim(t if isinstance(model.embedding_dim, tuple) else 0)
                     for t in range(trace.num_tables)], dtype=np.int64)
    dense = model.bottom_mlp[0]
    if trace.dense_features and trace.dense_features != dense:
        raise OptionError(f"the trace has {trace.dense_features} dense features, model "
                          f"{model.name}'s bottom MLP takes {dense}; choose a matching model")
    return model, dims, dense


def train(trace, mode: str, device: str = "cpu", iterations: int | None = None,
          capacity=None, optimizer: str = "sgd", model=None, lr: float = 0.05, seed: int = 0,
          overlap: bool | None = None, **options):
    """Train for real on the trace's first `iterations` batches (default: all) and return a
    TrainResult. capacity: rows or 'X%' of the trace's distinct rows, for the modes with a
    cache; options: the mode's (as simulate() takes them: lookahead and victim for
    scratchpipe); model: a preset name, a TOML file or a ModelConfig (default: a small
    dot-interaction model); overlap: run scratchpipe's and cache-prefetch's transfers beside
    training (default: on CUDA)."""
    from ..caches import resolve_capacity
    from .base import TrainConfig, check_device, prepare_batches
    trace = open_trace(trace)
    m = make_mode(mode, **options)
    cls = _trainer(mode)
    check_device(device)
    n = trace.num_batches if iterations is None else int(iterations)
    if not 0 < n <= trace.num_batches:
        raise OptionError(f"iterations must be in 1..{trace.num_batches} (the trace's "
                          f"batches), got {iterations}")
    if m.uses_cache:
        if capacity is None:
            raise OptionError(f"mode {mode} needs a capacity: --capacity ROWS or X%")
        capacity = resolve_capacity(trace, capacity)
    config = TrainConfig(mode=mode, device=device, iterations=n, capacity=capacity,
                         options=m.settings(), optimizer=optimizer, lr=float(lr), seed=int(seed),
                         overlap=device == "cuda" if overlap is None else bool(overlap))
    model, dims, dense = _model_for(trace, model)
    batches = prepare_batches(trace, n, dims, dense, seed)
    return cls(config, trace, model, batches, dims, dense).run()


def save_weights(weights: dict[str, np.ndarray], path) -> Path:
    """Write the weights to an .npz file atomically (a temporary name, then a rename)."""
    path = Path(path)
    if path.suffix != ".npz":
        raise OptionError(f"{path}: the weights file must end in .npz")
    with atomic_open(path, "wb") as f:
        np.savez(f, **weights)
    return path


def calibrate(output, device: str = "cpu", quick: bool = False) -> dict:
    """Measure this machine's HardwareProfile numbers and write them atomically to the TOML
    file `output` (load_hardware reads it). Returns the profile as a dict."""
    from .calibration import calibrate as measure, write_profile
    profile = measure(device, quick=quick)
    write_profile(profile, output)
    return profile


__all__ = ["TRAIN_MODES", "backend_model", "calibrate", "save_weights", "train", "validate"]
