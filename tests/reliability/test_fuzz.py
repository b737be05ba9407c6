"""Seeded, bounded fuzzing of every input scratchsim reads (issue 15).

Every file of a trace directory, every importer's input (Criteo TSV, CSV, .npy id stream,
dlrm_datasets .pt), sweep specs and results journals are damaged the ways disks, partial
copies and editors damage files: bytes overwritten, a bit flipped, the end cut off, garbage
appended, a run zeroed, the file deleted or replaced by another. Each damaged input is run
through the commands that read it, in this process (a crash would take the test run down).
Every run must end with exit 0 or one error line and exit 2, and leave no partial output;
where a run ends with 0 on a damaged trace array and prints a different result, `trace verify`
must refuse that trace (no silent change it cannot see); a damaged journal never fails a
sweep and never changes its results. The examples are derandomized (the same every run) and
their number bounded so the whole folder runs in well under a minute; the tally of inputs
tried and outcomes is printed at the end of the run (reliability_helpers.TallyReport).
"""

from __future__ import annotations

import random
import shutil
import tempfile
from pathlib import Path

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simulator as sim
from simulator.sweep.store import ResultsStore, journal_path, lock_path

from reliability_helpers import (FUZZ_TALLY, TallyReport, assert_clean_end, cli, temporaries,
                                 write_small_trace)

FUZZ = settings(deadline=None, derandomize=True, database=None, print_blob=True,
                suppress_health_check=list(HealthCheck))

OPS = ("overwrite bytes", "flip a bit", "change a digit", "cut the end off", "append garbage",
       "zero a run", "delete a line", "duplicate a line", "delete", "replace by another file")
# A damage: what is done, and the seed of where and with what (uniform over the file).
DAMAGE = st.tuples(st.sampled_from(OPS), st.integers(0, 2**32 - 1))
FILE_DAMAGE = st.tuples(st.sampled_from([o for o in OPS if o != "replace by another file"]),
                        st.integers(0, 2**32 - 1))


@pytest.fixture(scope="module", autouse=True)
def _tally_in_the_summary(request):
    plugins = request.config.pluginmanager
    if not plugins.has_plugin(TallyReport.name):
        plugins.register(TallyReport(), TallyReport.name)


def damage(data: bytes, op: str, seed: int, other: bytes = b"") -> bytes | None:
    """The damaged bytes (None: the file is deleted)."""
    rng = random.Random(seed)
    out = bytearray(data)
    n = len(out)
    if op == "delete":
        return None
    if op == "replace by another file":
        return other
    if n == 0:
        return bytes(rng.randrange(256) for _ in range(rng.randint(1, 8)))
    if op == "change a digit":  # an edit: a number changes, and stays a number
        digits = [i for i, c in enumerate(out) if 48 <= c <= 57]
        if digits:
            i = rng.choice(digits)
            out[i] = rng.choice([c for c in range(48, 58) if c != out[i]])
            return bytes(out)
        op = "overwrite bytes"
    if op == "overwrite bytes":
        for _ in range(rng.randint(1, 4)):
            out[rng.randrange(n)] = rng.randrange(256)
    elif op == "flip a bit":
        out[rng.randrange(n)] ^= 1 << rng.randrange(8)
    elif op == "cut the end off":
        del out[rng.randrange(n):]
    elif op == "append garbage":
        out += bytes(rng.randrange(256) for _ in range(rng.randint(1, 16)))
    elif op == "zero a run":
        i = rng.randrange(n)
        run = min(rng.randint(1, 64), n - i)
        out[i:i + run] = bytes(run)
    elif op in ("delete a line", "duplicate a line"):
        lines = bytes(out).split(b"\n")
        i = rng.randrange(len(lines))
        lines[i:i + 1] = [] if op == "delete a line" else [lines[i], lines[i]]
        out = bytearray(b"\n".join(lines))
    return bytes(out)


def _write(path: Path, data: bytes | None) -> None:
    if data is None:
        path.unlink(missing_ok=True)
    else:
        path.write_bytes(data)


def _loads_the_same(clean: Path, damaged: Path) -> bool:
    """The damaged .npy still holds exactly the clean array (a harmless change, such as
    whitespace in the header's padding)."""
    try:
        a, b = np.load(clean), np.load(damaged)
    except Exception:
        return False
    return (a.dtype == b.dtype and a.shape == b.shape and a.tobytes() == b.tobytes()
            and clean.stat().st_size == damaged.stat().st_size)


# -- trace directories ----------------------------------------------------------------------
POLICIES = ("lru", "fifo", "lfu", "setassoc", "static", "belady", "scratchpipe", "oracle")


