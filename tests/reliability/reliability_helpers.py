"""Helpers of the reliability tests."""

from __future__ import annotations

import contextlib
import io
from collections import Counter, defaultdict
from pathlib import Path

import numpy as np

from simulator.cli import main

# kind of input -> Counter of outcomes, printed at the end of the run by TallyReport
FUZZ_TALLY: dict[str, Counter] = defaultdict(Counter)


class TallyReport:
    """A pytest plugin (registered by the fuzz tests; a conftest.py here would shadow the
    other folders' `from conftest import ...`) that prints the fuzz tally in the terminal
    summary, so `make test` shows how many damaged inputs of each kind were tried and how
    each run ended."""

    name = "scratchsim-reliability-fuzz-tally"

    def pytest_terminal_summary(self, terminalreporter):
        if not FUZZ_TALLY:
            return
        tr = terminalreporter
        tr.section("reliability fuzz: damaged inputs tried, by kind, and how the runs ended")
        width = max(map(len, FUZZ_TALLY))
        for kind in sorted(FUZZ_TALLY):
            counts = FUZZ_TALLY[kind]
            outcomes = ", ".join(f"{n} {what}" for what, n in sorted(counts.items()))
            tr.write_line(f"{kind:<{width}}  {sum(counts.values()):>4} tried: {outcomes}")


def cli(*argv) -> tuple[int, str, str]:
    """Run the command line in this process: (exit status, stdout, stderr)."""
    out, err = io.StringIO(), io.StringIO()
    with contextlib.redirect_stdout(out), contextlib.redirect_stderr(err):
        try:
            code = main([str(a) for a in argv])
        except SystemExit as e:  # --help and the like
            code = e.code if isinstance(e.code, int) else 1
    return code, out.getvalue(), err.getvalue()


def assert_clean_end(code: int, err: str, what: str = "") -> None:
    """Exit 0, or exit 2 with exactly one line that says it is an error: nothing else."""
    assert code in (0, 2), f"{what}: exit {code}\n{err}"
    assert "Traceback" not in err, f"{what}: {err}"
    if code == 2:
        lines = [ln for ln in err.splitlines() if ln.strip()]
        errors = [ln for ln in lines if ln.startswith("scratchsim: error: ")]
        assert len(errors) == 1 and lines[-1] == errors[0], f"{what}: {err!r}"


def temporaries(*dirs: Path) -> list[Path]:
    """Files or directories a writer left under a temporary name."""
    found = []
    for d in dirs:
        if d.is_dir():
            found += [p for p in d.rglob("*") if ".tmp" in p.name or ".old-" in p.name]
    return found


def write_small_trace(path: Path, *, variable: bool = True, labels: bool = True, tables: int = 3,
                      rows: int = 50, samples: int = 40, batch_size: int = 8, seed: int = 0):
    """A small trace written by TraceWriter: variable bags (lengths.npy, batch_ptr.npy) or a
    fixed pooling of 2, with labels and dense features when asked."""
    from simulator import TraceWriter

    rng = np.random.default_rng(seed)
    if variable:
        lengths = rng.integers(0, 4, size=(samples, tables)).astype(np.int32)
        lengths[0, :] = 1  # not all the same size
    else:
        lengths = np.full((samples, tables), 2, dtype=np.int32)
    ids = rng.integers(0, rows, size=int(lengths.sum()))
    with TraceWriter(path, [f"t{i}" for i in range(tables)], batch_size, {"source": "test"},
                     table_rows=[rows] * tables, labels=labels,
                     dense_features=3 if labels else 0) as w:
        w.append(ids, lengths, labels=rng.random(samples).astype(np.float32) if labels else None,
                 dense=rng.random((samples, 3)).astype(np.float32) if labels else None)
        return w.close()
