"""What a training mode is: its stages and their ops, the order each resource issues them,
what each waits for.

A mode module subclasses Mode and fills in four methods; the engine (engine.py) runs them.
stage_ops is the counting rule of the mode: the framework ops each stage runs, as the backend's
twin of the mode (backend/<mode>.py) runs them; tests/pipeline/test_op_counts.py checks it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar

import numpy as np

from ..caches import ReplayResult
from .costs import StageCosts
from .engine import Step
from .ops import INDEX_BYTES, Op

# The data loader double-buffers: the inputs of batch b are copied once batch b-2 has trained.
INPUT_BUFFERS = 2


def issue(stage: str) -> str:
    """The host step that issues a GPU stage's ops (kind cuda): the GPU stage starts with it
    and cannot end before it."""
    return f"issue_{stage}"


class Mode(ABC):
    name: ClassVar[str]
    uses_cache: ClassVar[bool] = False  # needs a capacity and a replay

    def __init__(self, lookahead: int = 0, victim: str = "lru", cache_policy: str = "lru"):
        self.lookahead = lookahead
        self.victim = victim
        self.cache_policy = cache_policy

    def replay(self, trace, capacity) -> ReplayResult | None:
        """The cache decisions this mode trains with (None: no cache)."""
        return None

    @abstractmethod
    def stage_ops(self, costs: StageCosts) -> dict[str, tuple[str, list[Op]]]:
        """stage -> (resource, the ops it runs per batch), in the order the backend runs a
        batch's stages."""

    @abstractmethod
    def traffic(self, costs: StageCosts) -> tuple[np.ndarray, np.ndarray]:
        """Bytes per batch copied host-to-device and device-to-host."""

    @abstractmethod
    def programs(self, n: int) -> dict[str, list[Step]]:
        """resource -> the (stage, batch) steps it issues, in order (kind cuda), the host
        threads' issue(stage) steps among them."""

    def issuer(self, stage: str) -> str:
        """The host thread that issues a GPU stage."""
        return "cpu"

    @abstractmethod
    def depends(self, stage: str, b: int) -> tuple[Step, ...]:
        """The steps (on other resources) that must finish before (stage, b) starts."""

    def serial_program(self, stages, n: int) -> list[Step]:
        """Every step in the order one thread runs them (kind cpu: the backend in program
        order): a batch's stages, batch after batch."""
        return [(s, b) for b in range(n) for s in stages]


class CachedMode(Mode):
    """The shared stages of the modes that keep a cache or scratchpad in HBM: the host plans
    (finds the batch's hits, misses and victims), the victims are gathered on the device
    (evict), copied out (d2h) and written back by the host (writeback), the misses gathered
    by the host (collect) and copied in (transfer), the fetched rows scattered into their
    slots (insert), and the device trains on its slots only (train)."""

    uses_cache = True
    # The host thread that writes victims back, collects misses and issues their insert.
    fetcher = "cpu"

    def issuer(self, stage: str) -> str:
        return self.fetcher if stage == "insert" else "cpu"

    def stage_ops(self, c: StageCosts) -> dict[str, tuple[str, list[Op]]]:
        w = c.work
        evicts, misses = c.any(w.evictions), c.any(w.misses)
        # Host arrays (the planner's) are wrapped as tensors where a stage indexes with them.
        wrap = Op("lift_fresh", "view")
        return {
            "input": ("h2d", c.inputs()),
            "plan": ("cpu", [wrap, c.plan()]),
            "evict": ("gpu", [replace(wrap, count=evicts)]
                      + c.copies(w.evictions * INDEX_BYTES, "h2d", pinned=False, count=evicts)
                      + [c.gather_rows(w.evictions, count=evicts)]),
            "d2h": ("d2h", c.copies(c.evict_bytes, "d2h", pinned=False, count=evicts)),
            "writeback": (self.fetcher, [replace(wrap, count=evicts),
                                         c.scatter_rows(w.evictions, on_host=True,
                                                        count=evicts)]),
            "collect": (self.fetcher, [replace(wrap, count=misses),
                                       Op("empty", "view", misses),
                                       c.gather_rows(w.misses, on_host=True, count=misses)]),
            "transfer": ("h2d", c.copies(c.fetch_bytes, "h2d", count=misses)),
            "insert": ("gpu", [replace(wrap, count=misses)]
                       + c.copies(w.misses * INDEX_BYTES, "h2d", pinned=False, count=misses)
                       + [c.scatter_rows(w.misses, count=misses)]),
            "train": ("gpu", c.train_on_rows()),
        }

    def traffic(self, c: StageCosts):
        return c.input_dense_bytes + c.index_bytes + c.fetch_bytes, c.evict_bytes

    def depends(self, stage: str, b: int) -> tuple[Step, ...]:
        return {
            "input": (("train", b - INPUT_BUFFERS),),
            "evict": (("plan", b),),
            "collect": (("plan", b),),
            "transfer": (("collect", b),),
            "d2h": (("evict", b),),
            "writeback": (("d2h", b),),
            # Slots are reused only once their victims have been copied out.
            "insert": (("transfer", b), ("d2h", b)),
            "train": (("insert", b), ("input", b)),
            # Training is issued once its inserts are (ready(i) in the backend).
            issue("train"): ((issue("insert"), b),),
        }.get(stage, ())
