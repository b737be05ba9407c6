"""Criteo import benchmark: throughput and peak memory of `scratchsim trace import criteo`.

A Criteo-format file of about 2 GB (quick: 50 MB) is written with write_criteo_like, then
imported by the CLI in a child process, whose wall time and peak resident set size are
measured. An import of a small file first fills numba's cache of compiled kernels, so the
timed run does not compile; its wall time and peak RSS are reported too, as the fixed cost
(starting Python, numpy and numba) within the big file's figures. The target is a peak RSS
under 1 GB for a 2 GB file.

Compressed input: a smaller file (200 MB; quick: 20 MB) is imported plain, gzip- and
zstd-compressed, in this process (the best of a few runs), and the three speeds are printed
side by side, in MB/s of the uncompressed file.

Run alone: .venv/bin/python bench/bench_import.py [--quick] [--workdir DIR]
"""

from __future__ import annotations

import argparse
import gzip
import os
import shutil
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import zstandard

from _timing import best_time
from simulator import import_criteo, open_trace, write_criteo_like

REPO = Path(__file__).resolve().parents[1]

FULL_BYTES = 2e9
QUICK_BYTES = 50e6
# The plain / gzip / zstd comparison: a smaller file, imported several times in this process.
COMPRESSED_FULL_BYTES = 200e6
COMPRESSED_QUICK_BYTES = 20e6
SAMPLE_LINES = 20_000
BATCH_SIZE = 2048
MB = 1e6


def _import_in_child(tsv: Path, out: Path) -> tuple[float, float]:
    """Import tsv into out with the CLI in a child process: (wall seconds, peak RSS in MB)."""
    cmd = [sys.executable, "-m", "simulator", "trace", "import", "criteo", str(tsv),
           "--batch-size", str(BATCH_SIZE), "-o", str(out), "--json"]
    with tempfile.TemporaryFile() as err:
        start = time.perf_counter()
        child = subprocess.Popen(cmd, cwd=REPO, stdout=subprocess.DEVNULL, stderr=err)
        # wait4 gives this child's own resource use (RUSAGE_CHILDREN would mix in others).
        _, status, usage = os.wait4(child.pid, 0)
        wall = time.perf_counter() - start
        child.returncode = os.waitstatus_to_exitcode(status)
        if child.returncode:
            err.seek(0)
            raise RuntimeError(f"import failed ({child.returncode}): "
                               f"{err.read().decode(errors='replace').strip()}")
    return wall, usage.ru_maxrss * 1024 / MB  # ru_maxrss is in KiB on Linux


def _compressed_vs_plain(workdir: Path, lines: int) -> list[tuple[str, float, str]]:
    """Import speed of one file plain, gzip- and zstd-compressed (gzip -6, zstd -3: the
    tools' defaults), side by side, in MB/s of the uncompressed file."""
    tsv = workdir / "criteo_cmp.tsv"
    files = {"plain": tsv, "gz": workdir / "criteo_cmp.tsv.gz",
             "zst": workdir / "criteo_cmp.tsv.zst"}
    out = workdir / "criteo_cmp_trace"
    try:
        write_criteo_like(tsv, lines, seed=2)
        with open(tsv, "rb") as src, gzip.open(files["gz"], "wb", compresslevel=6) as dst:
            shutil.copyfileobj(src, dst, 1 << 20)
        with open(tsv, "rb") as src, open(files["zst"], "wb") as dst:
            zstandard.ZstdCompressor(level=3, write_checksum=True).copy_stream(src, dst)
        size_mb = tsv.stat().st_size / MB

        def load(path):
            shutil.rmtree(out, ignore_errors=True)
            import_criteo([path], out, batch_size=BATCH_SIZE, show_progress=False)

        load(tsv)  # compiles the kernels, if the cache does not hold them yet
        rows = [("criteo_cmp_file_size", size_mb, "MB")]
        for kind, path in files.items():
            if kind != "plain":
                rows.append((f"criteo_cmp_{kind}_file_size", path.stat().st_size / MB, "MB"))
        for kind, path in files.items():
            rows.append((f"criteo_import_{kind}_throughput_bytes", size_mb / best_time(load, path),
                         "MB/s"))
        return rows
    finally:
        for p in files.values():
            p.unlink(missing_ok=True)
        shutil.rmtree(out, ignore_errors=True)


def run(workdir: Path, quick: bool = False) -> list[tuple[str, float, str]]:
    """Write, import and measure; returns (metric, value, unit) rows. Files are removed."""
    workdir = Path(workdir)
    workdir.mkdir(parents=True, exist_ok=True)
    sample, tsv = workdir / "criteo_sample.tsv", workdir / "criteo_like.tsv"
    sample_out, out = workdir / "criteo_sample_trace", workdir / "criteo_trace"
    try:
        write_criteo_like(sample, SAMPLE_LINES, seed=1)
        bytes_per_line = sample.stat().st_size / SAMPLE_LINES
        lines = int((QUICK_BYTES if quick else FULL_BYTES) / bytes_per_line)
        start = time.perf_counter()
        write_criteo_like(tsv, lines, seed=0)
        write_s = time.perf_counter() - start
        size_mb = tsv.stat().st_size / MB

        small_wall, small_rss = _import_in_child(sample, sample_out)
        wall, rss = _import_in_child(tsv, out)
        samples = open_trace(out).num_samples
        if samples != lines:
            raise RuntimeError(f"the import read {samples} samples of {lines} lines")
    finally:
        for p in (sample, tsv):
            p.unlink(missing_ok=True)
        for p in (sample_out, out):
            shutil.rmtree(p, ignore_errors=True)
    compressed = _compressed_vs_plain(workdir, int(
        (COMPRESSED_QUICK_BYTES if quick else COMPRESSED_FULL_BYTES) / bytes_per_line))
    return [
        ("criteo_file_size", size_mb, "MB"),
        ("criteo_write_throughput", size_mb / write_s, "MB/s"),
        ("criteo_import_wall_time", wall, "s"),
        ("criteo_import_throughput", lines / wall, "lines/s"),
        ("criteo_import_throughput_bytes", size_mb / wall, "MB/s"),
        ("criteo_import_peak_rss", rss, "MB"),
        ("criteo_import_wall_time_small_file", small_wall, "s"),
        ("criteo_import_peak_rss_small_file", small_rss, "MB"),
    ] + compressed


def main() -> None:
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--quick", action="store_true", help="a 50 MB file instead of 2 GB")
    p.add_argument("--workdir", type=Path, help="where the files go (default: a temporary "
                                                "directory)")
    a = p.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        for name, value, unit in run(a.workdir or Path(tmp), quick=a.quick):
            print(f"{name:36s} {value:14,.1f} {unit}")


if __name__ == "__main__":
    main()
