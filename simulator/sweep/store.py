"""The results store: a journal that survives kill -9, and the CSV made from it.

Every finished point is appended to RESULTS.points.jsonl as one JSON line, in a single write
followed by flush and fsync, so the journal holds whole points plus at most one torn last
line, which reading ignores and the next append cuts off. After each point the CSV (one row
per point of the spec, in grid order) is rewritten from the journal under a temporary name and
renamed, so RESULTS.csv is always whole. A resumed sweep computes only the points whose
point_id the journal lacks.
"""

from __future__ import annotations

import csv
import json
import os
from pathlib import Path

import pandas as pd

from .._version import __version__
from ..errors import InputError
from .spec import CONFIG_KEYS

LEADING_COLUMNS = ("point_id",) + CONFIG_KEYS + ("scratchsim_version", "error")


def journal_path(results_path) -> Path:
    results_path = Path(results_path)
    return results_path.with_name(results_path.name + ".points.jsonl")


class ResultsStore:
    """The journal of finished points of one results file."""

    def __init__(self, results_path):
        self.path = Path(results_path)
        self.journal = journal_path(self.path)
        self.rows: dict[str, dict] = {}
        self._load()

    def _load(self) -> None:
        if not self.journal.exists():
            return
        data = self.journal.read_bytes()
        whole = data[:data.rfind(b"\n") + 1]
        if len(whole) != len(data):  # a torn last line from a killed run: cut it off
            with open(self.journal, "r+b") as f:
                f.truncate(len(whole))
        for number, line in enumerate(whole.decode().splitlines(), 1):
            try:
                row = json.loads(line)
            except json.JSONDecodeError:
                raise InputError(f"{self.journal}:{number}: not a results line; delete the "
                                 "file to start the sweep afresh") from None
            self.rows.setdefault(row["point_id"], row)

    def append(self, point_id: str, config: dict, metrics: dict) -> dict:
        row = {"point_id": point_id, **config, "scratchsim_version": __version__, **metrics}
        line = (json.dumps(row) + "\n").encode()
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self.rows.setdefault(point_id, row)
        return row

    def write_csv(self, point_ids: list[str]) -> None:
        """The rows of these points that have finished, in this order, written atomically."""
        rows = [self.rows[p] for p in point_ids if p in self.rows]
        columns = list(LEADING_COLUMNS)
        for row in rows:
            columns += [k for k in row if k not in columns]
        tmp = self.path.with_name(f".{self.path.name}.tmp-{os.getpid()}")
        try:
            with open(tmp, "w", newline="") as f:
                w = csv.DictWriter(f, fieldnames=columns)
                w.writeheader()
                w.writerows(rows)
                f.flush()
                os.fsync(f.fileno())
            os.replace(tmp, self.path)
        except BaseException:
            tmp.unlink(missing_ok=True)
            raise


def load_results(path) -> pd.DataFrame:
    """A results CSV as a DataFrame (floats read back exactly)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such results file; run `scratchsim sweep SPEC -o {path}`")
    # pandas 3 reads floats back exactly by default; older versions need asking.
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    return pd.read_csv(path, **exact)
