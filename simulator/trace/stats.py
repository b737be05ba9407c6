"""Trace statistics, computed in one streaming pass over the chunks of a trace.

Memory is O(total rows) (a count and a last-use batch per row) plus one chunk and one
integer per batch; it does not grow with the number of lookups.

Definitions (every figure counts global rows, so a row is a (table, local id) pair):

unique per batch   the number of distinct rows a batch touches.
coverage top x%    the fraction of lookups that go to the most-accessed x% of the distinct
                   rows touched (not of all rows of the table): k = ceil(x * distinct) rows,
                   taken from the highest counts; ties at the boundary count as any k rows
                   would, so the figure is exact and does not depend on an order among ties.
zipf alpha         the maximum-likelihood exponent of a finite Zipf(alpha) over ranks 1..N
                   (N = distinct rows touched, rank 1 = the most accessed) fitted to the
                   rank-frequency data: it maximises sum_r f_r log p_r(alpha) with
                   p_r = r^-alpha / H_N(alpha). The log-likelihood is concave in alpha, so a
                   golden-section search on [0, 10] finds it.
                   Bias: ranks come from the observed counts, so the fit is unbiased only
                   when every row is seen many times. When most rows are seen once or never,
                   the tail of the rank-frequency curve is a long flat run of count-1 rows
                   and the unseen rows drop out of N; the fit then UNDERESTIMATES alpha, the
                   more so the flatter the law (measured over 1M rows: Zipf(0.8) fits 0.62
                   at 0.1 lookups per row, 0.75 at 1, 0.80 at 10; Zipf(1.05) fits 0.96,
                   1.01, 1.04). Sorting noisy counts also makes a flat law look skewed:
                   uniform data fits alpha 0.03 at 1000 lookups per row, 0.23 at 10.
                   The overall figure fits all tables' rows together, which is a mixture
                   rather than a Zipf law; the per-table figures are the meaningful ones.
reuse distance     for every (batch, distinct row of that batch) pair whose row was used
                   before: the batch minus the last earlier batch that used the row. Bins
                   [1], [2], [3-4], [5-8], ... (powers of two); `cold` counts first uses.
working set (W)    the largest number of distinct rows in W + 1 consecutive batches
                   b-W..b over the trace; windows at the start that hold fewer batches
                   count too, so W = 0 is the largest unique-per-batch figure.
"""

from __future__ import annotations

import math
from dataclasses import asdict, dataclass
from typing import Iterable

import numba
import numpy as np

from ..errors import OptionError
from .format import DEFAULT_CHUNK_LOOKUPS, Trace

DEFAULT_WINDOWS = (0, 1, 2, 4, 8, 16)
COVERAGE_PERCENTS = (1, 10, 20)
# Counts below this go into a dense frequency-of-frequencies histogram; the few rows above
# it (at most lookups / limit of them) are grouped by np.unique.
_DENSE_COUNT_LIMIT = 1 << 16
# Golden-section search for the Zipf exponent.
_ALPHA_MAX = 10.0
_ALPHA_TOLERANCE = 1e-7
# H_N(alpha) is summed exactly up to this rank, by Euler-Maclaurin beyond it.
_EXACT_HARMONIC_TERMS = 256


# -- the streaming pass ---------------------------------------------------------------------------
def _distance_bins(num_batches: int) -> np.ndarray:
    """bins[d] = the histogram bin of reuse distance d (1 <= d < num_batches): 0 for 1, k for
    2^(k-1) < d <= 2^k. A table, because the kernel would otherwise loop over bits per reuse."""
    bins = np.zeros(max(num_batches, 2), dtype=np.int8)
    k = 1
    while 2 ** (k - 1) + 1 < len(bins):
        bins[2 ** (k - 1) + 1:2 ** k + 1] = k
        k += 1
    return bins


