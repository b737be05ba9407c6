"""Measuring as pyperf and hyperfine do: on a shared machine a configuration measured once
measures the machine's load as much as the configuration.

Every configuration is measured in `rounds` rounds. Within a round the configurations run in a
seeded shuffled order, so a slow minute of the machine hits several of them a little rather
than one of them entirely, and the machine is calibrated again at the start of every round
(calibrate_round), so the micro-benchmarks and the runs they predict see the same machine; the
profile used for the predictions is the median of the rounds' profiles (median_profile), and
profile_spread says how much it moved. Each run records the CPU time the hypervisor stole
while it ran (/proc/stat's steal, where the kernel reports it); a run with more than
STEAL_LIMIT stolen is run again at the end of its round, and the less stolen of the two is
kept, flagged when it is still over the limit.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable

import numpy as np

STEAL_LIMIT = 0.05
PROC_STAT = Path("/proc/stat")


def cpu_jiffies() -> tuple[int, int] | None:
    """(stolen, total) clock ticks of all CPUs since boot, from /proc/stat's first line
    (user nice system idle iowait irq softirq steal ...); None where it does not exist."""
    try:
        fields = [int(x) for x in PROC_STAT.read_text().split("\n", 1)[0].split()[1:9]]
    except (OSError, ValueError):
        return None
    return (fields[7] if len(fields) > 7 else 0), sum(fields)


class StealMeter:
    """The fraction of the CPUs' time stolen by the hypervisor while the block ran (None
    where /proc/stat does not say)."""

    def __enter__(self):
        self.fraction = None
        self._start = cpu_jiffies()
        return self

    def __exit__(self, *exc):
        end = cpu_jiffies()
        if self._start is not None and end is not None:
            total = end[1] - self._start[1]
            self.fraction = (end[0] - self._start[0]) / total if total > 0 else 0.0
        return False


@dataclass
class Run:
    """One measurement of one configuration: its median iteration seconds after the warm-up,
    its stages' medians, and the CPU time stolen while it ran."""

    seconds: float
    stages: dict
    steal: float | None
    redone: bool = False

    @property
    def stolen(self) -> bool:
        return self.steal is not None and self.steal > STEAL_LIMIT


@dataclass
class Rounds:
    """What measure_rounds measured: per configuration its runs, one a round; per round the
    calibration's profile (if it calibrated) and the steal while it ran, and each round's
    order."""

    runs: list[list[Run]]
    profiles: list[dict] = field(default_factory=list)
    calibration_steal: list = field(default_factory=list)
    round_steal: list = field(default_factory=list)  # over each round's runs
    orders: list[list[int]] = field(default_factory=list)


def measure_rounds(labels: list[str], rounds: int, seed: int, measure: Callable[[int], tuple],
                   calibrate_round: Callable[[], dict] | None = None,
                   progress: Callable[[str], None] = lambda line: None,
                   warm_up: Callable[[int], None] | None = None) -> Rounds:
    """Measure the configurations k = 0, 1, ... named by `labels` in `rounds` rounds:
    warm_up(k) once for each first (when given; not recorded: the process's first runs pay for
    its allocator's growth and first calls), then in each round calibrate_round() (when given)
    and every configuration in an order drawn from `seed`, measure(k) returning (seconds,
    stages); stolen runs redone once at the end of the round."""
    count = len(labels)
    rng = np.random.default_rng(seed)
    out = Rounds([[] for _ in range(count)])
    if warm_up is not None:
        for k in range(count):
            warm_up(k)
        progress(f"warmed up: {count} configurations")

    def run(k: int) -> Run:
        with StealMeter() as steal:
            seconds, stages = measure(k)
        return Run(seconds, stages, steal.fraction)

    for r in range(rounds):
        if calibrate_round is not None:
            with StealMeter() as steal:
                out.profiles.append(calibrate_round())
            out.calibration_steal.append(steal.fraction)
            progress(f"round {r + 1}/{rounds}: calibrated"
                     + ("" if steal.fraction is None else f" ({steal.fraction:.1%} stolen)"))
        order = [int(k) for k in rng.permutation(count)]
        out.orders.append(order)
        with StealMeter() as steal:
            for n, k in enumerate(order, 1):
                result = run(k)
                out.runs[k].append(result)
                progress(f"round {r + 1}/{rounds} [{n}/{count}] {labels[k]}: "
                         f"{result.seconds * 1e3:.3f} ms"
                         + (f", {result.steal:.1%} stolen" if result.stolen else ""))
            for k in [k for k in order if out.runs[k][-1].stolen]:
                again = run(k)
                again.redone = True
                if again.steal < out.runs[k][-1].steal:
                    out.runs[k][-1] = again
                else:
                    out.runs[k][-1].redone = True
        out.round_steal.append(steal.fraction)
    return out


def median_profile(profiles: list[dict]) -> dict:
    """The element-wise median of profiles in the TOML layout: numbers by their median (an
    integer stays an integer), flags by majority, text from the first."""
    first = profiles[0]
    out = {}
    for key, value in first.items():
        values = [p[key] for p in profiles]
        if isinstance(value, dict):
            out[key] = median_profile(values)
        elif isinstance(value, bool):
            out[key] = sum(values) * 2 > len(values)
        elif isinstance(value, int):
            out[key] = int(round(float(np.median(values))))
        elif isinstance(value, float):
            out[key] = float(np.median(values))
        else:
            out[key] = value
    return out


def profile_spread(profiles: list[dict], prefix: str = "") -> dict[str, float]:
    """How much each number of the profile moved between the rounds' calibrations:
    (largest - smallest) / median, by dotted key (flags and text left out)."""
    out = {}
    for key, value in profiles[0].items():
        name = f"{prefix}{key}"
        values = [p[key] for p in profiles]
        if isinstance(value, dict):
            out.update(profile_spread(values, name + "."))
        elif isinstance(value, (int, float)) and not isinstance(value, bool):
            middle = float(np.median(values))
            out[name] = float((max(values) - min(values)) / middle) if middle else 0.0
    return out
