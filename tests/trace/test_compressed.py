"""Compressed inputs: gzip, bzip2, xz and zstd files import exactly like the plain file, are
told apart by content, and a truncated or corrupt one is a one-line error that leaves nothing."""

import bz2
import contextlib
import gzip
import json
import lzma
import struct
import sys

import numpy as np
import pytest
import zstandard

import simulator as sim
from simulator.cli import main
from simulator.errors import InputError
from simulator.trace import criteo, csv_table
from simulator.trace._compressed import detect_compression, open_input

T = criteo.NUM_CATEGORICAL
KINDS = {
    "gz": gzip.compress,
    "bz2": bz2.compress,
    "xz": lzma.compress,
    "zst": lambda data: zstandard.ZstdCompressor(write_checksum=True).compress(data),
}
NAMES = {"gz": "gzip", "bz2": "bzip2", "xz": "xz", "zst": "zstd"}


def _compress(src, kind, dst=None):
    dst = dst or src.with_name(f"{src.name}.{kind}")
    dst.write_bytes(KINDS[kind](src.read_bytes()))
    return dst


@pytest.fixture
def days(tmp_path):
    """Two small Criteo day files and their concatenation, all plain."""
    day0, day1, both = tmp_path / "day_0", tmp_path / "day_1", tmp_path / "both"
    sim.write_criteo_like(day0, 1500, seed=1, table_rows=[300] * T, alpha=0.8)
    sim.write_criteo_like(day1, 1000, seed=2, table_rows=[300] * T, alpha=0.8)
    both.write_bytes(day0.read_bytes() + day1.read_bytes())
    return day0, day1, both


def _criteo(files, out, **kw):
    return sim.import_criteo(files, out, batch_size=128, show_progress=False, **kw)


def _assert_same_trace(a, b):
    """Every array and the meta data but the provenance (which names the files) agree."""
    np.testing.assert_array_equal(a.indices, b.indices)
    for name in ("lengths", "batch_ptr", "labels", "dense"):
        x, y = getattr(a, name), getattr(b, name)
        assert (x is None) == (y is None), name
        if x is not None:
            np.testing.assert_array_equal(x, y)
    np.testing.assert_array_equal(a.table_offsets, b.table_offsets)
    assert a.table_rows.tolist() == b.table_rows.tolist()
    assert [t.name for t in a.tables] == [t.name for t in b.tables]
    files = sorted(p.name for p in a.path.iterdir())
    assert files == sorted(p.name for p in b.path.iterdir())
    for name in files:
        if name.endswith(".npy"):
            np.testing.assert_array_equal(np.load(a.path / name), np.load(b.path / name))
    meta_a, meta_b = dict(a.meta), dict(b.meta)
    meta_a.pop("provenance"), meta_b.pop("provenance")
    assert meta_a == meta_b


def _no_output(tmp_path, out):
    assert not out.exists()
    assert [p.name for p in tmp_path.iterdir() if p.name.startswith(".")] == []


# -- the same trace as the plain file -------------------------------------------------------
@pytest.mark.parametrize("kind", list(KINDS))
def test_each_format_imports_like_the_plain_file(tmp_path, days, kind):
    day0, _, _ = days
    packed = _compress(day0, kind)
    assert detect_compression(packed) == NAMES[kind]
    assert packed.stat().st_size < day0.stat().st_size
    plain = _criteo([day0], tmp_path / "plain")
    assert plain.num_samples == 1500
    _assert_same_trace(_criteo([packed], tmp_path / "packed"), plain)
    # Small blocks: many reads through the decompressor, lines cut across them.
    _assert_same_trace(_criteo([packed], tmp_path / "small", block_bytes=4096), plain)
    hashed = _criteo([day0], tmp_path / "plain_m", max_rows_per_table=50)
    _assert_same_trace(_criteo([packed], tmp_path / "packed_m", max_rows_per_table=50), hashed)


def test_day_files_in_order_equal_their_concatenation(tmp_path, days):
    day0, day1, both = days
    gz0, zst1 = _compress(day0, "gz"), _compress(day1, "zst")
    whole = _criteo([both], tmp_path / "whole")
    trace = _criteo([gz0, zst1], tmp_path / "days")
    _assert_same_trace(trace, whole)
    assert trace.provenance["files"] == [str(gz0), str(zst1)]
    # The order given is the order read: the other order is another trace.
    swapped = _criteo([zst1, gz0], tmp_path / "swapped")
    assert swapped.num_samples == whole.num_samples
    assert not np.array_equal(swapped.indices, whole.indices)


@pytest.mark.parametrize("kind", list(KINDS))
def test_concatenated_streams_are_one_file(tmp_path, days, kind):
    """cat day_0.gz day_1.gz > both.gz (gzip members, bzip2/xz streams, zstd frames)."""
    day0, day1, both = days
    joined = tmp_path / f"joined.{kind}"
    joined.write_bytes(KINDS[kind](day0.read_bytes()) + KINDS[kind](day1.read_bytes()))
    _assert_same_trace(_criteo([joined], tmp_path / "joined_trace", block_bytes=1 << 15),
                       _criteo([both], tmp_path / "whole"))


