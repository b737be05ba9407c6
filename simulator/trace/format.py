"""The on-disk trace: a directory of memory-mappable .npy arrays and a meta.json.

Layout (format version 1):

    meta.json     format, version, tables (name, rows), batch_size, counts, pooling,
                  index dtype, labels/dense flags, provenance (source, files or recipe, seed,
                  scratchsim version)
    indices.npy   local row ids (int32, or int64 if a table has 2**31 rows or more), in
                  sample-major order: sample 0's bag of table 0, its bag of table 1, ...,
                  then sample 1, ...
    lengths.npy   (samples, tables) bag sizes; absent when every bag has the same size
                  (meta "pooling" then holds that size)
    batch_ptr.npy (batches + 1) offsets of each batch's first lookup in indices.npy;
                  present only with lengths.npy (with a fixed pooling they are computed)
    labels.npy    (samples,) float32, optional
    dense.npy     (samples, dense_features) float32, optional

Batches are consecutive runs of batch_size samples (the last one may be shorter). Row ids
are local to their table; readers linearize them into one global id space by adding each
table's offset (the sum of the row counts of the tables before it), as FBGEMM does.

Integrity. meta.json also holds "checksums": for each array file, "crc32:XXXXXXXX" of its
data (the bytes after the .npy header), computed while writing, which `scratchsim trace
verify` (verify_trace) recomputes; and for "meta.json" itself, of its fields but provenance
(meta_checksum), which every open checks. Traces written before checksums existed have none
and are read as before. Every read is checked, so a damaged or edited trace is refused with a
TraceFormatError that names the file, the batch and what is wrong, never handed to a kernel:
- on open: meta.json's fields (types and ranges, batches = ceil(samples / batch_size), lookups
  = samples x tables x pooling) against every array's dtype and shape, and batch_ptr (first 0,
  last the number of lookups, never decreasing);
- on every chunk read: each id inside its table's rows, each bag length >= 0, and the bags of
  each batch adding up to its span in batch_ptr. The checks are fused into the linearizing
  pass (one compare per lookup), so a replay is at most a few percent slower with them
  (bench_replay measures it). Trace(path, check_chunks=False) skips the per-chunk checks:
  for that measurement only, since the kernels index by the ids they are handed.
"""

from __future__ import annotations

import json
import os
import shutil
import zlib
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numba
import numpy as np

from .._atomic import check_replaceable, output_path, replace_dir, temporary_dir
from .._version import __version__
from ..errors import OptionError, TraceFormatError

FORMAT_NAME = "scratchsim-trace"
FORMAT_VERSION = 1
# Lookups per streamed chunk: 4M lookups keep a chunk near 50 MB with its derived arrays.
DEFAULT_CHUNK_LOOKUPS = 1 << 22
_NPY_HEADER_BYTES = 128
# Every array file a trace can have, in the order of Trace.array_files.
ARRAY_FILES = ("indices.npy", "lengths.npy", "batch_ptr.npy", "labels.npy", "dense.npy")


@dataclass(frozen=True)
class Table:
    name: str
    rows: int
    offset: int  # first global id of this table


@dataclass
class Chunk:
    """A run of whole batches, read from a trace.

    ids are global row ids in sample-major order; batch i of the chunk is
    ids[batch_ptr[i]:batch_ptr[i + 1]] and samples sample_ptr[i]:sample_ptr[i + 1].
    bag_lengths is None when every bag holds `pooling` ids (lengths makes the array).
    The int64 ids and the pointer arrays are made on first use: a replay kernel that only
    streams row_ids (the same ids in the narrowest type the trace has) never pays for them.

    The promise kernels rely on (checked is True for every chunk Trace.read returns unless
    the trace was opened with check_chunks=False): each id lies inside its own table, so in
    [0, total rows); batch_ptr runs from 0 to len(ids) without decreasing; bag lengths are
    >= 0 and add up to their batch's span. Kernels index by ids and batch_ptr without
    checking them again; code that builds a Chunk by hand must keep the promise.
    """

    first_batch: int
    num_batches: int
    batch_size: int
    num_samples: int
    row_ids: np.ndarray  # global row ids: int32 for a one-table trace, else int64
    labels: np.ndarray | None
    dense: np.ndarray | None
    num_tables: int
    pooling: int | None
    bag_lengths: np.ndarray | None
    stored_batch_ptr: np.ndarray | None = None  # read from the trace when pooling varies
    checked: bool = False  # made by a checking read (see above)

    @cached_property
    def ids(self) -> np.ndarray:
        """Global row ids, int64."""
        return self.row_ids.astype(np.int64, copy=False)

    @cached_property
    def sample_ptr(self) -> np.ndarray:
        ptr = np.arange(0, self.num_batches * self.batch_size + 1, self.batch_size,
                        dtype=np.int64)
        ptr[-1] = self.num_samples  # the trace's last batch may be short
        return ptr

    @cached_property
    def batch_ptr(self) -> np.ndarray:
        if self.stored_batch_ptr is not None:
            return self.stored_batch_ptr
        per_sample = self.num_tables * self.pooling
        return self.sample_ptr if per_sample == 1 else self.sample_ptr * per_sample

    @property
    def one_lookup_per_batch(self) -> bool:
        """Every batch is a single lookup: the classic per-access stream."""
        if self.num_batches != len(self.row_ids):
            return False
        return self.pooling is not None or bool((np.diff(self.batch_ptr) == 1).all())

    @property
    def lengths(self) -> np.ndarray:
        """(samples, tables) bag sizes."""
        if self.bag_lengths is not None:
            return self.bag_lengths
        return np.full((self.num_samples, self.num_tables), self.pooling, dtype=np.int32)

    def batch_buffer(self) -> np.ndarray:
        """Room for the distinct rows of the chunk's largest batch."""
        if self.pooling is not None:  # only the trace's last batch can be shorter than the first
            largest = min(self.batch_size, self.num_samples)
            return np.empty(largest * self.num_tables * self.pooling, dtype=np.int64)
        return np.empty(int(np.diff(self.batch_ptr).max(initial=0)), dtype=np.int64)

    def batch_ids(self, i: int) -> np.ndarray:
        return self.ids[self.batch_ptr[i]:self.batch_ptr[i + 1]]


