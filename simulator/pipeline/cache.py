"""cache: a past-looking GPU cache (LRU by default) filled on demand. Per iteration: the host
looks the batch up in the cache's directory and chooses victims (plan); in order on the GPU:
gather the victims, insert the missed rows once they have arrived, train. Meanwhile the host
writes the victims back after their D2H copy, then gathers the misses; a row evicted and
fetched again is always read updated, since the write-back comes first."""

from dataclasses import replace

from ..caches import POLICIES, replay
from ..options import Option
from .mode import CachedMode, issue

CACHE_POLICY = Option("cache_policy", str, "lru", "the past-looking policy of the cache",
                      choices=lambda: [n for n, p in POLICIES.items() if p.on_demand])


class _WithPolicyOptions:
    """cache_policy and the options of every past-looking policy, read when asked (a policy
    registered later brings its own)."""

    def __get__(self, mode, cls):
        options = {}  # name -> the option, its help saying which policy takes it
        for policy in (p for p in POLICIES.values() if p.on_demand):
            for o in policy.options:
                options.setdefault(o.name, replace(o, help=f"with cache_policy {policy.name}: "
                                                           f"{o.help}"))
        return (CACHE_POLICY, *options.values())


class Cache(CachedMode):
    name = "cache"
    options = _WithPolicyOptions()

    @classmethod
    def applicable(cls, values):
        policy = POLICIES.get(values.get("cache_policy", CACHE_POLICY.default))
        # An unknown policy keeps every option, so that its own name is what gets refused.
        return cls.options if policy is None else (CACHE_POLICY, *policy.options)

    def replay(self, trace, capacity):
        return replay(trace, policy=self.cache_policy, capacity=capacity, per_batch=True,
                      **{k: v for k, v in self.settings().items() if k != "cache_policy"})

    def programs(self, n):
        return {"gpu": [s for b in range(n)
                        for s in (("evict", b), ("insert", b), ("train", b))],
                "cpu": [s for b in range(n)
                        for s in (("plan", b), (issue("evict"), b), ("writeback", b),
                                  ("collect", b), (issue("insert"), b), (issue("train"), b))],
                "h2d": [s for b in range(n) for s in (("input", b), ("transfer", b))],
                "d2h": [("d2h", b) for b in range(n)]}
