"""scratchsim: a trace-driven simulator of embedding caches and training pipelines.

The flow is one way: trace -> caches -> pipeline -> results. Every CLI command is a thin call
into one of the names below.
"""

from . import _numba_cache

_numba_cache.configure()  # before any kernel is compiled or loaded

from ._version import __version__  # noqa: E402
from .errors import CapacityError, InputError, OptionError, SimulatorError, TraceFormatError
from .trace import (Chunk, Table, Trace, TraceStats, TraceWriter, describe_trace, generate,
                    import_criteo, import_csv, import_dlrm_pt, import_ids, open_trace,
                    table_rows_from, trace_stats, verify_trace, write_criteo_like)
from .caches import POLICIES, ReplayResult, min_capacity, replay
from .caches.mrc import MissRatioCurve, mrc
from .hardware import HardwareProfile, describe_hardware_presets, list_hardware, load_hardware
from .workload import ModelConfig, describe_model_presets, list_models, load_model
from .pipeline import MODES, SimulationResult, simulate
from .backend import TRAIN_MODES, calibrate, save_weights, train, validate
from .sweep import load_results, run_sweep
from .plots import make_figures, plot_mrc
from .demo import demo

__all__ = [
    "__version__",
    # errors
    "SimulatorError", "CapacityError", "OptionError", "InputError", "TraceFormatError",
    # traces
    "Chunk", "Table", "Trace", "TraceWriter", "TraceStats", "describe_trace", "generate",
    "import_criteo", "import_csv", "import_dlrm_pt", "import_ids", "open_trace",
    "table_rows_from", "trace_stats", "verify_trace", "write_criteo_like",
    # caches
    "POLICIES", "ReplayResult", "MissRatioCurve", "min_capacity", "mrc", "replay",
    # hardware and models
    "HardwareProfile", "describe_hardware_presets", "list_hardware", "load_hardware",
    "ModelConfig", "describe_model_presets", "list_models", "load_model",
    # timing
    "MODES", "SimulationResult", "simulate",
    # the real backend
    "TRAIN_MODES", "calibrate", "save_weights", "train", "validate",
    # sweeps and figures
    "run_sweep", "load_results", "make_figures", "plot_mrc",
    "demo",
]
