import json
import math
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator as sim
from simulator import OptionError, TraceWriter, trace_stats
from simulator.cli import main
from simulator.trace.generators import zipf_pmf
from simulator.trace.stats import _fit_zipf, _harmonic


def write_hand_trace(path):
    """Two tables, t0 of 5 rows and t1 of 4 (global ids 5..8), batch size 2, 7 samples.

    batch 0: s0 t0 [0, 0] t1 [1]     s1 t0 [1]        t1 [1, 2]   global 0 0 6 1 6 7
    batch 1: s2 t0 [0]    t1 [3]     s3 t0 [2, 0, 2]  t1 []       global 0 8 2 0 2
    batch 2: s4 t0 [1]    t1 [1]     s5 t0 [3]        t1 [0]      global 1 6 3 5
    batch 3: s6 t0 [0]    t1 [2, 2]                               global 0 7 7
    """
    local = [0, 0, 1, 1, 1, 2,  0, 3, 2, 0, 2,  1, 1, 3, 0,  0, 2, 2]
    lengths = [[2, 1], [1, 2], [1, 1], [3, 0], [1, 1], [1, 1], [1, 2]]
    with TraceWriter(path, ["t0", "t1"], batch_size=2, provenance={"source": "test"},
                     table_rows=[5, 4]) as w:
        w.append(np.array(local), np.array(lengths))
        return w.close()


def test_hand_computed_figures(tmp_path):
    s = trace_stats(write_hand_trace(tmp_path / "t"), windows=(0, 1, 2, 3, 4, 16))
    assert (s.batches, s.samples, s.tables, s.total_rows, s.lookups) == (4, 7, 2, 9, 18)
    # Bags of t0: 2 1 1 3 1 1 1 (10 lookups / 7 samples); of t1: 1 2 1 0 1 1 2 (8 / 7).
    assert s.per_table_pooling_mean == [10 / 7, 8 / 7]
    assert (s.per_table_pooling_min, s.per_table_pooling_max) == ([1, 0], [3, 2])
    # Row counts: 0:5 1:2 2:2 3:1 4:0 | 5:1 6:3 7:3 8:1.
    assert s.unique_rows == 8
    assert s.per_table_distinct == [4, 4]
    assert s.per_table_lookups == [10, 8]
    # Distinct rows per batch: {0,1,6,7} {0,2,8} {1,3,5,6} {0,7}.
    assert s.unique_per_batch_mean == 3.25
    assert s.unique_per_batch_p50 == 3.5
    assert s.unique_per_batch_p99 == 4.0
    assert s.unique_per_batch_max == 4
    # Overall counts 5,3,3,2,2,1,1,1 over 8 distinct rows: top 1% and 10% take
    # ceil(0.08) = ceil(0.8) = 1 row, top 20% ceil(1.6) = 2 rows (5 + one of the tied 3s).
    assert s.coverage_top1pct == pytest.approx(5 / 18)
    assert s.coverage_top10pct == pytest.approx(5 / 18)
    assert s.coverage_top20pct == pytest.approx(8 / 18)
    assert s.per_table_coverage_top10pct == pytest.approx([5 / 10, 3 / 8])
    assert s.per_table_coverage_top20pct == pytest.approx([5 / 10, 3 / 8])
    # Reuses: batch 1 row 0 (d 1); batch 2 rows 1, 6 (d 2); batch 3 rows 0 (d 2), 7 (d 3).
    assert s.reuse_distance == [{"lo": 1, "hi": 1, "count": 1}, {"lo": 2, "hi": 2, "count": 3},
                                {"lo": 3, "hi": 4, "count": 1}]
    assert s.reuse_cold == 8
    # Unions: W=1 batches 1-2 {0,2,8,1,3,5,6}; W >= 2 every row touched.
    assert s.working_set == {0: 4, 1: 7, 2: 8, 3: 8, 4: 8, 16: 8}


def test_zipf_fit_of_two_rows_is_the_log_ratio(tmp_path):
    # For N = 2 the likelihood is maximal where 2^-alpha = f2 / f1: counts 4 and 1 give 2.
    with TraceWriter(tmp_path / "t", ["t"], batch_size=5, provenance={},
                     table_rows=[3]) as w:
        w.append(np.array([0, 1, 0, 0, 0]))
        trace = w.close()
    s = trace_stats(trace)
    assert s.zipf_alpha == pytest.approx(2.0, abs=1e-6)
    assert s.per_table_zipf_alpha == [pytest.approx(2.0, abs=1e-6)]


