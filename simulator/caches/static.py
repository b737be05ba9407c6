"""Static: a hot set chosen from lookup counts, loaded before training and never changed.

Option: profile_batches K (default: the whole trace). A first streaming pass counts the
lookups of every row over the first K batches; the hot set is the `capacity` rows with the
most lookups, ties going to the lower global row id. Only rows looked up in the profile are
candidates, so the hot set is smaller than the capacity when the profile touches fewer rows
(summary: hot_rows). The hot set is preloaded, so its rows never miss, not even on first
use; every other row always misses, is read from host memory and is never inserted. Nothing
is ever evicted, and occupancy is the hot set's size. Cold rows need no room in the cache,
so no batch is too big for it.

Unlike every other policy, a static cache with room for every row misses nothing: the
others start empty and miss each distinct row once. So Belady, the optimum of caches that
fetch on demand into an empty cache, does not bound static: with the hot set loaded before
the trace, static can hit more than Belady at the same capacity.
"""

import numba
import numpy as np

from ..options import Option
from .base import Policy, batch_unique, record_batch


@numba.njit(cache=True)
def _count_lookups(ids, counts):
    for r in ids:
        counts[r] += 1


@numba.njit(cache=True)
def _static_chunk(ids, batch_ptr, first_batch, hot, hot_rows, seen, uniq, stats):
    for b in range(len(batch_ptr) - 1):
        start, end = batch_ptr[b], batch_ptr[b + 1]
        n = batch_unique(ids, start, end, seen, first_batch + b, uniq)
        hits = 0
        for i in range(n):
            if hot[uniq[i]]:
                hits += 1
        record_batch(stats, b, end - start, n, n - hits, 0, hot_rows)


def hot_set(counts: np.ndarray, size: int) -> np.ndarray:
    """The ids of the `size` rows with the largest positive counts, ties by lower id, in
    ascending id order."""
    touched = np.flatnonzero(counts)
    if len(touched) <= size:
        return touched
    c = counts[touched]
    threshold = np.partition(c, len(c) - size)[len(c) - size]
    above = touched[c > threshold]
    at = touched[c == threshold][:size - len(above)]  # ascending ids: the lower ones win
    return np.sort(np.concatenate((above, at)))


class Static(Policy):
    name = "static"
    options = (Option("profile_batches", int, None, "the hot set is chosen from this many "
                      "first batches (default: all)", minimum=1),)

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        counts = np.zeros(trace.total_rows, dtype=np.int64)
        for chunk in trace.chunks(stop=self.profile_batches):
            _count_lookups(chunk.ids, counts)
        self._hot = np.zeros(trace.total_rows, dtype=np.bool_)
        self._hot[hot_set(counts, capacity)] = True
        self.hot_rows = int(self._hot.sum())
        self._seen = np.full(trace.total_rows, -1, dtype=np.int64)

    def summary(self):
        return {"hot_rows": self.hot_rows}

    def process(self, chunk, stats):
        uniq = chunk.batch_buffer()
        _static_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, self._hot, self.hot_rows,
                      self._seen, uniq, stats)
