"""Helpers shared by the cache tests: small traces written from lists of batches, and miss
counts of libCacheSim's policies on an id stream (one request per id, every object of size 1,
so its cache size counts objects)."""

from __future__ import annotations

import tempfile
from pathlib import Path

import numpy as np
import pytest

from simulator import TraceWriter

# libCacheSim's oracleGeneral binary record: time, object id, size, next access (-1: never).
ORACLE_GENERAL = np.dtype([("time", "<u4"), ("obj_id", "<u8"), ("obj_size", "<u4"),
                           ("next_access", "<i8")])


def write_batches(path, batches, rows: int | None = None):
    """A one-table trace whose batch b looks up the ids batches[b] (one sample, one bag)."""
    lengths = np.array([[len(b)] for b in batches], dtype=np.int32)
    flat = np.concatenate([np.zeros(0, np.int64)] + [np.asarray(b, np.int64) for b in batches])
    if rows is None:
        rows = int(flat.max(initial=0)) + 1
    with TraceWriter(path, ["t0"], 1, {"source": "test"}, table_rows=[rows]) as w:
        w.append(flat.astype(np.int32), lengths)
        return w.close()


def write_stream(path, ids, rows: int | None = None):
    """A one-table trace of one lookup per batch: the classic per-access cache."""
    ids = np.asarray(ids, dtype=np.int64)
    if rows is None:
        rows = int(ids.max(initial=0)) + 1
    with TraceWriter(path, ["t0"], 1, {"source": "test"}, table_rows=[rows]) as w:
        w.append(ids.astype(np.int32), np.ones((len(ids), 1), dtype=np.int32))
        return w.close()


def write_oracle_general(path, ids) -> None:
    """ids as a libCacheSim oracleGeneral trace, next-access times included (for Belady).
    Every request has time 0, so no TTL can expire an object."""
    ids = np.asarray(ids, dtype=np.int64)
    rec = np.zeros(len(ids), dtype=ORACLE_GENERAL)
    rec["obj_id"] = ids
    rec["obj_size"] = 1
    order = np.argsort(ids, kind="stable")
    same = ids[order[1:]] == ids[order[:-1]]
    next_access = np.full(len(ids), -1, dtype=np.int64)
    next_access[order[:-1][same]] = order[1:][same]
    rec["next_access"] = next_access
    rec.tofile(path)


def libcachesim_misses(policy: str, ids, capacity: int) -> int:
    """Misses of libCacheSim's policy (its class name: 'LRU', 'FIFO', 'Belady', ...) with room
    for `capacity` objects, replaying ids one request each."""
    libcachesim = pytest.importorskip("libcachesim")
    with tempfile.TemporaryDirectory() as tmp:
        path = Path(tmp) / "trace.oracleGeneral"
        write_oracle_general(path, ids)
        reader = libcachesim.TraceReader(str(path), libcachesim.TraceType.ORACLE_GENERAL_TRACE)
        cache = getattr(libcachesim, policy)(cache_size=int(capacity))
        miss_ratio, _ = cache.process_trace(reader)
        del cache, reader  # the reader frees itself; close() too would free it twice
    return int(round(miss_ratio * len(ids)))


@pytest.fixture(scope="session")
def make_trace(tmp_path_factory):
    """make_trace(batches, rows=None): a trace from a list of batches of row ids. Session
    scoped so that hypothesis tests may use it."""
    def make(batches, rows=None):
        return write_batches(tmp_path_factory.mktemp("trace") / "t", batches, rows)
    return make


@pytest.fixture(scope="session")
def make_stream(tmp_path_factory):
    """make_stream(ids, rows=None): a trace of one lookup per batch."""
    def make(ids, rows=None):
        return write_stream(tmp_path_factory.mktemp("stream") / "t", ids, rows)
    return make
