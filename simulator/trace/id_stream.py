"""Import a flat stream of row ids from a .npy file as a one-table trace."""

from __future__ import annotations

from pathlib import Path

import numpy as np

from .._progress import progress
from ..errors import InputError
from ._compressed import detect_compression, require_file
from .format import Trace, TraceWriter

# Ids per streamed chunk: 4M ids keep a chunk and the writer's derived arrays near 100 MB.
_CHUNK_IDS = 1 << 22
_NPY_MAGIC = b"\x93NUMPY"


def import_ids(file, output, *, batch_size: int, show_progress: bool = True) -> Trace:
    """Import a 1-D integer array of row ids (a .npy file) as a trace of one table, named
    after the file, with one lookup per sample and batch_size samples per batch (1: one
    lookup per batch, the classic cache trace). The table has max id + 1 rows.

    The file is memory-mapped and read twice in chunks (once to check the ids and find the
    largest, once to write), so it may be larger than memory."""
    path = Path(file)
    ids = _open_ids(path)
    max_id = _check_ids(ids, path)
    rows = max_id + 1
    provenance = {"source": "ids", "files": [str(path.resolve())]}
    index_dtype = np.int32 if rows < 2**31 else np.int64
    with TraceWriter(output, [path.stem], batch_size, provenance, table_rows=[rows],
                     index_dtype=index_dtype) as writer, \
            progress(total=len(ids), unit="ids", desc=f"import {path.name}",
                     enabled=show_progress) as bar:
        for start in range(0, len(ids), _CHUNK_IDS):
            chunk = np.asarray(ids[start:start + _CHUNK_IDS])
            writer.append(chunk, pooling=1)
            bar.update(len(chunk))
        return writer.close()


def _open_ids(path: Path) -> np.ndarray:
    """The id array of a .npy file, memory-mapped, after checking its type and shape."""
    require_file(path, "give a .npy file of row ids")
    with open(path, "rb") as f:
        magic = f.read(len(_NPY_MAGIC))
    if magic != _NPY_MAGIC:
        kind = detect_compression(path)
        if kind:
            raise InputError(f"{path} is {kind}-compressed; decompress it first (the ids are "
                             "memory-mapped, which needs a plain .npy file)")
        raise InputError(f"{path} is not a .npy file; save the ids with numpy.save(path, ids)")
    try:
        ids = np.load(path, mmap_mode="r")
    except (ValueError, OSError, EOFError) as e:
        raise InputError(f"{path} is truncated or unreadable ({e}); save the ids again with "
                         "numpy.save") from None
    if not np.issubdtype(ids.dtype, np.integer):
        raise InputError(f"{path} holds {ids.dtype} values; row ids must be integers "
                         "(save ids.astype(numpy.int64))")
    if ids.ndim != 1:
        raise InputError(f"{path} holds an array of shape {ids.shape}; give a 1-D array of "
                         "row ids (save ids.ravel())")
    if len(ids) == 0:
        raise InputError(f"{path} holds no ids; give a non-empty array")
    return ids


def _check_ids(ids: np.ndarray, path: Path) -> int:
    """The largest id; InputError at the first negative or too large one."""
    max_id = -1
    for start in range(0, len(ids), _CHUNK_IDS):
        chunk = np.asarray(ids[start:start + _CHUNK_IDS])
        if chunk.min() < 0:
            position = start + int(np.argmax(chunk < 0))
            raise InputError(f"{path}: id {int(ids[position])} at position {position} is "
                             "negative; row ids must be 0 or more")
        max_id = max(max_id, int(chunk.max()))
    if max_id >= np.iinfo(np.int64).max:
        raise InputError(f"{path}: id {max_id} is too large; row ids must be below 2**63 - 1")
    return max_id
