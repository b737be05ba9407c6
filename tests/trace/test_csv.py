"""The categorical CSV reader, checked against hand-computed ids and the MovieLens 100K log."""

import csv
import json
from pathlib import Path

import numpy as np
import pytest

import simulator as sim
from simulator.cli import main
from simulator.errors import InputError, OptionError
from simulator.trace import csv_table

MOVIELENS = Path("/work/shared/data/movielens-100k/ml-100k.inter")

# Times compare as numbers: 9 < 20 < 30, whereas as strings "20" < "30" < "9".
EVENTS = "user,item,time\na,x,30\nb,y,9\na,z,20\nc,x,9\n"


def _ids(trace):
    return np.asarray(trace.indices).reshape(trace.num_samples, trace.num_tables)


def _write(tmp_path, text, name="data.csv"):
    path = tmp_path / name
    path.write_text(text)
    return path


def _only_input_left(tmp_path, *inputs):
    assert sorted(p.name for p in tmp_path.iterdir()) == sorted(p.name for p in inputs)


def test_header_columns_in_file_order(tmp_path):
    path = _write(tmp_path, EVENTS)
    trace = sim.import_csv(path, tmp_path / "t", columns=["user", "item"], header=True,
                           batch_size=3, show_progress=False)
    # user: a b a c -> 0 1 0 2; item: x y z x -> 0 1 2 0
    assert _ids(trace).tolist() == [[0, 0], [1, 1], [0, 2], [2, 0]]
    assert [(t.name, t.rows) for t in trace.tables] == [("user", 3), ("item", 3)]
    assert trace.pooling == 1 and trace.num_lookups == 8
    assert trace.num_batches == 2 and trace.batch_size == 3
    assert trace.provenance["source"] == "csv"
    assert trace.provenance["files"] == [str(path.resolve())]
    assert trace.provenance["columns"] == ["user", "item"]
    assert trace.provenance["sep"] == "," and trace.provenance["header"] is True
    assert trace.provenance["sort_by"] is None


def test_sort_numeric_with_ties_keeps_file_order(tmp_path):
    path = _write(tmp_path, EVENTS)
    trace = sim.import_csv(path, tmp_path / "t", columns=["user", "item"], header=True,
                           sort_by="time", batch_size=2, show_progress=False)
    # time order: line b (9), line c (9, tie: file order), a,z (20), a,x (30).
    # Renumbered in that order: user b c a a -> 0 1 2 2; item y x z x -> 0 1 2 1.
    assert _ids(trace).tolist() == [[0, 0], [1, 1], [2, 2], [2, 1]]
    assert [t.rows for t in trace.tables] == [3, 3]
    assert trace.provenance["sort_by"] == "time"


def test_sort_as_strings_when_not_numeric(tmp_path):
    path = _write(tmp_path, EVENTS)
    trace = sim.import_csv(path, tmp_path / "t", columns=["user", "item"], header=True,
                           sort_by="item", batch_size=4, show_progress=False)
    # item order x (lines 1 and 4), y, z: (a,x) (c,x) (b,y) (a,z)
    assert _ids(trace).tolist() == [[0, 0], [1, 0], [2, 1], [0, 2]]


def test_no_header_custom_separator_empty_token_and_blank_line(tmp_path):
    path = _write(tmp_path, "1;p;k\n2;q;k\n\n1;p;m\n;r;\n")
    trace = sim.import_csv(path, tmp_path / "t", columns=["2", 0], sep=";", batch_size=10,
                           show_progress=False)
    # col2: k k m '' -> 0 0 1 2; col0: 1 2 1 '' -> 0 1 0 2 (the blank line is skipped)
    assert _ids(trace).tolist() == [[0, 0], [0, 1], [1, 0], [2, 2]]
    assert [(t.name, t.rows) for t in trace.tables] == [("col2", 3), ("col0", 3)]
    assert trace.provenance["columns"] == [2, 0] and trace.provenance["header"] is False


