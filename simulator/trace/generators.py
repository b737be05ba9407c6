"""Seeded synthetic traces: zipf, uniform and drift (a hot set that moves over time).

Zipf ranks are drawn exactly, in O(1) per draw and O(1) memory per table, with the
rejection-inversion method of Hoermann and Derflinger ("Rejection-inversion to generate
variates from monotone discrete distributions", ACM TOMACS 6(3), 1996), so tables of 100M
rows and more cost nothing to set up. Rank k (1 = hottest) becomes row
(a * (k - 1) + c) mod rows with a seeded a coprime to rows: the hot rows are scattered over
the table instead of sitting at its start, without an O(rows) permutation array.

Reproducible bit for bit: batches are generated in blocks whose size depends only on the
recipe, and every block seeds numba's generator from (seed, block index).
"""

from __future__ import annotations

import math
from typing import Sequence

import numba
import numpy as np

from ..errors import OptionError
from ..options import Option, resolve
from .._progress import progress
from .format import Trace, TraceWriter

KINDS = ("zipf", "uniform", "drift")
# A generated trace's counts and its drift options, declared once: generate(), `trace
# generate` and the [trace] table of sweep specs take them.
BATCH_SIZE = Option("batch_size", int, None, "samples per batch", minimum=1)
BATCHES = Option("batches", int, None, "batches to generate", minimum=1)
SEED = Option("seed", int, 0, "seeds every draw", minimum=0)


class Drift:
    """The options of the drift generator (see generate())."""

    name = "drift"
    options = (Option("hot_fraction", float, 0.05, "fraction of each table's rows in the hot set "
                      "(above 0)", minimum=0, maximum=1),
               Option("hot_share", float, 0.9, "fraction of lookups that go to the hot set",
                      minimum=0, maximum=1),
               Option("drift_batches", int, 100, "batches for the hot set to move by its own "
                      "size", minimum=1))


# How the ids of one bag are drawn:
#   independent  every id from the generator's distribution;
#   mlperf       the first id from it, the others that row's companions: rows drawn uniformly
#                once per (table, row, position), so a bag is a fixed function of its first id,
#                as MLPerf DLRM-DCNv2 makes its multi-hot Criteo (mlcommons/training
#                recommendation_v2/torchrec_dlrm: materialize_synthetic_multihot_dataset.py with
#                --multi_hot_distribution_type uniform). A hot first id makes its companions hot.
MULTI_HOT = ("independent", "mlperf")
# The bags of a trace made without a model to shape them.
DEFAULT_BAGS = {"pooling": 1, "multi_hot": "independent"}
_BLOCK_LOOKUPS = 1 << 21


# -- Zipf by rejection-inversion (exponent s > 0, ranks 1..n) -----------------------------------
@numba.njit(cache=True)
def _helper1(x):  # log1p(x) / x, continuous at 0
    if abs(x) > 1e-8:
        return math.log1p(x) / x
    return 1.0 - x * (0.5 - x * (1.0 / 3.0 - 0.25 * x))


@numba.njit(cache=True)
def _helper2(x):  # expm1(x) / x, continuous at 0
    if abs(x) > 1e-8:
        return math.expm1(x) / x
    return 1.0 + x * 0.5 * (1.0 + x * (1.0 / 3.0) * (1.0 + 0.25 * x))


@numba.njit(cache=True)
def _h_integral(x, s):
    lx = math.log(x)
    return _helper2((1.0 - s) * lx) * lx


@numba.njit(cache=True)
def _h(x, s):
    return math.exp(-s * math.log(x))


@numba.njit(cache=True)
def _h_integral_inverse(x, s):
    t = x * (1.0 - s)
    if t < -1.0:
        t = -1.0  # guards against rounding just below the domain
    return math.exp(_helper1(t) * x)


@numba.njit(cache=True)
def _zipf_constants(n, s):
    hx1 = _h_integral(1.5, s) - 1.0
    hn = _h_integral(n + 0.5, s)
    shortcut = 2.0 - _h_integral_inverse(_h_integral(2.5, s) - _h(2.0, s), s)
    return hx1, hn, shortcut


@numba.njit(cache=True)
def _zipf_rank(n, s, hx1, hn, shortcut):
    """One Zipf(s) rank in 1..n."""
    while True:
        u = hn + np.random.random() * (hx1 - hn)
        x = _h_integral_inverse(u, s)
        k = int(x + 0.5)
        if k < 1:
            k = 1
        elif k > n:
            k = n
        if k - x <= shortcut or u >= _h_integral(k + 0.5, s) - _h(k, s):
            return k


