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

from dataclasses import dataclass, field
from pathlib import Path

from .._progress import progress
from ..errors import SimulatorError, TraceFormatError
from .format import ARRAY_FILES, Trace, data_checksum, read_meta


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

    def fail(self, name: str, status: str, problem: str) -> None:
        self.files[name] = status
        self.problems.append(problem)

    def error(self) -> TraceFormatError:
        """The one-line error for a damaged trace."""
        more = f" (and {len(self.problems) - 1} more)" if len(self.problems) > 1 else ""
        first = self.problems[0]
        if "re-create" not in first:
            first += "; re-create or re-copy the trace"
        return TraceFormatError(f"{self.path} is damaged: {first}{more}")


def verify_trace(path, show_progress: bool = True) -> VerifyReport:
    """Check a trace directory (see the module docstring); the report lists every problem.
    Raises TraceFormatError only when path is not a trace directory at all."""
    path = Path(path)
    if not path.is_dir() or not (path / "meta.json").exists():
        Trace(path)  # the reader's own one-line error for "not a trace"
    report = VerifyReport(str(path))
    try:
        trace = Trace(path)
    except SimulatorError as e:
        trace = None
        report.fail("meta.json", "refused (see the problem)", str(e))
    meta = trace.meta if trace is not None else read_meta(path)
    recorded = (meta or {}).get("checksums")
    if not isinstance(recorded, dict):
        recorded = None
    report.checksums = recorded is not None
    if trace is not None:
        report.files["meta.json"] = "ok (checksum)" if "meta.json" in (recorded or {}) else "ok"
    # Without a trace, the files a trace can have that meta.json records (not any it names).
    names = (trace.array_files() if trace is not None else
             [n for n in ARRAY_FILES if n in recorded] if recorded is not None else [])
    for name in names:
        if recorded is not None and name not in recorded:  # meta.json lost it
            report.fail(name, "no checksum in meta.json",
                        f"meta.json records no checksum for {name}")
    sizes = {n: (path / n).stat().st_size for n in names if (path / n).is_file()}
    total = sum(sizes.values()) + (trace.indices.nbytes if trace is not None else 0)
    with progress(total=total, unit="B", desc=f"verify {path.name}",
                  enabled=show_progress) as bar:
        for name in names:
            if recorded is None:
                report.files[name] = "no checksum recorded"
            elif name in report.files:  # its checksum is missing: nothing to compare
                continue
            elif name not in sizes:
                report.fail(name, "missing", f"{name} is missing")
            else:
                try:
                    got = data_checksum(path / name, bar.update)
                except (OSError, ValueError) as e:
                    report.fail(name, "unreadable header", f"{name} has an unreadable header ({e})")
                    continue
                if got != recorded[name]:
                    report.fail(name, "CHECKSUM MISMATCH",
                                f"{name} has checksum {got}, meta.json recorded {recorded[name]}")
                else:
                    report.files[name] = "ok (checksum)"
        if trace is not None:
            try:
                for chunk in trace.chunks():
                    bar.update(chunk.row_ids.shape[0] * trace.indices.dtype.itemsize)
            except SimulatorError as e:
                report.fail("chunks", "a chunk is unsound (see the problem)", str(e))
            else:
                report.files["chunks"] = f"ok ({trace.num_batches:,} batches read and checked)"
    return report
