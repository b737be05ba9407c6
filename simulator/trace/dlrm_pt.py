"""Import Meta's dlrm_datasets embedding-bag files (.pt or .pt.gz) as a trace.

Each file (github.com/facebookresearch/dlrm_datasets, embedding_bag/) is one batch of T
tables and B samples: `indices, offsets, lengths = torch.load(f)` where lengths has shape
(T, B) in table-major order (bag k = t * B + b), offsets holds the T * B + 1 prefix sums of
the flattened lengths (some files leave out the final one) and indices the local row ids of
all bags, bag after bag. The trace stores samples one after the other, so each file's bags
are reordered to sample-major order.
"""

from __future__ import annotations

import gzip
import io
from pathlib import Path
from typing import Sequence

import numba
import numpy as np

from .._progress import progress
from ..errors import InputError, OptionError
from ._compressed import require_file
from .format import Trace, TraceWriter

_INT32_MAX_ID = 2**31 - 2  # the largest id whose table (id + 1 rows) int32 ids still index


class _WideIds(Exception):
    """An id needs 64-bit storage: the import restarts with int64 ids."""


def import_dlrm_pt(files: Sequence, output, *, batch_size: int | None = None,
                   show_progress: bool = True) -> Trace:
    """Import dlrm_datasets embedding-bag files, in the order given, as one trace.

    Tables are named t0, t1, ...; a table has max id + 1 rows over all files (1 if it has
    no lookup). batch_size None keeps each file as one batch (all files must then have the
    same batch size B); otherwise the samples of all files, in order, are cut into batches
    of batch_size. All files must have the same number of tables.
    Files are read one at a time and each is held in memory whole while it is converted (a
    .pt.gz file briefly needs twice its decompressed size)."""
    try:
        import torch
    except ImportError:
        raise OptionError("reading .pt files needs PyTorch: pip install torch") from None
    if isinstance(files, (str, Path)):
        files = [files]
    paths = [Path(f) for f in files]
    if not paths:
        raise OptionError("give at least one .pt file")
    for path in paths:
        require_file(path, "give dlrm_datasets .pt or .pt.gz files")
    try:
        return _write(paths, output, batch_size, np.int32, torch, show_progress)
    except _WideIds:
        return _write(paths, output, batch_size, np.int64, torch, show_progress)


def _write(paths: list[Path], output, batch_size: int | None, index_dtype, torch,
           show_progress: bool) -> Trace:
    provenance = {"source": "dlrm-pt", "files": [str(p.resolve()) for p in paths]}
    ids, lengths = _load_batch(paths[0], torch)
    num_tables, file_batch = lengths.shape
    writer_batch = file_batch if batch_size is None else batch_size
    names = [f"t{t}" for t in range(num_tables)]
    with TraceWriter(output, names, writer_batch, provenance, index_dtype=index_dtype) as writer, \
            progress(total=len(paths), unit="files", desc="import dlrm-pt",
                     enabled=show_progress) as bar:
        for i, path in enumerate(paths):
            if i:
                ids, lengths = _load_batch(path, torch)
            if lengths.shape[0] != num_tables:
                raise InputError(f"{path} has {lengths.shape[0]} tables, {paths[0]} has "
                                 f"{num_tables}; import files of the same dataset together")
            if batch_size is None and lengths.shape[1] != file_batch:
                raise InputError(f"{path} has batch size {lengths.shape[1]}, {paths[0]} has "
                                 f"{file_batch}; give --batch-size to re-batch the samples")
            if len(ids) and index_dtype == np.int32 and int(ids.max()) > _INT32_MAX_ID:
                raise _WideIds
            writer.append(_to_sample_major(ids, lengths, index_dtype),
                          np.ascontiguousarray(lengths.T))
            del ids, lengths  # free this file before the next one is loaded
            bar.update(1)
        rows = np.maximum(writer.max_ids + 1, 1)
        return writer.close(table_rows=rows.tolist())