@numba.njit(cache=True)
def _draw_rank(n, s, hx1, hn, shortcut):
    if s == 0.0:
        return np.random.randint(1, n + 1)
    return _zipf_rank(n, s, hx1, hn, shortcut)


@numba.njit(cache=True, inline="always")
def _companion(key, row, j, n):
    """The j-th companion row of `row` in a table of n rows: a uniform draw fixed per (table
    key, row, j), by splitmix64's finalizer, so it costs no memory and repeats every time."""
    z = numba.uint64(key) ^ (numba.uint64(row) * numba.uint64(0x9E3779B97F4A7C15)) \
        ^ (numba.uint64(j) * numba.uint64(0xBF58476D1CE4E5B9))
    z = (z ^ (z >> numba.uint64(30))) * numba.uint64(0xBF58476D1CE4E5B9)
    z = (z ^ (z >> numba.uint64(27))) * numba.uint64(0x94D049BB133111EB)
    z = z ^ (z >> numba.uint64(31))
    return numba.int64(z % numba.uint64(n))


@numba.njit(cache=True)
def _fill_block(seed, first_batch, n_samples, rows, alpha, mult, add, pool_lo, pool_hi,
                companions, keys, hot_rows, hot_share, drift_batches, batch_size, lengths, out):
    """Draw lengths and local ids of n_samples samples (sample-major) for every table.

    hot_rows[t] == 0: plain Zipf(alpha) over the whole table (alpha 0 = uniform).
    hot_rows[t] > 0: drift: with probability hot_share a Zipf(alpha) rank inside a hot set of
    hot_rows[t] rows that advances by its own size every drift_batches batches; otherwise a
    uniformly drawn row of the whole table.
    A bag of table t has a size in pool_lo[t]..pool_hi[t]. companions: its first id is drawn
    as above and the others are that row's companions (see MULTI_HOT); else every id is drawn.
    Returns the number of ids written."""
    np.random.seed(seed)
    T = rows.shape[0]
    hx1 = np.empty(T)
    hn = np.empty(T)
    sc = np.empty(T)
    for t in range(T):
        n = hot_rows[t] if hot_rows[t] > 0 else rows[t]
        if alpha[t] > 0.0:
            hx1[t], hn[t], sc[t] = _zipf_constants(n, alpha[t])
    k = 0
    for i in range(n_samples):
        batch = first_batch + i // batch_size
        for t in range(T):
            if pool_lo[t] == pool_hi[t]:
                p = pool_lo[t]
            else:
                p = np.random.randint(pool_lo[t], pool_hi[t] + 1)
            lengths[i, t] = p
            n = rows[t]
            for j in range(p):
                if companions and j > 0:
                    out[k] = _companion(keys[t], out[k - j], j, n)
                    k += 1
                    continue
                if hot_rows[t] > 0:
                    if np.random.random() < hot_share:
                        h = hot_rows[t]
                        start = (batch * h) // drift_batches
                        rank0 = (start + _draw_rank(h, alpha[t], hx1[t], hn[t], sc[t]) - 1) % n
                    else:
                        rank0 = np.random.randint(0, n)
                else:
                    rank0 = _draw_rank(n, alpha[t], hx1[t], hn[t], sc[t]) - 1
                out[k] = (mult[t] * rank0 + add[t]) % n
                k += 1
    return k


def _per_table(value, n_tables: int, name: str, cast=float) -> np.ndarray:
    if isinstance(value, (list, tuple, np.ndarray)):
        if len(value) != n_tables:
            raise OptionError(f"{name} has {len(value)} values for {n_tables} tables; give one "
                              "value or one per table")
        return np.array([cast(v) for v in value])
    return np.full(n_tables, cast(value))


