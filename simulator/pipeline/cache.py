"""cache: a past-looking GPU cache (LRU by default) filled on demand. Per iteration, in order on
the GPU: look the batch up in the cache, gather the victims, insert the missed rows once
they have arrived, train. Meanwhile the CPU gathers the misses and, after the victims'
D2H copy, writes them back; the next iteration's gather waits for that write-back, so a row
evicted and fetched again is always read updated."""

from ..caches import replay
from .mode import CachedMode


class Cache(CachedMode):
    name = "cache"

    def replay(self, trace, capacity):
        return replay(trace, policy=self.cache_policy, capacity=capacity, per_batch=True)

    def stages(self, c):
        return {"lookup": ("gpu", c.gpu_probe()), **self.cached_stages(c)}

    def programs(self, n):
        return {"gpu": [s for b in range(n)
                        for s in (("lookup", b), ("evict", b), ("insert", b), ("train", b))],
                "cpu": [s for b in range(n) for s in (("collect", b), ("writeback", b))],
                "h2d": [s for b in range(n) for s in (("input", b), ("h2d", b))],
                "d2h": [("d2h", b) for b in range(n)]}
