"""What `scratchsim validate` runs: the grids of configurations and the held-out check's.

A grid (Grid, FULL and QUICK below) has workloads of every batch size x embedding dim, each with
its own model (grid_model) and, per batch size, a seeded Zipf trace shared by both dims. A
workload runs every registered training mode (pipeline.MODES): a mode with a cache at each
capacity (a percentage of the trace's distinct rows), and at each value of the grid's axes for
the options the mode declares (lookahead, victim); options no axis names keep their defaults.
A configuration whose capacity cannot hold what it needs (Mode.window: its largest window of
consecutive batches, min_capacity) is skipped, and the summary says why. Calibration never
sees these configurations: it runs micro-benchmarks only.
"""

from __future__ import annotations

import itertools
from dataclasses import asdict, dataclass

from ...pipeline import MODES
from ...workload import ModelConfig

# The held-out check: every mode once, cached modes at one capacity and lookahead.
HELD_OUT_CAPACITY = 25  # % of the trace's distinct rows
HELD_OUT_LOOKAHEAD = 2
HELD_OUT_VICTIMS = ("lru",)
SETTINGS = ("capacity_pct", "lookahead", "victim")  # a configuration's keys besides its workload


@dataclass(frozen=True)
class Grid:
    """A validation grid: Zipf traces of `tables` x `rows_per_table` rows and `batches` batches
    (one per batch size), a model per embedding dim, and per workload the configurations of
    configs()."""

    name: str
    tables: int
    rows_per_table: int
    batches: int
    alpha: float
    batch_sizes: tuple[int, ...]
    dims: tuple[int, ...]
    capacities: tuple[int, ...]  # % of the trace's distinct rows
    lookaheads: tuple[int, ...]
    victims: tuple[str, ...]
    # True: each (capacity, lookahead) of a workload runs one victim policy, taken in turn
    # and shifted by one from workload to workload, so every (capacity, lookahead, victim)
    # still runs on some workloads at half the cost; False: every victim everywhere.
    alternate_victims: bool = False

    def workloads(self) -> list[tuple[int, int]]:
        return [(b, d) for b in self.batch_sizes for d in self.dims]

    def configs(self) -> list[dict]:
        """Every configuration, workload by workload (see workload_configs)."""
        out = []
        for j, (batch_size, dim) in enumerate(self.workloads()):
            if self.alternate_victims:
                victims = ((self.victims[k % len(self.victims)],) for k in itertools.count(j))
            else:
                victims = itertools.repeat(self.victims)
            out += workload_configs(batch_size, dim, self.capacities, self.lookaheads, victims)
        return out

    def describe(self) -> dict:
        return dict(asdict(self), kind=self.name, workloads=[list(w) for w in self.workloads()],
                    configurations=len(self.configs()), generator="zipf")


def workload_configs(batch_size, dim, capacities, lookaheads, victims) -> list[dict]:
    """A workload's configurations (batch_size, dim, mode and SETTINGS, None where the mode
    has no such setting), mode by mode in registry order: a mode without a cache once; one
    with a cache at each capacity, and there at each lookahead if it declares one, with the
    victim policies of the tuple that the iterator `victims` gives for that pair (if it
    declares a victim option)."""
    base = {"batch_size": batch_size, "dim": dim, **dict.fromkeys(SETTINGS)}
    out = []
    for name, mode in MODES.items():
        declared = {o.name for o in mode.options}
        if not mode.uses_cache:
            out.append(dict(base, mode=name))
            continue
        for pct in capacities:
            for w in lookaheads if "lookahead" in declared else (None,):
                kinds = next(victims) if "victim" in declared else (None,)
                out += [dict(base, mode=name, capacity_pct=pct, lookahead=w, victim=v)
                        for v in kinds]
    return out


def held_out_configs(batch_size: int, dim) -> list[dict]:
    return workload_configs(batch_size, dim, (HELD_OUT_CAPACITY,), (HELD_OUT_LOOKAHEAD,),
                            itertools.repeat(HELD_OUT_VICTIMS))


def mode_options(config: dict) -> dict:
    """The mode options of a configuration (those it sets)."""
    return {k: config[k] for k in ("lookahead", "victim") if config[k] is not None}


def label(config: dict) -> str:
    parts = [f"B{config['batch_size']} d{config['dim']}", config["mode"]]
    if config["capacity_pct"] is not None:
        parts.append(f"{config['capacity_pct']:g}%")
    if config["lookahead"] is not None:
        parts.append(f"W{config['lookahead']}")
    if config["victim"] is not None:
        parts[-1] += f" {config['victim']}"
    return " ".join(parts)


# Sizes measured on the 2-core development machine: every capacity fits (the 5 batches a
# lookahead of 4 holds touch at most 9% of the distinct rows, one batch 3%). The full grid
# (48 configurations, 4 rounds, calibrated in every round) takes about 7 minutes, the quick
# one (10 configurations) under a minute.
FULL = Grid("full", tables=8, rows_per_table=100_000, batches=100, alpha=1.05,
            batch_sizes=(512, 2048), dims=(16, 64), capacities=(15, 50),
            lookaheads=(1, 2, 4), victims=("lru", "future"), alternate_victims=True)
QUICK = Grid("quick", tables=4, rows_per_table=20_000, batches=100, alpha=1.05,
             batch_sizes=(256,), dims=(16,), capacities=(10, 50), lookaheads=(2,),
             victims=("lru", "future"))


def grid_model(dim: int, batch_size: int) -> ModelConfig:
    """The model of a grid workload: the backend's default model at this dim (the dot
    interaction needs the bottom MLP's output equal to the embedding dim)."""
    from .. import DEFAULT_MODEL
    return ModelConfig.from_dict(
        dict(DEFAULT_MODEL, name=f"validation-d{dim}", embedding_dim=dim, batch_size=batch_size,
             bottom_mlp=DEFAULT_MODEL["bottom_mlp"][:-1] + [dim]), source="validation grid")
