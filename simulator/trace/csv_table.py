"""Import the categorical columns of a CSV file (Avazu, MovieLens, Taobao style) as a trace.

Each chosen column becomes one table with one lookup per line (pooling 1). Its distinct
values (tokens) get dense row ids 0, 1, 2, ... in the order they are first seen, so a table
has exactly as many rows as the column has distinct values.

The file is read in blocks of whole lines. Every block is checked for lines with the wrong
number of fields with a vectorized count of separators, then parsed by pandas' C parser and
factorized column by column; only the distinct tokens of a block pass through Python.
"""

from __future__ import annotations

import csv
import io
from itertools import repeat
from pathlib import Path
from typing import Sequence

import numpy as np
import pandas as pd

from .._progress import progress
from ..errors import InputError, OptionError
from ._compressed import open_input, require_file
from .format import Trace, TraceWriter

# Bytes of whole lines parsed at a time: small enough that a block's parsed strings stay
# within tens of MB, large enough that pandas' per-call cost does not matter.
_BLOCK_BYTES = 1 << 22
# Pandas' fast parser splits on one byte only; a longer separator (MovieLens 1M's '::') is
# replaced by this control byte, which text data does not contain.
_SEP_STANDIN = b"\x1f"
# Samples per append when writing a sorted trace from memory.
_WRITE_SAMPLES = 1 << 20


def import_csv(file, output, *, columns: Sequence, batch_size: int, sep: str = ",",
               header: bool = False, sort_by=None, show_progress: bool = True) -> Trace:
    """Import the categorical columns of a CSV file as a trace with one table per column.

    columns: column names (with header=True) or 0-based column numbers (numbers also work
    with a header). Tables are named after the header's column names, or 'col3' without one.
    sep: the field separator, any string ('tab' or '\\t' for a tab).
    Fields are split at every separator: quotes are not interpreted (a quoted value keeps its
    quotes as part of the token). Blank lines are skipped. An empty field is a token like any
    other (it gets its own row; there is no reserved missing-value row). Every non-blank line
    must have as many fields as the first line. Tokens are compared as raw bytes, so any
    text encoding works. The file may be compressed with gzip, bzip2, xz or zstd (told by its
    content, not its name); it is decompressed as it is read.

    Without sort_by, the file is streamed: memory holds one block of lines and the distinct
    tokens of each chosen column. With sort_by (a column name or number), samples are ordered
    by that column, stably so that ties keep file order: numerically when every value parses
    as a number (empty values last), otherwise as strings. Row ids are then numbered in the
    first-seen order of the sorted samples. Sorting holds a few integers per line and column
    in memory, so it needs memory proportional to the number of lines.
    """
    path = Path(file)
    sep_bytes = _separator(sep)
    if isinstance(columns, str):
        columns = columns.split(",")
    if not columns:
        raise OptionError("give at least one column to import (--columns C1,C2,...)")
    require_file(path, "give the path of a CSV file")
    f, position = open_input(path)
    with f:
        first_line_number, first_line = _first_line(f, path)
        first_fields = first_line.rstrip(b"\r\n").split(sep_bytes)
        num_fields = len(first_fields)
        names = None
        if header:
            names = [field.decode("utf-8", "replace") for field in first_fields]
        chosen = [_column_index(c, names, num_fields, path) for c in columns]
        for i in set(chosen):
            if chosen.count(i) > 1:
                raise OptionError(f"column {_column_label(i, names)} is chosen twice; give "
                                  "each column once")
        sort_column = None if sort_by is None else _column_index(sort_by, names, num_fields, path)
        read = sorted(set(chosen) | ({sort_column} if sort_column is not None else set()))
        table_names = [_column_label(i, names) for i in chosen]
        provenance = {"source": "csv", "files": [str(path.resolve())],
                      "columns": [names[i] if names else i for i in chosen],
                      "sep": sep_bytes.decode("utf-8"), "header": bool(header),
                      "sort_by": None if sort_column is None else
                      (names[sort_column] if names else sort_column)}
        blocks = _line_blocks(f, first_line_number + 1 if header else first_line_number,
                              b"" if header else first_line)
        parse = _BlockParser(path, sep_bytes, num_fields, first_line_number, read)
        token_ids: dict[int, dict] = {i: {} for i in read}
        with TraceWriter(output, table_names, batch_size, provenance) as writer, \
                progress(total=path.stat().st_size, unit="B", desc=f"import {path.name}",
                         enabled=show_progress) as bar:
            if sort_column is None:
                for frame in parse.frames(blocks):
                    ids = np.stack([_global_ids(frame[i], token_ids[i]) for i in chosen], axis=1)
                    writer.append(ids.ravel(), pooling=1)
                    bar.update(position() - bar.n)  # the file's own (compressed) bytes
            else:
                codes: dict[int, list] = {i: [] for i in read}
                for frame in parse.frames(blocks):
                    for i in read:
                        codes[i].append(_global_ids(frame[i], token_ids[i]))
                    bar.update(position() - bar.n)
                if codes[read[0]]:
                    _write_sorted(writer, {i: np.concatenate(c) for i, c in codes.items()},
                                  token_ids, chosen, sort_column)
            bar.update(position() - bar.n)
            if writer.samples == 0:
                raise InputError(f"{path} has no data lines; give a file with at least one "
                                 "line of values")
            return writer.close(table_rows=[len(token_ids[i]) for i in chosen])