def _load_batch(path: Path, torch) -> tuple[np.ndarray, np.ndarray]:
    """The checked (indices, lengths) of one file as numpy arrays; lengths is (T, B)."""
    try:
        if path.suffix == ".gz":
            # torch's zip reader seeks backwards, which a gzip stream does slowly: unpack.
            with gzip.open(path, "rb") as f:
                source = io.BytesIO(f.read())
        else:
            source = path
        loaded = torch.load(source, map_location="cpu", weights_only=True)
    except (OSError, EOFError) as e:
        raise InputError(f"{path} cannot be read ({e}); check the file is complete") from None
    except Exception as e:  # torch raises many types for a file that is not its own
        reason = str(e).splitlines()[0] if str(e) else type(e).__name__
        raise InputError(f"{path} is not a PyTorch tensor file ({reason}); give dlrm_datasets "
                         ".pt or .pt.gz files") from None
    if not isinstance(loaded, (tuple, list)) or len(loaded) != 3:
        found = (f"a {type(loaded).__name__} of {len(loaded)} items"
                 if isinstance(loaded, (tuple, list)) else f"a {type(loaded).__name__}")
        raise InputError(f"{path} holds {found}; expected a tuple (indices, offsets, lengths)")
    arrays = {}
    for name, value in zip(("indices", "offsets", "lengths"), loaded):
        if not isinstance(value, torch.Tensor):
            raise InputError(f"{path}: {name} is a {type(value).__name__}, expected a tensor")
        if value.dtype.is_floating_point or value.dtype.is_complex or value.dtype == torch.bool:
            raise InputError(f"{path}: {name} holds {value.dtype} values, expected integers")
        arrays[name] = value.numpy()
    indices, offsets, lengths = arrays["indices"], arrays["offsets"], arrays["lengths"]
    if lengths.ndim != 2:
        raise InputError(f"{path}: lengths has shape {tuple(lengths.shape)}, expected 2-D "
                         "(tables, batch size)")
    if lengths.size and lengths.min() < 0:
        raise InputError(f"{path}: lengths holds a negative bag size {int(lengths.min())}")
    bags = lengths.size
    sums = np.concatenate(([0], np.cumsum(lengths.ravel(), dtype=np.int64)))
    if offsets.ndim != 1 or len(offsets) not in (bags, bags + 1):
        raise InputError(f"{path}: offsets has shape {tuple(offsets.shape)}, expected "
                         f"({bags + 1},) or ({bags},) for lengths of shape "
                         f"{tuple(lengths.shape)}")
    mismatch = offsets != sums[:len(offsets)]
    if mismatch.any():
        k = int(np.argmax(mismatch))
        raise InputError(f"{path}: offsets[{k}] is {int(offsets[k])} but the lengths before "
                         f"it add up to {int(sums[k])}; offsets and lengths disagree")
    if indices.ndim != 1 or len(indices) != sums[-1]:
        raise InputError(f"{path}: indices has shape {tuple(indices.shape)}, but the lengths "
                         f"add up to {int(sums[-1])} ids")
    if len(indices) and indices.min() < 0:
        k = int(np.argmax(indices < 0))
        raise InputError(f"{path}: indices[{k}] is {int(indices[k])}; row ids must be 0 or more")
    return indices, lengths


@numba.njit(cache=True)
def _gather_sample_major(indices, lengths, bag_start, out):
    """Copy the table-major bags of indices into out, sample after sample."""
    num_tables, num_samples = lengths.shape
    k = 0
    for b in range(num_samples):
        for t in range(num_tables):
            s = bag_start[t * num_samples + b]
            for j in range(lengths[t, b]):
                out[k] = indices[s + j]
                k += 1


def _to_sample_major(indices: np.ndarray, lengths: np.ndarray, dtype) -> np.ndarray:
    bag_start = np.concatenate(([0], np.cumsum(lengths.ravel(), dtype=np.int64)[:-1]))
    out = np.empty(len(indices), dtype=dtype)
    _gather_sample_major(indices, lengths, bag_start, out)
    return out
