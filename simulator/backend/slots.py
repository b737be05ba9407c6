"""The device-side row store of the cache modes (cache, cache-prefetch, scratchpipe): a
[capacity, width] tensor of slots on the training device, filled as the planner (planner.py)
decided.

The planner's directory runs ahead of the store: it says where each row is or will be once
the planned transfers have landed. The store keeps its own record of what each slot holds
now (row_of_slot, a host numpy array, NOT_RESIDENT for a free slot), updated as rows are
inserted. Every row a batch uses is updated, so every resident row is dirty: an evicted row
is always written back (evict: device gather and device -> host copy; writeback: host
scatter) before its slot takes a fetched row (host gather, host -> device copy, device
scatter). The stages take host arrays and wrap them as tensors where they index with them,
and index with index_select and index_copy_, which dispatch one op whatever the count
(indexing with a single id adds a view); planner.py lists the ops.
"""

from __future__ import annotations

import numpy as np

from .base import torch
from .planner import NOT_RESIDENT


class SlotStore:
    """The store of the slots `planner` (a Planner) assigns."""

    def __init__(self, host_table, planner, device, timer):
        self.host = host_table
        self.capacity = planner.capacity
        self.device = device
        self.timer = timer
        self.data = torch.zeros(self.capacity, host_table.shape[1], device=device)
        self.slot_of_row = planner.slot_of_row  # the planner's directory
        self.row_of_slot = np.full(self.capacity, NOT_RESIDENT, dtype=np.int64)
        self.pinned = self.device.type == "cuda"

    def place(self, missing: np.ndarray, victims: np.ndarray, i: int) -> None:
        """Carry out a plan in program order: the rows the `victims` slots hold are written
        back, then the `missing` rows are fetched into the slots the directory gave them.
        Stage times go to iteration i."""
        if len(victims):
            self.write_back(self.row_of_slot[victims], self.copy_out(victims, i), i)
        if len(missing):
            self.fetch(missing, self.slot_of_row[missing], i)

    def copy_out(self, victims: np.ndarray, i: int):
        """The values of the victims' slots, gathered on the device and copied to the host."""
        with self.timer.stage("evict", i, host=True):
            slots = torch.from_numpy(victims).to(self.device)
            return torch.index_select(self.data, 0, slots).to("cpu")

    def write_back(self, rows: np.ndarray, values, i: int) -> None:
        """The host scatter of evicted rows' values (already copied off the device)."""
        with self.timer.stage("writeback", i, host=True):
            self.host.index_copy_(0, torch.from_numpy(rows), values)

    def fetch(self, missing: np.ndarray, slots: np.ndarray, i: int) -> None:
        """Collect the rows on the host (into pinned memory on CUDA), copy them to the device
        and insert them into their slots, on the current stream."""
        with self.timer.stage("collect", i, host=True):
            staged = torch.empty((len(missing), self.host.shape[1]), pin_memory=self.pinned)
            torch.index_select(self.host, 0, torch.from_numpy(missing), out=staged)
        with self.timer.stage("transfer", i):
            staged = staged.to(self.device, non_blocking=True)
        with self.timer.stage("insert", i):
            self.data.index_copy_(0, torch.from_numpy(slots).to(self.device, non_blocking=True),
                                  staged)
            self.row_of_slot[slots] = missing

    def flush(self):
        """Write every resident row back; returns the host table, now up to date."""
        filled = np.flatnonzero(self.row_of_slot != NOT_RESIDENT)
        self.host[torch.from_numpy(self.row_of_slot[filled])] = \
            self.data[torch.from_numpy(filled).to(self.device)].to("cpu")
        return self.host
