"""`scratchsim calibrate`: measure what a HardwareProfile needs on this machine and write it as
a TOML profile in the layout of hardware/presets/*.toml, which load_hardware reads back.

On CUDA the link is the host link (pinned memory, both directions, alone and at once) and the
"gpu" section the device's memory and matrix units. On the CPU, the "device" is the host
itself: the link is a memcpy, and the gpu section measures the same DRAM and cores, so a
CPU profile predicts the CPU runs of the backend (as `scratchsim validate --device cpu`
checks).

Each number is the median of a few timed repeats after a warm-up. Row gathers are measured
with one thread at two row sizes and fitted to the profile's model, time per row =
row_latency + row_bytes / thread_bandwidth (see HardwareProfile.cpu_gather_time).
"""

from __future__ import annotations

import datetime
import os
import statistics
import tempfile
import time
from pathlib import Path

from ..errors import OptionError
from ..hardware import load_hardware
from .base import DEVICES, torch

_GB = 1e9
GATHER_ROW_BYTES = (64, 1024)  # two row sizes for the latency + bytes / bandwidth fit


class _Clock:
    """Times a callable on the device: perf_counter after a synchronize (CPU: nothing)."""

    def __init__(self, device):
        self.device = device
        self.cuda = device.type == "cuda"

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def seconds(self, fn, repeats: int, calls: int = 1) -> float:
        """Median seconds of one call of fn, each repeat timing `calls` calls."""
        fn()
        self.sync()
        samples = []
        for _ in range(repeats):
            start = time.perf_counter()
            for _ in range(calls):
                fn()
            self.sync()
            samples.append((time.perf_counter() - start) / calls)
        return statistics.median(samples)


