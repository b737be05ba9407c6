"""The Criteo TSV reader and the look-alike writer, checked against hand-computed values."""

import numpy as np
import pytest

import simulator as sim
from simulator.cli import main
from simulator.errors import InputError, OptionError
from simulator.trace import criteo

T = 26
# Five samples over two day files. C1..C3 are spelled out; C4..C26 all hold REST.
# Values compare as numbers: "1" and "00000001" are one id, as are "ABCDEF01" and "abcdef01".
LABELS = ["1", "0", "0", "1", "0"]
INTS = [
    ["1", "-1", "", "3", "0", "0", "0", "0", "0", "0", "0", "0", "250"],
    ["", "-2", "7", "", "", "", "", "", "", "", "", "", ""],
    ["0"] * 13,
    ["12"] + [""] * 12,
    [""] * 12 + ["-3"],
]
C1 = ["68fd1e64", "80e26c9b", "68fd1e64", "80e26c9b", ""]
C2 = ["", "ffffffffffffffff", "1", "ffffffffffffffff", "00000001"]
C3 = ["ABCDEF01", "abcdef01", "0", "12345678", "ABCDEF01"]
REST = ["0000000a", "", "0000000b", "0000000a", "0000000b"]

DENSE = np.zeros((5, 13), dtype=np.float32)
DENSE[0, [0, 1, 3, 12]] = [1, -1, 3, 250]
DENSE[1, [1, 2]] = [-2, 7]
DENSE[3, 0] = 12
DENSE[4, 12] = -3

# Expected ids by table, key 3 standing for each of C4..C26: first-seen numbering from 0, a
# missing value being the value 0 (as in dlrm), so in C3 the "0" of sample 2 and in REST the
# empty field of sample 1 are values like any other.
IDS_FIRST_SEEN = {0: [0, 1, 0, 1, 2], 1: [0, 1, 2, 1, 2], 2: [0, 0, 1, 2, 0], 3: [0, 1, 2, 0, 2]}
ROWS_FIRST_SEEN = [3] * 26
# M = 5: row value mod 5, missing = 0. 0x68fd1e64 = 1761418852 -> 2, 0x80e26c9b = 2162322587
# -> 2, 2**64 - 1 = 18446744073709551615 -> 0, 0xabcdef01 = 2882400001 -> 1,
# 0x12345678 = 305419896 -> 1, 0xa -> 0, 0xb -> 1.
IDS_MOD5 = {0: [2, 2, 2, 2, 0], 1: [0, 0, 1, 0, 1], 2: [1, 1, 0, 1, 1], 3: [0, 0, 1, 0, 1]}


def _line(i, labelled=True):
    cats = [C1[i], C2[i], C3[i]] + [REST[i]] * (T - 3)
    return "\t".join(([LABELS[i]] if labelled else []) + INTS[i] + cats) + "\n"


def _days(tmp_path, labelled=True):
    """day_0 holds samples 0-2, day_1 samples 3-4."""
    day0, day1 = tmp_path / "day_0", tmp_path / "day_1"
    day0.write_text("".join(_line(i, labelled) for i in range(3)))
    day1.write_text("".join(_line(i, labelled) for i in range(3, 5)))
    return day0, day1


def _ids(trace):
    return np.asarray(trace.indices).reshape(trace.num_samples, trace.num_tables)


def _expected_ids(per_table):
    return np.array([per_table[min(t, 3)] for t in range(T)]).T


@pytest.mark.parametrize("labelled", [True, False])
def test_two_days_first_seen_ids(tmp_path, labelled):
    day0, day1 = _days(tmp_path, labelled)
    trace = sim.import_criteo([day0, day1], tmp_path / "out", batch_size=2, show_progress=False)
    assert [t.name for t in trace.tables] == [f"C{i}" for i in range(1, 27)]
    assert trace.table_rows.tolist() == ROWS_FIRST_SEEN
    assert (trace.num_samples, trace.num_batches, trace.pooling) == (5, 3, 1)
    np.testing.assert_array_equal(_ids(trace), _expected_ids(IDS_FIRST_SEEN))
    np.testing.assert_array_equal(trace.dense, DENSE)
    if labelled:
        np.testing.assert_array_equal(trace.labels, np.array([1, 0, 0, 1, 0], np.float32))
        assert trace.labels.dtype == np.float32
    else:
        assert trace.labels is None
    assert trace.provenance["files"] == [str(day0), str(day1)]
    assert trace.provenance["layout"] == ("labelled" if labelled else "test")
    assert trace.provenance["max_rows_per_table"] is None


