"""cache: a device-side LRU cache with write-back. On a miss the batch waits: victims are
written back, the missing rows gathered on the host and copied in, then the batch trains on
the cache. LRU as caches/lru.py defines it at batch granularity: a batch's rows take their
recency in first-occurrence order, and victims are the least recent resident rows that the
batch does not use."""

from .base import Trainer, check_fits
from .slots import NOT_RESIDENT, UNEVICTABLE, SlotStore, smallest


class Cache(Trainer):
    name = "cache"
    uses_capacity = True

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.store = SlotStore(self.initial_table, self.config.capacity, self.device, self.timer)

    def iteration(self, i):
        batch, store = self.batches[i], self.store
        check_fits(store.capacity, batch, "cache")
        with self.timer.stage("plan", i):
            slots = store.lookup(batch.rows_cpu)
            miss = slots == NOT_RESIDENT
            missing = batch.rows_cpu[miss]
            evict = max(0, store.occupancy + len(missing) - store.capacity)
            keys = store.resident_keys()
            keys[slots[~miss]] = UNEVICTABLE
            victims = smallest(keys, evict)
        store.place(missing, victims, i)
        slots = store.lookup(batch.rows_cpu)
        store.touch(slots, i)
        self.fetched[i], self.evicted[i] = len(missing), evict
        with self.timer.stage("train", i):
            on_device = slots.to(self.device)
            store.data[on_device] = self.train_step(store.data[on_device], batch, i)

    def host_table(self):
        return self.store.flush()