def _separator(sep: str) -> bytes:
    if sep in ("tab", "\\t"):
        sep = "\t"
    if not sep or "\n" in sep or "\r" in sep:
        raise OptionError(f"separator {sep!r} is not usable; give one or more characters other "
                          "than a line break ('tab' for a tab)")
    return sep.encode("utf-8")


def _first_line(f, path: Path) -> tuple[int, bytes]:
    """The first non-blank line, without a UTF-8 byte order mark, and its 1-based number."""
    number = 1
    for line in f:
        if number == 1:
            line = line.removeprefix(b"\xef\xbb\xbf")
        if line.strip(b"\r\n"):
            return number, line
        number += 1
    raise InputError(f"{path} is empty; give a CSV file with data")


def _column_label(index: int, names: list[str] | None) -> str:
    return names[index] if names else f"col{index}"


def _column_index(spec, names: list[str] | None, num_fields: int, path: Path) -> int:
    """A column name (with a header) or a 0-based number, as a column index."""
    text = str(spec).strip()
    if names and text in names:
        return names.index(text)
    if text.isascii() and text.isdigit():
        index = int(text)
        if index >= num_fields:
            raise OptionError(f"{path}: column {index} is out of range: the first line has "
                              f"{num_fields} fields (columns 0 to {num_fields - 1})")
        return index
    if names:
        raise OptionError(f"{path}: no column named {text!r}; the columns are: "
                          f"{', '.join(names)}")
    raise OptionError(f"{path}: without a header, columns are 0-based numbers, got {text!r}; "
                      "add --header (header=True) to choose columns by name")


def _line_blocks(f, first_line_number: int, head: bytes):
    """Yield (line number of the first line, bytes of whole lines ending in a line break),
    starting with head and continuing with the rest of the open file f."""
    line_number, rest = first_line_number, head
    while True:
        data = f.read(_BLOCK_BYTES)
        if not data:
            if rest.strip(b"\r\n"):
                yield line_number, rest if rest.endswith(b"\n") else rest + b"\n"
            return
        buffer = rest + data
        cut = buffer.rfind(b"\n") + 1
        if cut:
            yield line_number, buffer[:cut]
            line_number += buffer.count(b"\n", 0, cut)
        rest = buffer[cut:]