def _link(clock, device, nbytes, repeats):
    """(h2d GB/s, d2h GB/s, latency us, full duplex) of the host link (pinned host memory)."""
    cuda = clock.cuda
    host = torch.empty(nbytes // 4, pin_memory=cuda)
    back = torch.empty(nbytes // 4, pin_memory=cuda)
    dev = torch.empty(nbytes // 4, device=device)
    h2d = clock.seconds(lambda: dev.copy_(host, non_blocking=True), repeats)
    d2h = clock.seconds(lambda: back.copy_(dev, non_blocking=True), repeats)
    tiny_host, tiny_dev = torch.empty(1, pin_memory=cuda), torch.empty(1, device=device)
    latency = clock.seconds(lambda: tiny_dev.copy_(tiny_host, non_blocking=True), repeats, 100)
    full_duplex = False
    if cuda:
        streams = torch.cuda.Stream(device), torch.cuda.Stream(device)
        other = torch.empty_like(dev)

        def both():
            with torch.cuda.stream(streams[0]):
                dev.copy_(host, non_blocking=True)
            with torch.cuda.stream(streams[1]):
                back.copy_(other, non_blocking=True)

        # Full duplex: both directions at once take clearly less than one after the other.
        full_duplex = clock.seconds(both, repeats) < 0.75 * (h2d + d2h)
    return nbytes / h2d / _GB, nbytes / d2h / _GB, latency * 1e6, full_duplex


def _gather_fit(clock, table_bytes, repeats):
    """(row latency ns, thread GB/s): one host thread gathering random rows of two sizes."""
    threads = torch.get_num_threads()
    torch.set_num_threads(1)
    try:
        per_row = []
        for row_bytes in GATHER_ROW_BYTES:
            table = torch.ones(table_bytes // row_bytes, row_bytes // 4)
            rows = torch.randint(len(table), (max(1, (64 << 20) // row_bytes // 16),))
            out = torch.empty(len(rows), table.shape[1])
            seconds = clock.seconds(lambda: torch.index_select(table, 0, rows, out=out), repeats)
            per_row.append(seconds / len(rows))
    finally:
        torch.set_num_threads(threads)
    (b1, b2), (t1, t2) = GATHER_ROW_BYTES, per_row
    bandwidth = (b2 - b1) / max(t2 - t1, 1e-12)
    latency = max(t1 - b1 / bandwidth, 1e-10)
    return latency * 1e9, bandwidth / _GB


def _copy_bandwidth(clock, device, nbytes, repeats):
    """Bytes read plus bytes written per second by a large copy (STREAM's Copy)."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / clock.seconds(lambda: dst.copy_(src), repeats) / _GB


def _device_gather(clock, device, table_bytes, repeats, row_bytes=256):
    table = torch.ones(table_bytes // row_bytes, row_bytes // 4, device=device)
    rows = torch.randint(len(table), (len(table) // 4,), device=device)
    seconds = clock.seconds(lambda: table[rows], repeats)
    return len(rows) * row_bytes / seconds / _GB


def _matmul_tflops(clock, device, m, k, n, dtype, repeats):
    a = torch.randn(m, k, device=device).to(dtype)
    b = torch.randn(k, n, device=device).to(dtype)
    return 2 * m * k * n / clock.seconds(lambda: a @ b, repeats) / 1e12


def _launch_us(clock, device, repeats):
    x = torch.zeros(1, device=device)
    return clock.seconds(lambda: x.add_(1), repeats, 200) * 1e6


def calibrate(device: str = "cpu", quick: bool = False) -> dict:
    """Measure this machine; returns the profile in the TOML layout (HardwareProfile.from_dict
    reads it)."""
    if device not in DEVICES:
        raise OptionError(f"device {device!r}: choose one of {', '.join(DEVICES)}")
    if device == "cuda" and not torch.cuda.is_available():
        raise OptionError("no CUDA device is available to this PyTorch; use --device cpu")
    dev = torch.device(device)
    clock = _Clock(dev)
    big = (32 if quick else 256) << 20  # bytes: well past the caches
    repeats = 3 if quick else 7
    h2d, d2h, latency, duplex = _link(clock, dev, big, repeats)
    row_latency, thread_bw = _gather_fit(clock, big, repeats)
    dram = _copy_bandwidth(clock, torch.device("cpu"), big, repeats)
    dram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    hbm = _copy_bandwidth(clock, dev, big, repeats) if clock.cuda else dram
    gather = _device_gather(clock, dev, big, repeats)
    size = (4096 if clock.cuda else 1024) // (2 if quick else 1)
    tflops = {"fp32": _matmul_tflops(clock, dev, size, size, size, torch.float32, repeats)}
    if clock.cuda:
        for name, dtype in (("fp16", torch.float16), ("bf16", torch.bfloat16)):
            tflops[name] = _matmul_tflops(clock, dev, 2 * size, 2 * size, 2 * size, dtype, repeats)
        allowed = torch.backends.cuda.matmul.allow_tf32
        torch.backends.cuda.matmul.allow_tf32 = True
        try:
            tflops["tf32"] = _matmul_tflops(clock, dev, size, size, size, torch.float32, repeats)
        finally:
            torch.backends.cuda.matmul.allow_tf32 = allowed
    # A DLRM-sized layer (batch 2048, 512 -> 256) against the large matmul's rate.
    mlp = _matmul_tflops(clock, dev, 2048, 512, 256, torch.float32, repeats)
    name = (torch.cuda.get_device_name(dev) if clock.cuda else "host CPU")
    hbm_gib = (torch.cuda.get_device_properties(dev).total_memory / 2**30 if clock.cuda
               else dram_gib)
    return {
        "name": f"calibrated-{device}",
        "description": f"measured by scratchsim calibrate on {name}, "
                       f"{datetime.date.today().isoformat()}",
        "link": {"h2d_gb_per_s": h2d, "d2h_gb_per_s": d2h, "latency_us": latency,
                 "full_duplex": duplex},
        "cpu": {"dram_gb_per_s": dram, "row_latency_ns": row_latency,
                "threads": torch.get_num_threads(), "thread_gb_per_s": thread_bw,
                "dram_capacity_gib": dram_gib},
        "gpu": {"hbm_gb_per_s": hbm, "gather_efficiency": min(1.0, gather / hbm),
                "mlp_efficiency": min(1.0, mlp / tflops["fp32"]),
                "launch_us": _launch_us(clock, dev, repeats), "hbm_capacity_gib": hbm_gib,
                "matrix_tflops": tflops},
    }


def _toml_value(value) -> str:
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, int):
        return str(value)
    if isinstance(value, float):
        return repr(float(f"{value:.6g}"))  # six digits, and always a TOML float
    return '"' + str(value).replace("\\", "\\\\").replace('"', '\\"') + '"'


def profile_toml(profile: dict) -> str:
    """The profile as TOML text in the presets' layout."""
    lines = ["# Measured by `scratchsim calibrate`: every number below is a median of timed",
             "# repeats on this machine (see simulator/backend/calibration.py for the benchmarks).",
             ""]
    for key, value in profile.items():
        if not isinstance(value, dict):
            lines.append(f"{key} = {_toml_value(value)}")
    for section, values in profile.items():
        if not isinstance(values, dict):
            continue
        lines += ["", f"[{section}]"]
        lines += [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
        for sub, table in ((k, v) for k, v in values.items() if isinstance(v, dict)):
            lines += ["", f"[{section}.{sub}]"]
            lines += [f"{k} = {_toml_value(v)}" for k, v in table.items()]
    return "\n".join(lines) + "\n"


def write_profile(profile: dict, path) -> Path:
    """Write the profile atomically and check that load_hardware reads it back."""
    path = Path(path)
    if path.suffix != ".toml":
        raise OptionError(f"{path}: the profile file must end in .toml")
    fd, tmp = tempfile.mkstemp(prefix=f".{path.name}.", suffix=".toml", dir=path.parent)
    try:
        with os.fdopen(fd, "w") as f:
            f.write(profile_toml(profile))
        load_hardware(tmp)
        os.replace(tmp, path)
    except BaseException:
        os.unlink(tmp)
        raise
    return path
