"""Cache replay: one module per policy behind the Policy interface of base.py, chosen by name.

A new policy is one module here plus one line in POLICIES.
"""

from __future__ import annotations

from ..errors import OptionError
from ..trace.format import DEFAULT_CHUNK_LOOKUPS, open_trace
from .base import STATS, Policy, ReplayResult, distinct_rows, resolve_capacity, run_replay
from .lru import LRU

POLICIES: dict[str, type[Policy]] = {
    "lru": LRU,
}


def get_policy(name: str) -> type[Policy]:
    try:
        return POLICIES[name]
    except KeyError:
        raise OptionError(f"unknown policy {name!r}; choose one of {', '.join(POLICIES)}") from None


def replay(trace, policy: str = "lru", capacity="20%", max_lookups: int = DEFAULT_CHUNK_LOOKUPS,
           **params) -> ReplayResult:
    """Replay a trace through a cache policy.

    capacity: rows, or a percentage of the trace's distinct rows ("20%").
    params: the policy's options (see each policy module)."""
    trace = open_trace(trace)
    cls = get_policy(policy)
    cap = resolve_capacity(trace, capacity)
    return run_replay(cls(trace, cap, **params), trace, max_lookups)


__all__ = ["POLICIES", "STATS", "Policy", "ReplayResult", "distinct_rows", "get_policy",
           "replay", "resolve_capacity"]
