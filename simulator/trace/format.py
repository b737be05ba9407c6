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
"""

from __future__ import annotations

import json
import os
import shutil
from dataclasses import dataclass
from functools import cached_property
from pathlib import Path
from typing import Iterator, Sequence

import numba
import numpy as np

from .._version import __version__
from ..errors import OptionError, TraceFormatError

FORMAT_NAME = "scratchsim-trace"
FORMAT_VERSION = 1
# Lookups per streamed chunk: 4M lookups keep a chunk near 50 MB with its derived arrays.
DEFAULT_CHUNK_LOOKUPS = 1 << 22
_NPY_HEADER_BYTES = 128


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
        self._f = open(path, "wb")
        self._f.write(_npy_header(self.dtype, (0,) + self.row_shape))

    def append(self, a: np.ndarray) -> None:
        a = np.ascontiguousarray(a, dtype=self.dtype)
        if a.shape[1:] != self.row_shape:
            raise ValueError(f"{self.path.name}: row shape {a.shape[1:]} != {self.row_shape}")
        self._f.write(a.tobytes())
        self.rows += a.shape[0]

    def close(self) -> None:
        if self._f.closed:
            return
        self._f.seek(0)
        self._f.write(_npy_header(self.dtype, (self.rows,) + self.row_shape))
        self._f.close()


def _is_trace_dir(path: Path) -> bool:
    try:
        return json.loads((path / "meta.json").read_text()).get("format") == FORMAT_NAME
    except (OSError, ValueError, AttributeError):
        return False


def replace_dir(tmp: Path, dest: Path, replaceable) -> None:
    """Move the finished directory tmp to dest. An existing dest is replaced only when
    replaceable(dest) says it holds a previous output (or it is empty)."""
    if dest.exists():
        if not dest.is_dir() or not (replaceable(dest) or not any(dest.iterdir())):
            raise OptionError(f"{dest} exists and is not a previous output of this command; "
                              "choose another output path or remove it")
        old = dest.parent / f".{dest.name}.old-{os.getpid()}"
        os.rename(dest, old)
        os.rename(tmp, dest)
        shutil.rmtree(old, ignore_errors=True)
    else:
        os.rename(tmp, dest)


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
        self.path = Path(path)
        if not self.path.parent.is_dir():
            raise OptionError(f"output directory {self.path.parent} does not exist; create it first")
        if self.path.exists() and not self.path.is_dir():
            raise OptionError(f"{self.path} exists and is a file; choose another output path")
        self.table_names = [str(n) for n in table_names]
        self.batch_size = int(batch_size)
        self.provenance = dict(provenance)
        self.table_rows = None if table_rows is None else [int(r) for r in table_rows]
        self.index_dtype = np.dtype(index_dtype)
        self.num_tables = len(self.table_names)
        self.dense_features = int(dense_features)
        self._tmp = self.path.parent / f".{self.path.name}.tmp-{os.getpid()}"
        if self._tmp.exists():
            shutil.rmtree(self._tmp)
        self._tmp.mkdir()
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
        if int(lengths.sum()) != len(local_ids):
            raise ValueError("the lengths do not add up to the number of ids")
        if (labels is None) != (self._labels is None) or (dense is None) != (self._dense is None):
            raise ValueError("labels/dense must be given exactly when the writer was made with them")
        if len(local_ids):
            _table_extremes(local_ids.astype(np.int64, copy=False), lengths, self._id_lo, self._id_hi)
        lo, hi = int(lengths.min()), int(lengths.max())
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
            self._batch_ptr.append(np.array([self._lookups], dtype=np.int64))
            for s in self._streams():
                s.close()
            pooling = self._pooling if self._lengths is None else None
            if pooling is not None:
                os.unlink(self._tmp / "batch_ptr.npy")
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
            }
            (self._tmp / "meta.json").write_text(json.dumps(meta, indent=2) + "\n")
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


class Trace:
    """A trace on disk, opened for streaming. Arrays are memory-mapped; chunks() reads a
    bounded number of lookups at a time, so memory does not grow with the trace length."""

    def __init__(self, path):
        self.path = Path(path)
        meta_path = self.path / "meta.json"
        if not self.path.is_dir():
            raise TraceFormatError(f"{self.path} is not a directory; give a trace directory "
                                   "made by 'scratchsim trace generate' or 'trace import'")
        try:
            meta = json.loads(meta_path.read_text())
        except FileNotFoundError:
            raise TraceFormatError(f"{self.path} is not a scratchsim trace (no meta.json); make "
                                   "one with 'scratchsim trace generate' or 'trace import'") from None
        except ValueError as e:
            raise TraceFormatError(f"{meta_path} is not valid JSON ({e}); re-create the trace") from None
        if not isinstance(meta, dict) or meta.get("format") != FORMAT_NAME:
            raise TraceFormatError(f"{meta_path} is not a scratchsim trace description; re-create "
                                   "the trace")
        if meta.get("version") != FORMAT_VERSION:
            raise TraceFormatError(f"{self.path} has trace format version {meta.get('version')}, "
                                   f"this scratchsim reads version {FORMAT_VERSION}; re-create it")
        self.meta = meta
        try:
            offsets = np.concatenate(([0], np.cumsum([int(t["rows"]) for t in meta["tables"]])))
            self.tables = [Table(str(t["name"]), int(t["rows"]), int(o))
                           for t, o in zip(meta["tables"], offsets)]
            self.batch_size = int(meta["batch_size"])
            self.num_batches = int(meta["num_batches"])
            self.num_samples = int(meta["num_samples"])
            self.num_lookups = int(meta["num_lookups"])
            self.pooling = None if meta["pooling"] is None else int(meta["pooling"])
            self.dense_features = int(meta.get("dense_features", 0))
        except (KeyError, TypeError, ValueError) as e:
            raise TraceFormatError(f"{meta_path} lacks or garbles {e}; re-create the trace") from None
        self.table_offsets = offsets[:-1].astype(np.int64)
        self.table_rows = np.array([t.rows for t in self.tables], dtype=np.int64)
        self.total_rows = int(offsets[-1])
        self.indices = self._load("indices.npy", (self.num_lookups,))
        T = self.num_tables
        if self.pooling is None:
            self.lengths = self._load("lengths.npy", (self.num_samples, T))
            self.batch_ptr = self._load("batch_ptr.npy", (self.num_batches + 1,))
        else:
            if self.num_lookups != self.num_samples * T * self.pooling:
                raise TraceFormatError(f"{meta_path}: num_lookups disagrees with samples x tables "
                                       "x pooling; re-create the trace")
            self.lengths = None
            self.batch_ptr = None
        self.labels = self._load("labels.npy", (self.num_samples,)) if meta.get("labels") else None
        self.dense = (self._load("dense.npy", (self.num_samples, self.dense_features))
                      if self.dense_features else None)

    def _load(self, name: str, shape: tuple) -> np.ndarray:
        p = self.path / name
        try:
            a = np.load(p, mmap_mode="r")
        except FileNotFoundError:
            raise TraceFormatError(f"{self.path} is incomplete: {name} is missing; "
                                   "re-create the trace") from None
        except ValueError as e:
            raise TraceFormatError(f"{p} is truncated or corrupt ({e}); re-create the trace") from None
        if a.shape != shape:
            raise TraceFormatError(f"{p} has shape {a.shape}, meta.json says {shape}; "
                                   "the trace is truncated or corrupt, re-create it")
        return a

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

    def _batches_per_chunk(self, start: int, max_lookups: int) -> int:
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
            e = min(stop, b + self._batches_per_chunk(b, max_lookups))
            yield self.read(b, e, labels=labels)
            b = e

    def read(self, start: int, stop: int, labels: bool = False) -> Chunk:
        """Batches start..stop-1 as one chunk."""
        s0, s1 = self.sample_start(start), self.sample_start(stop)
        i0, i1 = self.lookup_start(start), self.lookup_start(stop)
        T = self.num_tables
        local = _read_rows(self.indices, i0, i1)
        lengths = batch_ptr = None
        if self.pooling is None:
            lengths = _read_rows(self.lengths, s0, s1)
            batch_ptr = np.asarray(self.batch_ptr[start:stop + 1], dtype=np.int64) - i0
        if T == 1:
            ids = local  # one table: local ids are global ids
        else:
            ids = np.empty(len(local), dtype=np.int64)
            if lengths is None:
                _linearize_fixed(local, T, self.pooling, self.table_offsets, ids)
            else:
                _linearize(local, lengths, self.table_offsets, ids)
        lab = dense = None
        if labels and self.labels is not None:
            lab = _read_rows(self.labels, s0, s1)
        if labels and self.dense is not None:
            dense = _read_rows(self.dense, s0, s1)
        return Chunk(start, stop - start, self.batch_size, s1 - s0, ids, lab, dense, T,
                     self.pooling, lengths, batch_ptr)

    def batch(self, b: int, labels: bool = False) -> Chunk:
        if not 0 <= b < self.num_batches:
            raise OptionError(f"batch {b} is out of range [0, {self.num_batches})")
        return self.read(b, b + 1, labels=labels)

    def table_of(self, global_ids: np.ndarray) -> np.ndarray:
        """The table index of each global id."""
        return np.searchsorted(self.table_offsets, global_ids, side="right") - 1


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
