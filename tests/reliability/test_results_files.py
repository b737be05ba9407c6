"""Results files: a damaged journal line costs its point only; a results file has one writer;
every output is written whole by the one atomic-write helper."""

import json
import os
import signal
import subprocess
import sys
import textwrap

import pytest

from simulator._atomic import atomic_dir, atomic_open, atomic_path
from simulator.errors import OptionError
from simulator.sweep import run_sweep
from simulator.sweep.store import (ResultsStore, journal_path, lock_path, parse_journal_line,
                                   results_lock)

from reliability_helpers import assert_clean_end, cli, temporaries

SPEC = """
[trace]
generator = "zipf"
table_rows = [300, 80]
batch_size = 16
batches = 6
seed = 3

[axes]
policy = ["lru", "fifo", "belady"]
capacity = ["40%", "80%"]
"""


@pytest.fixture
def spec(tmp_path):
    path = tmp_path / "spec.toml"
    path.write_text(textwrap.dedent(SPEC))
    return path


def _journal_lines(results):
    return journal_path(results).read_bytes().splitlines(keepends=True)


# -- the journal ----------------------------------------------------------------------------
def test_journal_lines_carry_a_checksum_of_their_contents():
    from simulator.sweep.store import journal_line

    line = journal_line({"point_id": "abc", "x": 1.5, "s": "é"})
    assert line.startswith(b'{"crc32": "') and line.endswith(b"\n")
    row, problem = parse_journal_line(line[:-1])
    assert row == {"point_id": "abc", "x": 1.5, "s": "é"} and not problem
    damaged = line.replace(b"1.5", b"1.6")
    assert parse_journal_line(damaged[:-1]) == (None, "its checksum does not match its contents")
    assert parse_journal_line(b'{"point_id": "old", "x": 2}')[0]["x"] == 2  # older journals
    assert parse_journal_line(b'{"pointid": "old"}')[1] == "it is not a results line"
    assert parse_journal_line(b'{"point_id": 3}')[1] == "it has no point_id"
    assert parse_journal_line(b'{"point_id": "x\xff')[1] == "it is not valid JSON"


