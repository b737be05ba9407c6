import filecmp

import numpy as np
import pytest

from simulator import OptionError, generate, table_rows_from
from simulator.trace.generators import zipf_pmf


def ids_of(trace):
    return np.concatenate([c.ids for c in trace.chunks()])


def test_same_seed_same_bits_different_seed_differs(tmp_path):
    kw = dict(table_rows=[1000, 50, 7], batch_size=64, num_batches=40, alpha=[1.05, 0.5, 1.3],
              pooling="1-4", show_progress=False)
    a = generate("zipf", tmp_path / "a", seed=3, **kw)
    b = generate("zipf", tmp_path / "b", seed=3, **kw)
    c = generate("zipf", tmp_path / "c", seed=4, **kw)
    for name in ("indices.npy", "lengths.npy", "batch_ptr.npy", "meta.json"):
        assert filecmp.cmp(tmp_path / "a" / name, tmp_path / "b" / name, shallow=False)
    assert not np.array_equal(ids_of(a), ids_of(c))
    assert a.provenance["seed"] == 3 and a.provenance["recipe"]["generator"] == "zipf"


@pytest.mark.parametrize("alpha", [0.6, 1.0, 1.4])
def test_zipf_ranks_follow_the_exact_pmf(tmp_path, alpha):
    n, draws = 8, 200_000
    t = generate("zipf", tmp_path / "z", [n], batch_size=1000, num_batches=draws // 1000,
                 seed=1, alpha=alpha, permute=False, show_progress=False)
    counts = np.bincount(ids_of(t), minlength=n)
    expected = zipf_pmf(n, alpha) * draws
    chi2 = float(((counts - expected) ** 2 / expected).sum())
    # 7 degrees of freedom: P(chi2 > 24.3) = 0.001.
    assert chi2 < 24.3, (counts, expected)


def test_permutation_scatters_the_hot_rows_bijectively(tmp_path):
    n = 1000
    plain = generate("zipf", tmp_path / "p", [n], batch_size=100, num_batches=50, seed=2,
                     alpha=1.2, permute=False, show_progress=False)
    moved = generate("zipf", tmp_path / "m", [n], batch_size=100, num_batches=50, seed=2,
                     alpha=1.2, show_progress=False)
    a, b = ids_of(plain), ids_of(moved)
    assert np.bincount(a, minlength=n).argmax() == 0
    # Same draws, rows relabelled one to one.
    mapping = {}
    for x, y in zip(a.tolist(), b.tolist()):
        assert mapping.setdefault(x, y) == y
    assert len(set(mapping.values())) == len(mapping)
    assert b.max() < n


def test_hundred_million_row_table_is_cheap(tmp_path):
    t = generate("zipf", tmp_path / "big", [100_000_000, 3], batch_size=256, num_batches=20,
                 seed=0, alpha=1.05, show_progress=False)
    ids = ids_of(t)
    assert t.total_rows == 100_000_003
    assert ids.max() < t.total_rows and ids.min() >= 0


def test_pooling_fixed_and_drawn(tmp_path):
    t = generate("uniform", tmp_path / "u", [100, 100], batch_size=10, num_batches=30, seed=5,
                 pooling=3, show_progress=False)
    assert t.pooling == 3 and t.num_lookups == 10 * 30 * 2 * 3
    t = generate("uniform", tmp_path / "v", [100, 100], batch_size=10, num_batches=30, seed=5,
                 pooling=(2, 5), show_progress=False)
    lengths = np.asarray(t.lengths)
    assert t.pooling is None and lengths.min() == 2 and lengths.max() == 5
    assert t.num_lookups == lengths.sum()


def test_uniform_is_flat(tmp_path):
    t = generate("uniform", tmp_path / "u", [10], batch_size=1000, num_batches=100, seed=1,
                 show_progress=False)
    counts = np.bincount(ids_of(t), minlength=10)
    assert np.all(np.abs(counts - 10_000) < 500)


def test_drift_moves_the_hot_set(tmp_path):
    rows, hot = 10_000, 0.01  # a hot set of 100 rows
    t = generate("drift", tmp_path / "d", [rows], batch_size=1000, num_batches=200, seed=1,
                 hot_fraction=hot, hot_share=0.9, drift_batches=50, alpha=0.0,
                 permute=False, show_progress=False)
    first, last = t.batch(0).ids, t.batch(199).ids
    in_first_hot = lambda ids, start: np.mean((ids >= start) & (ids < start + 100))  # noqa: E731
    # Batch 0's hot set is rows 0..99; batch 199's has moved by 199 * 100 // 50 = 398 rows.
    assert 0.88 < in_first_hot(first, 0) < 0.93
    assert 0.88 < in_first_hot(last, 398) < 0.93
    assert in_first_hot(last, 0) < 0.05


def test_table_rows_from():
    assert table_rows_from(tables=3, rows=10) == [10, 10, 10]
    assert table_rows_from(rows_per_table=[4, 5]) == [4, 5]
    assert table_rows_from(like="7,8") == [7, 8]
    with pytest.raises(OptionError, match="one way"):
        table_rows_from(tables=3, rows=10, like="1,2")
    with pytest.raises(OptionError, match="go together"):
        table_rows_from(tables=3)
    with pytest.raises(OptionError, match="not a file"):
        table_rows_from(like="no-such-model")


def test_like_a_toml_file(tmp_path):
    p = tmp_path / "m.toml"
    p.write_text("table_rows = [3, 1000]\n")
    assert table_rows_from(like=str(p)) == [3, 1000]
    p.write_text("rows = 3\n")
    with pytest.raises(OptionError, match="table_rows"):
        table_rows_from(like=str(p))


@pytest.mark.parametrize("kwargs, message", [
    (dict(table_rows=[0]), "positive"),
    (dict(batch_size=0), "batch_size must be a positive integer, got 0"),
    (dict(num_batches=-1), "batches must be a positive integer, got -1"),
    (dict(kind="drift", hot_share=1.5), "hot_share must be a number from 0 to 1"),
    (dict(kind="drift", hot_fraction=0.0), "hot_fraction must be above 0"),
    (dict(kind="drift", drift_batches=0), "drift_batches must be a positive integer"),
    (dict(alpha=-1.0), "alpha"),
    (dict(alpha=[1.0, 2.0]), "2 values for 1 tables"),
    (dict(pooling="3-1"), "pooling"),
    (dict(kind="pareto"), "unknown generator"),
])
def test_bad_generator_options(tmp_path, kwargs, message):
    args = dict(kind="zipf", table_rows=[10], batch_size=2, num_batches=2, seed=0,
                show_progress=False)
    args.update(kwargs)
    kind = args.pop("kind")
    with pytest.raises(OptionError, match=message):
        generate(kind, tmp_path / "t", **args)
    assert not (tmp_path / "t").exists()
