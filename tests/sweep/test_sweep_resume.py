import os
import signal
import subprocess
import sys
import time

import pandas as pd

from simulator.sweep import load_results, load_spec, run_sweep
from simulator.sweep.store import ResultsStore, journal_path

GRID = """
[axes]
mode = ["cache", "cache-prefetch", "scratchpipe"]
capacity = ["40%", "50%", "60%", "70%", "80%", "90%"]
lookahead = [1, 2, 3, 4]
"""


def _data_rows(path) -> int:
    try:
        return max(0, len(path.read_text().splitlines()) - 1)
    except FileNotFoundError:
        return 0


def test_killed_sweep_resumes_to_the_full_grid_without_duplicates(write_spec, tmp_path):
    spec = write_spec(GRID)
    results = tmp_path / "results.csv"
    cmd = [sys.executable, "-m", "simulator", "sweep", str(spec), "-o", str(results),
           "--workers", "1"]
    # Its own session, so that kill -9 reaches the pool's worker too (and nothing else).
    proc = subprocess.Popen(cmd, start_new_session=True, stdout=subprocess.DEVNULL,
                            stderr=subprocess.PIPE)
    deadline = time.monotonic() + 60
    while _data_rows(results) < 2 and proc.poll() is None and time.monotonic() < deadline:
        time.sleep(0.005)
    os.killpg(proc.pid, signal.SIGKILL)
    proc.wait()
    done_before = _data_rows(results)
    expected = [p.id for p in load_spec(spec).points()]
    assert 2 <= done_before < len(expected), "the sweep finished before it could be killed"

    subprocess.run(cmd, check=True, capture_output=True)
    df = load_results(results)
    assert list(df["point_id"]) == expected
    assert df["point_id"].is_unique
    # the resumed run computed only what was missing: one journal line per point
    assert len(journal_path(results).read_text().splitlines()) == len(expected)


def test_a_torn_last_line_is_ignored_and_cut_off(write_spec, tmp_path):
    spec = write_spec("""
        [axes]
        policy = ["lru", "belady"]
        capacity = ["50%"]
    """)
    results = tmp_path / "r.csv"
    first = run_sweep(spec, results, workers=1, progress=False)
    journal = journal_path(results)
    whole = journal.read_bytes()
    first_line = whole[:whole.index(b"\n") + 1]
    journal.write_bytes(first_line + whole[len(first_line):len(first_line) + 20])  # torn
    assert len(ResultsStore(results).rows) == 1
    assert journal.read_bytes() == first_line
    again = run_sweep(spec, results, workers=1, progress=False)
    pd.testing.assert_frame_equal(first, again)
