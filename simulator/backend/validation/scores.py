"""How predictions are scored against measurements, and how noisy the measurements were.

- error: (predicted - measured) / measured of each configuration; MAPE is the mean of |error|,
  the worst configuration the largest |error|.
- Kendall's tau of the predicted ranking against the measured one (rank_pairs: measured times
  within TIE of each other are a tie).
- A configuration's figure is the median of its rounds' medians; its spread is
  (largest - smallest round) / that figure, and it is unstable above UNSTABLE_SPREAD.
- noise_floor: the MAPE of the first half of the rounds (their median) against the second
  half, the score a perfect model would still get on this machine that day (with independent
  noise the full median is about twice as steady as half of it against the other half).
"""

from __future__ import annotations

import math

import numpy as np

TIE = 0.05  # measured times within 5% of each other are a tie for Kendall's tau
UNSTABLE_SPREAD = 0.10
TARGETS = {"full": {"mape": 0.10, "kendall_tau": 0.8, "worst": 0.25},
           "quick": {"mape": 0.15},
           "held-out": {"mape": 0.15}}


def rank_pairs(measured, predicted, tie: float = TIE) -> tuple[int, int, int]:
    """(concordant, discordant, tied) over all pairs of configurations. A pair is tied when
    its measured times are within `tie` of the larger (|a - b| <= tie * max(a, b)); otherwise
    it is concordant when the prediction orders it the same way, and discordant when it
    orders it the other way or not at all (equal predictions)."""
    m = np.asarray(measured, dtype=float)
    p = np.asarray(predicted, dtype=float)
    if m.shape != p.shape or m.ndim != 1:
        raise ValueError("measured and predicted must be 1-d and of the same length")
    i, j = np.triu_indices(len(m), k=1)
    tied = np.abs(m[i] - m[j]) <= tie * np.maximum(m[i], m[j])
    agree = np.sign(m[i] - m[j]) * np.sign(p[i] - p[j])
    concordant = int(np.sum(~tied & (agree > 0)))
    return concordant, int(np.sum(~tied)) - concordant, int(np.sum(tied))


def kendall_tau(measured, predicted, tie: float = TIE) -> float | None:
    """Kendall's tau of the predicted ranking against the measured one, (C - D) / (C + D)
    over the pairs rank_pairs does not tie; None when every pair is tied."""
    concordant, discordant, _ = rank_pairs(measured, predicted, tie)
    if concordant + discordant == 0:
        return None
    return (concordant - discordant) / (concordant + discordant)


def mape(measured, predicted) -> float | None:
    m, p = np.asarray(measured, float), np.asarray(predicted, float)
    return float(np.mean(np.abs(p - m) / m)) if len(m) else None


def figure(rounds) -> float:
    """A configuration's figure: the median of its rounds' figures."""
    return float(np.median(rounds))


def spread(rounds) -> float:
    """(largest - smallest) / median of a configuration's rounds."""
    return float((np.max(rounds) - np.min(rounds)) / np.median(rounds))


def noise_floor(rounds_by_config) -> float | None:
    """MAPE of the median of the first half of every configuration's rounds (as if it were a
    prediction) against the median of the second half; None with fewer than two rounds. With
    an odd number of rounds the middle one is left out."""
    rounds = [np.asarray(r, float) for r in rounds_by_config]
    if not rounds or min(len(r) for r in rounds) < 2:
        return None
    first = [np.median(r[:len(r) // 2]) for r in rounds]
    second = [np.median(r[(len(r) + 1) // 2:]) for r in rounds]
    return mape(second, first)


def checks(kind: str, mape_value, tau, worst) -> list[dict]:
    """Each target of TARGETS[kind] against its value: tau has a floor, the errors a
    ceiling."""
    values = {"mape": mape_value, "kendall_tau": tau, "worst": worst}
    out = []
    for metric, target in TARGETS[kind].items():
        value = values[metric]
        at_least = metric == "kendall_tau"
        ok = value is not None and (value >= target if at_least
                                    else math.isfinite(value) and value <= target)
        out.append({"metric": metric, "value": value, "target": target,
                    "comparison": ">=" if at_least else "<=", "ok": bool(ok)})
    return out
