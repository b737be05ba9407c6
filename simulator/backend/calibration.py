"""`scratchsim calibrate`: measure what a HardwareProfile needs on this machine and write it as
a TOML profile in the layout of hardware/presets/*.toml, which load_hardware reads back.

Micro-benchmarks only, each of exactly what the timing model uses (calibration never runs the
validation grid); the function measuring each number says how: _link (the host link's
copies), _host_rows (host row gathers), _copy_bandwidth and _stream_gb_per_s (memory),
_row_efficiency (device gathers and scatters), _graph_kernel_us (a CUDA graph's kernels),
_gemm_grid, _batched_gemm_grid (the dot interaction's bmm, by product shape),
_segment_ns_per_key (the embedding backward's bookkeeping), _planner and dispatch_us (the
framework's cost per op).
On CUDA the link is the host link and the "gpu" section the device; on the CPU the "device"
is the host itself (kind = "cpu"), and its profile predicts the backend's CPU runs, as
`scratchsim validate --device cpu` checks.

Each number is the mean of a few timed repeats after a warm-up (see _Clock for why the mean).
"""

from __future__ import annotations

import datetime
import itertools
import os
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from .._atomic import atomic_path
from ..errors import OptionError
from ..hardware import HardwareProfile, load_hardware
from ..hardware.profile import BMM_LAYOUTS, GATHER_ROW_BYTES
from ..pipeline.ops import Costs, Op
from .base import check_device, torch

_GB = 1e9
HOST_ROW_BYTES = (64, 1024)  # two row sizes for the latency + bytes / bandwidth fit
COPY_BYTES = (1 << 16, 1 << 20, 16 << 20)
STREAM_BYTES = (1 << 18, 1 << 20, 4 << 20, 16 << 20)
# The GEMM grid (M, K, N): from DLRM's narrowest layers (a logit, 13 dense features) to wide
# ones, and from small batches to large.
GEMM_M = (16, 128, 1024, 8192)
GEMM_K = (1, 16, 128, 1024)
GEMM_N = (1, 16, 128, 1024)
QUICK_GEMM = (GEMM_M[:-1], GEMM_K, GEMM_N)  # the same grid without the largest products
DISPATCH_BATCHES = 60
SEGMENT_KEYS = (64, 1024, 16384, 262144)
# The sides of the batched products timed: the dot interaction multiplies (tables + 1) x dim
# matrices, and a CPU's kernels run a side just past a multiple of their vector width far
# slower per flop than one on it (9 against 8: twice the time), which no interpolation between
# powers of two sees; so the sides are those of common models: tables + 1 for 2, 8 and 26
# tables, embedding dims 16 and 64 (larger ones clamp to 64).
BATCHED_SIDES = (3, 9, 16, 27, 64)
BATCHED_PRODUCTS = 2048  # as many as a training batch has samples, fewer for large products


def _cache_bytes(private: bool) -> int:
    """The largest cache one core keeps to itself (L2 on most CPUs), or with private=False
    the largest of all (the last level), from sysfs."""
    sizes = []
    units = {"K": 1 << 10, "M": 1 << 20}
    for index in Path("/sys/devices/system/cpu/cpu0/cache").glob("index*"):
        try:
            shared = (index / "shared_cpu_list").read_text().strip()
            size = (index / "size").read_text().strip()
        except OSError:
            continue
        if size[-1:] in units and size[:-1].isdigit() and (
                not private or shared in ("0", "0-0")):
            sizes.append(int(size[:-1]) * units[size[-1]])
    return max(sizes, default=(2 << 20) if private else (32 << 20))