def test_max_rows_per_table_hashes_modulo(tmp_path):
    day0, day1 = _days(tmp_path)
    trace = sim.import_criteo([day0, day1], tmp_path / "out", batch_size=4,
                              max_rows_per_table=5, show_progress=False)
    assert trace.table_rows.tolist() == [5] * T
    np.testing.assert_array_equal(_ids(trace), _expected_ids(IDS_MOD5))
    assert trace.provenance["max_rows_per_table"] == 5


def test_last_line_without_newline_is_read(tmp_path):
    day0, day1 = _days(tmp_path)
    day1.write_text(day1.read_text().rstrip("\n"))
    trace = sim.import_criteo([day0, day1], tmp_path / "out", batch_size=2, show_progress=False)
    np.testing.assert_array_equal(_ids(trace), _expected_ids(IDS_FIRST_SEEN))


# -- bad input --------------------------------------------------------------------------------
def _import_fails(tmp_path, files, error=InputError, **kw):
    out = tmp_path / "out"
    with pytest.raises(error) as e:
        sim.import_criteo(files, out, batch_size=2, show_progress=False, **kw)
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []
    message = str(e.value)
    assert "\n" not in message
    return message


def _replace_line(path, n, new):
    lines = path.read_text().splitlines(keepends=True)
    lines[n - 1] = new
    path.write_text("".join(lines))


def test_wrong_column_count_names_file_and_line(tmp_path):
    day0, day1 = _days(tmp_path)
    _replace_line(day1, 2, _line(4).replace("\t", "", 2))
    msg = _import_fails(tmp_path, [day0, day1])
    assert msg.startswith(f"{day1}:2: 38 columns, expected 40")


def test_first_line_decides_the_layout(tmp_path):
    day0, day1 = _days(tmp_path)
    day0.write_text(_line(0).replace("\t", "", 2))
    msg = _import_fails(tmp_path, [day0, day1])
    assert msg.startswith(f"{day0}:1: 38 columns, expected 40 (labelled) or 39 (test layout)")
    # A test-layout day after a labelled one.
    day0, _ = _days(tmp_path)
    day1.write_text(_line(3, labelled=False))
    assert _import_fails(tmp_path, [day0, day1]).startswith(f"{day1}:1: 39 columns, expected 40")


def test_truncated_last_line(tmp_path):
    day0, day1 = _days(tmp_path)
    day1.write_text(day1.read_text()[:-60])
    msg = _import_fails(tmp_path, [day0, day1])
    assert msg.startswith(f"{day1}:2: ") and "truncated" in msg


# (line, 0-based field, bad text, expected part of the message)
@pytest.mark.parametrize("line, field, bad, fragment", [
    (2, 18, "xyz1", "column 19 (C5) is 'xyz1', not hexadecimal"),
    (3, 14, "0123456789abcdef0", "column 15 (C1) is '0123456789abcdef0', longer than 16"),
    (1, 1, "1.5", "column 2 (I1) is '1.5', not an integer"),
    (2, 2, "-", "column 3 (I2) is '-', not an integer"),
    (3, 0, "2", "the label '2' is not 0 or 1"),
])
def test_bad_values_name_file_line_and_column(tmp_path, line, field, bad, fragment):
    day0, _ = _days(tmp_path)
    fields = _line(line - 1).rstrip("\n").split("\t")
    fields[field] = bad
    _replace_line(day0, line, "\t".join(fields) + "\n")
    msg = _import_fails(tmp_path, [day0])
    assert msg.startswith(f"{day0}:{line}: ") and fragment in msg


def test_missing_and_empty_files_and_bad_option(tmp_path):
    day0, day1 = _days(tmp_path)
    msg = _import_fails(tmp_path, [day0, tmp_path / "day_9"])
    assert msg == f"{tmp_path / 'day_9'}: no such file; check the path"
    day1.write_text("")
    assert _import_fails(tmp_path, [day0, day1]).startswith(f"{day1}: the file is empty")
    msg = _import_fails(tmp_path, [day0], error=OptionError, max_rows_per_table=2**31)
    assert "got 2147483648" in msg


def test_error_keeps_a_previous_output(tmp_path):
    day0, day1 = _days(tmp_path)
    out = tmp_path / "out"
    sim.import_criteo([day0], out, batch_size=2, show_progress=False)
    _replace_line(day1, 1, "junk\n")
    with pytest.raises(InputError):
        sim.import_criteo([day0, day1], out, batch_size=2, show_progress=False)
    assert sim.open_trace(out).num_samples == 3


