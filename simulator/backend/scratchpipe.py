"""scratchpipe: a device scratchpad managed with the known future (DESIGN.md section 1).

Batch j is planned W batches ahead of its training: batches 0..W before batch 0 trains, then
batch i+W at iteration i. Planning (planner.py) looks the batch's rows up in the directory;
each missing row takes a free slot or evicts a resident row that no batch of the window
j-W..j uses (held rows are never evicted), chosen by the victim policy: 'lru', the least
recent last use (ties by first occurrence in the batch, the order of caches/scratchpipe.py's
FIFO), or 'future': first the rows never used again (the most recently released first, as
that model's stack), then the furthest next use (ties: the larger row id). Then the victims
are written back and the missing rows collected on the host, transferred and inserted, so
training always hits.

The two hazards: a victim's write-back must not start before the training step that last
used it has finished, and a row fetched again while its write-back is in flight must get the
updated value. In program order (the CPU default) both hold by construction: a victim was
last used by batch j-W-1 at the latest, which trained at iteration j-W-1, before the planning
of j at iteration j-W, and each write-back finishes before any later gather. Overlapped (the
CUDA default, and available on the CPU so that the tests exercise it), Overlap below keeps
them with events and a single in-order host worker.

Where the plans run is the mode's option planner (pipeline/scratchpipe.py's PLANNER). With
overlap and planner="thread" (ScratchPipe's arrangement, the CUDA default), a planner thread of
its own plans batch j and queues its victims' copy out and its worker job while the main thread
issues the training of batch j-W: the main thread hands it batch j once it has issued training
j-W-1, with that step's event, and waits only for the plan of the batch it trains next (its
slots). The planner's numba kernels release the GIL (nogil), so the two threads plan and issue
at once. Otherwise (planner="main", or without overlap) the main thread plans between the
training steps. Either way the plans run in batch order and decide the same, so the weights and
the rows fetched and evicted are the same; the CPU tests check both with overlap. What only a
GPU run can show is the timing: on the CPU training runs synchronously on cores the planner
shares, and each victims' copy trivially follows its last use, while on CUDA the main thread
only queues kernels, the planner's work then hides behind them, and each copy out is ordered
after the last use by its event alone.
"""

from concurrent.futures import ThreadPoolExecutor

import numpy as np

from ..caches import min_capacity
from ..errors import CapacityError
from .base import Trainer, torch
from .planner import Planner, TooFewVictims
from .slots import SlotStore


def next_uses(trace, batches) -> list[np.ndarray]:
    """For each prepared batch, the next batch after it that uses each of its rows (the
    trace's batch count when none does): one backward pass over the whole trace."""
    nearest = np.full(trace.total_rows, trace.num_batches, dtype=np.int64)
    out = [None] * len(batches)
    for b in range(trace.num_batches - 1, -1, -1):
        rows = batches[b].rows if b < len(batches) else np.unique(trace.batch(b).ids)
        if b < len(batches):
            out[b] = nearest[rows]
        nearest[rows] = b
    return out


class Overlap:
    """Collect, transfer and insert of planned batches running beside training: a host worker
    thread writes victims back and gathers missing rows into pinned buffers, in plan order;
    on CUDA the copies and inserts go on their own stream, ordered against training by events.

    Hazard 1 (write-back after the last use): the victims of batch j, planned at iteration
    j-W, were last used by batch j-W-1 at the latest; their copy off the device waits for the
    event recorded after that step, which the main thread hands over with batch j once it has
    enqueued the step (on the CPU training is synchronous, so the copy follows it). Hazard 2
    (a row fetched again gets its updated value): the worker runs the plans' jobs in order and
    each waits for its victims' copy before writing them back, so every write-back lands in
    the host table before a later gather reads it. Training batch i waits for its job and, on
    CUDA, for its inserts."""

    def __init__(self, store, device):
        self.store = store
        self.cuda = device.type == "cuda"
        self.copy_stream = torch.cuda.Stream(device) if self.cuda else None
        self.worker = ThreadPoolExecutor(max_workers=1, thread_name_prefix="scratchpipe-host")
        self.jobs = {}
        self.last_trained = None  # CUDA: the event after the latest training step

    def submit(self, j: int, i: int, plan, trained) -> None:
        """Start batch j's transfers (planned during iteration i); the directory already
        says where its rows go. trained: the event after training j-W-1 (CUDA; None before
        any), the last step that can have used a victim."""
        values, copied = (self._copy_out(plan.victims, i, trained) if len(plan.victims)
                          else (None, None))
        self.jobs[j] = self.worker.submit(self._write_back_and_fetch, i, plan, values, copied)

    def _copy_out(self, victims, i: int, trained):
        if not self.cuda:
            return self.store.copy_out(victims, i), None
        data = self.store.data
        with self.store.timer.stage("evict", i, host=True), \
                torch.cuda.stream(self.copy_stream):
            if trained is not None:
                self.copy_stream.wait_event(trained)
            values = torch.empty((len(victims), data.shape[1]), pin_memory=True)
            slots = torch.from_numpy(victims).to(data.device, non_blocking=True)
            values.copy_(torch.index_select(data, 0, slots), non_blocking=True)
            copied = torch.cuda.Event()
            copied.record(self.copy_stream)
        return values, copied

    def _write_back_and_fetch(self, i, plan, values, copied):
        if copied is not None:
            copied.synchronize()
        if len(plan.victims):
            self.store.write_back(plan.evicted, values, i)
        if not len(plan.missing):
            return None
        if not self.cuda:
            self.store.fetch(plan.missing, plan.missing_slots, i)
            return None
        with torch.cuda.stream(self.copy_stream):
            self.store.fetch(plan.missing, plan.missing_slots, i)
            inserted = torch.cuda.Event()
            inserted.record(self.copy_stream)
        return inserted

    def ready(self, i: int) -> None:
        """Make the training of batch i wait for its rows (a worker's error surfaces here)."""
        inserted = self.jobs.pop(i).result()
        if inserted is not None:
            torch.cuda.current_stream().wait_event(inserted)

    def trained(self) -> None:
        if self.cuda:
            self.last_trained = torch.cuda.Event()
            self.last_trained.record()

    def close(self) -> None:
        self.worker.shutdown(wait=True, cancel_futures=True)