def test_one_distinct_row_has_no_alpha_and_full_coverage(tmp_path):
    with TraceWriter(tmp_path / "t", ["t"], batch_size=2, provenance={}, table_rows=[4]) as w:
        w.append(np.array([3, 3, 3]))
        trace = w.close()
    s = trace_stats(trace)
    assert s.zipf_alpha is None
    assert (s.coverage_top1pct, s.coverage_top20pct) == (1.0, 1.0)
    assert s.reuse_distance == [{"lo": 1, "hi": 1, "count": 1}]


def test_trace_without_lookups(tmp_path):
    with TraceWriter(tmp_path / "t", ["a", "b"], batch_size=2, provenance={},
                     table_rows=[3, 4]) as w:
        w.append(np.array([], dtype=np.int64), np.zeros((3, 2), dtype=np.int32))
        trace = w.close()
    s = trace_stats(trace)
    assert (s.lookups, s.unique_rows, s.unique_per_batch_max) == (0, 0, 0)
    assert s.coverage_top10pct is None and s.per_table_zipf_alpha == [None, None]
    assert set(s.working_set.values()) == {0}
    assert "cold (first use)" in s.format()


def test_harmonic_matches_the_direct_sum():
    for n in (1, 255, 256, 257, 5000, 10**6):
        for alpha in (0.0, 0.5, 0.9999999, 1.0, 1.05, 3.0):
            direct = np.sum(np.arange(1, n + 1, dtype=np.float64) ** -alpha)
            assert _harmonic(n, alpha) == pytest.approx(direct, rel=1e-12)


def test_fit_matches_a_brute_force_likelihood_search():
    rng = np.random.default_rng(1)
    counts = np.sort(rng.zipf(1.7, size=3000))[::-1]
    values, rows = np.unique(counts, return_counts=True)
    alpha = _fit_zipf(values[::-1].copy(), rows[::-1].copy(), 10.0, 1e-9)
    log_rank = np.log(np.arange(1, len(counts) + 1))
    grid = np.linspace(alpha - 0.01, alpha + 0.01, 2001)
    nll = [a * (counts @ log_rank) / counts.sum()
           + math.log(np.sum(np.exp(-a * log_rank))) for a in grid]
    assert grid[int(np.argmin(nll))] == pytest.approx(alpha, abs=2e-5)


@pytest.mark.parametrize("alpha", [0.8, 1.05, 1.3])
def test_zipf_fit_recovers_the_generator_exponent(tmp_path, alpha):
    # 1000 and 400 rows with 200k lookups each: every row is seen many times.
    trace = sim.generate("zipf", tmp_path / "z", [1000, 400], batch_size=1000,
                         num_batches=200, seed=11, alpha=alpha, show_progress=False)
    s = trace_stats(trace)
    assert s.per_table_zipf_alpha == [pytest.approx(alpha, rel=0.03)] * 2
    # Coverage agrees with the law: the top 10% of 1000 rows take the first 100 ranks.
    assert s.per_table_coverage_top10pct[0] == pytest.approx(zipf_pmf(1000, alpha)[:100].sum(),
                                                             abs=0.01)


def reference_stats(batches, table_rows, windows):
    """Figures by sets and dictionaries, straight from the definitions."""
    offsets = np.concatenate(([0], np.cumsum(table_rows)))
    unique = [set(b) for b in batches]
    last_use, reuse, cold = {}, {}, 0
    counts = np.zeros(offsets[-1], dtype=np.int64)
    for b, rows in enumerate(unique):
        for r in rows:
            if r in last_use:
                k = (b - last_use[r] - 1).bit_length()
                reuse[k] = reuse.get(k, 0) + 1
            else:
                cold += 1
            last_use[r] = b
    for ids in batches:
        for r in ids:
            counts[r] += 1
    working_set = {w: max(len(set().union(*unique[max(0, b - w):b + 1]))
                          for b in range(len(batches))) for w in windows}
    per_table = [counts[offsets[t]:offsets[t + 1]] for t in range(len(table_rows))]
    coverage = []
    for c in per_table:
        top = np.sort(c[c > 0])[::-1]
        k = math.ceil(10 * len(top) / 100)
        coverage.append(top[:k].sum() / top.sum() if len(top) else None)
    return {"unique": [len(u) for u in unique], "reuse": reuse, "cold": cold,
            "working_set": working_set, "distinct": [int((c > 0).sum()) for c in per_table],
            "coverage10": coverage}


