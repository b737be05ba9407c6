"""scratchsim: a trace-driven simulator of embedding caches and training pipelines."""

from ._version import __version__
from .errors import CapacityError, InputError, OptionError, SimulatorError, TraceFormatError
from .trace import (Chunk, Table, Trace, TraceWriter, describe_trace, generate, open_trace,
                    table_rows_from)

__all__ = [
    "__version__", "SimulatorError", "CapacityError", "OptionError", "InputError", "TraceFormatError",
    "Chunk", "Table", "Trace", "TraceWriter", "describe_trace", "generate", "open_trace",
    "table_rows_from",
]
