"""The discrete-event engine: one SimPy process per resource, executing its program in order.

A training mode describes, per iteration, which stages run on which resource (RESOURCES), the
order in which each resource issues them (as a real implementation issues work to a thread or a
CUDA stream), and which earlier stages each one waits for. Every resource is then a process
that takes its next stage, waits until the stages it depends on have finished, and is busy for
the stage's duration.

A dependency is on a step's end, or, written started(stage, b), on its start: a host thread
that plans ahead once it has issued a training step does not wait for the GPU to finish it.
A stage with no work (zero seconds: no victims to write back, nothing to copy) does not wait
for anything but its turn: it has nothing to order.

Because each resource keeps a fixed order, every start and finish time is a max-plus function
of the stage durations (a step's wait appears as its duration leaves zero): it can only grow
when a duration grows. A faster link or memory therefore never makes any mode slower (no
scheduling anomalies), which the property tests check.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Callable, Iterable

import numpy as np
import simpy

# The host's main thread (issuing the GPU's work, and planning unless a thread of its own
# does), its planner thread (planner="thread": the plans beside the issue of training), its
# worker thread (write-backs and collects beside training), the link's two directions, the GPU.
RESOURCES = ("cpu", "planner", "worker", "h2d", "d2h", "gpu")

Step = tuple[str, int]  # (stage, batch)
STARTED = "started"


def started(stage: str, b: int) -> tuple[str, int, str]:
    """A dependency on the start of (stage, b) rather than its end."""
    return (stage, b, STARTED)


@dataclass
class Schedule:
    """When every stage of every batch ran: start[stage][b], end[stage][b] in seconds."""

    stages: dict[str, str]          # stage -> resource
    start: dict[str, np.ndarray]
    end: dict[str, np.ndarray]

    def intervals(self, resource: str):
        """(start, end) arrays of all stages that ran on a resource."""
        names = [s for s, r in self.stages.items() if r == resource]
        if not names:
            return np.zeros(0), np.zeros(0)
        return (np.concatenate([self.start[s] for s in names]),
                np.concatenate([self.end[s] for s in names]))


def run(durations: dict[str, tuple[str, np.ndarray]], programs: dict[str, Iterable[Step]],
        depends: Callable[[str, int], Iterable[Step]]) -> Schedule:
    """Simulate. durations: stage -> (resource, seconds per batch); programs: resource -> the
    steps it issues in order; depends(stage, b): the steps that must finish (or, given as
    started(stage, b), start) first; steps with a negative batch are ignored."""
    env = simpy.Environment()
    n = len(next(iter(durations.values()))[1])
    start = {s: np.full(n, np.nan) for s in durations}
    end = {s: np.full(n, np.nan) for s in durations}
    # What has happened, and the events only the steps someone waits for need.
    happened: set = set()  # (stage, b, STARTED or None)
    waiting: dict = {}

    def reached(key) -> None:
        happened.add(key)
        event = waiting.pop(key, None)
        if event is not None:
            event.succeed()

    def resource_process(program):
        for stage, b in program:
            seconds = durations[stage][1][b]
            for dep_stage, dep_b, *which in depends(stage, b) if seconds > 0 else ():
                key = (dep_stage, dep_b, STARTED if which == [STARTED] else None)
                if dep_b >= 0 and key not in happened:
                    if key not in waiting:
                        waiting[key] = env.event()
                    yield waiting[key]
            start[stage][b] = env.now
            reached((stage, b, STARTED))
            if seconds > 0:
                yield env.timeout(seconds)
            end[stage][b] = env.now
            reached((stage, b, None))

    for resource, program in programs.items():
        env.process(resource_process(program))
    env.run()
    unfinished = [s for s in durations if np.isnan(end[s]).any()]
    if unfinished:  # a mode whose programs and dependencies form a cycle: a bug, not user error
        raise RuntimeError(f"pipeline deadlock: stages {unfinished} never ran to completion")
    return Schedule({s: r for s, (r, _) in durations.items()}, start, end)