def test_a_damaged_line_in_the_middle_costs_that_point_only(spec, tmp_path):
    results = tmp_path / "r.csv"
    code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
    assert code == 0, err
    clean_csv = results.read_bytes()
    lines = _journal_lines(results)
    assert len(lines) == 6
    damaged = bytearray(lines[2])
    damaged[len(damaged) // 2] ^= 0x01  # one bit, in the middle of the third point's numbers
    journal_path(results).write_bytes(b"".join(lines[:2] + [bytes(damaged)] + lines[3:]))
    assert len(ResultsStore(results).rows) == 5

    code, out, err = cli("sweep", spec, "-o", results, "--workers", "1")
    assert code == 0, err
    assert "line 3 is damaged" in err and "computed again" in err
    assert results.read_bytes() == clean_csv  # the same results, bit for bit
    after = _journal_lines(results)
    assert after[:2] == lines[:2] and after[2:5] == lines[3:] and len(after) == 6
    code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
    assert code == 0 and "damaged" not in err  # repaired: nothing more to say


def test_a_journal_of_garbage_is_recomputed_not_fatal(spec, tmp_path):
    results = tmp_path / "r.csv"
    run_sweep(spec, results, workers=1, progress=False)
    clean_csv = results.read_bytes()
    journal_path(results).write_bytes(b"\x00\xff garbage\n{not json}\n[1, 2]\n")
    code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
    assert code == 0, err
    assert err.count("is damaged") == 3
    assert results.read_bytes() == clean_csv


def test_a_damaged_results_csv_is_a_one_line_error_for_figures(tmp_path):
    bad = tmp_path / "r.csv"
    bad.write_bytes(b'point_id,a\n"x,1\n')
    code, _, err = cli("figures", bad, "-o", tmp_path / "figs")
    assert_clean_end(code, err)
    assert code == 2 and "not a readable results file" in err
    bad.write_bytes(b"")
    code, _, err = cli("figures", bad, "-o", tmp_path / "figs")
    assert code == 2 and str(bad) in err


# -- one writer ----------------------------------------------------------------------------
def test_a_second_sweep_on_the_same_output_is_refused_naming_the_first(spec, tmp_path):
    results = tmp_path / "r.csv"
    with results_lock(results):
        info = json.loads(lock_path(results).read_text())
        assert info["pid"] == os.getpid()
        code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
        assert_clean_end(code, err)
        assert code == 2 and "is being written by another sweep" in err
        assert f"pid {os.getpid()} on " in err
        assert not results.exists() and not journal_path(results).exists()
        with pytest.raises(OptionError, match="another sweep"):
            with results_lock(results):
                pass
    assert not lock_path(results).exists()  # a clean exit removes it
    code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
    assert code == 0, err


# A real sweep process that stays inside its lock until it is killed: its work is replaced by
# a wait, so the test does not race a sweep that may finish first on a fast machine.
SWEEP_THAT_HOLDS_ITS_LOCK = """
import sys
from simulator import cli
from simulator.sweep import runner

def wait_inside_the_lock(*args, **kwargs):
    print("locked", flush=True)
    sys.stdin.read()

runner._run_missing = wait_inside_the_lock
raise SystemExit(cli.main(sys.argv[1:]))
"""


def test_a_killed_sweep_does_not_leave_its_output_locked(spec, tmp_path):
    """A sweep in another process holds the lock: a second sweep is refused and names it;
    after kill -9 of the first, a new sweep runs and completes the grid."""
    results = tmp_path / "r.csv"
    proc = subprocess.Popen([sys.executable, "-c", SWEEP_THAT_HOLDS_ITS_LOCK, "sweep",
                             str(spec), "-o", str(results), "--workers", "1"],
                            start_new_session=True, stdin=subprocess.PIPE,
                            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    try:
        assert proc.stdout.readline() == "locked\n", "the first sweep ended before its lock"
        assert json.loads(lock_path(results).read_text())["pid"] == proc.pid
        code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
        assert_clean_end(code, err)
        assert code == 2 and f"pid {proc.pid} on " in err and "sweep" in err
    finally:
        os.killpg(proc.pid, signal.SIGKILL)
        proc.wait()
    assert lock_path(results).exists()  # a killed holder leaves the file, not the lock
    code, _, err = cli("sweep", spec, "-o", results, "--workers", "1")
    assert code == 0, err
    assert len(_journal_lines(results)) == 6  # 3 policies x 2 capacities, all computed now


# -- atomic writes --------------------------------------------------------------------------
def test_atomic_writes_leave_the_old_file_or_the_new_one(tmp_path):
    target = tmp_path / "out.txt"
    target.write_text("old")
    with pytest.raises(RuntimeError):
        with atomic_open(target, "w") as f:
            f.write("half")
            raise RuntimeError("disk full")
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with pytest.raises(KeyboardInterrupt):
        with atomic_path(target) as tmp:
            tmp.write_text("half")
            raise KeyboardInterrupt
    assert target.read_text() == "old" and sorted(tmp_path.iterdir()) == [target]
    with atomic_open(target, "w", fsync=True) as f:
        f.write("new")
    assert target.read_text() == "new" and sorted(tmp_path.iterdir()) == [target]
    with pytest.raises(FileNotFoundError):
        with atomic_path(tmp_path / "never.txt"):
            pass  # nothing written: not renamed into place as an empty file
    assert sorted(tmp_path.iterdir()) == [target]


def test_a_directory_output_is_replaced_whole_or_not_at_all(tmp_path):
    dest = tmp_path / "run"
    with atomic_dir(dest, lambda d: (d / "summary.json").is_file()) as work:
        (work / "summary.json").write_text("1")
    assert (dest / "summary.json").read_text() == "1"
    with pytest.raises(KeyboardInterrupt):
        with atomic_dir(dest, lambda d: (d / "summary.json").is_file()) as work:
            (work / "summary.json").write_text("half")
            raise KeyboardInterrupt
    assert (dest / "summary.json").read_text() == "1"  # the previous output, untouched
    with atomic_dir(dest, lambda d: (d / "summary.json").is_file()) as work:
        (work / "summary.json").write_text("2")
    assert (dest / "summary.json").read_text() == "2"
    assert sorted(tmp_path.iterdir()) == [dest]  # no temporary or old copy left beside it
    (dest / "summary.json").unlink()
    (dest / "mine.txt").write_text("x")
    with pytest.raises(OptionError, match="not a previous output of this command"):
        with atomic_dir(dest, lambda d: (d / "summary.json").is_file()):
            raise AssertionError("refused before the block runs")
    assert sorted(p.name for p in dest.iterdir()) == ["mine.txt"]
    assert sorted(tmp_path.iterdir()) == [dest]


def test_every_writer_uses_the_one_helper():
    """No hand-written temporary-name-and-rename is left in the package."""
    import pathlib
    import simulator

    root = pathlib.Path(simulator.__file__).parent
    offenders = []
    for path in root.rglob("*.py"):
        if path.name == "_atomic.py":
            continue
        text = path.read_text()
        if any(call in text for call in ("os.replace(", "os.rename(", "mkstemp(")):
            offenders.append(str(path.relative_to(root)))
    assert offenders == []


def test_a_failed_per_batch_csv_leaves_nothing(tmp_path):
    from simulator import generate

    generate("zipf", tmp_path / "t", [100], batch_size=4, num_batches=3, seed=1,
             show_progress=False)
    out = tmp_path / "out"
    out.mkdir()
    code, _, err = cli("replay", tmp_path / "t", "--policy", "lru", "--capacity", "1",
                       "--per-batch", out / "b.csv")
    assert code == 2 and list(out.iterdir()) == [] and not temporaries(tmp_path)
