"""What a training mode is: its stages, the order each resource issues them, what each waits for.

A mode module subclasses Mode and fills in three methods; the engine (engine.py) runs them.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from typing import ClassVar

import numpy as np

from ..caches import ReplayResult, replay
from .costs import StageCosts
from .engine import Step

# The data loader double-buffers: the inputs of batch b are copied once batch b-2 has trained.
INPUT_BUFFERS = 2


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
    def stages(self, costs: StageCosts) -> dict[str, tuple[str, np.ndarray]]:
        """stage -> (resource, seconds per batch)."""

    @abstractmethod
    def traffic(self, costs: StageCosts) -> tuple[np.ndarray, np.ndarray]:
        """Bytes per batch copied host-to-device and device-to-host."""

    @abstractmethod
    def programs(self, n: int) -> dict[str, list[Step]]:
        """resource -> the (stage, batch) steps it issues, in order."""

    @abstractmethod
    def depends(self, stage: str, b: int) -> tuple[Step, ...]:
        """The steps (on other resources) that must finish before (stage, b) starts."""


class CachedMode(Mode):
    """The shared stages of the modes that keep a cache or scratchpad in HBM: misses are
    gathered on the CPU (collect) and copied in (h2d), victims are gathered on the GPU (evict),
    copied out (d2h) and written back on the CPU (writeback), the fetched rows are scattered
    into HBM (insert), and the GPU trains on HBM only (train)."""

    uses_cache = True
    probe = "lookup"  # the stage that finds the batch's hits, misses and victims

    def cached_stages(self, c: StageCosts) -> dict[str, tuple[str, np.ndarray]]:
        return {
            "input": ("h2d", c.h2d(c.input_dense_bytes + c.index_bytes)),
            "collect": ("cpu", c.cpu_collect()),
            "h2d": ("h2d", c.h2d(c.fetch_bytes)),
            "evict": ("gpu", c.gpu_evict()),
            "d2h": ("d2h", c.d2h(c.evict_bytes)),
            "writeback": ("cpu", c.cpu_writeback()),
            "insert": ("gpu", c.gpu_insert()),
            "train": ("gpu", c.train_on_gpu_tables()),
        }

    def traffic(self, c: StageCosts):
        return c.input_dense_bytes + c.index_bytes + c.fetch_bytes, c.evict_bytes

    def depends(self, stage: str, b: int) -> tuple[Step, ...]:
        return {
            "input": (("train", b - INPUT_BUFFERS),),
            "collect": ((self.probe, b),),
            "h2d": (("collect", b),),
            "d2h": (("evict", b),),
            "writeback": (("d2h", b),),
            # Slots are reused only once their victims have been copied out.
            "insert": (("h2d", b), ("d2h", b)),
            "train": (("insert", b), ("input", b)),
        }.get(stage, ())