class _BlockParser:
    """Checks the field count of every line of a block and parses its chosen columns."""

    def __init__(self, path: Path, sep: bytes, num_fields: int, reference_line: int,
                 columns: list[int]):
        self.path, self.sep, self.num_fields = path, sep, num_fields
        self.reference_line, self.columns = reference_line, columns
        # The byte the parser splits on once a long separator is replaced by the stand-in.
        self.split_byte = _SEP_STANDIN if len(sep) > 1 else sep

    def frames(self, blocks):
        """Yield a DataFrame of the chosen columns, as strings, per block."""
        for line_number, block in blocks:
            if len(self.sep) > 1:
                if _SEP_STANDIN in block:
                    raise InputError(f"{self.path} contains the byte 0x1f, which a separator of "
                                     "several characters needs; use a one-character separator")
                block = block.replace(self.sep, _SEP_STANDIN)
            if self._check_fields(block, line_number):
                # latin-1 maps every byte to one character: distinct bytes stay distinct.
                yield pd.read_csv(io.BytesIO(block), sep=self.split_byte.decode("latin-1"),
                                  header=None, usecols=self.columns, dtype=str,
                                  na_filter=False, quoting=csv.QUOTE_NONE, encoding="latin-1",
                                  skip_blank_lines=True, engine="c")

    def _check_fields(self, block: bytes, first_line_number: int) -> int:
        """Raise InputError at the first non-blank line whose field count differs from the
        first line's; return the number of non-blank lines."""
        data = np.frombuffer(block, dtype=np.uint8)
        ends = np.flatnonzero(data == ord("\n"))
        seps = np.flatnonzero(data == self.split_byte[0])
        fields = np.diff(np.searchsorted(seps, ends), prepend=0) + 1
        widths = ends - np.concatenate(([0], ends[:-1] + 1))
        blank = (widths == 0) | ((widths == 1) & (data[ends - 1] == ord("\r")))
        bad = (fields != self.num_fields) & ~blank
        if bad.any():
            k = int(np.argmax(bad))
            raise InputError(f"{self.path}, line {first_line_number + k}: {fields[k]} fields, "
                             f"but line {self.reference_line} has {self.num_fields}; fix or "
                             "remove the line")
        return int(len(ends) - blank.sum())


def _global_ids(column: pd.Series, token_ids: dict) -> np.ndarray:
    """Row ids of a block's column; new tokens get the next ids in first-seen order."""
    codes, uniques = pd.factorize(column)
    uniques = uniques.tolist()
    # Look up and insert with map/zip, which loop in C: no Python bytecode per token.
    mapped = np.fromiter(map(token_ids.get, uniques, repeat(-1)), dtype=np.int64,
                         count=len(uniques))
    new = np.flatnonzero(mapped < 0)
    if len(new):
        mapped[new] = np.arange(len(token_ids), len(token_ids) + len(new))
        token_ids.update(zip(map(uniques.__getitem__, new.tolist()), mapped[new].tolist()))
    return mapped[codes]


def _sort_key(tokens: list[str], codes: np.ndarray) -> np.ndarray:
    """Per-line sort key: the value when every token is a number, else the token's rank
    among the tokens in string order."""
    try:
        values = pd.to_numeric(pd.Series(tokens, dtype=object)).to_numpy()
    except (ValueError, TypeError):
        values = None
    if values is not None and values.dtype.kind in "iuf":
        return values[codes]
    rank = np.empty(len(tokens), dtype=np.int64)
    rank[np.argsort(np.array(tokens, dtype=object), kind="stable")] = np.arange(len(tokens))
    return rank[codes]


def _first_seen_ids(codes: np.ndarray) -> np.ndarray:
    """Renumber codes 0..n-1 (each present) in the order they first appear."""
    _, first_position = np.unique(codes, return_index=True)
    new_id = np.empty(len(first_position), dtype=np.int64)
    new_id[np.argsort(first_position)] = np.arange(len(first_position))
    return new_id[codes]


def _write_sorted(writer: TraceWriter, codes: dict, token_ids: dict, chosen: list[int],
                  sort_column: int) -> None:
    order = np.argsort(_sort_key(list(token_ids[sort_column]), codes[sort_column]),
                       kind="stable")
    ids = np.stack([_first_seen_ids(codes[i][order]) for i in chosen], axis=1)
    for start in range(0, len(ids), _WRITE_SAMPLES):
        writer.append(ids[start:start + _WRITE_SAMPLES].ravel(), pooling=1)