@numba.njit(cache=True)
def _scan_chunk(ids, batch_ptr, first_batch, row_state, ring, windows, unique_per_batch,
                distance_bins, reuse_hist, working_set):
    """Fold the batches of one chunk into the running state.

    row_state[r] = (lookups of row r, last batch that used it or -1); one 16-byte record
    per row, so a lookup costs one cache miss rather than two.
    ring[b % len(ring)] = how many rows have their last use in batch b, for the recent
    batches (len(ring) is a power of two, so the modulo is a mask); the union of batches
    b-W..b is the sum of their slots, because each row of the union has exactly one last
    use among them.
    windows: sorted distinct W; working_set[i] is the running maximum for windows[i].
    """
    ring_size = ring.shape[0]
    ring_mask = ring_size - 1
    max_window = windows[-1]
    num_windows = windows.shape[0]
    for i in range(batch_ptr.shape[0] - 1):
        b = first_batch + i
        slot = b & ring_mask
        ring[slot] = 0  # it held batch b - ring_size, older than every window
        unique = 0
        for k in range(batch_ptr[i], batch_ptr[i + 1]):
            row = ids[k]
            row_state[row, 0] += 1
            prev = row_state[row, 1]
            if prev == b:
                continue
            unique += 1
            if prev >= 0:
                distance = b - prev
                reuse_hist[distance_bins[distance]] += 1
                if distance < ring_size:
                    ring[prev & ring_mask] -= 1
            row_state[row, 1] = b
        ring[slot] = unique
        unique_per_batch[b] = unique
        union = 0
        w = 0
        for j in range(min(max_window, b) + 1):
            union += ring[(b - j) & ring_mask]
            # Windows reaching before batch 0 (j == b) hold every batch so far.
            while w < num_windows and (windows[w] == j or j == b):
                working_set[w] = max(working_set[w], union)
                w += 1


