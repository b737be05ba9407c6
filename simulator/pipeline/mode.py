"""What a training mode is: its stages and their ops, the order each resource issues them,
what each waits for.

A mode module subclasses Mode, declares its options and fills in four methods; the engine
(engine.py) runs them; register_mode makes it known by name to simulate(), the CLI, sweeps and
the backend (whose twin of the mode is backend/<mode>.py). stage_ops is the counting rule of
the mode: the framework ops each stage runs, as the twin runs them;
tests/pipeline/test_op_counts.py checks it. Each stage runs on the resource whose program
issues it.
"""

from __future__ import annotations

from abc import ABC, abstractmethod
from dataclasses import replace
from typing import ClassVar

import numpy as np

from ..caches import ReplayResult
from ..errors import OptionError
from ..options import Configurable
from .costs import StageCosts
from .engine import Step
from .ops import INDEX_BYTES, Op

# The data loader double-buffers: the inputs of batch b are copied once batch b-2 has trained.
INPUT_BUFFERS = 2


def issue(stage: str) -> str:
    """The host step that issues a GPU stage's ops (kind cuda): the GPU stage starts with it
    and cannot end before it."""
    return f"issue_{stage}"


def default_warmup(n: int, lookahead: int) -> int:
    """Iterations left out of the steady state: the pipeline fill, or a tenth of the run."""
    return min(n - 1, max(lookahead + 2, n // 10))


MODES: dict[str, type["Mode"]] = {}


def register_mode(cls: type["Mode"]) -> type["Mode"]:
    """Make a mode (a Mode subclass) known by its name to simulate(), the CLI, sweeps and the
    backend."""
    MODES[cls.name] = cls
    return cls


def get_mode(name: str) -> type["Mode"]:
    try:
        return MODES[name]
    except KeyError:
        raise OptionError(f"unknown mode {name!r}; choose one of {', '.join(MODES)}") from None


def make_mode(name: str, **options) -> "Mode":
    """A mode with its options; options that only other modes declare are left out (callers
    may give one setting to every mode), those no mode declares are refused."""
    cls = get_mode(name)
    known = {o.name for m in MODES.values() for o in m.options}
    unknown = sorted(set(options) - known)
    if unknown:
        raise OptionError(f"no mode takes option {', '.join(unknown)}; the modes' options: "
                          f"{', '.join(sorted(known))}")
    return cls(**{o.name: options[o.name] for o in cls.options if o.name in options})


class Mode(Configurable, ABC):
    kind = "mode"
    uses_cache: ClassVar[bool] = False  # needs a capacity and a replay
    tables_on_device: ClassVar[bool] = False  # every table in HBM (else in host memory)

    def replay(self, trace, capacity) -> ReplayResult | None:
        """The cache decisions this mode trains with (None: no cache)."""
        return None

    def hit_rate(self, replay: ReplayResult | None) -> float:
        """The fraction of rows the device finds at hand: all with the tables on it, none
        without them or a cache."""
        return 1.0 if self.tables_on_device else replay.hit_rate if replay else 0.0

    def warmup(self, n: int) -> int:
        """Iterations of n left out of the steady state."""
        return default_warmup(n, 1)

    def window(self) -> int:
        """Batches planned ahead of the one training whose rows the cache holds with it: a
        capacity must hold the distinct rows of window() + 1 consecutive batches."""
        return 0

    @abstractmethod
    def stage_ops(self, costs: StageCosts) -> dict[str, list[Op]]:
        """stage -> the ops it runs per batch, in the order the backend runs a batch's
        stages."""

    @abstractmethod
    def traffic(self, costs: StageCosts) -> tuple[np.ndarray, np.ndarray]:
        """Bytes per batch copied host-to-device and device-to-host."""

    @abstractmethod
    def programs(self, n: int) -> dict[str, list[Step]]:
        """resource -> the (stage, batch) steps it issues, in order (kind cuda), the host
        threads' issue(stage) steps among them: a stage runs where its steps are."""

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

    def stage_ops(self, c: StageCosts) -> dict[str, list[Op]]:
        w = c.work
        evicts, misses = c.any(w.evictions), c.any(w.misses)
        # Host arrays (the planner's) are wrapped as tensors where a stage indexes with them.
        wrap = Op("lift_fresh", "view")
        return {
            "input": c.inputs(),
            "plan": [wrap, c.plan()],
            "evict": ([replace(wrap, count=evicts)]
                      + c.copies(w.evictions * INDEX_BYTES, "h2d", pinned=False, count=evicts)
                      + [c.gather_rows(w.evictions, count=evicts)]),
            "d2h": c.copies(c.evict_bytes, "d2h", pinned=False, count=evicts),
            "writeback": [replace(wrap, count=evicts),
                          c.scatter_rows(w.evictions, on_host=True, count=evicts)],
            "collect": [replace(wrap, count=misses), Op("empty", "view", misses),
                        c.gather_rows(w.misses, on_host=True, count=misses)],
            "transfer": c.copies(c.fetch_bytes, "h2d", count=misses),
            "insert": ([replace(wrap, count=misses)]
                       + c.copies(w.misses * INDEX_BYTES, "h2d", pinned=False, count=misses)
                       + [c.scatter_rows(w.misses, count=misses)]),
            "train": c.train_on_rows(),
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
