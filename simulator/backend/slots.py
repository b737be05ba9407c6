"""The device-side row store of the cache modes (cache, cache-prefetch, scratchpipe): a
[capacity, width] tensor of slots on the training device, and its directory on the host
(row -> slot, slot -> row, each slot's recency key and next use), kept as CPU tensors so that
planning never waits on the device.

Slots fill in order and are then only ever reused by eviction, so the resident rows are the
slots 0..occupancy-1. Every row a batch uses is updated, so every resident row is dirty: an
evicted row is always written back (device -> host copy, then a host scatter) before its
slot takes a fetched row (host gather, host -> device copy, device scatter).
"""

from __future__ import annotations

from .base import POSITION_BITS, torch

NOT_RESIDENT = -1
UNEVICTABLE = torch.iinfo(torch.int64).max  # the key of a row a victim search must skip


class SlotStore:
    def __init__(self, host_table, capacity: int, device, timer):
        self.host = host_table
        self.capacity = capacity
        self.device = device
        self.timer = timer
        self.data = torch.zeros(capacity, host_table.shape[1], device=device)
        self.slot_of_row = torch.full((host_table.shape[0],), NOT_RESIDENT, dtype=torch.int64)
        self.row_of_slot = torch.full((capacity,), NOT_RESIDENT, dtype=torch.int64)
        self.recency = torch.zeros(capacity, dtype=torch.int64)
        self.next_use = torch.zeros(capacity, dtype=torch.int64)
        self.occupancy = 0
        self.pinned = self.device.type == "cuda"

    def lookup(self, rows):
        """The slot of each row (NOT_RESIDENT for a miss)."""
        return self.slot_of_row[rows]

    def resident_keys(self):
        """The recency key of every resident slot (0..occupancy-1), as a copy to mask."""
        return self.recency[:self.occupancy].clone()

    def place(self, missing, victims, i: int) -> None:
        """Evict the `victims` slots, writing their rows back, and bring the `missing` rows in,
        all in program order. Stage times go to iteration i."""
        old_rows, slots = self.assign(missing, victims)
        if len(victims):
            self.write_back(old_rows, self.data[victims.to(self.device)].to("cpu"), i)
        self.fetch(missing, slots, i)

    def assign(self, missing, victims):
        """The directory's part of a placement: the victims' rows leave, the missing rows take
        the victims' slots, then free ones. Returns (rows evicted, slots of the missing)."""
        old_rows = self.row_of_slot[victims]
        self.slot_of_row[old_rows] = NOT_RESIDENT
        free = len(missing) - len(victims)
        slots = torch.cat([victims, torch.arange(self.occupancy, self.occupancy + free)])
        self.occupancy += free
        self.slot_of_row[missing] = slots
        self.row_of_slot[slots] = missing
        return old_rows, slots

    def write_back(self, rows, values, i: int) -> None:
        """The host scatter of evicted rows' values (already copied off the device)."""
        with self.timer.stage("writeback", i, host=True):
            self.host[rows] = values

    def fetch(self, missing, slots, i: int) -> None:
        """Collect the rows on the host (into pinned memory on CUDA), copy them to the device
        and insert them into their slots, on the current stream."""
        with self.timer.stage("collect", i, host=True):
            staged = torch.empty((len(missing), self.host.shape[1]), pin_memory=self.pinned)
            torch.index_select(self.host, 0, missing, out=staged)
        with self.timer.stage("transfer", i):
            staged = staged.to(self.device, non_blocking=True)
        with self.timer.stage("insert", i):
            self.data[slots.to(self.device, non_blocking=True)] = staged

    def touch(self, slots, batch: int) -> None:
        """The batch uses these slots, listed in its rows' first-occurrence order."""
        self.recency[slots] = (batch << POSITION_BITS) + torch.arange(len(slots))

    def flush(self):
        """Write every resident row back; returns the host table, now up to date."""
        resident = self.row_of_slot[:self.occupancy]
        self.host[resident] = self.data[:self.occupancy].to("cpu")
        return self.host


def smallest(keys, count: int):
    """Positions of the `count` smallest keys (keys are distinct)."""
    return torch.topk(keys, count, largest=False, sorted=False).indices


def largest(keys, count: int):
    return torch.topk(keys, count, largest=True, sorted=False).indices