@numba.njit(cache=True)
def _linearize(local_ids, lengths, offsets, out):
    """out[k] = local_ids[k] + offset of the table of lookup k (sample-major bags)."""
    k = 0
    for s in range(lengths.shape[0]):
        for t in range(lengths.shape[1]):
            off = offsets[t]
            for _ in range(lengths[s, t]):
                out[k] = local_ids[k] + off
                k += 1


@numba.njit(cache=True)
def _linearize_fixed(local_ids, tables, pooling, offsets, out):
    """_linearize when every bag holds `pooling` ids: lookup k is in table (k // pooling) %
    tables."""
    k = 0
    n = len(local_ids)
    while k < n:
        for t in range(tables):
            off = offsets[t]
            for _ in range(pooling):
                out[k] = local_ids[k] + off
                k += 1


# What the checking kernels found (0: the chunk is sound).
_OK, _BAD_ID, _BAD_LENGTH, _SHORT_INDICES, _BAD_POINTER = range(5)


@numba.njit(cache=True)
def _extremes(ids):
    """(min, max) of a non-empty array in one pass (a loop LLVM vectorises)."""
    lo = ids[0]
    hi = ids[0]
    for k in range(ids.shape[0]):
        v = ids[k]
        lo = min(lo, v)
        hi = max(hi, v)
    return lo, hi


def _first_bad_id(ids: np.ndarray, rows: int) -> int:
    """The position of the first id outside [0, rows), or -1: one vectorised pass for the
    extremes, and a search for the position only when they are out of range."""
    if ids.shape[0] == 0:
        return -1
    lo, hi = _extremes(ids)
    if lo >= 0 and hi < rows:
        return -1
    return int(np.argmax((ids < 0) | (ids >= rows)))


@numba.njit(cache=True)
def _linearize_fixed_checked(local_ids, tables, pooling, offsets, rows, out):
    """_linearize_fixed that stops at the first id outside its table's rows and returns its
    position (-1: every id is in range). len(local_ids) must be a multiple of
    tables * pooling (whole samples), which the caller guarantees."""
    k = 0
    n = len(local_ids)
    while k < n:
        for t in range(tables):
            off = offsets[t]
            r = rows[t]
            for _ in range(pooling):
                v = local_ids[k]
                if v < 0 or v >= r:
                    return k
                out[k] = v + off
                k += 1
    return -1


@numba.njit(cache=True)
def _batches_fit(samples, batches, batch_size, batch_ptr, n):
    """The chunk's shape agrees with itself: `batches` batches of batch_size samples (the last
    may be shorter) hold `samples`, and the pointers start at 0 and end at n."""
    if batches < 1:
        return samples == 0 and batch_ptr.shape[0] == 1 and batch_ptr[0] == 0 and n == 0
    return ((batches - 1) * batch_size < samples <= batches * batch_size
            and batch_ptr[0] == 0 and batch_ptr[batches] == n)


@numba.njit(cache=True)
def _linearize_checked(local_ids, lengths, offsets, rows, batch_ptr, batch_size, out):
    """_linearize that trusts nothing it reads: every bag length is >= 0, the bags of each
    batch stay inside and exactly cover its span batch_ptr[b]..batch_ptr[b + 1] (relative
    to the chunk), and every id lies inside its table's rows. Returns (code, position,
    sample, table) of the first problem, code _OK when there is none. Every index it uses is
    checked before it is used."""
    n = local_ids.shape[0]
    samples = lengths.shape[0]
    batches = batch_ptr.shape[0] - 1
    if not _batches_fit(samples, batches, batch_size, batch_ptr, n):
        return _BAD_POINTER, 0, 0, 0
    k = 0
    for b in range(batches):
        end = batch_ptr[b + 1]
        if end < k or end > n:
            return _BAD_POINTER, k, b * batch_size, 0
        for s in range(b * batch_size, min(samples, (b + 1) * batch_size)):
            for t in range(lengths.shape[1]):
                m = lengths[s, t]
                if m < 0:
                    return _BAD_LENGTH, k, s, t
                if m > end - k:
                    return _SHORT_INDICES, k, s, t
                off = offsets[t]
                r = rows[t]
                for _ in range(m):
                    v = local_ids[k]
                    if v < 0 or v >= r:
                        return _BAD_ID, k, s, t
                    out[k] = v + off
                    k += 1
        if k != end:
            return _BAD_POINTER, k, b * batch_size, 0
    return _OK, -1, -1, -1


