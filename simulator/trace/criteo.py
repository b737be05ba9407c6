"""Criteo Kaggle/Terabyte click logs: a streaming TSV reader and a writer of look-alike files.

A line holds a click label (0 or 1), 13 integer columns and 26 hexadecimal categorical
columns, separated by tabs; an empty field is a missing value. The unlabelled test layout
has the same columns without the label. The 26 categorical columns become tables C1..C26;
a missing value counts as the value 0, as in facebookresearch/dlrm's preprocessing, so a
table has as many rows as dlrm counts for it (a sample fits a model made from dlrm's counts).

The reader streams the files in blocks of whole lines and parses each block in a numba
kernel; memory use is one block and its parsed values plus the id maps, which grow with the
number of distinct values, never with the file size. A file compressed with gzip, bzip2, xz
or zstd (day_0.gz, ...; told by its content) is decompressed as it is read.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Sequence

import numba
import numpy as np

from .._atomic import atomic_open, output_path
from .._progress import progress
from ..errors import InputError, OptionError
from ._compressed import open_input
from .format import Trace, TraceWriter
from .generators import _draw_rank, _zipf_constants

NUM_DENSE = 13
NUM_CATEGORICAL = 26
TABLE_NAMES = [f"C{i}" for i in range(1, NUM_CATEGORICAL + 1)]
LABELLED_COLUMNS = 1 + NUM_DENSE + NUM_CATEGORICAL
TEST_COLUMNS = NUM_DENSE + NUM_CATEGORICAL
DEFAULT_BLOCK_BYTES = 1 << 24
# Distinct values per categorical column of Criteo Kaggle, as in facebookresearch/dlrm
# (bench/dlrm_s_criteo_kaggle.sh, the ln_emb of its processed data set).
KAGGLE_TABLE_ROWS = [1460, 583, 10131227, 2202608, 305, 24, 12517, 633, 3, 93145, 5683, 8351593,
                     3194, 27, 14992, 5461306, 10, 5652, 2173, 4, 7046547, 18, 15, 286181, 105,
                     142572]
# write_criteo_like caps the tables there by default, so look-alike files stay quick to make.
LIKE_ROWS_CAP = 1_000_000

_TAB, _NEWLINE = 9, 10
_MAX_HEX_DIGITS = 16
_FIRST_LINE_LIMIT = 1 << 20  # a Criteo line is a few hundred bytes
# Kernel status codes.
_DONE, _GROW, _BAD_COLUMNS, _BAD_LABEL, _BAD_INT, _BAD_HEX, _LONG_HEX = range(7)
_FIBONACCI = np.uint64(0x9E3779B97F4A7C15)
_INITIAL_SLOTS = 1 << 8
_MAX_LOAD = 0.6
# Byte -> hex digit value, _END_OF_FIELD for a tab or newline, 255 for anything else: one
# table lookup per byte is several times faster than comparing against the ranges.
_END_OF_FIELD = 16
_DIGIT_VALUE = np.full(256, 255, dtype=np.uint8)
_DIGIT_VALUE[ord("0"):ord("9") + 1] = np.arange(10)
_DIGIT_VALUE[ord("a"):ord("f") + 1] = np.arange(10, 16)
_DIGIT_VALUE[ord("A"):ord("F") + 1] = np.arange(10, 16)
_DIGIT_VALUE[[_TAB, _NEWLINE]] = _END_OF_FIELD


# -- parsing ----------------------------------------------------------------------------------
@numba.njit(cache=True)
def _parse_lines(buf, pos, line, n_columns, labels, dense, ids, maps, shifts, used, limits,
                 modulus):
    """Parse the lines of buf (whole lines, the last ending in a newline) from byte pos, the
    start of line number `line` of the block, into labels, dense and ids (one row per line).

    Ids (a missing value is the value 0): with modulus > 0, value % modulus; else the value's
    number in first-seen order from 0, from the open-addressing map of each table: slot h holds
    a value at maps[t][2h] and its number + 1 at maps[t][2h + 1] (0 for an empty slot), so a probe
    touches one cache line. A map is never grown here: when table t holds limits[t] values and
    a new one comes, the kernel stops with _GROW; after the caller grows the map, parsing
    resumes at the start of that line (its values already inserted are found again).

    Returns (status, line, start byte of that line, detail): _DONE with the number of lines
    when every line is parsed; else the line that stopped the parse, with detail the table to
    grow or the 0-based column at fault."""
    n = buf.shape[0]
    first_dense = n_columns - NUM_DENSE - NUM_CATEGORICAL
    first_cat = first_dense + NUM_DENSE
    raw = np.empty(NUM_CATEGORICAL, dtype=np.uint64)
    present = np.empty(NUM_CATEGORICAL, dtype=np.bool_)
    while pos < n:
        start = pos
        for col in range(n_columns):
            if col < first_dense:
                # The label: exactly "0" or "1".
                b = buf[pos]
                if (b != 48 and b != 49) or (buf[pos + 1] != _TAB and buf[pos + 1] != _NEWLINE):
                    return _BAD_LABEL, line, start, col
                labels[line] = b - 48
                pos += 1
            elif col < first_cat:
                negative = buf[pos] == 45
                if negative:
                    pos += 1
                x = 0.0
                digits = 0
                while True:
                    d = _DIGIT_VALUE[buf[pos]]
                    if d >= 10:
                        break
                    x = 10.0 * x + d
                    digits += 1
                    pos += 1
                if d != _END_OF_FIELD or (negative and digits == 0):
                    return _BAD_INT, line, start, col
                dense[line, col - first_dense] = -x if negative else x
            else:
                v = np.uint64(0)
                digits = 0
                while True:
                    d = _DIGIT_VALUE[buf[pos]]
                    if d >= 16:
                        break
                    v = (v << np.uint64(4)) | np.uint64(d)
                    digits += 1
                    pos += 1
                if d != _END_OF_FIELD:
                    return _BAD_HEX, line, start, col
                if digits > _MAX_HEX_DIGITS:
                    return _LONG_HEX, line, start, col
                raw[col - first_cat] = v
                present[col - first_cat] = digits > 0
            # Each field ends in a tab, the last one in the newline.
            if buf[pos] != (_NEWLINE if col == n_columns - 1 else _TAB):
                return _BAD_COLUMNS, line, start, col
            pos += 1
        # The 26 lookups of a line back to back, so that their cache misses overlap: a
        # third faster than looking each value up as soon as it is parsed.
        for t in range(NUM_CATEGORICAL):
            v = raw[t] if present[t] else np.uint64(0)
            if modulus > 0:
                ids[line, t] = np.int64(v % modulus)
            else:
                m = maps[t]
                mask = m.shape[0] // 2 - 1
                h = np.int64((v * _FIBONACCI) >> shifts[t])
                while True:
                    if m[2 * h + 1] == 0:
                        if used[t] >= limits[t]:
                            return _GROW, line, start, t
                        used[t] += 1
                        m[2 * h] = v
                        m[2 * h + 1] = used[t]
                        ids[line, t] = used[t] - 1
                        break
                    if m[2 * h] == v:
                        ids[line, t] = m[2 * h + 1] - 1
                        break
                    h = (h + 1) & mask
        line += 1
    return _DONE, line, pos, 0


@numba.njit(cache=True)
def _rehash(old, new, shift):
    mask = new.shape[0] // 2 - 1
    for i in range(0, old.shape[0], 2):
        if old[i + 1] != 0:
            h = np.int64((old[i] * _FIBONACCI) >> shift)
            while new[2 * h + 1] != 0:
                h = (h + 1) & mask
            new[2 * h] = old[i]
            new[2 * h + 1] = old[i + 1]


class _FirstSeenIds:
    """Per table, an open-addressing map from raw value to its number in first-seen order
    (1, 2, ...), kept at most _MAX_LOAD full by grow(); sizes follow the distinct values."""

    def __init__(self, tables: int, slots: int = _INITIAL_SLOTS):
        self.maps = [np.zeros(2 * slots, dtype=np.uint64) for _ in range(tables)]
        # Fibonacci hashing: the top log2(slots) bits of value * 2**64 / golden ratio.
        self.shifts = np.full(tables, 64 - (slots.bit_length() - 1), dtype=np.uint64)
        self.used = np.zeros(tables, dtype=np.int64)
        self.limits = np.full(tables, int(slots * _MAX_LOAD), dtype=np.int64)

    def grow(self, t: int) -> None:
        slots = len(self.maps[t])
        if slots >= 2**31:  # numbers past 0.6 * 2**32 would not fit the int32 ids
            raise InputError(f"table {TABLE_NAMES[t]} has more than {self.limits[t]} distinct "
                             "values; use --max-rows-per-table to hash them into fewer rows")
        grown = np.zeros(2 * slots, dtype=np.uint64)
        self.shifts[t] -= np.uint64(1)
        _rehash(self.maps[t], grown, self.shifts[t])
        self.maps[t] = grown
        self.limits[t] = int(slots * _MAX_LOAD)


def _file_blocks(path: Path, block_bytes: int):
    """Yield (bytes of whole lines as a uint8 array, whether a newline was added after an
    unterminated last line, bytes of the file read so far) from the file, decompressed where
    it is compressed. The buffer holds one block, or one line where a line is longer."""
    f, position = open_input(path)
    with f:
        buf = bytearray(block_bytes)
        fill = 0  # bytes of an unfinished line carried over from the last read
        while True:
            if fill == len(buf):  # a new buffer: the last block's array may still view this one
                buf = buf + bytes(len(buf))
            got = f.readinto(memoryview(buf)[fill:])
            if got == 0:
                break
            end = fill + got
            cut = buf.rfind(b"\n", 0, end) + 1
            if cut:
                yield np.frombuffer(buf, np.uint8, cut), False, position()
            buf[:end - cut] = buf[cut:end]
            fill = end - cut
        if fill:  # a copy: the last block's array may still view buf
            yield np.frombuffer(buf[:fill] + b"\n", np.uint8), True, position()


def _columns(line: bytes) -> int:
    return line.count(b"\t") + 1


def _column_name(col: int, n_columns: int) -> str:
    first_dense = n_columns - NUM_DENSE - NUM_CATEGORICAL
    if col < first_dense:
        return "label"
    if col < first_dense + NUM_DENSE:
        return f"I{col - first_dense + 1}"
    return TABLE_NAMES[col - first_dense - NUM_DENSE]


def _layout_error(where: str, line: bytes, n_columns: int | None, unterminated: bool) -> InputError:
    found = _columns(line)
    if n_columns is None:
        expect = (f"expected {LABELLED_COLUMNS} (labelled) or {TEST_COLUMNS} (test layout); "
                  "give a Criteo TSV file")
    else:
        layout = "labelled" if n_columns == LABELLED_COLUMNS else "test"
        expect = (f"expected {n_columns} like the first line ({layout} layout); every line of "
                  "every file needs the same columns")
    hint = "; the file ends inside this line: it looks truncated, download it again" \
        if unterminated else ""
    return InputError(f"{where}: {found} column{'' if found == 1 else 's'}, {expect}{hint}")


def _parse_error(status: int, where: str, line: bytes, col: int, n_columns: int,
                 unterminated: bool) -> InputError:
    if _columns(line) != n_columns or status == _BAD_COLUMNS:
        return _layout_error(where, line, n_columns, unterminated)
    field = line.split(b"\t")[col].decode("latin-1")
    shown = repr(field if len(field) <= 40 else field[:40] + "...")
    name = f"column {col + 1} ({_column_name(col, n_columns)})"
    if status == _BAD_LABEL:
        return InputError(f"{where}: the label {shown} is not 0 or 1; the first column of a "
                          "labelled Criteo file is the click label")
    if status == _BAD_INT:
        return InputError(f"{where}: {name} is {shown}, not an integer; the 13 integer "
                          "columns hold decimal integers, or nothing when missing")
    if status == _LONG_HEX:
        return InputError(f"{where}: {name} is {shown}, longer than {_MAX_HEX_DIGITS} "
                          "hexadecimal digits; categorical values are 64-bit hex ids")
    hint = " (Windows line ends: convert the file with dos2unix)" if field.endswith("\r") else ""
    return InputError(f"{where}: {name} is {shown}, not hexadecimal{hint}; categorical "
                      "columns hold hex ids of up to 16 digits, or nothing when missing")


def _check_files(files) -> list[Path]:
    if isinstance(files, (str, os.PathLike)):
        files = [files]
    paths = [Path(os.path.abspath(f)) for f in files]
    if not paths:
        raise OptionError("give at least one Criteo file")
    for p in paths:
        if not p.exists():
            raise InputError(f"{p}: no such file; check the path")
        if not p.is_file():
            raise InputError(f"{p} is not a file; give Criteo TSV files (day_0, train.txt, ...)")
        if p.stat().st_size == 0:
            raise InputError(f"{p}: the file is empty; give a Criteo TSV file with one sample "
                             "per line")
    return paths


def _detect_columns(path: Path) -> int:
    f, _ = open_input(path)
    with f:
        first = f.readline(_FIRST_LINE_LIMIT)
    if not first:
        raise InputError(f"{path}: the file decompresses to nothing; give a Criteo TSV file "
                         "with one sample per line")
    if len(first) == _FIRST_LINE_LIMIT and not first.endswith(b"\n"):
        raise InputError(f"{path}:1: the line is longer than {_FIRST_LINE_LIMIT} bytes; give a "
                         "Criteo TSV file (about 40 short fields a line)")
    unterminated = not first.endswith(b"\n")
    first = first.rstrip(b"\n")
    if _columns(first) not in (LABELLED_COLUMNS, TEST_COLUMNS):
        raise _layout_error(f"{path}:1", first, None, unterminated)
    return _columns(first)


def import_criteo(files, path, batch_size: int, max_rows_per_table: int | None = None,
                  show_progress: bool = True, block_bytes: int = DEFAULT_BLOCK_BYTES) -> Trace:
    """Import Criteo Kaggle/Terabyte TSV files, read in order as one trace, and write it to
    path. Each file may be compressed with gzip, bzip2, xz or zstd (told by its content, not
    its name: day_0.gz or day_0), and is decompressed as it is read; the progress bar counts
    the files' own bytes. Tables C1..C26 have one lookup per sample; the labels and the 13
    integer columns (missing = 0) go to the trace's labels and dense features.

    Ids: by default each table numbers its distinct values in first-seen order from row 0
    (rows = distinct values; a missing value is the value 0, as in dlrm). With
    max_rows_per_table=M every table has M rows and a value v goes to row v mod M, as dlrm's
    --max-ind-range. block_bytes sets the size of the read blocks (memory use, not the result)."""
    paths = _check_files(files)
    if max_rows_per_table is not None and not 1 <= max_rows_per_table < 2**31:
        raise OptionError(f"max rows per table must be in [1, 2**31), got "
                          f"{max_rows_per_table}")
    if block_bytes <= 0:
        raise OptionError(f"block size must be positive, got {block_bytes}")
    n_columns = _detect_columns(paths[0])
    labelled = n_columns == LABELLED_COLUMNS
    provenance = {"source": "criteo", "files": [str(p) for p in paths],
                  "layout": "labelled" if labelled else "test",
                  "max_rows_per_table": max_rows_per_table}
    # With hashing the maps are unused; the kernel still takes them (one slot each).
    id_map = _FirstSeenIds(NUM_CATEGORICAL, slots=1 if max_rows_per_table else _INITIAL_SLOTS)
    modulus = np.uint64(max_rows_per_table or 0)
    sizes = [p.stat().st_size for p in paths]  # the progress counts the files' own bytes
    lines_max = 0  # lines the per-block outputs have room for
    with TraceWriter(path, TABLE_NAMES, batch_size, provenance, labels=labelled,
                     dense_features=NUM_DENSE) as writer, \
            progress(total=sum(sizes), unit="B", desc="import criteo",
                     enabled=show_progress) as bar:
        for p, size in zip(paths, sizes):
            lines_before = 0
            start = bar.n  # the bytes of the files before this one
            for buf, unterminated, read in _file_blocks(p, block_bytes):
                # Room for the most lines a block can hold (a line has n_columns bytes or
                # more); only the pages of the lines parsed are ever touched.
                if len(buf) // n_columns + 1 > lines_max:
                    lines_max = len(buf) // n_columns + 1
                    labels = np.empty(lines_max, dtype=np.float32)
                    dense = np.empty((lines_max, NUM_DENSE), dtype=np.float32)
                    ids = np.empty((lines_max, NUM_CATEGORICAL), dtype=np.int32)
                pos = line = 0
                while True:
                    status, line, pos, detail = _parse_lines(
                        buf, pos, line, n_columns, labels, dense, ids, tuple(id_map.maps),
                        id_map.shifts, id_map.used, id_map.limits, modulus)
                    if status == _DONE:
                        break
                    if status == _GROW:
                        id_map.grow(detail)
                        continue
                    end = pos + int(np.argmax(buf[pos:] == _NEWLINE))
                    raise _parse_error(status, f"{p}:{lines_before + line + 1}",
                                       buf[pos:end].tobytes(), detail, n_columns, unterminated)
                writer.append(ids[:line].reshape(-1), labels=labels[:line] if labelled else None,
                              dense=dense[:line])
                lines_before += line
                bar.update(start + read - bar.n)
            bar.update(start + size - bar.n)
        rows = [max_rows_per_table] * NUM_CATEGORICAL if max_rows_per_table else id_map.used
        return writer.close(table_rows=rows)


# -- look-alike files -------------------------------------------------------------------------
# Mean of each integer column's exponential draw: plausible magnitudes for Criteo's counts
# (a few small counters, a few in the thousands), not measured from the data set.
_DENSE_MEANS = np.array([3.0, 100.0, 20.0, 7.0, 15000.0, 100.0, 15.0, 12.0, 100.0, 0.6, 2.5,
                         1.0, 8.0])
_CLICK_RATE = 0.25  # about Criteo Kaggle's share of positive labels
_WRITE_BLOCK_LINES = 1 << 16
_MAX_LINE_BYTES = 2 + NUM_DENSE * 21 + NUM_CATEGORICAL * 9  # label, int64s, 8 hex digits, tabs


@numba.njit(cache=True)
def _mix32(x):
    """murmur3's finalizer: a bijection on 32-bit values that scatters consecutive ones."""
    m = np.uint64(0xFFFFFFFF)
    x ^= x >> np.uint64(16)
    x = (x * np.uint64(0x85EBCA6B)) & m
    x ^= x >> np.uint64(13)
    x = (x * np.uint64(0xC2B2AE35)) & m
    x ^= x >> np.uint64(16)
    return x