def test_cli_reports_one_line(tmp_path, capsys):
    day0, day1 = _days(tmp_path)
    _replace_line(day1, 2, "1\t2\n")
    out = tmp_path / "out"
    code = main(["trace", "import", "criteo", str(day0), str(day1), "--batch-size", "2",
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2 and not out.exists()
    assert err.count("\n") == 1 and "Traceback" not in err
    assert f"{day1}:2: 2 columns" in err
    code = main(["trace", "import", "criteo", str(day0), "--max-rows-per-table", "0",
                 "--batch-size", "2", "-o", str(out)])
    assert code == 2 and capsys.readouterr().err.count("\n") == 1 and not out.exists()
    day1.write_text(_line(4))
    assert main(["trace", "import", "criteo", str(day0), str(day1), "--batch-size", "2",
                 "-o", str(out), "--json"]) == 0
    assert sim.open_trace(out).num_samples == 4


# -- streaming and the look-alike writer ----------------------------------------------------
def _reference_ids(path):
    """First-seen numbering done the slow, obvious way (missing is the value 0)."""
    seen = [dict() for _ in range(T)]
    rows = []
    for line in path.read_text().splitlines():
        cats = line.split("\t")[-T:]
        rows.append([seen[t].setdefault(int(c or "0", 16), len(seen[t]))
                     for t, c in enumerate(cats)])
    return np.array(rows), [len(s) for s in seen]


def test_small_blocks_give_the_same_trace_and_bound_the_buffer(tmp_path, monkeypatch):
    tsv = tmp_path / "like.tsv"
    # 700 distinct values per table make the id maps grow (from 256 slots) several times.
    sim.write_criteo_like(tsv, 3000, seed=3, table_rows=[700] * T, alpha=0.3)
    ref_ids, ref_rows = _reference_ids(tsv)
    seen_blocks = []
    parse = criteo._parse_lines

    def recording_parse(buf, *args):
        seen_blocks.append(len(buf))
        return parse(buf, *args)

    monkeypatch.setattr(criteo, "_parse_lines", recording_parse)
    traces = {}
    for block in (4096, 100, criteo.DEFAULT_BLOCK_BYTES):
        seen_blocks.clear()
        traces[block] = sim.import_criteo([tsv], tmp_path / f"out{block}", batch_size=64,
                                          show_progress=False, block_bytes=block)
        if block == 4096:
            # Many blocks, none bigger than asked: the file is never held whole.
            assert max(seen_blocks) <= 4096 and len(seen_blocks) >= tsv.stat().st_size // 4096
    big = traces[criteo.DEFAULT_BLOCK_BYTES]
    np.testing.assert_array_equal(_ids(big), ref_ids)
    assert big.table_rows.tolist() == ref_rows
    for small in (traces[4096], traces[100]):
        np.testing.assert_array_equal(small.indices, big.indices)
        np.testing.assert_array_equal(small.labels, big.labels)
        np.testing.assert_array_equal(small.dense, big.dense)
        assert small.table_rows.tolist() == big.table_rows.tolist()


def test_write_criteo_like_round_trip(tmp_path):
    a, b, c = tmp_path / "a.tsv", tmp_path / "b.tsv", tmp_path / "c.tsv"
    sim.write_criteo_like(a, 500, seed=7)
    sim.write_criteo_like(b, 500, seed=7)
    sim.write_criteo_like(c, 500, seed=8, table_rows=[3] * T, labelled=False, missing_prob=0.0)
    assert a.read_bytes() == b.read_bytes() != c.read_bytes()
    assert not list(tmp_path.glob(".*"))  # no temporary file left
    trace = sim.import_criteo([a], tmp_path / "ta", batch_size=128, show_progress=False)
    assert (trace.num_samples, trace.num_tables, trace.num_batches) == (500, 26, 4)
    assert set(np.unique(trace.labels)) == {0.0, 1.0}
    assert (np.asarray(trace.dense) >= 0).all()
    # Missing values count among a table's values, as dlrm counts them: no table outgrows
    # Kaggle's, and the sample fits the dlrm-kaggle model.
    assert (trace.table_rows <= np.array(criteo.KAGGLE_TABLE_ROWS)).all()
    test_layout = sim.import_criteo([c], tmp_path / "tc", batch_size=128, show_progress=False)
    assert test_layout.labels is None and test_layout.provenance["layout"] == "test"
    assert test_layout.table_rows.tolist() == [3] * T  # three values each, none missing
    with pytest.raises(OptionError):
        sim.write_criteo_like(tmp_path / "d.tsv", 10, table_rows=[3] * 25)