def _scatter_params(rows: np.ndarray, seed: int, permute: bool):
    """Per-table affine bijection rank -> row: row = (mult * rank + add) mod rows."""
    mult = np.ones(len(rows), dtype=np.int64)
    add = np.zeros(len(rows), dtype=np.int64)
    if not permute:
        return mult, add
    rng = np.random.Generator(np.random.PCG64(np.random.SeedSequence([seed, 0x5CA77E12])))
    for t, n in enumerate(rows):
        n = int(n)
        if n <= 2:
            continue
        a = int(rng.integers(n // 3 + 1, n))
        while math.gcd(a, n) != 1:
            a += 1
            if a >= n:
                a = 1
        mult[t], add[t] = a, int(rng.integers(0, n))
    return mult, add


def _bag_range(value, where: str) -> tuple[int, int]:
    """One table's bag size: an int P, a 'P' or 'LO-HI' string, or a (LO, HI) pair."""
    try:
        if isinstance(value, str):
            parts = value.strip().split("-")
            if not 1 <= len(parts) <= 2:
                raise ValueError
            lo, hi = int(parts[0]), int(parts[-1])
        elif isinstance(value, tuple) and len(value) == 2:
            lo, hi = int(value[0]), int(value[1])
        elif isinstance(value, (int, np.integer)) and not isinstance(value, bool):
            lo = hi = int(value)
        else:
            raise ValueError
    except ValueError:
        raise OptionError(f"{where} {value!r}: give a bag size P or a range LO-HI") from None
    if lo <= 0 or hi < lo:
        raise OptionError(f"{where} {value!r} must be a positive size or a range LO-HI with "
                          "1 <= LO <= HI")
    return lo, hi


def parse_pooling(pooling, num_tables: int | None = None) -> tuple[np.ndarray, np.ndarray]:
    """Bag sizes per table, (lo, hi) arrays: sizes are drawn uniformly in lo..hi per bag.

    pooling: one value for every table (an int P, 'P', 'LO-HI' or a (LO, HI) tuple), or one
    per table (a list, or a 'P1,P2,...' string, each entry a P or LO-HI). num_tables: the
    count a per-table list must have (None: any count, for checking a spec alone)."""
    if isinstance(pooling, str) and "," in pooling:
        pooling = pooling.split(",")
    if isinstance(pooling, (list, np.ndarray)):
        if num_tables is not None and len(pooling) != num_tables:
            raise OptionError(f"pooling lists {len(pooling)} bag sizes for {num_tables} tables; "
                              "give one size for all or one per table")
        if len(pooling) == 0:
            raise OptionError("pooling lists no bag sizes; give one size or one per table")
        pairs = [_bag_range(v, f"pooling of table {t}") for t, v in enumerate(pooling)]
    else:
        pairs = [_bag_range(pooling, "pooling")] * (num_tables or 1)
    lo, hi = (np.array(x, dtype=np.int64) for x in zip(*pairs))
    return lo, hi


def pooling_recipe(lo: np.ndarray, hi: np.ndarray) -> list:
    """The bag sizes as a trace's recipe records them: [LO, HI] when every table has the same,
    else one [LO, HI] per table."""
    if (lo == lo[0]).all() and (hi == hi[0]).all():
        return [int(lo[0]), int(hi[0])]
    return [[int(a), int(b)] for a, b in zip(lo, hi)]


def pooling_from_recipe(recorded: list):
    """What pooling_recipe recorded, as parse_pooling takes it."""
    if all(isinstance(x, list) for x in recorded):
        return [tuple(x) for x in recorded]
    return tuple(recorded)


def generate(kind: str, path, table_rows: Sequence[int], batch_size: int, num_batches: int,
             seed: int = 0, alpha=1.05, pooling=1, multi_hot: str = "independent",
             permute: bool = True, table_names: Sequence[str] | None = None,
             show_progress: bool = True, **drift) -> Trace:
    """Generate a synthetic trace and write it to path.

    kind: 'zipf' (alpha per table or one for all; alpha 0 is uniform), 'uniform', or
    'drift' (a fraction hot_fraction of each table's rows, the hot set, takes hot_share of
    the lookups with Zipf(alpha) inside it, and moves by its own size every drift_batches
    batches; the rest are uniform over the table; Drift.options).
    pooling: bag sizes, one for all tables or one per table (see parse_pooling).
    multi_hot: how a bag's ids are drawn (see MULTI_HOT)."""
    if kind not in KINDS:
        raise OptionError(f"unknown generator {kind!r}; choose one of {', '.join(KINDS)}")
    rows = np.array([int(r) for r in table_rows], dtype=np.int64)
    if len(rows) == 0:
        raise OptionError("give at least one table (--tables/--rows, --rows-per-table or --like)")
    if (rows <= 0).any():
        raise OptionError(f"table row counts must be positive, got {int(rows.min())}")
    if rows.max() >= 2**31:
        raise OptionError("tables of more than 2**31 rows are not supported by the generators")
    batch_size, num_batches, seed = (o.check(v) for o, v in ((BATCH_SIZE, batch_size),
                                                             (BATCHES, num_batches), (SEED, seed)))
    drift = resolve(Drift.options, drift, "generator drift")
    T = len(rows)
    alphas = np.zeros(T) if kind == "uniform" else _per_table(alpha, T, "alpha")
    if (alphas < 0).any() or not np.isfinite(alphas).all():
        raise OptionError(f"alpha must be >= 0 (0 is uniform), got {alpha}")
    pool_lo, pool_hi = parse_pooling(pooling, T)
    if multi_hot not in MULTI_HOT:
        raise OptionError(f"multi-hot {multi_hot!r}: choose one of {', '.join(MULTI_HOT)}")
    hot_rows = np.zeros(T, dtype=np.int64)
    if kind == "drift":
        if drift["hot_fraction"] == 0:
            raise OptionError("hot_fraction must be above 0: the hot set needs rows")
        hot_rows = np.maximum(1, np.round(rows * drift["hot_fraction"])).astype(np.int64)
    mult, add = _scatter_params(rows, seed, permute)
    names = list(table_names) if table_names else [f"t{i}" for i in range(T)]
    recipe = {"generator": kind, "table_rows": rows.tolist(), "batch_size": batch_size,
              "num_batches": num_batches, "alpha": alphas.tolist(),
              "pooling": pooling_recipe(pool_lo, pool_hi), "permute": bool(permute)}
    if multi_hot != "independent":
        recipe["multi_hot"] = multi_hot
    if kind == "drift":
        recipe.update(drift)
    provenance = {"source": "generator", "recipe": recipe, "seed": seed}
    lookups_per_sample = int(pool_hi.sum())
    companion_keys = np.random.SeedSequence([seed, 0xB465]).generate_state(T, np.uint64)
    block_batches = max(1, _BLOCK_LOOKUPS // (batch_size * lookups_per_sample))
    total_samples = num_batches * batch_size
    with TraceWriter(path, names, batch_size, provenance, table_rows=rows.tolist()) as w, \
            progress(total=total_samples, unit="samples", desc=f"generate {kind}",
                     enabled=show_progress) as bar:
        for block, b0 in enumerate(range(0, num_batches, block_batches)):
            nb = min(block_batches, num_batches - b0)
            ns = nb * batch_size
            lengths = np.empty((ns, T), dtype=np.int32)
            out = np.empty(ns * lookups_per_sample, dtype=np.int64)
            block_seed = int(np.random.SeedSequence([seed, block]).generate_state(1)[0])
            k = _fill_block(block_seed, b0, ns, rows, alphas, mult, add, pool_lo, pool_hi,
                            multi_hot == "mlperf", companion_keys,
                            hot_rows, drift["hot_share"], drift["drift_batches"], batch_size,
                            lengths, out)
            w.append(out[:k].astype(np.int32), lengths)
            bar.update(ns)
        return w.close()


def zipf_pmf(n: int, alpha: float) -> np.ndarray:
    """The exact Zipf(alpha) probabilities of ranks 1..n (for tests and fits)."""
    w = np.arange(1, n + 1, dtype=np.float64) ** -alpha
    return w / w.sum()


def table_rows_from(tables: int | None = None, rows: int | None = None,
                    rows_per_table: Sequence[int] | None = None, like=None) -> list[int]:
    """Table row counts from exactly one of: tables x rows, a list per table, or like=MODEL
    (a model preset name, a TOML file with `table_rows = [...]`, or 'R1,R2,...')."""
    given = [x is not None for x in ((tables, rows), rows_per_table, like)]
    given[0] = tables is not None or rows is not None
    if sum(given) != 1:
        raise OptionError("give the tables one way: --tables T --rows R, --rows-per-table "
                          "R1,R2,..., or --like MODEL")
    if given[0]:
        if tables is None or rows is None:
            raise OptionError("--tables and --rows go together")
        if tables <= 0 or rows <= 0:
            raise OptionError(f"--tables and --rows must be positive, got {tables} and {rows}")
        return [int(rows)] * int(tables)
    if rows_per_table is not None:
        out = [int(r) for r in rows_per_table]
    else:
        out = _rows_like(like)
    if not out or min(out) <= 0:
        raise OptionError(f"table row counts must be positive numbers, got {out}")
    return out


def _rows_like(like) -> list[int]:
    import tomllib
    from pathlib import Path

    if isinstance(like, (list, tuple)):
        return [int(r) for r in like]
    text = str(like)
    if Path(text).is_file():
        try:
            data = tomllib.loads(Path(text).read_text())
        except (tomllib.TOMLDecodeError, UnicodeDecodeError) as e:
            raise OptionError(f"--like {text}: not a valid TOML file ({e})") from None
        rows = data.get("table_rows", data.get("model", {}).get("table_rows"))
        if not isinstance(rows, list) or not all(isinstance(r, int) for r in rows):
            raise OptionError(f"--like {text}: the file needs table_rows = [R1, R2, ...] "
                              "(integers)")
        return rows
    if all(part.strip().isdigit() for part in text.split(",")):
        return [int(p) for p in text.split(",")]
    raise OptionError(f"--like {text}: not a file, nor a list R1,R2,...; give a TOML file with "
                      "table_rows = [...] or the row counts")