def test_column_number_with_header_takes_the_header_name(tmp_path):
    path = _write(tmp_path, "u\ti\n7\t8\n7\t9\n")
    trace = sim.import_csv(path, tmp_path / "t", columns=["1"], sep="\\t", header=True,
                           batch_size=1, show_progress=False)
    assert trace.tables[0].name == "i" and _ids(trace).ravel().tolist() == [0, 1]
    assert trace.provenance["sep"] == "\t"


def test_multi_character_separator_and_crlf(tmp_path):
    path = tmp_path / "ratings.dat"
    path.write_bytes(b"1::10::5::978300760\r\n2::10::3::978300000\r\n1::11::4::978300760\r\n")
    trace = sim.import_csv(path, tmp_path / "t", columns=["0", "1"], sep="::", sort_by="3",
                           batch_size=2, show_progress=False)
    # time order: line 2 (978300000), line 1, line 3 (tie with line 1, after it)
    # user 2 1 1 -> 0 1 1; item 10 10 11 -> 0 0 1
    assert _ids(trace).tolist() == [[0, 0], [1, 0], [1, 1]]


def test_byte_order_mark_and_bytes_that_are_not_utf8(tmp_path):
    path = tmp_path / "data.csv"
    path.write_bytes(b"\xef\xbb\xbfuser,item\n\xff,x\n\xfe,x\n\xff,y\n")
    trace = sim.import_csv(path, tmp_path / "t", columns=["user"], header=True, batch_size=1,
                           show_progress=False)
    # 0xff and 0xfe are distinct tokens, though neither is valid UTF-8.
    assert _ids(trace).ravel().tolist() == [0, 1, 0] and trace.tables[0].rows == 2


def test_blocks_continue_ids_and_line_numbers(tmp_path, monkeypatch):
    # Blocks of 8 bytes cut the file into several parses; ids must continue across them.
    monkeypatch.setattr(csv_table, "_BLOCK_BYTES", 8)
    path = _write(tmp_path, "a,b\n" + "".join(f"{i % 3},{i % 2}\n" for i in range(9)))
    trace = sim.import_csv(path, tmp_path / "t", columns=["a", "b"], header=True,
                           batch_size=4, show_progress=False)
    assert _ids(trace).tolist() == [[i % 3, i % 2] for i in range(9)]
    assert trace.num_batches == 3
    bad = _write(tmp_path, "a,b\n" + "1,2\n" * 6 + "1\n" + "1,2\n", "bad.csv")
    with pytest.raises(InputError, match=r"line 8: 1 fields, but line 1 has 2"):
        sim.import_csv(bad, tmp_path / "u", columns=["a"], header=True, batch_size=1,
                       show_progress=False)


@pytest.mark.parametrize("text, match", [
    ("a,b,c\n1,2,3\n1,2\n", r"line 3: 2 fields, but line 1 has 3"),
    ("a,b,c\n\n1,2,3,4\n", r"line 3: 4 fields, but line 1 has 3"),
])
def test_lines_with_a_wrong_field_count(tmp_path, text, match):
    path = _write(tmp_path, text)
    with pytest.raises(InputError, match=match):
        sim.import_csv(path, tmp_path / "t", columns=["a"], header=True, batch_size=1,
                       show_progress=False)
    _only_input_left(tmp_path, path)