class ScratchPipe(Trainer):
    name = "scratchpipe"

    def __init__(self, *args, **kwargs):
        super().__init__(*args, **kwargs)
        self.lookahead = self.config.options["lookahead"]
        self.victim = self.config.options["victim"]
        self.planner = Planner(self.trace.total_rows, self.config.capacity, self.lookahead,
                               self.victim, never=self.trace.num_batches)
        self.store = SlotStore(self.initial_table, self.planner, self.device, self.timer)
        self.next_use = (next_uses(self.trace, self.batches) if self.victim == "future"
                         else None)
        self.planned = 0
        self.slots = {}  # the slots of the batches planned and not yet trained
        self.overlap = Overlap(self.store, self.device) if self.config.overlap else None
        # planner="thread" (with overlap): the plans' futures, by batch, from a thread of
        # their own; a failed plan stops the ones queued after it.
        self.plan_thread = (ThreadPoolExecutor(max_workers=1,
                                               thread_name_prefix="scratchpipe-planner")
                            if self.overlap and self.config.options["planner"] == "thread"
                            else None)
        self.plans = {}
        self.plan_failed = False

    def describe(self):
        return {**super().describe(), "capacity": self.store.capacity,
                "lookahead": self.lookahead, "victim": self.victim,
                "overlap": bool(self.overlap),
                "planner": "thread" if self.plan_thread else "main"}

    def iteration(self, i):
        last = min(i + self.lookahead, len(self.batches) - 1)
        trained = self.overlap.last_trained if self.overlap else None  # training i-1's event
        while self.planned <= last:
            if self.plan_thread:
                self.plans[self.planned] = self.plan_thread.submit(
                    self._plan_on_thread, self.planned, i, trained)
            else:
                self.plan(self.planned, i, trained)
            self.planned += 1
        if self.plan_thread:
            self.plans.pop(i).result()  # its slots (a planner's error surfaces here)
        if self.overlap:
            self.overlap.ready(i)
        with self.timer.stage("train", i):
            slots = self.slots.pop(i).to(self.device)
            self.train_rows(self.store.data, slots, self.batches[i], i)
        if self.overlap:
            self.overlap.trained()

    def _plan_on_thread(self, j: int, i: int, trained) -> None:
        if self.plan_failed:
            raise RuntimeError(f"batch {j} not planned: an earlier plan failed")
        try:
            self.plan(j, i, trained)
        except BaseException:
            self.plan_failed = True
            raise

    def plan(self, j: int, i: int, trained=None) -> None:
        """Plan batch j during iteration i: choose its slots and victims, then evict and
        fetch (or hand both to the host worker; trained: the event after training j-W-1)."""
        batch = self.batches[j]
        with self.timer.stage("plan", i, host=True):
            try:
                plan = self.planner.plan(j, batch.rows,
                                         None if self.next_use is None else self.next_use[j])
            except TooFewVictims:
                self._infeasible(j)
        if self.overlap:
            self.overlap.submit(j, i, plan, trained)
        else:
            self.store.place(plan.missing, plan.victims, i)
        self.slots[j] = plan.slots_tensor
        self.fetched[j], self.evicted[j] = len(plan.missing), len(plan.victims)

    def _infeasible(self, j: int):
        needed = min_capacity(self.trace, self.lookahead)
        raise CapacityError(
            f"a scratchpad of {self.store.capacity:,} rows cannot hold the window of batch {j} "
            f"(batches {max(0, j - self.lookahead)}..{j}); lookahead {self.lookahead} needs a "
            f"capacity of at least {needed:,} rows for this trace") from None

    def host_table(self):
        return self.store.flush()

    def close(self):
        if self.plan_thread:  # first: it hands jobs to the worker
            self.plan_thread.shutdown(wait=True, cancel_futures=True)
        if self.overlap:
            self.overlap.close()