@pytest.fixture(scope="module")
def traces(tmp_path_factory):
    """Two clean traces (variable bags with labels and dense features over three tables;
    a fixed pooling over one table) and each command's output on them."""
    base = tmp_path_factory.mktemp("traces")
    made = {"variable": write_small_trace(base / "variable", samples=48),
            "fixed": write_small_trace(base / "fixed", variable=False, labels=False, tables=1,
                                       rows=40, samples=48, batch_size=4)}
    clean = {}
    for name, trace in made.items():
        for argv in _commands(trace.path, base / "out.csv"):
            code, out, err = cli(*argv)
            assert code == 0, (argv, err)
            clean[(name, argv[0], argv[3] if argv[0] == "replay" else "")] = out
    return base, made, clean


def _commands(path: Path, per_batch: Path) -> list[list]:
    return ([["trace", "stats", path, "--json"]] +
            [["replay", path, "--policy", p, "--capacity", "100%", "--per-batch", per_batch,
              "--json"] for p in POLICIES])


def _fuzz_trace(traces, data, which: str) -> None:
    """One damaged copy of the clean trace `which`, read by stats, replay and verify."""
    base, made, clean = traces
    clean_dir = made[which].path
    names = sorted(p.name for p in clean_dir.iterdir())
    name = data.draw(st.sampled_from(names), "file")
    op, seed = data.draw(DAMAGE, "damage")
    policy = data.draw(st.sampled_from(POLICIES), "policy")
    kind = f"trace ({which}) {name}"
    with tempfile.TemporaryDirectory(dir=base) as tmp:
        work = Path(tmp) / "t"
        shutil.copytree(clean_dir, work)
        others = [n for n in names if n != name]
        other = (clean_dir / others[seed % len(others)]).read_bytes() if others else b""
        _write(work / name, damage((clean_dir / name).read_bytes(), op, seed, other))
        out_dir = Path(tmp) / "out"
        out_dir.mkdir()
        per_batch = out_dir / "per_batch.csv"
        changed, codes = [], []
        for argv in (["trace", "stats", work, "--json"],
                     ["replay", work, "--policy", policy, "--capacity", "100%",
                      "--per-batch", per_batch, "--json"]):
            command = "stats" if argv[0] == "trace" else "replay"
            code, out, err = cli(*argv)
            assert_clean_end(code, err, f"{kind} {op}: {command}")
            codes.append(f"{command} {code}")
            if code == 0:
                # the path printed is the damaged copy's: compare the rest
                same = (out.replace(str(work), str(clean_dir)) ==
                        clean[(which, argv[0], policy if argv[0] == "replay" else "")])
                if not same:
                    changed.append(command)
        assert per_batch.exists() == (code == 0)  # replay wrote it whole, or not at all
        code, out, err = cli("trace", "verify", work)
        assert_clean_end(code, err, f"{kind} {op}: verify")
        codes.append(f"verify {code}")
        FUZZ_TALLY[kind][f"[{', '.join(codes)}{' (output changed)' if changed else ''}]"] += 1
        # A damaged array is refused by verify unless it still holds the same array (meta.json
        # may change harmlessly: its provenance is free text)...
        if name != "meta.json" and (not (work / name).exists() or
                                    not _loads_the_same(clean_dir / name, work / name)):
            assert code == 2, f"{kind} {op}: verify missed it"
        # ...and a run that printed a different result had damage that verify sees.
        if changed:
            assert code == 2, f"{kind} {op}: {changed} changed silently"
        assert not temporaries(work, out_dir)


@pytest.mark.parametrize("which, examples", [("variable", 100), ("fixed", 40)])
def test_fuzz_every_file_of_a_trace(traces, which, examples):
    @settings(FUZZ, max_examples=examples)
    @given(data=st.data())
    def one(data):
        _fuzz_trace(traces, data, which)

    one()


# -- importers' inputs ----------------------------------------------------------------------
def _criteo(path: Path) -> list:
    sim.write_criteo_like(path / "day.tsv", num_lines=30, seed=4)
    return ["criteo", path / "day.tsv"]


def _csv(path: Path) -> list:
    rng = np.random.default_rng(5)
    lines = ["user,item,time"] + [f"u{rng.integers(8)},i{rng.integers(20)},{rng.integers(1000)}"
                                  for _ in range(40)]
    (path / "log.csv").write_text("\n".join(lines) + "\n")
    return ["csv", path / "log.csv", "--columns", "user,item", "--header", "--sort-by", "time"]


def _ids(path: Path) -> list:
    np.save(path / "ids.npy", np.random.default_rng(6).integers(0, 300, 64))
    return ["ids", path / "ids.npy"]


