"""Next use: for every lookup, the next batch after its own that uses the same row.

Future-aware policies (belady, scratchpipe with victim 'future', oracle) need, for each row
of a batch, when it is needed again. One backward streaming pass over the trace computes it:
chunks in reverse, batches in reverse, and within a batch every lookup first reads the
nearest later batch of its row, then the batch becomes its rows' nearest later batch. The
result goes to a .npy file in a temporary directory, written and read back with plain file
I/O (not mapped, so the file's pages never count as the process's memory): memory stays
O(total rows) plus one chunk while the file holds one entry per lookup.
"""

from __future__ import annotations

import shutil
import tempfile
import weakref
from pathlib import Path

import numba
import numpy as np

from ..errors import OptionError
from ..trace.format import DEFAULT_CHUNK_LOOKUPS, Chunk, Trace
from ._pools import word_dtype
from ._prefetch import ROWS_AHEAD, prefetch


@numba.njit(cache=True)
def _next_use_backward(ids, batch_ptr, first_batch, nearest_later, out):
    """Fill out[k] for the chunk's lookups, last batch first. nearest_later[row] is the
    nearest batch after the ones already visited that uses row (or the sentinel)."""
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 2, -1, -1):
        start, end = batch_ptr[b], batch_ptr[b + 1]
        # Read every lookup before updating any: rows repeated in a batch all point past it.
        for k in range(start, end):
            prefetch(nearest_later, ids[min(k + ROWS_AHEAD, last)])
            out[k] = nearest_later[ids[k]]
        batch = first_batch + b
        for k in range(start, end):
            nearest_later[ids[k]] = batch


def _chunk_bounds(trace: Trace, max_lookups: int) -> list[tuple[int, int]]:
    """(start, stop) batches of the chunks trace.chunks(max_lookups) yields, found from the
    batch offsets alone, without reading ids."""
    bounds, start = [], 0
    while start < trace.num_batches:
        stop = min(trace.num_batches, start + trace.batches_per_chunk(start, max_lookups))
        bounds.append((start, stop))
        start = stop
    return bounds


def _remove(file, directory: Path) -> None:
    file.close()
    shutil.rmtree(directory, ignore_errors=True)


class NextUse:
    """The next use of every lookup of a trace, computed once and kept in a temporary file.

    next_use[k] is the index of the next batch after the batch of lookup k that uses the
    same row, or `never` (the number of batches, beyond every batch) if none does. The
    dtype is int32 when that fits, halving the file. for_chunk(chunk) gives the array
    aligned with chunk.ids for any chunking of the trace.

    The temporary directory is made under tmp_dir (default: tempfile.gettempdir()) and
    removed by close(), by leaving a `with` block (also on an exception), or when the
    object is garbage collected. A policy that keeps one closes it in its close(), which the
    replay driver calls when the replay ends (base.py).
    """

    def __init__(self, trace: Trace, tmp_dir=None, max_lookups: int = DEFAULT_CHUNK_LOOKUPS):
        self.trace = trace
        self.dtype = word_dtype(trace.num_batches)  # every batch index and the sentinel
        self.never = trace.num_batches
        parent = Path(tmp_dir) if tmp_dir is not None else Path(tempfile.gettempdir())
        if not parent.is_dir():
            raise OptionError(f"temporary directory {parent} does not exist; create it or "
                              "choose another")
        self.dir = Path(tempfile.mkdtemp(prefix="scratchsim-next-use-", dir=parent))
        self._file = open(self.dir / "next_use.npy", "w+b")
        self._cleanup = weakref.finalize(self, _remove, self._file, self.dir)
        try:
            self._compute(max_lookups)
        except BaseException:
            self.close()
            raise

    def _compute(self, max_lookups: int) -> None:
        np.lib.format.write_array_header_1_0(self._file, {
            "descr": np.lib.format.dtype_to_descr(self.dtype), "fortran_order": False,
            "shape": (self.trace.num_lookups,)})
        self._data_offset = self._file.tell()
        nearest_later = np.full(self.trace.total_rows, self.never, dtype=self.dtype)
        for start, stop in reversed(_chunk_bounds(self.trace, max_lookups)):
            chunk = self.trace.read(start, stop)
            out = np.empty(len(chunk.ids), dtype=self.dtype)
            _next_use_backward(chunk.ids, chunk.batch_ptr, chunk.first_batch, nearest_later, out)
            self._seek(start)
            out.tofile(self._file)
        self._file.flush()

    def _seek(self, batch: int) -> None:
        self._file.seek(self._data_offset + self.trace.lookup_start(batch) * self.dtype.itemsize)

    def for_chunk(self, chunk: Chunk) -> np.ndarray:
        """The next use of each of chunk.ids, read from the file."""
        if self.closed:
            raise ValueError("NextUse is closed")
        self._seek(chunk.first_batch)
        return np.fromfile(self._file, dtype=self.dtype, count=len(chunk.ids))

    def close(self) -> None:
        """Close and remove the temporary file and its directory (idempotent)."""
        self._cleanup()

    @property
    def closed(self) -> bool:
        return not self._cleanup.alive

    def __enter__(self):
        return self

    def __exit__(self, exc_type, exc, tb):
        self.close()
        return False
