"""The results store: a journal that survives kill -9 and damage, the CSV made from it, and
the lock that gives a results file one writer.

Every finished point is appended to RESULTS.points.jsonl as one line, in a single write
followed by fsync. A line is a JSON object whose first key, "crc32", is the checksum of the
rest of the line, so a disk error or an edit in the middle of the journal is noticed: reading
keeps every sound line and sets a damaged one aside (ResultsStore.damaged). A damaged line
costs its point only: the sweep says so, drops the line (repair()) and computes that point
again. A torn last line from a killed run is cut off when the journal is opened. Lines
written before lines had checksums (their first key is "point_id") are read as they are.
After each point the CSV (one row per point of the spec, in grid order) is rewritten from the
journal under a temporary name and renamed, so RESULTS.csv is always whole. A resumed sweep
computes only the points whose point_id the journal lacks.

One writer: a sweep holds results_lock(RESULTS) for its whole run, an exclusive flock on
.RESULTS.lock beside the results that records its pid, host and start time. A second sweep
on the same output is refused with a message naming the first. The kernel drops the lock when
its holder exits or is killed, so a crash never leaves it stuck.
"""

from __future__ import annotations

import csv
import fcntl
import json
import os
import socket
import sys
import time
import zlib
from contextlib import contextmanager
from pathlib import Path
from typing import Iterator

import pandas as pd

from .._atomic import atomic_open
from .._version import __version__
from ..errors import InputError, OptionError
from .spec import CONFIG_KEYS

LEADING_COLUMNS = ("point_id",) + CONFIG_KEYS + ("scratchsim_version", "error")
# A journal line: _CRC_PREFIX, 8 hex digits, _CRC_SUFFIX, then the row's JSON without its "{".
_CRC_PREFIX = b'{"crc32": "'
_CRC_SUFFIX = b'", '
_LEGACY_PREFIX = b'{"point_id": '


def journal_path(results_path) -> Path:
    results_path = Path(results_path)
    return results_path.with_name(results_path.name + ".points.jsonl")


def lock_path(results_path) -> Path:
    results_path = Path(results_path)
    return results_path.with_name(f".{results_path.name}.lock")


def journal_line(row: dict) -> bytes:
    """The journal line of a results row (with its checksum), newline included."""
    body = json.dumps(row).encode()[1:]  # without the opening brace
    return b"%s%08x%s%s\n" % (_CRC_PREFIX, zlib.crc32(body), _CRC_SUFFIX, body)


def parse_journal_line(line: bytes) -> tuple[dict | None, str]:
    """(row, "") for a sound journal line (without its newline), (None, what is wrong)
    otherwise."""
    head = len(_CRC_PREFIX) + 8 + len(_CRC_SUFFIX)
    try:
        if line.startswith(_CRC_PREFIX) and line[head - len(_CRC_SUFFIX):head] == _CRC_SUFFIX:
            body = line[head:]
            if line[len(_CRC_PREFIX):head - len(_CRC_SUFFIX)] != b"%08x" % zlib.crc32(body):
                return None, "its checksum does not match its contents"
            row = json.loads(b"{" + body)
        elif line.startswith(_LEGACY_PREFIX):  # written before lines had checksums
            row = json.loads(line)
        else:
            return None, "it is not a results line"
    except ValueError:  # not JSON, or not UTF-8
        return None, "it is not valid JSON"
    if not (isinstance(row, dict) and isinstance(row.get("point_id"), str)):
        return None, "it has no point_id"
    return row, ""


