"""Oracle (Bagpipe-style): a row stays resident after a use only if it is needed again
within the lookahead.

Option: lookahead L (scratchpipe.LOOKAHEAD). A row used at batch b stays resident after b
iff its next use is at most b + L; otherwise it expires right after b (evicted, and written
back since it was updated). So at batch b the hits are the rows whose previous use b' has
b - b' <= L, and the misses are first uses and reuses farther apart than L. The decisions
never depend on a capacity, so the capacity is optional: with none the scratchpad is
unbounded; with one, the whole trace is replayed and, if the occupancy ever exceeds it, a
CapacityError names the first batch over it and the peak needed.

Per batch: evictions = write-backs = rows expiring right after the batch; occupancy = rows
resident during the batch (the batch's rows plus those kept for later batches).
"""

import numba
import numpy as np

from ..errors import CapacityError
from .base import Policy, record_batch
from ._prefetch import ROWS_AHEAD, prefetch
from .future import NextUse
from .scratchpipe import LOOKAHEAD


@numba.njit(cache=True)
def _oracle_chunk(ids, next_use, batch_ptr, first_batch, last_batch, lookahead, capacity,
                  last_seen, resident, state, stats):
    """state = [occupancy between batches, peak occupancy, first batch over capacity or -1].
    capacity < 0: unbounded."""
    occupancy, peak, first_over = state[0], state[1], state[2]
    last = len(ids) - 1
    for b in range(len(batch_ptr) - 1):
        batch = first_batch + b
        n = 0
        hits = 0
        expiring = 0
        for k in range(batch_ptr[b], batch_ptr[b + 1]):
            prefetch(last_seen, ids[min(k + ROWS_AHEAD, last)])
            r = ids[k]
            if last_seen[r] == batch:
                continue
            last_seen[r] = batch
            n += 1
            if resident[r]:
                hits += 1
            # After this batch the row stays only if it is needed within the lookahead
            # (next_use == the number of batches: never again).
            keep = next_use[k] <= min(batch + lookahead, last_batch)
            resident[r] = keep
            if not keep:
                expiring += 1
        during = occupancy + n - hits
        occupancy = during - expiring
        peak = max(peak, during)
        if 0 <= capacity < during and first_over < 0:
            first_over = batch
        record_batch(stats, b, batch_ptr[b + 1] - batch_ptr[b], n, n - hits, expiring, during)
    state[0], state[1], state[2] = occupancy, peak, first_over


class Oracle(Policy):
    """Options: lookahead L; tmp_dir, where the next-use file is kept during the replay
    (default: the system's temporary directory; 4 bytes per lookup).
    capacity: None for an unbounded scratchpad, or a number of rows to check against."""

    name = "oracle"
    capacity_optional = True
    options = (LOOKAHEAD,)
    on_demand = False

    def __init__(self, trace, capacity, tmp_dir=None, **params):
        super().__init__(trace, capacity, **params)
        n = trace.total_rows
        self._last_seen = np.full(n, -1, dtype=np.int64)
        self._resident = np.zeros(n, dtype=np.bool_)
        self._state = np.array([0, 0, -1], dtype=np.int64)
        self._next_use = NextUse(trace, tmp_dir=tmp_dir)

    def process(self, chunk, stats):
        # A lookahead past the end of the trace acts as the end; clamping it keeps
        # batch + lookahead from overflowing.
        _oracle_chunk(chunk.ids, self._next_use.for_chunk(chunk), chunk.batch_ptr,
                      chunk.first_batch, self.trace.num_batches - 1,
                      min(self.lookahead, self.trace.num_batches),
                      -1 if self.capacity is None else self.capacity, self._last_seen,
                      self._resident, self._state, stats)

    def finish(self):
        first_over, peak = int(self._state[2]), int(self._state[1])
        if first_over >= 0:
            raise CapacityError(
                f"the oracle with lookahead {self.lookahead} keeps more than {self.capacity:,} "
                f"rows resident from batch {first_over} on; give a capacity of at least "
                f"{peak:,} rows (its peak occupancy), or none for an unbounded scratchpad")

    def close(self):
        self._next_use.close()

    def summary(self):
        return {"peak_occupancy": int(self._state[1]), "lookahead": self.lookahead}
