"""`scratchsim trace verify`: is a trace directory exactly what its writer wrote?

Three checks, each reported per file:
1. meta.json is a sound trace description, has the checksum its writer recorded, and agrees
   with every array's dtype and shape (what opening the trace checks);
2. every array's data has the checksum meta.json recorded when it was written (a trace
   written before checksums existed has none: this check is skipped and the report says so);
3. one pass over every chunk, as a replay reads it: ids inside their tables, bag lengths
   against batch_ptr.
Memory stays bounded (files are read in blocks); a progress bar counts the bytes.
"""

from __future__ import annotations

import json
from dataclasses import dataclass, field
from pathlib import Path

from .._progress import progress
from ..errors import SimulatorError, TraceFormatError
from .format import Trace, data_checksum

# Every array file a trace can have (what a damaged meta.json may name is not trusted).
ARRAY_FILES = ("indices.npy", "lengths.npy", "batch_ptr.npy", "labels.npy", "dense.npy")


@dataclass
class VerifyReport:
    """What verify_trace found: per file "ok", "no checksum" or what is wrong."""

    path: str
    files: dict[str, str] = field(default_factory=dict)
    problems: list[str] = field(default_factory=list)
    checksums: bool = True  # False: the trace predates checksums

    @property
    def ok(self) -> bool:
        return not self.problems

    def to_dict(self) -> dict:
        return {"trace": self.path, "ok": self.ok, "checksums": self.checksums,
                "files": self.files, "problems": self.problems}

    def format(self) -> str:
        width = max(map(len, self.files), default=0)
        lines = [f"trace  {self.path}"]
        lines += [f"  {name:<{width}}  {status}" for name, status in self.files.items()]
        if not self.checksums:
            lines.append("  (no checksums recorded: written by an older scratchsim; the "
                         "structure was checked)")
        lines.append("ok: the trace is intact" if self.ok else
                     f"DAMAGED: {len(self.problems)} problem(s)")
        return "\n".join(lines)

    def error(self) -> TraceFormatError:
        """The one-line error for a damaged trace."""
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        first = self.problems[0]
        if "re-create" not in first:
            first += "; re-create or re-copy the trace"
        return TraceFormatError(f"{self.path} is damaged: {first}{more}")


def _read_meta(path: Path) -> dict | None:
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def verify_trace(path, show_progress: bool = True) -> VerifyReport:
    """Check a trace directory (see the module docstring); the report lists every problem.
    Raises TraceFormatError only when path is not a trace directory at all."""
    path = Path(path)
    if not path.is_dir() or not (path / "meta.json").exists():
        Trace(path)  # the reader's own one-line error for "not a trace"
    report = VerifyReport(str(path))
    trace = None
    try:
        trace = Trace(path)
        recorded = trace.checksums or {}
        report.files["meta.json"] = "ok (checksum)" if "meta.json" in recorded else "ok"
    except SimulatorError as e:
        report.problems.append(str(e))
        report.files["meta.json"] = "refused (see the problem)"
    meta = trace.meta if trace is not None else _read_meta(path)
    recorded = meta.get("checksums") if meta is not None else None
    if not isinstance(recorded, dict):
        recorded = None
    report.checksums = recorded is not None
    names = (trace.array_files() if trace is not None else
             [n for n in ARRAY_FILES if n in recorded] if recorded is not None else [])
    if trace is not None and recorded is not None:
        # a file the trace is made of without a checksum: meta.json lost it
        for name in names:
            if name not in recorded:
                report.problems.append(f"meta.json records no checksum for {name}")
                report.files[name] = "no checksum in meta.json"
    sizes = {n: (path / n).stat().st_size for n in names if (path / n).is_file()}
    total = sum(sizes.values()) + (trace.indices.nbytes if trace is not None else 0)
    with progress(total=total, unit="B", desc=f"verify {path.name}",
                  enabled=show_progress) as bar:
        if recorded is not None:
            for name in names:
                if name in report.files:
                    continue
                if name not in sizes:
                    report.problems.append(f"{name} is missing")
                    report.files[name] = "missing"
                    continue
                try:
                    got = data_checksum(path / name, bar.update)
                except (OSError, ValueError) as e:
                    report.problems.append(f"{name} has an unreadable header ({e})")
                    report.files[name] = "unreadable header"
                    continue
                if got != recorded.get(name):
                    report.problems.append(f"{name} has checksum {got}, meta.json recorded "
                                           f"{recorded.get(name)}")
                    report.files[name] = "CHECKSUM MISMATCH"
                else:
                    report.files[name] = "ok (checksum)"
        else:
            for name in names:
                report.files[name] = "no checksum recorded"
        if trace is not None:
            try:
                for chunk in trace.chunks():
                    bar.update(chunk.row_ids.shape[0] * trace.indices.dtype.itemsize)
            except SimulatorError as e:
                report.problems.append(str(e))
                report.files.setdefault("chunks", "a chunk is unsound (see the problem)")
            else:
                report.files["chunks"] = f"ok ({trace.num_batches:,} batches read and checked)"
    return report
