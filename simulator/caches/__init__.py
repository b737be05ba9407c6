"""Cache replay: one module per policy behind the Policy interface of base.py, chosen by name.

A new policy is one module here plus its register_policy line below (or a call from anywhere).
"""

from __future__ import annotations

from ..errors import OptionError
from ..trace.format import DEFAULT_CHUNK_LOOKUPS, open_trace
from .base import STATS, Policy, ReplayResult, distinct_rows, resolve_capacity, run_replay
from .lru import LRU
from .fifo import FIFO
from .lfu import LFU
from .setassoc import SetAssociative
from .static import Static
from .belady import Belady
from .scratchpipe import ScratchPipe, min_capacity
from .oracle import Oracle

POLICIES: dict[str, type[Policy]] = {}


def register_policy(cls: type[Policy]) -> type[Policy]:
    """Make a policy (a Policy subclass) known by its name to replay(), the CLI and sweeps."""
    POLICIES[cls.name] = cls
    return cls


for _cls in (LRU, FIFO, LFU, SetAssociative, Static, Belady, ScratchPipe, Oracle):
    register_policy(_cls)


def get_policy(name: str) -> type[Policy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise OptionError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}") from None


def replay(trace, policy: str = "lru", capacity="20%", max_lookups: int = DEFAULT_CHUNK_LOOKUPS,
           per_batch: bool | None = None, **params) -> ReplayResult:
    """Replay a trace through a cache policy.

    capacity: rows, or a percentage of the trace's distinct rows ("20%").
    per_batch: keep per-batch statistics (default: for traces of at most 2**20 batches;
    longer ones, such as one-lookup-per-batch streams, keep totals in bounded memory).
    params: the policy's options (see each policy module)."""
    trace = open_trace(trace)
    cls = get_policy(policy)
    # capacity=None (unbounded) only for a policy whose decisions do not depend on it.
    cap = (None if capacity is None and getattr(cls, "capacity_optional", False)
           else resolve_capacity(trace, capacity))
    return run_replay(cls(trace, cap, **params), trace, max_lookups, per_batch)


__all__ = ["POLICIES", "STATS", "Policy", "ReplayResult", "distinct_rows", "get_policy",
           "register_policy", "replay", "resolve_capacity"]
__all__ += ["min_capacity"]
