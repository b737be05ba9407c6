"""Models describe architectures, traces give rows: multi-hot traces made like a model, and
imported samples checked against a model's full tables."""

import json

import numpy as np
import pytest

from simulator import generate, import_criteo, load_model, open_trace, trace_stats, write_criteo_like
from simulator.cli import main
from simulator.errors import OptionError
from simulator.trace.generators import parse_pooling


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def test_per_table_pooling_gives_sizes_times_samples(tmp_path):
    # 3 tables, bags of 3, 1 and 5 ids; 4 batches of 6 samples = 24 samples, so the tables
    # see 3 x 24 = 72, 1 x 24 = 24 and 5 x 24 = 120 lookups.
    t = generate("zipf", tmp_path / "t", [50, 20, 1000], batch_size=6, num_batches=4, seed=3,
                 pooling=[3, 1, 5], show_progress=False)
    stats = trace_stats(t)
    assert stats.per_table_lookups == [72, 24, 120]
    assert stats.per_table_pooling_min == stats.per_table_pooling_max == [3, 1, 5]
    assert stats.per_table_pooling_mean == [3.0, 1.0, 5.0]
    assert t.num_lookups == 24 * (3 + 1 + 5)
    assert "pooling" in stats.format()


def test_per_table_ranges_and_errors():
    lo, hi = parse_pooling("3,1-4,2", 3)
    assert lo.tolist() == [3, 1, 2] and hi.tolist() == [3, 4, 2]
    lo, hi = parse_pooling((2, 5), 4)  # a tuple is one range for every table
    assert lo.tolist() == [2] * 4 and hi.tolist() == [5] * 4
    with pytest.raises(OptionError, match="lists 2 bag sizes for 3 tables"):
        parse_pooling([1, 2], 3)
    with pytest.raises(OptionError, match="pooling of table 1"):
        parse_pooling([1, "4-2"], 2)


def bags(trace):
    """(table, bag ids) of every bag, in order."""
    chunk = trace.read(0, trace.num_batches)
    lengths = chunk.lengths
    ids = chunk.ids - np.repeat(np.tile(trace.table_offsets, len(lengths)), lengths.ravel())
    out, k = [], 0
    for s in range(len(lengths)):
        for t in range(trace.num_tables):
            out.append((t, tuple(ids[k:k + lengths[s, t]].tolist())))
            k += lengths[s, t]
    return out


def test_mlperf_bags_are_a_fixed_function_of_their_first_id(tmp_path):
    kwargs = dict(batch_size=50, num_batches=4, alpha=1.2, pooling=[4, 1, 3],
                  multi_hot="mlperf", show_progress=False)
    t = generate("zipf", tmp_path / "a", [30, 10, 1_000_000], seed=7, **kwargs)
    seen, repeats = {}, 0
    for table, bag in bags(t):
        key = (table, bag[0])
        repeats += key in seen
        assert seen.setdefault(key, bag) == bag  # the same first id, the same companions
    assert repeats > 50  # skewed first ids repeat, so the check above has teeth
    # Companions are uniform over the table: in the 1M-row table they land all over it.
    companions = np.array([b[1:] for table, b in bags(t) if table == 2]).ravel()
    assert companions.max() > 500_000 > companions.min()
    assert t.meta["provenance"]["recipe"]["multi_hot"] == "mlperf"
    # Reproducible by seed: the same seed gives the same ids; another seed other companions.
    same = generate("zipf", tmp_path / "b", [30, 10, 1_000_000], seed=7, **kwargs)
    other = generate("zipf", tmp_path / "c", [30, 10, 1_000_000], seed=8, **kwargs)
    assert bags(same) == bags(t) and bags(other) != bags(t)


def test_like_a_model_takes_its_bag_sizes(capsys, tmp_path):
    code, out, err = run(capsys, "trace", "generate", "uniform", "--like", "dlrm-benchmark",
                         "--batch-size", "64", "--batches", "2", "--seed", "1", "-o",
                         tmp_path / "t", "--json")
    assert code == 0, err
    lengths = np.asarray(open_trace(tmp_path / "t").lengths)
    # dlrm-benchmark: 8 tables, bags of 1..100 ids drawn per bag.
    assert lengths.shape == (128, 8) and lengths.min() >= 1 and lengths.max() <= 100
    assert json.loads(out)["provenance"]["recipe"]["pooling"] == [1, 100]
    # --pooling overrides the model's sizes.
    code, out, err = run(capsys, "trace", "generate", "uniform", "--like", "dlrm-benchmark",
                         "--pooling", "2", "--batch-size", "4", "--batches", "2", "--seed", "1",
                         "-o", tmp_path / "u")
    assert code == 0 and open_trace(tmp_path / "u").pooling == 2


def small_model(tmp_path, rows, dim=4):
    path = tmp_path / f"small-{len(rows)}-{dim}.toml"
    path.write_text(
        f'embedding_dim = {dim}\nbottom_mlp = [13, {dim}]\ntop_mlp = [1]\n'
        f'interaction = "dot"\nbatch_size = 8\ndtype = "fp32"\noptimizer = "sgd"\n'
        f'table_rows = {list(rows)}\n')
    return path


@pytest.fixture
def criteo_sample(tmp_path):
    """40 lines of a Criteo-format file, imported: 26 tables of at most a few dozen rows."""
    write_criteo_like(tmp_path / "day_0", num_lines=40, seed=1)
    return import_criteo([tmp_path / "day_0"], tmp_path / "crit", batch_size=8,
                         show_progress=False)


def test_an_imported_sample_simulates_with_the_full_model(capsys, criteo_sample, tmp_path):
    kaggle = load_model("dlrm-kaggle")
    assert (criteo_sample.table_rows < np.array(kaggle.table_rows)).any()
    assert (criteo_sample.table_rows != np.array(kaggle.table_rows)).any()
    code, out, err = run(capsys, "simulate", criteo_sample.path, "--mode", "hybrid",
                         "--model", "dlrm-kaggle", "--hardware", "h100-pcie5")
    assert code == 0, err
    # The model's table sizes decide what fits, however small the sample: Kaggle's
    # 33,762,577 rows at dim 1024 in fp32 are 33,762,577 x 4 KiB = 128.8 GiB, more than the
    # 80 GiB of an H100's HBM.
    wide = small_model(tmp_path, kaggle.table_rows, dim=1024)
    code, out, err = run(capsys, "simulate", criteo_sample.path, "--mode", "gpu-only",
                         "--model", wide, "--hardware", "h100-pcie5")
    assert code == 2 and "the tables need 128.8 GiB" in err and err.count("\n") == 1


def test_an_id_beyond_the_model_table_is_one_clear_line(capsys, criteo_sample, tmp_path):
    largest = int(criteo_sample.table_rows[0]) - 1
    rows = [int(r) for r in criteo_sample.table_rows]
    rows[0] = largest  # one row short of the sample's largest id in table C1
    code, _, err = run(capsys, "simulate", criteo_sample.path, "--mode", "hybrid", "--model",
                       small_model(tmp_path, rows), "--hardware", "h100-pcie5")
    assert code == 2 and err.count("\n") == 1, err
    assert f"looks up row {largest} of its table C1" in err and f"the {largest:,} rows" in err
    # Table counts that disagree are named too.
    code, _, err = run(capsys, "simulate", criteo_sample.path, "--mode", "hybrid", "--model",
                       small_model(tmp_path, [10, 10]), "--hardware", "h100-pcie5")
    assert code == 2 and "has 2 tables" in err and "has 26" in err
