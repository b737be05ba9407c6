"""A short readable description of a trace."""

from .format import Trace


def describe_trace(trace: Trace) -> str:
    prov = trace.provenance
    source = prov.get("source", "?")
    rows = ", ".join(f"{t.name}={t.rows:,}" for t in trace.tables[:8])
    if trace.num_tables > 8:
        rows += f", ... ({trace.num_tables} tables)"
    pooling = trace.pooling if trace.pooling is not None else "variable"
    return "\n".join([
        f"trace      {trace.path}",
        f"source     {source}",
        f"tables     {trace.num_tables} ({trace.total_rows:,} rows: {rows})",
        f"batches    {trace.num_batches:,} of {trace.batch_size:,} samples "
        f"({trace.num_samples:,} samples)",
        f"lookups    {trace.num_lookups:,} (pooling {pooling})",
    ])