@numba.njit(cache=True)
def _check_bags(flat_lengths, tables, batch_ptr, batch_size, n):
    """The bag-length half of _linearize_checked, for a trace whose ids need no linearizing
    (one table): lengths >= 0 and each batch's bags adding up to its span in batch_ptr
    (relative to the chunk, n lookups). flat_lengths is the (samples, tables) lengths
    flattened; one vectorised sum and min per batch, no indexing by the lengths. Returns
    (code, sample, table) of the first problem, code _OK when there is none."""
    samples = flat_lengths.shape[0] // tables
    batches = batch_ptr.shape[0] - 1
    if not _batches_fit(samples, batches, batch_size, batch_ptr, n):
        return _BAD_POINTER, 0, 0
    for b in range(batches):
        lo = 0
        k = 0
        first, end = b * batch_size * tables, min(samples, (b + 1) * batch_size) * tables
        for j in range(first, end):
            m = flat_lengths[j]
            lo = min(lo, m)
            k += m
        if lo < 0:
            for j in range(first, end):
                if flat_lengths[j] < 0:
                    return _BAD_LENGTH, j // tables, j % tables
        if k != batch_ptr[b + 1] - batch_ptr[b]:
            return _BAD_POINTER, b * batch_size, 0
    return _OK, -1, -1


@numba.njit(cache=True)
def _table_extremes(local_ids, lengths, lo, hi):
    """Per-table minimum and maximum local id, folded into lo and hi."""
    k = 0
    for s in range(lengths.shape[0]):
        for t in range(lengths.shape[1]):
            for _ in range(lengths[s, t]):
                v = local_ids[k]
                if v < lo[t]:
                    lo[t] = v
                if v > hi[t]:
                    hi[t] = v
                k += 1


def _npy_header(dtype: np.dtype, shape: tuple) -> bytes:
    """A .npy v1.0 header padded to a fixed size, so it can be rewritten in place."""
    d = {"descr": np.lib.format.dtype_to_descr(np.dtype(dtype)), "fortran_order": False,
         "shape": tuple(shape)}
    text = repr(d).encode("latin1")
    body_len = _NPY_HEADER_BYTES - 10
    text = text + b" " * (body_len - len(text) - 1) + b"\n"
    return b"\x93NUMPY\x01\x00" + np.uint16(body_len).tobytes() + text


class _NpyStream:
    """Appends rows to a .npy file whose length is known only at the end."""

    def __init__(self, path: Path, dtype, row_shape: tuple = ()):
        self.path, self.dtype, self.row_shape = path, np.dtype(dtype), tuple(row_shape)
        self.rows = 0
        self.crc32 = 0  # of the data written so far (the header is not part of it)
        self._f = open(path, "wb")
        self._f.write(_npy_header(self.dtype, (0,) + self.row_shape))

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: row shape {a.shape[1:]} != {self.row_shape}")
        data = a.tobytes()
        self._f.write(data)
        self.crc32 = zlib.crc32(data, self.crc32)
        self.rows += a.shape[0]

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.seek(0)
        self._f.write(_npy_header(self.dtype, (self.rows,) + self.row_shape))
        self._f.close()


def _format_checksum(crc: int) -> str:
    return f"crc32:{crc & 0xFFFFFFFF:08x}"


# Fields of meta.json that its own checksum leaves out: free text, and the checksums.
_META_UNCHECKED = ("provenance", "checksums")


def meta_checksum(meta: dict) -> str:
    """The checksum of what meta.json says about the trace (every field but provenance and
    the checksums), so that a damaged or edited row count or batch size that still agrees
    with the arrays is noticed too."""
    fields = {k: v for k, v in meta.items() if k not in _META_UNCHECKED}
    return _format_checksum(zlib.crc32(json.dumps(fields, sort_keys=True).encode()))


def data_checksum(path: Path, progress_update=None, block: int = 1 << 24) -> str:
    """The checksum of a .npy file's data (the bytes after its header), read in blocks of
    `block` bytes so memory stays bounded; progress_update(n) is called with each block's
    size. ValueError when the header is not a readable .npy header (OSError when the file
    cannot be read)."""
    crc = 0
    with open(path, "rb") as f:
        try:
            version = np.lib.format.read_magic(f)
            if version == (1, 0):
                shape, fortran, _ = np.lib.format.read_array_header_1_0(f)
            elif version == (2, 0):
                shape, fortran, _ = np.lib.format.read_array_header_2_0(f)
            else:
                raise ValueError(f"unsupported .npy version {version}")
        except Exception as e:  # a damaged header makes numpy raise many types
            raise ValueError(_one_line(e)) from None
        if fortran and len(shape) > 1:
            raise ValueError("the array is in Fortran order")
        while data := f.read(block):
            crc = zlib.crc32(data, crc)
            if progress_update is not None:
                progress_update(len(data))
    return _format_checksum(crc)