@numba.njit(cache=True)
def _put_decimal(out, k, x):
    digits = 1
    p = 10
    while p <= x:
        digits += 1
        p *= 10
    for i in range(digits - 1, -1, -1):
        out[k + i] = 48 + x % 10
        x //= 10
    return k + digits


@numba.njit(cache=True)
def _format_lines(seed, n_lines, labelled, rows, alpha, salts, missing_prob, dense_means, out):
    """Write n_lines Criteo-format lines into out; returns the number of bytes written."""
    np.random.seed(seed)
    T = rows.shape[0]
    hx1 = np.zeros(T)
    hn = np.zeros(T)
    sc = np.zeros(T)
    for t in range(T):
        if alpha[t] > 0.0:
            hx1[t], hn[t], sc[t] = _zipf_constants(rows[t], alpha[t])
    k = 0
    for _ in range(n_lines):
        if labelled:
            out[k] = 49 if np.random.random() < _CLICK_RATE else 48
            out[k + 1] = _TAB
            k += 2
        for j in range(dense_means.shape[0]):
            if np.random.random() >= missing_prob:
                x = -np.log(1.0 - np.random.random()) * dense_means[j]  # exponential
                k = _put_decimal(out, k, np.int64(x))
            out[k] = _TAB
            k += 1
        for t in range(T):
            if np.random.random() >= missing_prob:
                rank = _draw_rank(rows[t], alpha[t], hx1[t], hn[t], sc[t])
                v = _mix32((np.uint64(rank) + salts[t]) & np.uint64(0xFFFFFFFF))
                for i in range(8):
                    d = np.int64((v >> np.uint64(28 - 4 * i)) & np.uint64(15))
                    out[k + i] = 48 + d if d < 10 else 87 + d
                k += 8
            out[k] = _TAB if t < T - 1 else _NEWLINE
            k += 1
    return k