def _dlrm_pt(path: Path) -> list:
    torch = pytest.importorskip("torch")
    lengths = torch.tensor([[1, 2, 1, 0], [2, 1, 1, 3]])
    indices = torch.arange(int(lengths.sum())) % 7
    offsets = torch.cat([torch.tensor([0]), lengths.flatten().cumsum(0)])
    torch.save((indices, offsets, lengths), path / "day.pt")
    return ["dlrm-pt", path / "day.pt"]


READERS = {"criteo": _criteo, "csv": _csv, "ids": _ids, "dlrm-pt": _dlrm_pt}


@pytest.mark.parametrize("reader, examples", [("criteo", 20), ("csv", 20), ("ids", 20),
                                              ("dlrm-pt", 20)])
def test_fuzz_importers(tmp_path_factory, reader, examples):
    base = tmp_path_factory.mktemp(reader)
    argv = READERS[reader](base)
    source = Path(argv[1])
    clean = source.read_bytes()
    kind = f"import {reader}"

    @settings(FUZZ, max_examples=examples)
    @given(FILE_DAMAGE)
    def one(how):
        op, seed = how
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            work = Path(tmp)
            damaged = work / source.name
            _write(damaged, damage(clean, op, seed))
            out = work / "trace"
            code, _, err = cli("trace", "import", argv[0], damaged, *argv[2:],
                               "--batch-size", "4", "-o", out)
            assert_clean_end(code, err, f"{kind} {op}")
            FUZZ_TALLY[kind][f"exit {code}"] += 1
            if code == 2:
                assert not out.exists()
            else:  # what was imported is a sound trace
                vcode, _, verr = cli("trace", "verify", out)
                assert vcode == 0, verr
            assert not temporaries(work)

    one()


# -- sweep specs and results journals -------------------------------------------------------
SPEC = """\
[trace]
generator = "zipf"
table_rows = [200, 60]
batch_size = 8
batches = 5
seed = 2

[axes]
policy = ["lru", "scratchpipe"]
capacity = ["50%", 90]

[fixed]
lookahead = 2
"""


def test_fuzz_sweep_specs(tmp_path_factory):
    base = tmp_path_factory.mktemp("specs")
    clean = SPEC.encode()
    kind = "sweep spec"

    @settings(FUZZ, max_examples=20)
    @given(FILE_DAMAGE)
    def one(how):
        op, seed = how
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            work = Path(tmp)
            _write(work / "spec.toml", damage(clean, op, seed))
            results = work / "r.csv"
            code, _, err = cli("sweep", work / "spec.toml", "-o", results, "--workers", "1")
            assert_clean_end(code, err, f"{kind} {op}")
            FUZZ_TALLY[kind][f"exit {code}"] += 1
            if code == 2:
                assert not results.exists() and not journal_path(results).exists()
            else:
                assert len(sim.load_results(results)) >= 1
            assert not temporaries(work) and not lock_path(results).exists()

    one()


def test_fuzz_results_journals(tmp_path_factory):
    """A damaged journal never fails the sweep: damaged lines are recomputed, and the results
    are the clean run's, byte for byte."""
    base = tmp_path_factory.mktemp("journals")
    (base / "spec.toml").write_text(SPEC)
    clean_dir = base / "clean"
    clean_dir.mkdir()
    code, _, err = cli("sweep", base / "spec.toml", "-o", clean_dir / "r.csv", "--workers", "1")
    assert code == 0, err
    clean_csv = (clean_dir / "r.csv").read_bytes()
    clean_journal = journal_path(clean_dir / "r.csv").read_bytes()
    points = len(ResultsStore(clean_dir / "r.csv").rows)
    kind = "results journal"

    @settings(FUZZ, max_examples=20)
    @given(FILE_DAMAGE)
    def one(how):
        op, seed = how
        with tempfile.TemporaryDirectory(dir=base) as tmp:
            work = Path(tmp) / "w"
            shutil.copytree(clean_dir, work)
            journal = journal_path(work / "r.csv")
            _write(journal, damage(clean_journal, op, seed))
            lost = points - len(ResultsStore(work / "r.csv").rows)
            code, _, err = cli("sweep", base / "spec.toml", "-o", work / "r.csv",
                               "--workers", "1")
            assert code == 0, f"{kind} {op}: {err}"
            assert (work / "r.csv").read_bytes() == clean_csv, f"{kind} {op}"
            told = "is damaged" in err
            FUZZ_TALLY[kind][f"exit 0, {lost} point(s) recomputed"
                             f"{', said so' if told else ''}"] += 1
            assert not temporaries(work)

    one()