def read_meta(path: Path) -> dict | None:
    """path/meta.json as a dict; None when it is missing, unreadable or not a JSON object."""
    try:
        meta = json.loads((path / "meta.json").read_text())
    except (OSError, ValueError):
        return None
    return meta if isinstance(meta, dict) else None


def _is_trace_dir(path: Path) -> bool:
    return (read_meta(path) or {}).get("format") == FORMAT_NAME


class TraceWriter:
    """Writes a trace directory atomically: everything goes to a hidden temporary directory
    beside the destination, which is renamed into place by close(). On an exception inside
    a `with` block, or abort(), the temporary directory is removed and nothing is left.

    append() takes samples in sample-major order: local ids, and either a (samples, tables)
    lengths array or None when every bag holds `pooling` ids.
    """

    def __init__(self, path, table_names: Sequence[str], batch_size: int, provenance: dict,
                 table_rows: Sequence[int] | None = None, labels: bool = False,
                 dense_features: int = 0, index_dtype=np.int32):
        if batch_size <= 0:
            raise OptionError(f"batch size must be positive, got {batch_size}")
        if not table_names:
            raise OptionError("a trace needs at least one table")
        self.path = output_path(path)
        check_replaceable(self.path, _is_trace_dir)  # refused now, not after the writing
        self.table_names = [str(n) for n in table_names]
        self.batch_size = int(batch_size)
        self.provenance = dict(provenance)
        self.table_rows = None if table_rows is None else [int(r) for r in table_rows]
        self.index_dtype = np.dtype(index_dtype)
        self.num_tables = len(self.table_names)
        self.dense_features = int(dense_features)
        self._tmp = temporary_dir(self.path)
        self._indices = _NpyStream(self._tmp / "indices.npy", self.index_dtype)
        self._lengths = None  # opened only once bags of different sizes show up
        self._pooling = None
        self._batch_ptr = _NpyStream(self._tmp / "batch_ptr.npy", np.int64)
        self._labels = _NpyStream(self._tmp / "labels.npy", np.float32) if labels else None
        self._dense = (_NpyStream(self._tmp / "dense.npy", np.float32, (self.dense_features,))
                       if self.dense_features else None)
        self._samples = 0
        self._lookups = 0
        self._id_lo = np.full(self.num_tables, np.iinfo(np.int64).max, dtype=np.int64)
        self._id_hi = np.full(self.num_tables, -1, dtype=np.int64)
        self._done = False

    @property
    def samples(self) -> int:
        return self._samples

    @property
    def max_ids(self) -> np.ndarray:
        """The largest local id written so far per table (-1 for a table with no lookup)."""
        return self._id_hi.copy()

    def append(self, local_ids: np.ndarray, lengths: np.ndarray | None = None, pooling: int = 1,
               labels: np.ndarray | None = None, dense: np.ndarray | None = None) -> None:
        local_ids = np.asarray(local_ids)
        if lengths is None:
            n = len(local_ids) // (self.num_tables * pooling) if pooling > 0 else 0
            lengths = np.full((n, self.num_tables), pooling, dtype=np.int32)
        lengths = np.asarray(lengths, dtype=np.int32)
        if lengths.ndim != 2 or lengths.shape[1] != self.num_tables:
            raise ValueError(f"lengths must have shape (samples, {self.num_tables})")
        ns = lengths.shape[0]
        if ns == 0:
            return
        lo, hi = int(lengths.min()), int(lengths.max())
        if int(lengths.sum(dtype=np.int64)) != len(local_ids) or lo < 0:
            # _table_extremes walks the ids by these lengths: they must be sound
            raise ValueError("the lengths are negative or do not add up to the number of ids")
        if (labels is None) != (self._labels is None) or (dense is None) != (self._dense is None):
            raise ValueError("labels/dense must be given exactly when the writer was made with them")
        if len(local_ids):
            _table_extremes(local_ids.astype(np.int64, copy=False), lengths, self._id_lo, self._id_hi)
        if self._pooling is None:
            self._pooling = lo
        if self._lengths is None and not lo == hi == self._pooling:
            self._start_lengths()
        # Offsets of the batches that start inside this append.
        per_sample = lengths.sum(axis=1, dtype=np.int64)
        starts = np.concatenate(([0], np.cumsum(per_sample)[:-1])) + self._lookups
        first = -self._samples % self.batch_size
        self._batch_ptr.append(starts[first::self.batch_size])
        self._indices.append(local_ids)
        if self._lengths is not None:
            self._lengths.append(lengths)
        if self._labels is not None:
            self._labels.append(np.asarray(labels).reshape(ns))
        if self._dense is not None:
            self._dense.append(np.asarray(dense).reshape(ns, self.dense_features))
        self._samples += ns
        self._lookups += len(local_ids)

    def _start_lengths(self) -> None:
        """Bags stopped being all the same size: write the lengths of the samples so far."""
        self._lengths = _NpyStream(self._tmp / "lengths.npy", np.int32, (self.num_tables,))
        block = 1 << 20
        for start in range(0, self._samples, block):
            n = min(block, self._samples - start)
            self._lengths.append(np.full((n, self.num_tables), self._pooling, dtype=np.int32))

    def close(self, table_rows: Sequence[int] | None = None) -> "Trace":
        """Finish the trace; table_rows may be given here when only known at the end."""
        try:
            if table_rows is not None:
                self.table_rows = [int(r) for r in table_rows]
            if self.table_rows is None or len(self.table_rows) != self.num_tables:
                raise ValueError("the row count of every table must be known at close()")
            if self._samples == 0:
                raise OptionError(f"no samples to write to {self.path}: the input is empty")
            for t, (lo, hi, rows) in enumerate(zip(self._id_lo, self._id_hi, self.table_rows)):
                if rows <= 0:
                    raise OptionError(f"table {self.table_names[t]} must have a positive row "
                                      f"count, got {rows}")
                if hi >= rows or (hi >= 0 and lo < 0):
                    bad = hi if hi >= rows else lo
                    raise OptionError(f"table {self.table_names[t]}: row id {bad} is out of "
                                      f"range [0, {rows}); give the table more rows")
            if max(self.table_rows) >= 2**31 and self.index_dtype == np.int32:
                raise OptionError("a table has 2**31 rows or more: write it with int64 ids")
            if sum(self.table_rows) >= _MAX_COUNT:
                raise OptionError(f"the tables have {sum(self.table_rows):,} rows together, more "
                                  "than a trace can hold (2**62); are the ids right?")
            self._batch_ptr.append(np.array([self._lookups], dtype=np.int64))
            for s in self._streams():
                s.close()
            pooling = self._pooling if self._lengths is None else None
            if pooling is not None:
                os.unlink(self._tmp / "batch_ptr.npy")
            checksums = {s.path.name: _format_checksum(s.crc32) for s in self._streams()
                         if pooling is None or s is not self._batch_ptr}
            meta = {
                "format": FORMAT_NAME,
                "version": FORMAT_VERSION,
                "tables": [{"name": n, "rows": r} for n, r in zip(self.table_names, self.table_rows)],
                "batch_size": self.batch_size,
                "num_batches": -(-self._samples // self.batch_size),
                "num_samples": self._samples,
                "num_lookups": self._lookups,
                "pooling": pooling,
                "index_dtype": self.index_dtype.name,
                "labels": self._labels is not None,
                "dense_features": self.dense_features,
                "provenance": {**self.provenance, "scratchsim_version": __version__},
                "checksums": checksums,
            }
            checksums["meta.json"] = meta_checksum(meta)
            (self._tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
            Trace(self._tmp)  # what readers will check, checked before it is in place
            replace_dir(self._tmp, self.path, _is_trace_dir)
            self._done = True
        except BaseException:
            self.abort()
            raise
        return Trace(self.path)

    def _streams(self):
        return [s for s in (self._indices, self._lengths, self._batch_ptr, self._labels,
                            self._dense) if s is not None]

    def abort(self) -> None:
        """Drop everything written; the destination is left as it was."""
        for s in self._streams():
            s.close()
        shutil.rmtree(self._tmp, ignore_errors=True)
        self._done = True

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        if exc_type is not None and not self._done:
            self.abort()
        return False


def _one_line(e: BaseException) -> str:
    return " ".join(str(e).split()) or type(e).__name__


def _damaged(what: str) -> TraceFormatError:
    return TraceFormatError(f"{what}; the trace is damaged, re-create it")


def _is_int(v) -> bool:
    return type(v) is int  # JSON integers only: not bool, not float


_CHECKSUM_CHARS = set("0123456789abcdef")
INDEX_DTYPES = ("int32", "int64")
# Bounds that keep every derived size inside int64 arithmetic.
_MAX_COUNT = 1 << 62


def _check_meta(meta: dict, meta_path: Path) -> None:
    """Every field a reader uses has the type and range the writer gives it
    (TraceFormatError naming the field otherwise)."""

    def bad(what: str):
        raise TraceFormatError(f"{meta_path}: {what}; the trace is damaged or was edited, "
                               "re-create it")

    def count(key: str, least: int, default=None):
        v = meta.get(key, default)
        if not (_is_int(v) and least <= v < _MAX_COUNT):
            bad(f"{key} is {v!r}, not an integer >= {least}" if key in meta
                else f"{key} is missing")
        return v

    tables = meta.get("tables")
    if not (isinstance(tables, list) and tables):
        bad("tables is not a non-empty list")
    for i, t in enumerate(tables):
        if not (isinstance(t, dict) and isinstance(t.get("name"), str)):
            bad(f"table {i} has no name")
        if not (_is_int(t.get("rows")) and 0 < t["rows"] < _MAX_COUNT):
            bad(f"table {t['name']!r} has rows {t.get('rows')!r}, not a positive integer")
    if sum(t["rows"] for t in tables) >= _MAX_COUNT:
        bad("the tables have too many rows together")
    batch_size = count("batch_size", 1)
    samples = count("num_samples", 1)
    batches = count("num_batches", 1)
    if batches != -(-samples // batch_size):
        bad(f"num_batches {batches:,} does not hold {samples:,} samples in batches of "
            f"{batch_size:,}")
    count("num_lookups", 0)
    pooling = meta.get("pooling")
    if pooling is not None and not (_is_int(pooling) and 0 <= pooling < _MAX_COUNT):
        bad(f"pooling is {pooling!r}, not null or an integer >= 0")
    if "index_dtype" in meta and meta["index_dtype"] not in INDEX_DTYPES:
        bad(f"index_dtype is {meta['index_dtype']!r}, not one of {', '.join(INDEX_DTYPES)}")
    if not isinstance(meta.get("labels", False), bool):
        bad(f"labels is {meta['labels']!r}, not true or false")
    count("dense_features", 0, default=0)
    if not isinstance(meta.get("provenance", {}), dict):
        bad("provenance is not an object")
    checksums = meta.get("checksums")
    if checksums is not None:
        if not isinstance(checksums, dict):
            bad("checksums is not an object")
        for name, value in checksums.items():
            if not (isinstance(value, str) and value.startswith("crc32:") and len(value) == 14
                    and set(value[6:]) <= _CHECKSUM_CHARS):
                bad(f"the checksum of {name} is {value!r}, not crc32:XXXXXXXX")
        if "meta.json" in checksums and checksums["meta.json"] != meta_checksum(meta):
            bad("its description of the trace was changed after the trace was written (its "
                f"checksum is {meta_checksum(meta)}, the writer recorded "
                f"{checksums['meta.json']})")


class Trace:
    """A trace on disk, opened for streaming. Arrays are memory-mapped; chunks() reads a
    bounded number of lookups at a time, so memory does not grow with the trace length."""

    def __init__(self, path, check_chunks: bool = True):
        """Open the trace at path, checking meta.json against its arrays (TraceFormatError
        naming the file on any disagreement). check_chunks=False skips the per-chunk checks:
        only for measuring what they cost (see the module docstring)."""
        self.path = Path(path)
        self.check_chunks = bool(check_chunks)
        meta_path = self.path / "meta.json"
        if not self.path.is_dir():
            raise TraceFormatError(f"{self.path} is not a directory; give a trace directory "
                                   "made by 'scratchsim trace generate' or 'trace import'")
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise TraceFormatError(f"{self.path} is not a scratchsim trace (no meta.json); make "
                                   "one with 'scratchsim trace generate' or 'trace import'") from None
        except ValueError as e:  # bad JSON or bad UTF-8
            raise _damaged(f"{meta_path} is not valid JSON ({_one_line(e)})") from None
        except OSError as e:
            raise TraceFormatError(f"{meta_path} cannot be read ({e.strerror or e})") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise TraceFormatError(f"{meta_path} is not a scratchsim trace description; re-create "
                                   "the trace")
        if meta.get("version") != FORMAT_VERSION:
            raise TraceFormatError(f"{self.path} has trace format version {meta.get('version')!r}, "
                                   f"this scratchsim reads version {FORMAT_VERSION}; re-create it")
        self.meta = meta
        _check_meta(meta, meta_path)
        offsets = np.concatenate(([0], np.cumsum([t["rows"] for t in meta["tables"]])))
        self.tables = [Table(t["name"], t["rows"], int(o)) for t, o in zip(meta["tables"], offsets)]
        self.batch_size = meta["batch_size"]
        self.num_batches = meta["num_batches"]
        self.num_samples = meta["num_samples"]
        self.num_lookups = meta["num_lookups"]
        self.pooling = meta["pooling"]
        self.dense_features = meta.get("dense_features", 0)
        self.checksums = meta.get("checksums")  # None: written before checksums existed
        self.table_offsets = offsets[:-1].astype(np.int64)
        self.table_rows = np.array([t.rows for t in self.tables], dtype=np.int64)
        self.total_rows = int(offsets[-1])
        index_dtypes = [meta["index_dtype"]] if "index_dtype" in meta else INDEX_DTYPES
        self.indices = self._load("indices.npy", (self.num_lookups,), index_dtypes)
        T = self.num_tables
        if self.pooling is None:
            self.lengths = self._load("lengths.npy", (self.num_samples, T), ["int32"])
            self.batch_ptr = self._load("batch_ptr.npy", (self.num_batches + 1,), ["int64"])
            self._check_batch_ptr()
        else:
            if self.num_lookups != self.num_samples * T * self.pooling:
                raise _damaged(f"{meta_path}: num_lookups {self.num_lookups:,} is not samples x "
                               f"tables x pooling ({self.num_samples:,} x {T} x {self.pooling})")
            self.lengths = self.batch_ptr = None
        self.labels = (self._load("labels.npy", (self.num_samples,), ["float32"])
                       if meta.get("labels") else None)
        self.dense = (self._load("dense.npy", (self.num_samples, self.dense_features), ["float32"])
                      if self.dense_features else None)

    def array_files(self) -> list[str]:
        """The names of the array files this trace is made of."""
        arrays = (self.indices, self.lengths, self.batch_ptr, self.labels, self.dense)
        return [name for name, array in zip(ARRAY_FILES, arrays) if array is not None]

    def _load(self, name: str, shape: tuple, dtypes: Sequence[str]) -> np.ndarray:
        p = self.path / name
        try:
            a = np.load(p, mmap_mode="r")
        except FileNotFoundError:
            raise TraceFormatError(f"{self.path} is incomplete: {name} is missing; "
                                   "re-create the trace") from None
        except Exception as e:  # anything np.load makes of a damaged header or a short file
            raise TraceFormatError(f"{p} is truncated or corrupt ({_one_line(e)}); re-create "
                                   "the trace") from None
        if not isinstance(a, np.ndarray):
            raise TraceFormatError(f"{p} is not a .npy array; re-create the trace")
        if a.shape != shape:
            raise TraceFormatError(f"{p} has shape {a.shape}, meta.json says {shape}; "
                                   "the trace is truncated or corrupt, re-create it")
        if a.dtype not in dtypes:
            raise _damaged(f"{p} holds {a.dtype.str} values, meta.json says "
                           f"{' or '.join(np.dtype(d).str for d in dtypes)}")
        if not a.flags.c_contiguous:
            raise _damaged(f"{p} is stored in Fortran order")
        return a

    def _check_batch_ptr(self) -> None:
        """batch_ptr starts at 0, ends at the number of lookups and never decreases (checked
        in blocks, so memory stays bounded)."""
        ptr, p = self.batch_ptr, self.path / "batch_ptr.npy"
        if int(ptr[0]) != 0 or int(ptr[-1]) != self.num_lookups:
            raise _damaged(f"{p}: batch offsets run from {int(ptr[0]):,} to {int(ptr[-1]):,}, "
                           f"meta.json says 0 to {self.num_lookups:,}")
        block = 1 << 22
        for start in range(0, len(ptr) - 1, block):
            step = np.diff(np.asarray(ptr[start:start + block + 1]))
            if (step < 0).any():
                b = start + int(np.argmax(step < 0))
                raise _damaged(f"{p}: batch {b}: its offsets decrease ({int(ptr[b]):,} then "
                               f"{int(ptr[b + 1]):,})")

    # -- description -----------------------------------------------------------------------
    @property
    def num_tables(self) -> int:
        return len(self.tables)

    @property
    def provenance(self) -> dict:
        return self.meta.get("provenance", {})

    def __len__(self) -> int:
        return self.num_batches

    def __repr__(self) -> str:
        return (f"Trace({str(self.path)!r}, tables={self.num_tables}, rows={self.total_rows}, "
                f"batches={self.num_batches}, batch_size={self.batch_size}, "
                f"lookups={self.num_lookups})")

    # -- positions -----------------------------------------------------------------------------
    def sample_start(self, batch: int) -> int:
        return min(batch * self.batch_size, self.num_samples)

    def lookup_start(self, batch: int) -> int:
        if self.pooling is None:
            return int(self.batch_ptr[batch])
        return self.sample_start(batch) * self.num_tables * self.pooling

    def batches_per_chunk(self, start: int, max_lookups: int) -> int:
        """How many batches from `start` the chunk of chunks(max_lookups) that starts there
        holds."""
        if self.pooling is not None:
            per_batch = max(1, self.batch_size * self.num_tables * self.pooling)
            return max(1, max_lookups // per_batch)
        # Variable pooling: as many whole batches as fit in max_lookups (at least one).
        limit = int(self.batch_ptr[start]) + max_lookups
        end = int(np.searchsorted(self.batch_ptr, limit, side="right")) - 1
        return max(1, end - start)

    # -- streaming ------------------------------------------------------------------------------
    def chunks(self, max_lookups: int = DEFAULT_CHUNK_LOOKUPS, start: int = 0,
               stop: int | None = None, labels: bool = False) -> Iterator[Chunk]:
        """Yield the batches start..stop-1 as chunks of whole batches of about max_lookups
        lookups (a single batch larger than that is one chunk)."""
        stop = self.num_batches if stop is None else min(stop, self.num_batches)
        b = start
        while b < stop:
            e = min(stop, b + self.batches_per_chunk(b, max_lookups))
            yield self.read(b, e, labels=labels)
            b = e

    def read(self, start: int, stop: int, labels: bool = False) -> Chunk:
        """Batches start..stop-1 as one chunk, checked (TraceFormatError naming the file and
        the batch) unless the trace was opened with check_chunks=False."""
        if not 0 <= start <= stop <= self.num_batches:
            raise OptionError(f"batches {start}..{stop} are outside [0, {self.num_batches}]")
        s0, s1 = self.sample_start(start), self.sample_start(stop)
        i0, i1 = self.lookup_start(start), self.lookup_start(stop)
        if not 0 <= i0 <= i1 <= self.num_lookups:  # batch_ptr changed since it was checked
            raise _damaged(f"{self.path / 'batch_ptr.npy'}: batches {start}..{stop} span "
                           f"lookups {i0:,}..{i1:,}, outside [0, {self.num_lookups:,}]")
        T = self.num_tables
        local = _read_rows(self.indices, i0, i1)
        lengths = batch_ptr = None
        if self.pooling is None:
            lengths = _read_rows(self.lengths, s0, s1)
            batch_ptr = np.asarray(self.batch_ptr[start:stop + 1], dtype=np.int64) - i0
        ids = local if T == 1 else np.empty(len(local), dtype=np.int64)  # one table: global
        if not self.check_chunks:
            if T > 1 and lengths is None:
                _linearize_fixed(local, T, self.pooling, self.table_offsets, ids)
            elif T > 1:
                _linearize(local, lengths, self.table_offsets, ids)
        elif lengths is None:
            if T == 1:
                bad = _first_bad_id(local, self.total_rows)
            else:
                bad = _linearize_fixed_checked(local, T, self.pooling, self.table_offsets,
                                               self.table_rows, ids)
            if bad >= 0:
                per_sample = T * self.pooling
                self._chunk_error(_BAD_ID, start, local, bad, bad // per_sample,
                                  (bad % per_sample) // self.pooling)
        elif T == 1:
            code, sample, table = _check_bags(lengths.reshape(-1), T, batch_ptr,
                                              self.batch_size, len(local))
            if code != _OK:
                self._chunk_error(code, start, local, -1, sample, table)
            bad = _first_bad_id(local, self.total_rows)
            if bad >= 0:
                sample = int(np.searchsorted(np.cumsum(lengths[:, 0]), bad, side="right"))
                self._chunk_error(_BAD_ID, start, local, bad, sample, 0)
        else:
            code, pos, sample, table = _linearize_checked(
                local, lengths, self.table_offsets, self.table_rows, batch_ptr,
                self.batch_size, ids)
            if code != _OK:
                self._chunk_error(code, start, local, pos, sample, table)
        lab = _read_rows(self.labels, s0, s1) if labels and self.labels is not None else None
        dense = _read_rows(self.dense, s0, s1) if labels and self.dense is not None else None
        return Chunk(start, stop - start, self.batch_size, s1 - s0, ids, lab, dense, T,
                     self.pooling, lengths, batch_ptr, checked=self.check_chunks)

    def _chunk_error(self, code: int, first_batch: int, local: np.ndarray, pos: int,
                     sample: int, table: int):
        """Raise the TraceFormatError for what a checking kernel found in the chunk that
        starts at first_batch (pos: the lookup, sample: the sample within the chunk)."""
        batch = first_batch + sample // self.batch_size
        fix = (f"the trace is damaged or was edited: run 'scratchsim trace verify {self.path}' "
               "and re-create or re-copy it")
        if code == _BAD_ID:
            t = self.tables[table]
            raise TraceFormatError(f"{self.path / 'indices.npy'}: batch {batch:,}: table "
                                   f"{t.name} row id {int(local[pos]):,} is outside "
                                   f"[0, {t.rows:,}); {fix}")
        where = f"{self.path / 'lengths.npy'}: batch {batch:,}"
        if code == _BAD_LENGTH:
            raise TraceFormatError(f"{where}: sample {self.sample_start(first_batch) + sample:,} "
                                   f"has a bag of negative length in table "
                                   f"{self.tables[table].name}; {fix}")
        if code == _SHORT_INDICES:
            raise TraceFormatError(f"{where}: the bags run past the batch's lookups in "
                                   f"indices.npy; {fix}")
        raise TraceFormatError(f"{where}: the bag lengths do not add up to the batch's span "
                               f"in batch_ptr.npy; {fix}")

    def batch(self, b: int, labels: bool = False) -> Chunk:
        if not 0 <= b < self.num_batches:
            raise OptionError(f"batch {b} is out of range [0, {self.num_batches})")
        return self.read(b, b + 1, labels=labels)

    def table_of(self, global_ids: np.ndarray) -> np.ndarray:
        """The table index of each global id."""
        return np.searchsorted(self.table_offsets, global_ids, side="right") - 1

    def largest_ids(self) -> np.ndarray:
        """The largest local id each table looks up (-1 for a table never used), in one
        streamed pass."""
        lo = np.full(self.num_tables, np.iinfo(np.int64).max, dtype=np.int64)
        hi = np.full(self.num_tables, -1, dtype=np.int64)
        for chunk in self.chunks():
            # Global ids of one table differ from its local ones by the table's offset.
            _table_extremes(chunk.ids, chunk.lengths, lo, hi)
        return np.where(hi >= 0, hi - self.table_offsets, -1)


def _read_rows(array: np.memmap, start: int, stop: int) -> np.ndarray:
    """Rows start..stop-1 of a memory-mapped .npy, read with plain file I/O: a streamed chunk
    becomes private memory that is freed with it, instead of mapped pages that stay counted
    in the process's resident set long after the chunk is gone."""
    row_items = int(np.prod(array.shape[1:], dtype=np.int64))
    count = (stop - start) * row_items
    out = np.fromfile(array.filename, dtype=array.dtype, count=count,
                      offset=array.offset + start * row_items * array.dtype.itemsize)
    if len(out) != count:
        raise TraceFormatError(f"{array.filename} is truncated; re-create the trace")
    return out.reshape((stop - start,) + array.shape[1:])


def open_trace(path) -> Trace:
    """Open a trace directory for streaming."""
    if isinstance(path, Trace):
        return path
    return Trace(path)