class _Clock:
    """Times a callable on the device: perf_counter after a synchronize (CUDA).

    On the CPU each call is timed cold: in a training step every op finds the caches holding
    the interpreter's and the other ops' data, not its own, so before each call the clock
    writes a buffer twice the core's private cache, and times the call alone (row ops on
    tables: twice the last-level cache, see _row_efficiency).

    A figure is the mean of its calls, not their median: the model adds up op times, and the
    typical time of a sum of a hundred ops is the sum of their means. On a shared machine an
    op's times have a long tail (its mean is 10-20% over its median), which a median leaves
    out and every training step pays."""

    def __init__(self, device, evict_private: bool = True):
        self.device = device
        self.cuda = device.type == "cuda"
        self.evict = None if self.cuda else torch.ones(2 * _cache_bytes(evict_private) // 4)

    def sync(self):
        if self.cuda:
            torch.cuda.synchronize(self.device)

    def seconds(self, fn, repeats: int, calls: int = 1) -> float:
        """Mean seconds of one call of fn over `repeats` repeats of `calls` calls."""
        fn()
        self.sync()
        samples = []
        for _ in range(repeats):
            total = 0.0
            for _ in range(calls if self.evict is not None else 1):
                if self.evict is not None:
                    self.evict.add_(1)
                start = time.perf_counter()
                for _ in range(1 if self.evict is not None else calls):
                    fn()
                self.sync()
                total += time.perf_counter() - start
            samples.append(total / calls)
        return statistics.fmean(samples)

    def calls_for(self, fn, budget: float = 2e-3) -> int:
        """Enough calls of fn to time about `budget` seconds per repeat (cold: at most 50,
        each paying for its eviction besides)."""
        calls = max(1, int(budget / max(self.seconds(fn, 1), 1e-7)))
        return calls if self.evict is None else min(calls, 50)

    def seconds_amortized(self, fn, repeats: int) -> float:
        """seconds() with calls_for(fn) calls per repeat."""
        return self.seconds(fn, repeats, self.calls_for(fn))


def _fit_line(x, t):
    """(intercept, slope) of the least-squares line t = intercept + slope * x, both >= 0."""
    slope, intercept = np.polyfit(np.asarray(x, float), np.asarray(t, float), 1)
    slope = max(float(slope), 1e-30)
    return max(float(intercept), 0.0), slope


def _link(clock, device, repeats):
    """(h2d GB/s, d2h GB/s, pageable GB/s, latency us, full duplex) of the host link: copies
    at several sizes fitted to latency + bytes / bandwidth."""
    cuda = clock.cuda
    fits = {}
    for direction in ("h2d", "d2h"):
        times = []
        for nbytes in COPY_BYTES:
            host = torch.empty(nbytes // 4, pin_memory=cuda)
            dev = torch.empty(nbytes // 4, device=device)
            src, dst = (host, dev) if direction == "h2d" else (dev, host)
            times.append(clock.seconds(lambda: dst.copy_(src, non_blocking=True), repeats,
                                       clock.calls_for(lambda: dst.copy_(src))))
        fits[direction] = _fit_line(COPY_BYTES, times)
    big = COPY_BYTES[-1]
    pageable_host, dev = torch.empty(big // 4), torch.empty(big // 4, device=device)
    pageable = big / clock.seconds(lambda: dev.copy_(pageable_host), repeats) / _GB
    full_duplex = False
    if cuda:
        host = torch.empty(big // 4, pin_memory=True)
        back = torch.empty(big // 4, pin_memory=True)
        other = torch.empty_like(dev)
        streams = torch.cuda.Stream(device), torch.cuda.Stream(device)

        def both():
            with torch.cuda.stream(streams[0]):
                dev.copy_(host, non_blocking=True)
            with torch.cuda.stream(streams[1]):
                back.copy_(other, non_blocking=True)

        one_way = sum(big * fits[d][1] for d in fits)
        # Full duplex: both directions at once take clearly less than one after the other.
        full_duplex = clock.seconds(both, repeats) < 0.75 * one_way
    latency = min(fits[d][0] for d in fits)
    return (1 / fits["h2d"][1] / _GB, 1 / fits["d2h"][1] / _GB, pageable, latency * 1e6,
            full_duplex)


def _host_rows(table_bytes, repeats):
    """(row latency ns, thread GB/s, DRAM GB/s): random row gathers with index_select at two
    row sizes on one thread, and of the large rows with every thread."""
    threads = torch.get_num_threads()
    cpu = _Clock(torch.device("cpu"))

    def per_row(row_bytes):
        table = torch.ones(table_bytes // row_bytes, row_bytes // 4)
        rows = torch.randint(len(table), (max(1, (64 << 20) // row_bytes // 16),))
        out = torch.empty(len(rows), table.shape[1])
        return cpu.seconds(lambda: torch.index_select(table, 0, rows, out=out),
                           repeats) / len(rows)

    torch.set_num_threads(1)
    try:
        one = [per_row(b) for b in HOST_ROW_BYTES]
    finally:
        torch.set_num_threads(threads)
    latency, seconds_per_byte = _fit_line(HOST_ROW_BYTES, one)
    every = per_row(HOST_ROW_BYTES[-1])
    return (latency * 1e9, 1 / seconds_per_byte / _GB,
            HOST_ROW_BYTES[-1] / every / _GB)


def _copy_bandwidth(clock, device, nbytes, repeats):
    """Bytes read plus bytes written per second by a large copy (STREAM's Copy)."""
    src = torch.ones(nbytes // 4, device=device)
    dst = torch.empty_like(src)
    return 2 * nbytes / clock.seconds(lambda: dst.copy_(src), repeats) / _GB


def _bare(clock, device, repeats):
    """Seconds of an op with no work, called in a loop (what every micro-benchmark's op
    costs besides its work)."""
    x = torch.zeros(1, device=device)
    return clock.seconds(lambda: x.add(x), repeats, 200)


def _graph_kernel_us(clock, device, bare, repeats, kernels: int = 200) -> float:
    """Microseconds of each kernel of a CUDA graph's replay with no work: `kernels` adds of
    one value captured in one graph, its replay timed, per kernel. At most the eager op's
    `bare` time (a graph never launches a kernel more slowly; the clamp keeps noise from
    saying otherwise). On the CPU there are no graphs: 0."""
    if not clock.cuda:
        return 0.0
    x = torch.zeros(1, device=device)
    stream = torch.cuda.Stream(device)
    stream.wait_stream(torch.cuda.current_stream(device))
    with torch.cuda.stream(stream):  # warm up on a side stream before capturing, as torch asks
        for _ in range(3):
            x.add_(1)
    torch.cuda.current_stream(device).wait_stream(stream)
    graph = torch.cuda.CUDAGraph()
    with torch.cuda.graph(graph):
        for _ in range(kernels):
            x.add_(1)
    return min(clock.seconds(graph.replay, repeats, 20) / kernels, bare) * 1e6


def _stream_gb_per_s(clock, device, repeats):
    """Elementwise add (two reads, one write) at several sizes: time = t0 + bytes / rate."""
    times = []
    for nbytes in STREAM_BYTES:
        x = torch.ones(nbytes // 4, device=device)
        y = torch.ones_like(x)
        out = torch.empty_like(x)
        times.append(clock.seconds_amortized(lambda: torch.add(x, y, out=out), repeats))
    return 1 / _fit_line([3 * nbytes for nbytes in STREAM_BYTES], times)[1] / _GB


def _row_efficiency(clock, device, table_bytes, memory_gb_per_s, bare, repeats):
    """({row bytes: efficiency} of gathers, the same of scatters): the backend's own ops over
    random rows of 16..512 bytes (index_select, index_copy_), against the memory bandwidth;
    the rows written densely (or read densely) count at that bandwidth. On the CPU each call
    finds the last-level cache evicted: a training step's other traffic leaves none of a big
    table's lines, nor the page-table entries of its rows, cached (timed after evicting only
    the core's own cache, an index_copy_ into a 200 MB table takes half what it does inside
    a training step: calibrate() hands this function such a clock)."""
    gathers, scatters = {}, {}
    for row_bytes in GATHER_ROW_BYTES:
        table = torch.ones(table_bytes // row_bytes, row_bytes // 4, device=device)
        rows = torch.randperm(len(table), device=device)[:(8 << 20) // row_bytes]
        values = torch.ones(len(rows), table.shape[1], device=device)
        dense = len(rows) * row_bytes / (memory_gb_per_s * _GB)
        for out, fn in ((gathers, lambda: torch.index_select(table, 0, rows)),
                        (scatters, lambda: table.index_copy_(0, rows, values))):
            seconds = max(clock.seconds(fn, repeats) - bare - dense, 1e-12)
            out[str(row_bytes)] = float(min(1.0, len(rows) * row_bytes / seconds / _GB
                                            / memory_gb_per_s))
    return gathers, scatters


def _segment_ns_per_key(clock, device, bare, repeats, profile_rows, keys=SEGMENT_KEYS):
    """The embedding backward's time per lookup besides its rows (sorting ids, finding bags
    and runs), at several lookup counts: embedding_bag's backward (one lookup a bag, half as
    many distinct rows of 16 bytes) timed, less what the model charges for the rows
    (profile_rows(lookups, distinct))."""
    import torch.nn.functional as F
    out = {}
    for count in keys:
        ids = torch.randint(count // 2, (count,), device=device)
        offsets = torch.arange(count, device=device)
        weight = torch.ones(count // 2, 4, device=device, requires_grad=True)
        pooled = F.embedding_bag(ids, weight, offsets, mode="sum")
        grad = torch.ones_like(pooled)

        def backward():
            torch.autograd.grad(pooled, weight, grad, retain_graph=True)

        seconds = clock.seconds_amortized(backward, repeats) - bare
        rest = max(seconds - profile_rows(count, count // 2), 1e-12)
        out[str(count)] = rest / count * 1e9
    return out


def _batched_gemm_grid(clock, device, bare, repeats):
    """{layout: {"MxKxN": ns}}: the device time of each product of a bmm of BATCHED_SIDES-sized
    products with operands laid out as the layout says (BMM_LAYOUTS: a "t" operand is the
    transposed view of a contiguous one, as autograd hands the dot interaction's features to
    its products), cold, less the bare op's: BATCHED_PRODUCTS products, or as many as make
    16 Mflop (at least 16)."""
    out = {}
    for layout in BMM_LAYOUTS:
        grid = out[layout] = {}
        for m, k, n in itertools.product(BATCHED_SIDES, repeat=3):
            products = int(np.clip((1 << 23) // (m * k * n), 16, BATCHED_PRODUCTS))
            a = (torch.randn(products, k, m, device=device).transpose(1, 2) if layout[0] == "t"
                 else torch.randn(products, m, k, device=device))
            b = (torch.randn(products, n, k, device=device).transpose(1, 2) if layout[1] == "t"
                 else torch.randn(products, k, n, device=device))
            # One call a repeat: even the smallest (3x3x3 products) takes tens of microseconds.
            seconds = clock.seconds(lambda: torch.bmm(a, b), repeats) - bare
            grid[f"{m}x{k}x{n}"] = max(seconds, 1e-12) / products * 1e9
    return out


def _gemm_grid(clock, device, dtype, shapes, bare, repeats):
    """(peak TFLOP/s, {"MxKxN": efficiency}): addmm over the grid, each time less the bare
    op's, against the best rate of the shapes whose work outweighs the bare op (a time near
    the bare op's, less it, is noise: a 1024x1x1024 product timed a little fast would set a
    peak of thousands of TFLOP/s and scale every efficiency of that calibration down)."""
    timed = {}  # shape -> (flops, seconds less the bare op's, seconds)
    for m, k, n in itertools.product(*shapes):
        a = torch.randn(m, k, device=device).to(dtype)
        b = torch.randn(k, n, device=device).to(dtype)
        bias = torch.randn(n, device=device).to(dtype)
        seconds = clock.seconds_amortized(lambda: torch.addmm(bias, a, b), repeats)
        timed[f"{m}x{k}x{n}"] = (2 * m * k * n, seconds - bare, seconds)
    rates = {s: flops / max(work, 1e-9) for s, (flops, work, _) in timed.items()}
    peak = max((rates[s] for s, (_, work, seconds) in timed.items() if work >= seconds / 2),
               default=max(rates.values()))
    return peak / 1e12, {s: float(min(1.0, max(r / peak, 1e-6))) for s, r in rates.items()}


def _planner(repeats: int, sizes=(256, 4096), batches: int = 30):
    """(us per batch, ns per row): the backend's planner (planner.py, lookahead 2, LRU) on
    random batches of two sizes, each planned with the caches evicted first, fitted to time =
    fixed + rows probed or placed x per row. Its directory has a slot entry for every row of
    the tables: it has as many rows as make it twice the last-level cache, as a real trace's
    tables do (with a directory in the cache, a probe costs a third of what it does in a
    training run), and between two batches the whole cache is evicted, as a training step's
    traffic does."""
    from .planner import Planner
    rng = np.random.default_rng(0)
    evict = _Clock(torch.device("cpu"), evict_private=False).evict
    total = max(20 * max(sizes), 2 * _cache_bytes(private=False) // 8)  # int64 slot entries
    rows_handled, seconds = [], []
    for size in sizes:
        planner = Planner(total, 8 * size, lookahead=2)
        stream = [rng.choice(total, size, replace=False) for _ in range(2 * batches)]
        for j in range(batches):  # fill the store: the timed batches evict
            planner.plan(j, stream[j])
        times, handled = [], []
        for j in range(batches, 2 * batches):
            evict.add_(1)  # cold, as between the batches of a training run
            start = time.perf_counter()
            plan = planner.plan(j, stream[j])
            times.append(time.perf_counter() - start)
            handled.append(size + len(plan.missing))
        rows_handled.append(float(np.mean(handled)))
        seconds.append(float(np.mean(times)))  # the mean, as _Clock's (see there)
    fixed, per_row = _fit_line(rows_handled, seconds)
    return fixed * 1e6, per_row * 1e9


def dispatch_us(device: str, repeats: int = 5) -> float:
    """Microseconds per framework op of the real training step at batch 1 (gpu-only), where
    the ops have no work left: the median iteration time over the ops it dispatches."""
    from torch.utils._python_dispatch import TorchDispatchMode

    from ..trace import generate
    from . import train

    class _Count(TorchDispatchMode):
        ops = 0

        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            _Count.ops += 1
            return func(*args, **(kwargs or {}))

    with tempfile.TemporaryDirectory() as tmp:
        trace = generate("zipf", Path(tmp) / "t", table_rows=[1000, 1000], batch_size=1,
                         num_batches=DISPATCH_BATCHES, seed=0, show_progress=False)
        with _Count():
            train(trace, "gpu-only", device=device, iterations=1)
        setup = _Count.ops
        _Count.ops = 0
        with _Count():
            train(trace, "gpu-only", device=device, iterations=11)
        per_iteration = (_Count.ops - setup) / 10
        seconds = statistics.median(
            float(np.median(train(trace, "gpu-only", device=device).iteration_seconds[10:]))
            for _ in range(repeats))
    return seconds / per_iteration * 1e6


def calibrate(device: str = "cpu", quick: bool = False, repeats: int = 5) -> dict:
    """Measure this machine; returns the profile in the TOML layout (HardwareProfile.from_dict
    reads it). repeats: timed repeats of every micro-benchmark, each figure their mean."""
    check_device(device)
    dev = torch.device(device)
    clock = _Clock(dev)
    big = 128 << 20  # bytes: past the private caches, as a training step's data is
    h2d, d2h, pageable, latency, duplex = _link(clock, dev, repeats)
    row_latency, thread_bw, dram = _host_rows(big, repeats)
    dram_gib = os.sysconf("SC_PAGE_SIZE") * os.sysconf("SC_PHYS_PAGES") / 2**30
    memory = _copy_bandwidth(clock, dev, big, repeats)
    bare = _bare(clock, dev, repeats)
    stream = _stream_gb_per_s(clock, dev, repeats)
    tables = clock if clock.cuda else _Clock(dev, evict_private=False)  # see _row_efficiency
    gather, scatter = _row_efficiency(tables, dev, big, memory, bare, repeats)
    shapes = QUICK_GEMM if quick else (GEMM_M, GEMM_K, GEMM_N)
    precisions = {"fp32": torch.float32}
    if clock.cuda:
        precisions.update(fp16=torch.float16, bf16=torch.bfloat16)
    tflops, gemm = {}, {}
    for name, dtype in precisions.items():
        tflops[name], gemm[name] = _gemm_grid(clock, dev, dtype, shapes, bare, repeats)
    plan_us, plan_row_ns = _planner(repeats)
    name = (torch.cuda.get_device_name(dev) if clock.cuda else "host CPU")
    hbm_gib = (torch.cuda.get_device_properties(dev).total_memory / 2**30 if clock.cuda
               else dram_gib)
    profile = {
        "name": f"calibrated-{device}",
        "description": f"measured by scratchsim calibrate on {name}, "
                       f"{torch.get_num_threads()} threads, "
                       f"{datetime.date.today().isoformat()}",
        "kind": device,
        "link": {"h2d_gb_per_s": h2d, "d2h_gb_per_s": d2h, "pageable_gb_per_s": pageable,
                 "latency_us": latency, "full_duplex": duplex},
        "cpu": {"dram_gb_per_s": dram, "row_latency_ns": row_latency,
                "threads": torch.get_num_threads(), "thread_gb_per_s": thread_bw,
                "dram_capacity_gib": dram_gib, "dispatch_us": dispatch_us(device, repeats),
                "plan_us": plan_us, "plan_row_ns": plan_row_ns},
        # On the CPU a kernel's fixed cost is part of its dispatch: launch_us is 0.
        "gpu": {"hbm_gb_per_s": memory, "stream_efficiency": min(1.0, stream / memory),
                "launch_us": bare * 1e6 if clock.cuda else 0.0,
                "graph_kernel_us": _graph_kernel_us(clock, dev, bare, repeats),
                "batched_gemm_ns": _batched_gemm_grid(clock, dev, bare, repeats),
                "hbm_capacity_gib": hbm_gib, "gather_efficiency": gather,
                "scatter_efficiency": scatter, "segment_ns_per_key": {"1": 1.0},
                "matrix_tflops": tflops, "gemm_efficiency": gemm},
    }
    # The embedding backward's bookkeeping is what its time leaves beside the row traffic the
    # model charges it with the profile measured so far (pipeline.ops.Costs.rows_time: its
    # rows are the batch's own, a small tensor).
    prices = Costs(HardwareProfile.from_dict(profile, source="calibration"))
    segment = Op("_embedding_bag_backward", "segment", row_bytes=16, local=True)

    def rows(lookups, distinct):
        return float(prices.rows_time(segment, lookups, "gather")
                     + prices.rows_time(segment, distinct, "scatter"))

    profile["gpu"]["segment_ns_per_key"] = _segment_ns_per_key(clock, dev, bare, repeats, rows)
    return profile


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
    def table(prefix, values):
        """The values of a table, then each of its subtables under its header."""
        out = [f"{k} = {_toml_value(v)}" for k, v in values.items() if not isinstance(v, dict)]
        for key, inner in values.items():
            if isinstance(inner, dict):
                name = f"{prefix}.{key}" if prefix else key
                out += ["", f"[{name}]"] + table(name, inner)
        return out

    lines = ["# Measured by `scratchsim calibrate`: every number below is a mean of timed",
             "# repeats on this machine (see simulator/backend/calibration.py for the benchmarks).",
             ""]
    return "\n".join(lines + table("", profile)) + "\n"


def write_profile(profile: dict, path) -> Path:
    """Write the profile atomically and check that load_hardware reads it back."""
    path = Path(path)
    if path.suffix != ".toml":
        raise OptionError(f"{path}: the profile file must end in .toml")
    with atomic_path(path) as tmp:
        tmp.write_text(profile_toml(profile))
        load_hardware(tmp)
    return path