# -- frequency of frequencies -----------------------------------------------------------------
def _count_histogram(counts: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    """(values, rows): the distinct nonzero counts, ascending, and how many rows have each."""
    dense = np.bincount(np.minimum(counts, _DENSE_COUNT_LIMIT), minlength=_DENSE_COUNT_LIMIT + 1)
    values = np.flatnonzero(dense[1:_DENSE_COUNT_LIMIT]) + 1
    big_values, big_rows = np.unique(counts[counts >= _DENSE_COUNT_LIMIT], return_counts=True)
    return (np.concatenate((values, big_values)).astype(np.int64),
            np.concatenate((dense[values], big_rows)).astype(np.int64))


def _merge_histograms(hists) -> tuple[np.ndarray, np.ndarray]:
    values = np.concatenate([v for v, _ in hists])
    rows = np.concatenate([r for _, r in hists])
    merged, where = np.unique(values, return_inverse=True)
    merged_rows = np.zeros(len(merged), dtype=np.int64)
    np.add.at(merged_rows, where, rows)
    return merged, merged_rows


def _coverage(values: np.ndarray, rows: np.ndarray, percent: int) -> float | None:
    """The share of lookups that go to the ceil(percent% of distinct) most-accessed rows."""
    distinct = int(rows.sum())
    lookups = int((values * rows).sum())
    if lookups == 0:
        return None
    top = (percent * distinct + 99) // 100  # ceil in integers: 0.1 * 30 is not 3.0 in floats
    values, rows = values[::-1], rows[::-1]
    rows_so_far = np.cumsum(rows)
    g = int(np.searchsorted(rows_so_far, top))  # the group holding the top-th row
    before = int(rows_so_far[g - 1]) if g else 0
    taken = int((values[:g] * rows[:g]).sum()) + (top - before) * int(values[g])
    return taken / lookups


# -- Zipf fit ---------------------------------------------------------------------------------
@numba.njit(cache=True)
def _harmonic(n, alpha):
    """H_n(alpha) = sum of i^-alpha for i = 1..n: exact for the first terms, then the
    Euler-Maclaurin formula (two correction terms; the truncation error stays below 1e-16)."""
    k0 = _EXACT_HARMONIC_TERMS
    total = 0.0
    for i in range(1, min(n, k0 - 1) + 1):
        total += i ** -alpha
    if n < k0:
        return total
    log_span = math.log(n / k0)
    t = (1.0 - alpha) * log_span
    # integral of x^-alpha over [k0, n], written to stay exact near alpha = 1
    integral = k0 ** (1.0 - alpha) * log_span * (math.expm1(t) / t if t != 0.0 else 1.0)
    a3 = alpha * (alpha + 1.0) * (alpha + 2.0)
    total += (integral + 0.5 * (k0 ** -alpha + n ** -alpha)
              + alpha / 12.0 * (k0 ** (-alpha - 1.0) - n ** (-alpha - 1.0))
              - a3 / 720.0 * (k0 ** (-alpha - 3.0) - n ** (-alpha - 3.0)))
    return total


@numba.njit(cache=True)
def _fit_zipf(values_desc, rows_desc, alpha_max, tolerance):
    """The maximum-likelihood Zipf exponent of rank-frequency data given as groups of
    rows_desc[g] rows that each have values_desc[g] lookups, highest counts first.

    The negative log-likelihood per lookup is alpha * S / M + log H_N(alpha), where
    S = sum over ranks of f_r log r; a group holds ranks r0..r1, whose logs sum to
    lgamma(r1 + 1) - lgamma(r0), so ties cost nothing."""
    weighted_log_rank = 0.0
    lookups = 0.0
    r0 = 1
    for g in range(values_desc.shape[0]):
        r1 = r0 + rows_desc[g] - 1
        weighted_log_rank += values_desc[g] * (math.lgamma(r1 + 1.0) - math.lgamma(float(r0)))
        lookups += values_desc[g] * rows_desc[g]
        r0 = r1 + 1
    n = r0 - 1
    mean_log_rank = weighted_log_rank / lookups
    inv_phi = (math.sqrt(5.0) - 1.0) / 2.0
    lo, hi = 0.0, alpha_max
    x1 = hi - inv_phi * (hi - lo)
    x2 = lo + inv_phi * (hi - lo)
    f1 = x1 * mean_log_rank + math.log(_harmonic(n, x1))
    f2 = x2 * mean_log_rank + math.log(_harmonic(n, x2))
    while hi - lo > tolerance:
        if f1 <= f2:
            hi, x2, f2 = x2, x1, f1
            x1 = hi - inv_phi * (hi - lo)
            f1 = x1 * mean_log_rank + math.log(_harmonic(n, x1))
        else:
            lo, x1, f1 = x1, x2, f2
            x2 = lo + inv_phi * (hi - lo)
            f2 = x2 * mean_log_rank + math.log(_harmonic(n, x2))
    return 0.5 * (lo + hi)


def _zipf_alpha(values: np.ndarray, rows: np.ndarray) -> float | None:
    """The fitted exponent, or None when fewer than two rows were touched (any alpha fits)."""
    if rows.sum() < 2:
        return None
    return float(_fit_zipf(values[::-1].copy(), rows[::-1].copy(), _ALPHA_MAX, _ALPHA_TOLERANCE))


# -- the result -------------------------------------------------------------------------------
@dataclass
class TraceStats:
    """Statistics of a trace; see the module docstring for the definitions. Per-table lists
    are in table order (names in table_names); None marks a figure a table without lookups
    (or, for the Zipf fit, with fewer than two distinct rows) does not have."""

    trace_path: str
    batches: int
    batch_size: int
    samples: int
    tables: int
    table_names: list[str]
    total_rows: int
    lookups: int
    unique_rows: int
    unique_per_batch_mean: float
    unique_per_batch_p50: float
    unique_per_batch_p99: float
    unique_per_batch_max: int
    coverage_top1pct: float | None
    coverage_top10pct: float | None
    coverage_top20pct: float | None
    zipf_alpha: float | None
    per_table_rows: list[int]
    per_table_lookups: list[int]
    per_table_distinct: list[int]
    per_table_coverage_top1pct: list[float | None]
    per_table_coverage_top10pct: list[float | None]
    per_table_coverage_top20pct: list[float | None]
    per_table_zipf_alpha: list[float | None]
    per_table_pooling_mean: list[float]  # lookups per sample (bag size)
    per_table_pooling_min: list[int]
    per_table_pooling_max: list[int]
    reuse_distance: list[dict]  # {"lo", "hi", "count"}: distances lo..hi batches
    reuse_cold: int  # first uses of a row
    working_set: dict[int, int]  # W -> largest distinct rows in W + 1 consecutive batches

    def to_dict(self) -> dict:
        d = asdict(self)
        d["working_set"] = {str(w): size for w, size in self.working_set.items()}
        return d

    def format(self) -> str:
        def pct(x):
            return "-" if x is None else f"{100 * x:.1f}%"

        def num(x, digits=3):
            return "-" if x is None else f"{x:.{digits}f}"

        share_of_rows = self.unique_rows / self.total_rows if self.total_rows else 0.0
        lines = [
            f"trace             {self.trace_path}",
            f"batches           {self.batches:,} of {self.batch_size:,} samples "
            f"({self.samples:,} samples)",
            f"tables            {self.tables} ({self.total_rows:,} rows)",
            f"lookups           {self.lookups:,}",
            f"unique rows       {self.unique_rows:,} ({pct(share_of_rows)} of all rows)",
            f"unique per batch  mean {self.unique_per_batch_mean:,.1f}  "
            f"p50 {self.unique_per_batch_p50:,.1f}  p99 {self.unique_per_batch_p99:,.1f}  "
            f"max {self.unique_per_batch_max:,}",
            f"coverage          top 1% {pct(self.coverage_top1pct)}  "
            f"top 10% {pct(self.coverage_top10pct)}  top 20% {pct(self.coverage_top20pct)}",
            "                  (share of lookups to the most-accessed x% of the distinct rows "
            "touched)",
            f"zipf alpha        {num(self.zipf_alpha)}  (maximum-likelihood fit over ranks "
            "1..distinct rows)",
        ]
        if self.tables <= 30:
            name_w = max(5, *(len(n) for n in self.table_names))
            lines += ["", f"{'table':<{name_w}}  {'rows':>13}  {'lookups':>15}  "
                          f"{'pooling':>13}  {'distinct':>13}  {'top 10%':>7}  {'alpha':>6}"]
            for t in range(self.tables):
                lo, hi = self.per_table_pooling_min[t], self.per_table_pooling_max[t]
                pooling = (f"{lo}" if lo == hi else
                           f"{self.per_table_pooling_mean[t]:.1f} ({lo}-{hi})")
                lines.append(
                    f"{self.table_names[t]:<{name_w}}  {self.per_table_rows[t]:>13,}  "
                    f"{self.per_table_lookups[t]:>15,}  {pooling:>13}  "
                    f"{self.per_table_distinct[t]:>13,}  "
                    f"{pct(self.per_table_coverage_top10pct[t]):>7}  "
                    f"{num(self.per_table_zipf_alpha[t]):>6}")
        # Shares of all (batch, distinct row) pairs; max(1, .) keeps a trace without lookups.
        reuses = max(1, sum(b["count"] for b in self.reuse_distance) + self.reuse_cold)
        lines += ["", "reuse distance     (batches since the row's previous use, per batch "
                      "and distinct row)",
                  f"{'batches':<17}  {'count':>15}  {'share':>6}"]
        spans = [(str(b["lo"]) if b["lo"] == b["hi"] else f"{b['lo']}-{b['hi']}", b["count"])
                 for b in self.reuse_distance] + [("cold (first use)", self.reuse_cold)]
        lines += [f"{span:<17}  {count:>15,}  {pct(count / reuses):>6}" for span, count in spans]
        lines += ["", "working set        (most distinct rows in W + 1 consecutive batches)",
                  f"{'W':<17}  {'rows':>15}"]
        lines += [f"{w:<17}  {size:>15,}" for w, size in self.working_set.items()]
        return "\n".join(lines)


def _check_windows(windows: Iterable[int]) -> list[int]:
    """The windows in the caller's order, each once."""
    try:
        ws = [int(w) for w in windows]
    except (TypeError, ValueError):
        raise OptionError(f"windows must be non-negative integers, got {windows!r}") from None
    if not ws or min(ws) < 0:
        raise OptionError(f"windows must be one or more non-negative integers, got {ws}")
    return list(dict.fromkeys(ws))


def trace_stats(trace: Trace, windows: Iterable[int] = DEFAULT_WINDOWS,
                max_lookups: int = DEFAULT_CHUNK_LOOKUPS) -> TraceStats:
    """Statistics of a trace in one pass over its chunks of about max_lookups lookups.

    windows: the W of the working-set figures (W + 1 consecutive batches each)."""
    ordered_windows = _check_windows(windows)
    window_arr = np.array(sorted(ordered_windows), dtype=np.int64)
    if max_lookups <= 0:
        raise OptionError(f"max_lookups must be positive, got {max_lookups}")
    row_state = np.zeros((trace.total_rows, 2), dtype=np.int64)
    row_state[:, 1] = -1
    # At least max(W) + 2 slots: W + 1 live batches, and the one being cleared.
    ring = np.zeros(1 << (int(window_arr[-1]) + 1).bit_length(), dtype=np.int64)
    unique_per_batch = np.zeros(trace.num_batches, dtype=np.int64)
    distance_bins = _distance_bins(trace.num_batches)
    reuse_hist = np.zeros(int(distance_bins[-1]) + 1, dtype=np.int64)
    working_set = np.zeros(len(window_arr), dtype=np.int64)
    pooling_min = np.full(trace.num_tables, np.iinfo(np.int64).max, dtype=np.int64)
    pooling_max = np.zeros(trace.num_tables, dtype=np.int64)
    for chunk in trace.chunks(max_lookups=max_lookups):
        if chunk.num_samples:
            lengths = chunk.lengths
            np.minimum(pooling_min, lengths.min(axis=0), out=pooling_min)
            np.maximum(pooling_max, lengths.max(axis=0), out=pooling_max)
        _scan_chunk(chunk.ids, chunk.batch_ptr, chunk.first_batch, row_state, ring, window_arr,
                    unique_per_batch, distance_bins, reuse_hist, working_set)
    counts = row_state[:, 0]

    table_hists = []
    per_table_lookups, per_table_distinct = [], []
    for offset, rows in zip(trace.table_offsets, trace.table_rows):
        table_counts = counts[offset:offset + rows]
        per_table_lookups.append(int(table_counts.sum()))
        per_table_distinct.append(int(np.count_nonzero(table_counts)))
        table_hists.append(_count_histogram(table_counts))
    values, rows_with = _merge_histograms(table_hists)
    unique_rows = sum(per_table_distinct)

    p50, p99 = (float(x) for x in np.percentile(unique_per_batch, [50, 99]))
    size_by_window = dict(zip(window_arr.tolist(), working_set.tolist()))
    reuse_distance = [{"lo": 1 if k == 0 else 2 ** (k - 1) + 1, "hi": 2 ** k,
                       "count": int(reuse_hist[k])}
                      for k in range(len(reuse_hist) if trace.num_batches > 1 else 0)]
    return TraceStats(
        trace_path=str(trace.path),
        batches=trace.num_batches,
        batch_size=trace.batch_size,
        samples=trace.num_samples,
        tables=trace.num_tables,
        table_names=[t.name for t in trace.tables],
        total_rows=trace.total_rows,
        lookups=sum(per_table_lookups),
        unique_rows=unique_rows,
        unique_per_batch_mean=float(unique_per_batch.mean()),
        unique_per_batch_p50=p50,
        unique_per_batch_p99=p99,
        unique_per_batch_max=int(unique_per_batch.max()),
        **{f"coverage_top{p}pct": _coverage(values, rows_with, p) for p in COVERAGE_PERCENTS},
        zipf_alpha=_zipf_alpha(values, rows_with),
        per_table_rows=[int(r) for r in trace.table_rows],
        per_table_lookups=per_table_lookups,
        per_table_distinct=per_table_distinct,
        **{f"per_table_coverage_top{p}pct": [_coverage(v, r, p) for v, r in table_hists]
           for p in COVERAGE_PERCENTS},
        per_table_zipf_alpha=[_zipf_alpha(v, r) for v, r in table_hists],
        per_table_pooling_mean=[n / max(1, trace.num_samples) for n in per_table_lookups],
        per_table_pooling_min=[int(x) if trace.num_samples else 0 for x in pooling_min],
        per_table_pooling_max=[int(x) for x in pooling_max],
        reuse_distance=reuse_distance,
        reuse_cold=unique_rows,  # every distinct row has exactly one first use
        working_set={w: size_by_window[w] for w in ordered_windows},
    )