@pytest.mark.parametrize("text, kwargs, error, match", [
    ("", {}, InputError, "is empty"),
    ("\n\n", {}, InputError, "is empty"),
    ("a,b\n", {"header": True, "columns": ["a"]}, InputError, "no data lines"),
    ("a,b\n1,2\n", {"header": True, "columns": ["c"]}, OptionError,
     "no column named 'c'; the columns are: a, b"),
    ("a,b\n1,2\n", {"header": True, "columns": ["5"]}, OptionError,
     r"column 5 is out of range: the first line has 2 fields \(columns 0 to 1\)"),
    ("1,2\n", {"columns": ["a"]}, OptionError, "without a header"),
    ("1,2\n", {"columns": ["0", "0"]}, OptionError, "col0 is chosen twice"),
    ("a,b\n1,2\n", {"header": True, "columns": ["a"], "sort_by": "z"}, OptionError,
     "no column named 'z'"),
    ("1,2\n", {"columns": ["0"], "sep": ""}, OptionError, "separator"),
])
def test_errors(tmp_path, text, kwargs, error, match):
    path = _write(tmp_path, text)
    kwargs = {"columns": ["0"], **kwargs}
    with pytest.raises(error, match=match):
        sim.import_csv(path, tmp_path / "t", batch_size=1, show_progress=False, **kwargs)
    _only_input_left(tmp_path, path)


def test_missing_file(tmp_path):
    with pytest.raises(InputError, match="does not exist"):
        sim.import_csv(tmp_path / "nope.csv", tmp_path / "t", columns=["0"], batch_size=1)
    _only_input_left(tmp_path)


def test_cli_error_is_one_line_and_leaves_nothing(tmp_path, capsys):
    path = _write(tmp_path, EVENTS)
    out = tmp_path / "t"
    code = main(["trace", "import", "csv", str(path), "--columns", "user,nope", "--header",
                 "--batch-size", "2", "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and "Traceback" not in err
    assert err.startswith("scratchsim: error: ") and "no column named 'nope'" in err
    _only_input_left(tmp_path, path)


def test_cli_imports(tmp_path, capsys):
    path = _write(tmp_path, EVENTS.replace(",", "\t"))
    code = main(["trace", "import", "csv", str(path), "--columns", "user,item", "--header",
                 "--sep", "tab", "--sort-by", "time", "--batch-size", "2", "-o",
                 str(tmp_path / "t"), "--json"])
    assert code == 0
    meta = json.loads(capsys.readouterr().out)
    assert meta["num_samples"] == 4 and meta["provenance"]["sort_by"] == "time"


def test_movielens_100k_sorted_by_time(tmp_path):
    if not MOVIELENS.exists():
        pytest.skip(f"{MOVIELENS} is not available")
    trace = sim.import_csv(MOVIELENS, tmp_path / "ml", columns=["user_id:token", "item_id:token"],
                           sep="tab", header=True, sort_by="timestamp:float", batch_size=1000,
                           show_progress=False)
    assert [(t.name, t.rows) for t in trace.tables] == [("user_id:token", 943),
                                                         ("item_id:token", 1682)]
    assert trace.num_samples == 100_000 and trace.num_lookups == 200_000
    assert trace.pooling == 1 and trace.num_batches == 100

    # The same stream computed independently: a stable sort by time, first-seen numbering.
    with open(MOVIELENS, newline="") as f:
        lines = list(csv.reader(f, delimiter="\t"))[1:]
    assert len(lines) == 100_000
    order = sorted(range(len(lines)), key=lambda i: int(lines[i][3]))
    users, items = {}, {}
    expected = [[users.setdefault(lines[i][0], len(users)), items.setdefault(lines[i][1], len(items))]
                for i in order]
    got = _ids(trace)
    np.testing.assert_array_equal(got, np.array(expected))

    # Decode the trace's ids back to tokens and check the time order against the raw lines.
    user_token, item_token = list(users), list(items)
    time_of = {(u, i): int(t) for u, i, _, t in lines}
    assert len(time_of) == 100_000  # a user rates an item once, so a pair names its line
    pairs = [(user_token[u], item_token[i]) for u, i in got]
    earliest = min(range(len(lines)), key=lambda i: int(lines[i][3]))
    assert pairs[0] == (lines[earliest][0], lines[earliest][1])
    times = np.array([time_of[p] for p in pairs])
    assert (np.diff(times) >= 0).all()
    assert times[0] == min(time_of.values())
