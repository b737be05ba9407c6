import json
import subprocess
import sys

import pytest

from simulator import open_trace
from simulator.cli import main


def run(capsys, *argv):
    code = main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


def assert_one_line_error(code, err, *needles):
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("scratchsim: error: ")
    assert "Traceback" not in err
    for n in needles:
        assert n in err, err


def test_generate_then_stats_json(capsys, tmp_path):
    out_dir = tmp_path / "t"
    code, out, err = run(capsys, "trace", "generate", "zipf", "--tables", "2", "--rows", "100",
                         "--alpha", "1.1,0.7", "--pooling", "2", "--batch-size", "8",
                         "--batches", "5", "--seed", "9", "-o", str(out_dir), "--json")
    assert code == 0, err
    meta = json.loads(out)
    assert meta["num_lookups"] == 2 * 2 * 8 * 5 and meta["provenance"]["seed"] == 9
    assert open_trace(out_dir).pooling == 2


def test_generate_readable_output(capsys, tmp_path):
    code, out, _ = run(capsys, "trace", "generate", "drift", "--rows-per-table", "10,20",
                       "--batch-size", "4", "--batches", "3", "--seed", "0", "-o",
                       str(tmp_path / "t"))
    assert code == 0
    assert "2 (30 rows: t0=10, t1=20)" in out and "3 of 4 samples" in out


@pytest.mark.parametrize("argv, needles", [
    (["--tables", "0", "--rows", "10"], ["--tables", "must be a positive integer, got 0"]),
    (["--tables", "2", "--rows", "10", "--batch-size", "-3"], ["--batch-size"]),
    (["--tables", "2"], ["--tables and --rows go together"]),
    (["--tables", "2", "--rows", "10", "--pooling", "x"], ["pooling 'x'", "bag size"]),
    (["--tables", "2", "--rows", "10", "--pooling", "1,2,3"], ["3 bag sizes for 2 tables"]),
    (["--tables", "2", "--rows", "ten"], ["--rows", "'ten' is not a positive integer"]),
    (["--tables", "2", "--rows", "10", "--hot-share", "2"], ["--hot-share",
                                                             "must be a number from 0 to 1"]),
    (["--like", "nothing-here"], ["--like nothing-here"]),
])
def test_generate_bad_options(capsys, tmp_path, argv, needles):
    full = ["trace", "generate", "zipf", "--batch-size", "4", "--batches", "2", "--seed", "1",
            "-o", str(tmp_path / "t")] + argv
    code, _, err = run(capsys, *full)
    assert_one_line_error(code, err, *needles)
    assert not (tmp_path / "t").exists()


def test_unknown_choice_is_one_line(capsys, tmp_path):
    code, _, err = run(capsys, "trace", "generate", "pareto", "--tables", "1", "--rows", "5",
                       "--batch-size", "1", "--batches", "1", "--seed", "0", "-o", str(tmp_path / "t"))
    assert_one_line_error(code, err, "invalid choice: 'pareto'")


def test_stats_on_a_directory_that_is_not_a_trace(capsys, tmp_path):
    code, _, err = run(capsys, "trace", "stats", str(tmp_path))
    assert_one_line_error(code, err, str(tmp_path), "no meta.json")


def test_output_over_a_foreign_directory_is_refused(capsys, tmp_path):
    (tmp_path / "keep").mkdir()
    (tmp_path / "keep" / "x").write_text("1")
    code, _, err = run(capsys, "trace", "generate", "uniform", "--tables", "1", "--rows", "5",
                       "--batch-size", "1", "--batches", "1", "--seed", "0", "-o",
                       str(tmp_path / "keep"))
    assert_one_line_error(code, err, "not a previous output")
    assert [p.name for p in (tmp_path / "keep").iterdir()] == ["x"]


def test_python_dash_m(tmp_path):
    r = subprocess.run([sys.executable, "-m", "simulator", "--version"], capture_output=True,
                       text=True)
    assert r.returncode == 0 and r.stdout.startswith("scratchsim ")