@st.composite
def small_traces(draw):
    table_rows = draw(st.lists(st.integers(1, 6), min_size=1, max_size=3))
    samples = draw(st.integers(1, 14))
    batch_size = draw(st.integers(1, 3))
    lengths = np.array(draw(st.lists(st.lists(st.integers(0, 3), min_size=len(table_rows),
                                              max_size=len(table_rows)),
                                     min_size=samples, max_size=samples)), dtype=np.int32)
    local = [draw(st.integers(0, table_rows[t] - 1))
             for s in range(samples) for t in range(len(table_rows)) for _ in range(lengths[s, t])]
    return table_rows, batch_size, lengths, np.array(local, dtype=np.int64)


@settings(max_examples=60, deadline=None)
@given(small_traces())
def test_kernel_equals_brute_force_and_ignores_chunking(case):
    table_rows, batch_size, lengths, local = case
    windows = (0, 1, 2, 3, 5)
    with tempfile.TemporaryDirectory() as tmp:
        with TraceWriter(Path(tmp) / "t", [f"t{i}" for i in range(len(table_rows))],
                         batch_size, provenance={}, table_rows=table_rows) as w:
            w.append(local, lengths)
            trace = w.close()
        batches = [trace.batch(b).ids.tolist() for b in range(trace.num_batches)]
        s = trace_stats(trace, windows=windows)
        one_lookup_chunks = trace_stats(trace, windows=windows, max_lookups=1)
    ref = reference_stats(batches, table_rows, windows)
    assert s.to_dict() == one_lookup_chunks.to_dict()
    assert s.unique_per_batch_max == max(ref["unique"])
    assert s.unique_per_batch_mean == pytest.approx(np.mean(ref["unique"]))
    assert {(b["lo"] - 1).bit_length(): b["count"] for b in s.reuse_distance if b["count"]} \
        == ref["reuse"]
    assert s.reuse_cold == ref["cold"]
    assert s.working_set == ref["working_set"]
    assert s.per_table_distinct == ref["distinct"]
    assert s.per_table_coverage_top10pct == pytest.approx(ref["coverage10"])
    assert s.lookups == len(local)


def test_chunk_size_does_not_change_any_figure(tmp_path):
    trace = sim.generate("zipf", tmp_path / "z", [300, 50, 1000], batch_size=64, num_batches=40,
                         seed=3, alpha=[0.9, 1.2, 0.7], pooling="1-4", show_progress=False)
    whole = trace_stats(trace, max_lookups=10**9).to_dict()
    for max_lookups in (1, 97, 5000):
        assert trace_stats(trace, max_lookups=max_lookups).to_dict() == whole


def test_to_dict_is_plain_json(tmp_path):
    d = trace_stats(write_hand_trace(tmp_path / "t")).to_dict()
    again = json.loads(json.dumps(d, allow_nan=False))
    assert again["working_set"] == {"0": 4, "1": 7, "2": 8, "4": 8, "8": 8, "16": 8}
    assert again["table_names"] == ["t0", "t1"]


def test_format_is_a_readable_table(tmp_path):
    text = trace_stats(write_hand_trace(tmp_path / "t")).format()
    assert "most-accessed x% of the distinct rows" in text
    # t1: 4 rows, 8 lookups over 7 samples in bags of 0 to 2, 4 distinct rows.
    assert any(line.split()[:6] == ["t1", "4", "8", "1.1", "(0-2)", "4"]
               for line in text.splitlines())
    assert "cold (first use)" in text and "working set" in text


def test_bad_options_are_refused(tmp_path):
    trace = write_hand_trace(tmp_path / "t")
    with pytest.raises(OptionError):
        trace_stats(trace, windows=(1, -1))
    with pytest.raises(OptionError):
        trace_stats(trace, windows=())
    with pytest.raises(OptionError):
        trace_stats(trace, max_lookups=0)


def test_cli_prints_json_with_the_required_keys(tmp_path, capsys):
    write_hand_trace(tmp_path / "t")
    assert main(["trace", "stats", str(tmp_path / "t"), "--json"]) == 0
    d = json.loads(capsys.readouterr().out)
    for key in ("batches", "tables", "lookups", "unique_rows", "unique_per_batch_mean",
                "per_table_distinct", "coverage_top1pct", "coverage_top10pct", "zipf_alpha",
                "working_set", "reuse_distance"):
        assert key in d
    assert (d["lookups"], d["unique_rows"], d["working_set"]["1"]) == (18, 8, 7)


def test_cli_text_and_error(tmp_path, capsys):
    write_hand_trace(tmp_path / "t")
    assert main(["trace", "stats", str(tmp_path / "t")]) == 0
    assert "unique per batch" in capsys.readouterr().out
    (tmp_path / "empty").mkdir()
    assert main(["trace", "stats", str(tmp_path / "empty")]) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchsim: error:") and err.count("\n") == 1
