"""scratchpipe: a GPU scratchpad managed with the known future (ScratchPipe, ISCA 2022).

The batches of the next W iterations are already in the data loader. Batch j is planned at
iteration j-W, once the training of batch j-W-1 has been issued (the window of in-flight
batches is j-W..j), as the backend does: its missing rows get slots and non-held victims.
Where the plans run is the option `planner` (PLANNER): "thread", ScratchPipe's arrangement, a
host thread of its own, which plans j and issues its victims' gather while the main thread
issues training j-W, so that with every row resident training is issued at gpu-only's pace;
"main", the main thread, which plans between the training steps it issues. Then, each on its
resource, as a pipeline:

    planner thread plan j and issue its victims' gather (planner="main": the main thread)
    main thread    issue training i (once i is planned and its inserts are issued)
    worker thread  write back j's victims (once copied out), collect j's missing rows, issue
                   their insert
    H2D   j's inputs and rows (transfer)     D2H   j's victims
    GPU   gather the victims of j+1, insert j's rows, train j

Hazards: a victim's last use is outside the window, so its training step (j-W-1 at the latest)
comes before the victim's gather in the GPU's order, and the write-back after that. A row
evicted at j-1 and fetched again at j is collected only after j-1's write-back (the worker runs
them in that order): it is always read updated (this model waits rather than forwarding).
"""

from ..caches import replay
from ..caches.scratchpipe import LOOKAHEAD, VICTIM
from ..options import Option
from .mode import INPUT_BUFFERS, CachedMode, default_warmup, issue

PLANNER = Option("planner", str, "thread",
                 "the host thread that plans (kind cuda): one of its own beside the main thread "
                 "that issues training (ScratchPipe's), or the main thread itself; kind cpu runs "
                 "everything in order either way", choices=("thread", "main"))


class ScratchPipe(CachedMode):
    name = "scratchpipe"
    options = (LOOKAHEAD, VICTIM, PLANNER)

    def warmup(self, n):
        return default_warmup(n, self.lookahead)

    def window(self):
        return self.lookahead

    def replay(self, trace, capacity):
        return replay(trace, policy="scratchpipe", capacity=capacity, lookahead=self.lookahead,
                      victim=self.victim, per_batch=True)

    def programs(self, n):
        # With a lookahead, the victims of j+1 are gathered before j trains; without one,
        # batch j is planned only after j-1 has trained, so they cannot be.
        ahead = 1 if self.lookahead >= 1 else 0
        gpu = [("evict", j) for j in range(ahead)]
        for j in range(n):
            if j + ahead < n:
                gpu.append(("evict", j + ahead))
            gpu += [("insert", j), ("train", j)]
        return {**host_threads(n, self.lookahead, self.planner), "gpu": gpu,
                "h2d": [s for j in range(n) for s in (("input", j), ("transfer", j))],
                "d2h": [("d2h", j) for j in range(n)]}

    def depends(self, stage, b):
        if stage == "input":
            # Copied as soon as the batch is in the window (W >= 1), or double-buffered like
            # every mode's inputs (W = 0).
            return (("train", b - max(self.lookahead, INPUT_BUFFERS - 1) - 1),)
        return super().depends(stage, b) + planner_depends(stage, b, self.lookahead, self.planner)

    def serial_program(self, stages, n):
        return planned_ahead(stages, n, self.lookahead)


def host_threads(n: int, lookahead: int, planner: str) -> dict:
    """The host's threads (kind cuda), as the backend overlaps them. planner "main": the main
    thread plans every batch up to i + lookahead and issues its victims' gather, then issues
    training i; "thread": the planner thread plans and issues the gathers batch after batch
    (planner_depends paces it) and the main thread only issues training. The worker, batch
    after batch, writes the victims back, collects the misses and issues their insert."""
    worker = [s for j in range(n)
              for s in (("writeback", j), ("collect", j), (issue("insert"), j))]
    if planner == "thread":
        return {"cpu": [(issue("train"), i) for i in range(n)],
                "planner": [s for j in range(n) for s in (("plan", j), (issue("evict"), j))],
                "worker": worker}
    main = [s for s in planned_ahead(("plan", issue("evict")), n, lookahead)]
    main = [(issue("train"), b) if s == "train" else (s, b) for s, b in main]
    return {"cpu": main, "worker": worker}


def planner_depends(stage: str, b: int, lookahead: int, planner: str) -> tuple:
    """What the planner thread and the main thread wait for of each other (planner="thread";
    on the main thread the program order says it): batch j is planned once training j-W-1
    has been issued, so its victims are no longer in flight when their gather is queued
    behind it, and training i is issued once batch i is planned (its slots are known)."""
    # Called for every step the engine runs: no table built per call.
    if planner != "thread":
        return ()
    if stage == "plan":
        return ((ISSUE_TRAIN, b - lookahead - 1),)
    return (("plan", b),) if stage == ISSUE_TRAIN else ()


ISSUE_TRAIN = issue("train")


def planned_ahead(stages, n: int, lookahead: int):
    """One thread's order (kind cpu), as the backend runs it: at iteration i, plan and fetch
    every batch up to i + lookahead not yet planned, then train i."""
    fetch = [s for s in stages if s != "train"]
    steps, planned = [], 0
    for i in range(n):
        while planned <= min(i + lookahead, n - 1):
            steps += [(s, planned) for s in fetch]
            planned += 1
        steps.append(("train", i))
    return steps
