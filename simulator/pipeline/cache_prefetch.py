"""cache-prefetch: a past-looking cache whose misses for batch i+1 are fetched while batch i
trains (TorchRec's prefetch pipeline: a lookahead of one batch). The lines of batch i are
locked while i+1 is looked up, so the replay is the scratchpad's with a window of one batch
and LRU victims. On the GPU, per iteration: look up i+1 and gather its victims, train i,
then insert i+1's rows (which have crossed PCIe during the training step)."""

from ..caches import replay
from .mode import CachedMode


class CachePrefetch(CachedMode):
    name = "cache-prefetch"

    def replay(self, trace, capacity):
        return replay(trace, policy="scratchpipe", capacity=capacity, lookahead=1, victim="lru",
                      per_batch=True)

    def stages(self, c):
        return {"lookup": ("gpu", c.gpu_probe()), **self.cached_stages(c)}

    def programs(self, n):
        gpu = [("lookup", 0), ("evict", 0), ("insert", 0)]
        for b in range(n):
            if b + 1 < n:
                gpu += [("lookup", b + 1), ("evict", b + 1)]
            gpu.append(("train", b))
            if b + 1 < n:
                gpu.append(("insert", b + 1))
        return {"gpu": gpu,
                "cpu": [s for b in range(n) for s in (("collect", b), ("writeback", b))],
                "h2d": [s for b in range(n) for s in (("input", b), ("h2d", b))],
                "d2h": [("d2h", b) for b in range(n)]}