def test_content_decides_not_the_name(tmp_path, days):
    day0, _, _ = days
    plain = _criteo([day0], tmp_path / "plain")
    fake_gz = tmp_path / "day_0.gz"  # plain text under a compressed name
    fake_gz.write_bytes(day0.read_bytes())
    assert detect_compression(fake_gz) is None
    _assert_same_trace(_criteo([fake_gz], tmp_path / "fake"), plain)
    hidden = _compress(day0, "gz", tmp_path / "day_0_no_suffix")  # gzip without .gz
    wrong = _compress(day0, "xz", tmp_path / "day_0.zst")  # xz under a zstd name
    assert (detect_compression(hidden), detect_compression(wrong)) == ("gzip", "xz")
    _assert_same_trace(_criteo([hidden], tmp_path / "hidden"), plain)
    _assert_same_trace(_criteo([wrong], tmp_path / "wrong"), plain)


def test_text_that_starts_like_a_magic_number_is_plain(tmp_path):
    for i, text in enumerate([b"BZh9 is not bzip2\n", b"BZh\n", b"(\xb5/ but short\n", b"x"]):
        path = tmp_path / f"f{i}"
        path.write_bytes(text)
        assert detect_compression(path) is None
        f, position = open_input(path)
        with f:
            assert f.read() == text and position() == len(text)


def test_zstd_skippable_frame_first(tmp_path):
    """pzstd writes a skippable frame before its data frames."""
    data = b"1\t2\n" * 1000
    path = tmp_path / "p.zst"
    path.write_bytes(struct.pack("<II", 0x184D2A50, 4) + b"abcd"
                     + zstandard.ZstdCompressor().compress(data))
    assert detect_compression(path) == "zstd"
    f, _ = open_input(path)
    with f:
        assert f.read() == data


# -- the progress bar counts the files' own bytes ------------------------------------------
@pytest.mark.parametrize("kind", [None, *KINDS])
def test_position_reaches_the_compressed_size(tmp_path, days, kind):
    day0, day1, _ = days
    files = [day0, day1] if kind is None else [_compress(day0, kind), _compress(day1, kind)]
    total = 0
    for path in files:
        f, position = open_input(path)
        seen, out = [position()], bytearray()
        with f:
            while chunk := f.read(10_000):
                out += chunk
                seen.append(position())
            assert position() == path.stat().st_size
        assert seen == sorted(seen) and seen[0] < seen[-1]
        assert bytes(out) == (day0 if path.name.startswith("day_0") else day1).read_bytes()
        total += seen[-1]
    assert total == sum(p.stat().st_size for p in files)


class _Bar:
    """Stands in for the tqdm bar: keeps the total and every update."""

    bars = []

    def __init__(self, total=None, **_):
        self.total, self.updates, self.n = total, [], 0
        _Bar.bars.append(self)

    def update(self, n):
        self.updates.append(n)
        self.n += n

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False


def test_progress_total_and_updates_are_compressed_bytes(tmp_path, days, monkeypatch):
    day0, day1, _ = days
    files = [_compress(day0, "gz"), _compress(day1, "xz")]
    size = sum(p.stat().st_size for p in files)
    assert size < day0.stat().st_size + day1.stat().st_size
    monkeypatch.setattr(criteo, "progress", _Bar)
    monkeypatch.setattr(_Bar, "bars", [])
    _criteo(files, tmp_path / "t", block_bytes=1 << 14)
    (bar,) = _Bar.bars
    assert bar.total == size and bar.n == size
    assert min(bar.updates) >= 0 and len(bar.updates) > 2

    csv_gz = tmp_path / "events.csv.gz"
    csv_gz.write_bytes(gzip.compress(b"u,i\n" + b"".join(b"%d,%d\n" % (k % 97, k % 13)
                                                         for k in range(50_000))))
    monkeypatch.setattr(csv_table, "progress", _Bar)
    monkeypatch.setattr(_Bar, "bars", [])
    sim.import_csv(csv_gz, tmp_path / "c", columns=["u", "i"], header=True, batch_size=64)
    (bar,) = _Bar.bars
    assert bar.total == bar.n == csv_gz.stat().st_size and min(bar.updates) >= 0