class ResultsStore:
    """The journal of finished points of one results file."""

    def __init__(self, results_path):
        self.path = Path(results_path)
        self.journal = journal_path(self.path)
        self.rows: dict[str, dict] = {}
        self.damaged: list[tuple[int, str]] = []  # (line number, what is wrong)
        self._sound: list[bytes] = []
        self._load()

    def _load(self) -> None:
        if not self.journal.exists():
            return
        try:
            data = self.journal.read_bytes()
            whole = data[:data.rfind(b"\n") + 1]
            if len(whole) != len(data):  # a torn last line from a killed run: cut it off
                with open(self.journal, "r+b") as f:
                    f.truncate(len(whole))
        except OSError as e:
            raise InputError(f"{self.journal} cannot be read ({e.strerror or e}); move it "
                             "away to start the sweep afresh") from None
        for number, line in enumerate(whole.split(b"\n")[:-1], 1):
            row, problem = parse_journal_line(line)
            if row is None:
                self.damaged.append((number, problem))
                continue
            self._sound.append(line + b"\n")
            self.rows.setdefault(row["point_id"], row)

    def repair(self) -> None:
        """Drop the damaged lines from the journal (their points are computed again); the
        sound ones are kept byte for byte. Call it only while holding results_lock."""
        if not self.damaged:
            return
        with atomic_open(self.journal, "wb", fsync=True) as f:
            f.writelines(self._sound)
        self.damaged = []

    def append(self, point_id: str, config: dict, metrics: dict) -> dict:
        row = {"point_id": point_id, **config, "scratchsim_version": __version__, **metrics}
        line = journal_line(row)
        fd = os.open(self.journal, os.O_WRONLY | os.O_APPEND | os.O_CREAT, 0o644)
        try:
            os.write(fd, line)
            os.fsync(fd)
        finally:
            os.close(fd)
        self._sound.append(line)
        self.rows.setdefault(point_id, row)
        return row

    def write_csv(self, point_ids: list[str]) -> None:
        """The rows of these points that have finished, in this order, written atomically."""
        rows = [self.rows[p] for p in point_ids if p in self.rows]
        columns = list(LEADING_COLUMNS)
        for row in rows:
            columns += [k for k in row if k not in columns]
        with atomic_open(self.path, "w", newline="", fsync=True) as f:
            w = csv.DictWriter(f, fieldnames=columns)
            w.writeheader()
            w.writerows(rows)


def _holder(fd: int) -> str:
    """Who holds the lock, from what it wrote into the lock file."""
    try:
        info = json.loads(os.pread(fd, 4096, 0))
        return (f"pid {info['pid']} on {info['host']}, started {info['started']}: "
                f"{info['command']}")
    except (OSError, ValueError, KeyError, TypeError):
        return "a process that is just starting"


@contextmanager
def results_lock(results_path) -> Iterator[None]:
    """Be the only writer of results_path while the block runs: an exclusive flock on its
    lock file, which records this process. Another holder makes it raise OptionError naming
    that holder. The kernel releases the lock if this process dies, so a crash never leaves
    it stuck; a clean exit removes the lock file."""
    path = lock_path(results_path)
    while True:
        try:
            fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
        except OSError as e:
            raise OptionError(f"cannot create the lock file {path} ({e.strerror or e}); "
                              "write the results somewhere writable") from None
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            holder = _holder(fd)
            os.close(fd)
            raise OptionError(f"{results_path} is being written by another sweep ({holder}); "
                              "wait for it to finish, or write to another -o") from None
        # The previous holder removes the file as it lets go: lock the file that is there now.
        try:
            if os.path.samestat(os.fstat(fd), os.stat(path)):
                break
        except FileNotFoundError:
            pass
        os.close(fd)
    try:
        info = {"pid": os.getpid(), "host": socket.gethostname(),
                "started": time.strftime("%Y-%m-%d %H:%M:%S"),
                "command": " ".join(["scratchsim"] + sys.argv[1:])[:300]}
        os.ftruncate(fd, 0)
        os.pwrite(fd, json.dumps(info).encode(), 0)
        yield
    finally:
        path.unlink(missing_ok=True)
        os.close(fd)


def load_results(path) -> pd.DataFrame:
    """A results CSV as a DataFrame (floats read back exactly)."""
    path = Path(path)
    if not path.is_file():
        raise InputError(f"{path}: no such results file; run `scratchsim sweep SPEC -o {path}`")
    # pandas 3 reads floats back exactly by default; older versions need asking.
    exact = {} if int(pd.__version__.split(".")[0]) >= 3 else {"float_precision": "round_trip"}
    try:
        df = pd.read_csv(path, **exact)
    except (ValueError, OSError, pd.errors.ParserError) as e:  # EmptyDataError is a ValueError
        raise InputError(f"{path} is not a readable results file ({' '.join(str(e).split())}); "
                         "run the sweep again to rewrite it") from None
    if "point_id" not in df.columns:
        raise InputError(f"{path} is not a results file (no point_id column); run the sweep "
                         "again to rewrite it")
    return df
