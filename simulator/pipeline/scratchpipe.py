"""scratchpipe: a GPU scratchpad managed with the known future (ScratchPipe, ISCA 2022).

The batches of the next W iterations are already in the data loader. Batch j is planned by
the host once it has issued the training of batch j-W-1 (the window of in-flight batches is
j-W..j), as the backend does: its missing rows get slots and non-held victims. Then, each on
its resource, as a pipeline:

    CPU   plan j, write back the victims of j-1, collect (gather) j's missing rows
    H2D   j's inputs and rows (transfer)     D2H   j's victims
    GPU   gather the victims of j+1, insert j's rows, train j

Hazards: a victim's last use is outside the window, so its training step (j-W-1 at the
latest) comes before the victim's gather in the GPU's order, and the write-back after that. A row evicted at j-1 and fetched again
at j is collected only after j-1's write-back (the CPU issues them in that order): it is
always read updated (this model waits rather than forwarding).
"""

from ..caches import replay
from .engine import started
from .mode import INPUT_BUFFERS, CachedMode


class ScratchPipe(CachedMode):
    name = "scratchpipe"
    probe = "plan"

    def replay(self, trace, capacity):
        return replay(trace, policy="scratchpipe", capacity=capacity, lookahead=self.lookahead,
                      victim=self.victim, per_batch=True)

    def programs(self, n):
        cpu = []
        for j in range(n):
            cpu.append(("plan", j))
            if j > 0:
                cpu.append(("writeback", j - 1))
            cpu.append(("collect", j))
        cpu.append(("writeback", n - 1))
        # With a lookahead, the victims of j+1 are gathered before j trains; without one,
        # batch j is planned only after j-1 has trained, so they cannot be.
        ahead = 1 if self.lookahead >= 1 else 0
        gpu = [("evict", j) for j in range(ahead)]
        for j in range(n):
            if j + ahead < n:
                gpu.append(("evict", j + ahead))
            gpu += [("insert", j), ("train", j)]
        return {"cpu": cpu, "gpu": gpu,
                "h2d": [s for j in range(n) for s in (("input", j), ("transfer", j))],
                "d2h": [("d2h", j) for j in range(n)]}

    def depends(self, stage, b):
        # The host plans j at iteration j-W, once it has issued the training of j-W-1.
        return {"plan": (started("train", b - self.lookahead - 1),),
                # Inputs are copied as soon as the batch is in the window (W >= 1), or
                # double-buffered like every mode's (W = 0).
                "input": (("train", b - max(self.lookahead, INPUT_BUFFERS - 1) - 1),),
                "evict": (("plan", b),)}.get(stage) or super().depends(stage, b)

    def serial_program(self, stages, n):
        return planned_ahead(stages, n, self.lookahead)


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