# -- truncated, corrupt and empty files ------------------------------------------------------
def test_truncated_gz_on_the_cli_is_one_line_and_leaves_nothing(tmp_path, days, capsys):
    day0, day1, _ = days
    gz0, gz1 = _compress(day0, "gz"), _compress(day1, "gz")
    gz1.write_bytes(gz1.read_bytes()[:gz1.stat().st_size // 2])  # an interrupted download
    out = tmp_path / "out"
    code = main(["trace", "import", "criteo", str(gz0), str(gz1), "--batch-size", "64",
                 "-o", str(out)])
    err = capsys.readouterr().err
    assert code == 2
    assert err.count("\n") == 1 and err.startswith("scratchsim: error: ")
    assert "Traceback" not in err
    assert str(gz1) in err and "gzip" in err and "truncated" in err
    _no_output(tmp_path, out)  # day_0 was imported whole, yet nothing is written
    # A previous output stays as it was.
    assert main(["trace", "import", "criteo", str(gz0), "--batch-size", "64", "-o",
                 str(out)]) == 0
    assert main(["trace", "import", "criteo", str(gz0), str(gz1), "--batch-size", "64",
                 "-o", str(out)]) == 2
    assert sim.open_trace(out).num_samples == 1500


@pytest.mark.parametrize("kind", list(KINDS))
@pytest.mark.parametrize("damage", ["truncate", "flip"])
def test_truncated_or_corrupt_files_fail_in_one_line(tmp_path, days, kind, damage):
    day0, _, _ = days
    data = bytearray(KINDS[kind](day0.read_bytes()))
    if damage == "truncate":
        data = data[:len(data) * 2 // 3]
    else:
        data[len(data) // 2] ^= 0x55
    bad = tmp_path / f"bad.{kind}"
    bad.write_bytes(bytes(data))
    out = tmp_path / "out"
    with pytest.raises(InputError) as e:
        _criteo([bad], out, block_bytes=1 << 14)
    message = str(e.value)
    assert "\n" not in message and message.startswith(str(bad))
    if damage == "truncate":
        assert f"the {NAMES[kind]} data is truncated or corrupt" in message
    _no_output(tmp_path, out)
    with pytest.raises(InputError):
        sim.import_csv(bad, out, columns=["0"], sep="tab", batch_size=4, show_progress=False)
    _no_output(tmp_path, out)


def test_compressed_empty_files(tmp_path):
    empty = tmp_path / "empty.gz"
    empty.write_bytes(gzip.compress(b""))
    with pytest.raises(InputError, match="decompresses to nothing"):
        _criteo([empty], tmp_path / "t")
    with pytest.raises(InputError, match="is empty"):
        sim.import_csv(empty, tmp_path / "t", columns=["0"], batch_size=1, show_progress=False)
    _no_output(tmp_path, tmp_path / "t")


def test_missing_zstandard_is_a_one_line_error(tmp_path, monkeypatch):
    path = tmp_path / "x.zst"
    path.write_bytes(KINDS["zst"](b"1,2\n"))
    monkeypatch.setitem(sys.modules, "zstandard", None)  # import zstandard fails
    with pytest.raises(InputError, match="install it"):
        open_input(path)


def test_compressed_npy_ids_say_to_decompress(tmp_path):
    npy = tmp_path / "ids.npy"
    np.save(npy, np.arange(10))
    packed = _compress(npy, "gz", tmp_path / "ids_packed.npy")
    with pytest.raises(InputError, match="gzip-compressed; decompress it first"):
        sim.import_ids(packed, tmp_path / "t", batch_size=1, show_progress=False)


# -- the CSV importer -------------------------------------------------------------------------
CSV = "user,item,time\n" + "".join(f"u{k % 37},i{k % 11},{(k * 7919) % 1000}\n"
                                   for k in range(3000))


@pytest.mark.parametrize("kind", list(KINDS))
def test_csv_formats_import_like_the_plain_file(tmp_path, kind, monkeypatch):
    plain = tmp_path / "events.csv"
    plain.write_text(CSV)
    packed = _compress(plain, kind)
    for sort_by in (None, "time"):
        kw = dict(columns=["user", "item"], header=True, sort_by=sort_by, batch_size=100,
                  show_progress=False)
        a = sim.import_csv(plain, tmp_path / f"plain_{sort_by}", **kw)
        b = sim.import_csv(packed, tmp_path / f"packed_{sort_by}", **kw)
        _assert_same_trace(b, a)
    # Small blocks: lines cut across reads of the decompressed stream.
    monkeypatch.setattr(csv_table, "_BLOCK_BYTES", 100)
    small = sim.import_csv(packed, tmp_path / "small", columns=["user", "item"], header=True,
                           batch_size=100, show_progress=False)
    _assert_same_trace(small, sim.open_trace(tmp_path / "plain_None"))


def test_csv_cli_reads_a_compressed_file(tmp_path, capsys):
    plain = tmp_path / "events.csv"
    plain.write_text(CSV)
    packed = _compress(plain, "bz2", tmp_path / "events")  # no suffix at all
    code = main(["trace", "import", "csv", str(packed), "--columns", "user,item", "--header",
                 "--batch-size", "100", "-o", str(tmp_path / "t"), "--json"])
    assert code == 0
    assert json.loads(capsys.readouterr().out)["num_samples"] == 3000


def test_the_helper_closes_the_file(tmp_path):
    src = tmp_path / "a.txt"
    src.write_text("a\n" * 10)
    for kind in KINDS:
        f, _ = open_input(_compress(src, kind))
        with contextlib.closing(f):
            f.read()
        assert f.closed
        assert f.raw._raw.closed  # the compressed file itself
