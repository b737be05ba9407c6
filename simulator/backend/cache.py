"""cache: a device-side LRU cache with write-back. On a miss the batch waits: victims are
written back, the missing rows gathered on the host and copied in, then the batch trains on
the cache. LRU as caches/lru.py defines it at batch granularity: a batch's rows take their
recency in first-occurrence order, and victims are the least recent resident rows that the
batch does not use (the planner with no lookahead: the rows of batch i-1 become evictable
when batch i is planned)."""

from ..errors import CapacityError, OptionError
from .base import Trainer
from .planner import Planner
from .slots import SlotStore


class Cache(Trainer):
    name = "cache"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        if self.config.options["cache_policy"] != "lru":
            raise OptionError("the backend's cache is LRU: give --cache-policy lru")
        self.planner = Planner(self.trace.total_rows, self.config.capacity, lookahead=0)
        self.store = SlotStore(self.initial_table, self.planner, self.device, self.timer)

    def iteration(self, i):
        batch, store = self.batches[i], self.store
        if len(batch.rows) > store.capacity:
            raise CapacityError(f"a cache of {store.capacity:,} rows cannot hold batch "
                                f"{batch.index}, which uses {len(batch.rows):,} distinct rows; "
                                "give a larger --capacity")
        with self.timer.stage("plan", i):
            plan = self.planner.plan(i, batch.rows)
        store.place(plan.missing, plan.victims, i)
        self.fetched[i], self.evicted[i] = len(plan.missing), len(plan.victims)
        with self.timer.stage("train", i):
            self.train_rows(store.data, plan.slots_tensor.to(self.device), batch, i)

    def host_table(self):
        return self.store.flush()