def write_criteo_like(path, num_lines: int, seed: int = 0, table_rows: Sequence[int] | None = None,
                      alpha=1.05, missing_prob: float = 0.02, labelled: bool = True) -> None:
    """Write a seeded file in the Criteo TSV format (never Criteo's data): per table at most
    table_rows[t] distinct values as import_criteo and dlrm count them (default: Criteo
    Kaggle's cardinalities capped at LIKE_ROWS_CAP): each field missing with probability
    missing_prob (missing being one of the values), else a Zipf(alpha) draw over the other
    8-hex-digit values; small non-negative integers, labels 0/1 (or the unlabelled test
    layout).
    The same arguments give the same file, byte for byte."""
    rows = np.array(table_rows if table_rows is not None else
                    [min(r, LIKE_ROWS_CAP) for r in KAGGLE_TABLE_ROWS], dtype=np.int64)
    if len(rows) != NUM_CATEGORICAL or (rows <= 0).any() or rows.max() >= 2**32:
        raise OptionError(f"table_rows needs {NUM_CATEGORICAL} row counts in [1, 2**32), got "
                          f"{rows.tolist()}")
    alphas = np.array(alpha if isinstance(alpha, (list, tuple, np.ndarray))
                      else [alpha] * NUM_CATEGORICAL, dtype=np.float64)
    if alphas.shape != (NUM_CATEGORICAL,) or not (np.isfinite(alphas) & (alphas >= 0)).all():
        raise OptionError(f"alpha must be >= 0 (0 is uniform), one value or {NUM_CATEGORICAL}; "
                          f"got {alpha}")
    if not 0.0 <= missing_prob <= 1.0:
        raise OptionError(f"missing probability must be in [0, 1], got {missing_prob}")
    if num_lines <= 0 or seed < 0:
        raise OptionError(f"need num_lines > 0 and seed >= 0, got {num_lines} and {seed}")
    path = output_path(path)
    # Distinct salts keep the tables' values apart; the bijection keeps a table's apart.
    salts = (np.arange(NUM_CATEGORICAL, dtype=np.uint64) * np.uint64(0x9E3779B9)) \
        & np.uint64(0xFFFFFFFF)
    drawn = np.maximum(1, rows - (missing_prob > 0))  # the values besides missing
    out = np.empty(_WRITE_BLOCK_LINES * _MAX_LINE_BYTES, dtype=np.uint8)
    with atomic_open(path, "wb") as f:
        for block, first in enumerate(range(0, num_lines, _WRITE_BLOCK_LINES)):
            n = min(_WRITE_BLOCK_LINES, num_lines - first)
            block_seed = int(np.random.SeedSequence([seed, block]).generate_state(1)[0])
            k = _format_lines(block_seed, n, labelled, drawn, alphas, salts,
                              float(missing_prob), _DENSE_MEANS, out)
            f.write(out[:k])
