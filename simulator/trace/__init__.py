"""The trace layer: the on-disk format, generators, readers and statistics."""

from .criteo import import_criteo, write_criteo_like
from .csv_table import import_csv
from .describe import describe_trace
from .dlrm_pt import import_dlrm_pt
from .format import Chunk, Table, Trace, TraceWriter, open_trace
from .generators import generate, table_rows_from
from .id_stream import import_ids
from .stats import TraceStats, trace_stats
from .verify import VerifyReport, verify_trace

__all__ = ["Chunk", "Table", "Trace", "TraceStats", "TraceWriter", "describe_trace", "generate",
           "import_criteo", "import_csv", "import_dlrm_pt", "import_ids", "open_trace",
           "table_rows_from", "trace_stats", "verify_trace", "VerifyReport", "write_criteo_like"]
