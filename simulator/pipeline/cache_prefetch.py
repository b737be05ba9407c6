"""cache-prefetch: a past-looking cache whose misses for batch i+1 are fetched while batch i
trains (TorchRec's prefetch pipeline: a lookahead of one batch). The lines of batch i are
locked while i+1 is looked up, so the replay is the scratchpad's with a window of one batch
and LRU victims. On the GPU, per iteration: look up i+1 and gather its victims, train i,
then insert i+1's rows (which have crossed PCIe during the training step). The host plans
i+1 before i trains, as the backend does (it is scratchpipe's with a window of one batch),
on a planner thread of its own or on the main thread (the option planner, as scratchpipe's)."""

from ..caches import replay
from .mode import CachedMode
from .scratchpipe import PLANNER, host_threads, planned_ahead, planner_depends


class CachePrefetch(CachedMode):
    name = "cache-prefetch"
    options = (PLANNER,)

    def window(self):
        return 1

    def replay(self, trace, capacity):
        return replay(trace, policy="scratchpipe", capacity=capacity, lookahead=1, victim="lru",
                      per_batch=True)

    def programs(self, n):
        gpu = [("evict", 0), ("insert", 0)]
        for b in range(n):
            if b + 1 < n:
                gpu.append(("evict", b + 1))
            gpu.append(("train", b))
            if b + 1 < n:
                gpu.append(("insert", b + 1))
        return {**host_threads(n, lookahead=1, planner=self.planner), "gpu": gpu,
                "h2d": [s for b in range(n) for s in (("input", b), ("transfer", b))],
                "d2h": [("d2h", b) for b in range(n)]}

    def depends(self, stage, b):
        return super().depends(stage, b) + planner_depends(stage, b, 1, self.planner)

    def serial_program(self, stages, n):
        return planned_ahead(stages, n, lookahead=1)
