"""The trace layer: the on-disk format, generators, readers and statistics."""

from .describe import describe_trace
from .format import Chunk, Table, Trace, TraceWriter, open_trace
from .generators import generate, table_rows_from

__all__ = ["Chunk", "Table", "Trace", "TraceWriter", "describe_trace", "generate",
           "open_trace", "table_rows_from"]
