"""Hardware profiles: the speeds and sizes of one training device, its host link and its host,
read from TOML, and the cost functions the timing pipeline charges its ops with.

A profile file has a kind and three sections; every key is required (the numbers are data,
each preset cites its source beside it):

    name = "a100-pcie4"            # optional, defaults to the file name
    description = "..."            # optional
    kind = "cuda"                  # cuda: a host thread feeds a GPU's streams, which overlap;
                                   # cpu: the "device" is the host itself, one resource runs
                                   # every op in order and nothing crosses a link

    [link]                         # host <-> GPU: PCIe, or NVLink-C2C on Grace Hopper
    h2d_gb_per_s, d2h_gb_per_s     # ACHIEVED copy bandwidth of pinned memory, not the peak
    pageable_gb_per_s              # achieved copy bandwidth from or to pageable memory
    latency_us                     # fixed cost of one transfer (DMA setup and completion)
    full_duplex                    # can H2D and D2H run at full speed at the same time?

    [cpu]                          # the socket the GPU hangs off
    dram_gb_per_s                  # achieved (STREAM-like) bandwidth of that socket
    row_latency_ns                 # time one thread waits per random row (see cpu_gather_time)
    threads                        # that socket's threads that gather and scatter rows
    thread_gb_per_s                # streaming bandwidth one thread reaches
    dram_capacity_gib
    dispatch_us                    # host time to issue one framework op (Python, autograd,
                                   # the dispatcher, the launch call) when it has no work
    plan_us, plan_row_ns           # the cache planner's (backend/planner.py) time per batch
                                   # and per row it probes or places, on one thread

    [gpu]                          # the training device (on kind = "cpu": the host's cores)
    hbm_gb_per_s                   # peak memory bandwidth
    stream_efficiency              # fraction of it that elementwise ops (read, write) reach
    launch_us                      # device time of one kernel with no work, launched eagerly
                                   # (back to back on a stream)
    graph_kernel_us                # the same for each kernel of a CUDA graph's replay (at
                                   # most launch_us; 0 on kind = "cpu", which has no graphs)
    batched_gemm_ns                # a batched GEMM's (bmm) time per product: a number, the
                                   # time besides its flops (priced at the stacked shape's
                                   # efficiency); or, as calibration measures it, tables by
                                   # the operands' layout (nn; nt: the second transposed, tn:
                                   # the first) of "MxKxN" = ns by the product's shape, the
                                   # whole time of each product (grids, log-interpolated):
                                   # small products of one shape or layout and another differ
                                   # by far more than their flops
    hbm_capacity_gib
    [gpu.gather_efficiency]        # fraction of hbm_gb_per_s that random row gathers reach,
    16, 64, 256, 512 (bytes a row) # by row size (log-interpolated between, clamped outside)
    [gpu.scatter_efficiency]       # the same for writing rows in place (index_copy_), the
    16, 64, 256, 512               # row's bytes counted once
    [gpu.segment_ns_per_key]       # the embedding backward's time per lookup besides its rows:
    1024, 16384, 262144 (lookups)  # sorting the ids, finding each one's bag and run (at that
                                   # many lookups, log-interpolated between)
    [gpu.matrix_tflops]            # dense peak per precision; fp32 required, others optional
    fp32, tf32, fp16, bf16
    [gpu.gemm_efficiency.fp32]     # per precision of matrix_tflops: fraction of its peak that
    "128x16x16" = 0.01             # a GEMM of shape MxKxN reaches; the shapes form a grid
    ...                            # (every M with every K and N), log-interpolated between

Units: GB = 1e9 bytes for bandwidths; capacities are in GiB (2**30 bytes), as vendors count
memory sizes. Every cost function returns seconds, takes a number or a numpy array (one entry
per batch), and costs nothing -- not even a latency or a launch -- for zero work.
"""

from __future__ import annotations

import dataclasses
import math
from dataclasses import dataclass, field
from pathlib import Path

import numpy as np

from .._presets import load_preset, preset_names
from ..errors import OptionError

PRESET_DIR = Path(__file__).parent / "presets"
KINDS = ("cuda", "cpu")
DIRECTIONS = ("h2d", "d2h")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
GATHER_ROW_BYTES = (16, 64, 256, 512)
# The operands of a batched product: nn both contiguous, nt the second a transposed view, tn
# the first (the dot interaction's forward is nt, its backward nn and tn).
BMM_LAYOUTS = ("nn", "nt", "tn")
# Overrides that multiply groups of bandwidths (see HardwareProfile.scaled).
SCALES = ("pcie_scale", "dram_scale", "hbm_scale")
# A scatter reads each row before writing it: an optimizer update is a read-modify-write, and
# overwriting a row through the caches reads its lines first (write-allocate). Twice the bytes.
READ_MODIFY_WRITE = 2
_GB = 1e9


def _spec(kind: type, check: str = "positive") -> dict:
    """Field metadata: a value's type and allowed range."""
    return {"kind": kind, "check": check}


@dataclass(frozen=True)
class HardwareProfile:
    """One machine: a training device, its link to the host, and the host's CPUs and DRAM.
    Field names are <section>_<key> of the TOML file (see the module docstring)."""

    name: str
    description: str
    source: str
    kind: str
    link_h2d_gb_per_s: float = field(metadata=_spec(float))
    link_d2h_gb_per_s: float = field(metadata=_spec(float))
    link_pageable_gb_per_s: float = field(metadata=_spec(float))
    link_latency_us: float = field(metadata=_spec(float, "non-negative"))
    link_full_duplex: bool = field(metadata=_spec(bool, "any"))
    cpu_dram_gb_per_s: float = field(metadata=_spec(float))
    cpu_row_latency_ns: float = field(metadata=_spec(float, "non-negative"))
    cpu_threads: int = field(metadata=_spec(int))
    cpu_thread_gb_per_s: float = field(metadata=_spec(float))
    cpu_dram_capacity_gib: float = field(metadata=_spec(float))
    cpu_dispatch_us: float = field(metadata=_spec(float, "non-negative"))
    cpu_plan_us: float = field(metadata=_spec(float, "non-negative"))
    cpu_plan_row_ns: float = field(metadata=_spec(float, "non-negative"))
    gpu_hbm_gb_per_s: float = field(metadata=_spec(float))
    gpu_stream_efficiency: float = field(metadata=_spec(float, "fraction"))
    gpu_launch_us: float = field(metadata=_spec(float, "non-negative"))
    gpu_graph_kernel_us: float = field(metadata=_spec(float, "non-negative"))
    gpu_hbm_capacity_gib: float = field(metadata=_spec(float))
    gpu_batched_gemm_ns: object = field(metadata=_spec(float, "ns or ns by shape"))
    gpu_gather_efficiency: dict = field(metadata=_spec(dict, "by row bytes"))
    gpu_scatter_efficiency: dict = field(metadata=_spec(dict, "by row bytes"))
    gpu_segment_ns_per_key: dict = field(metadata=_spec(dict, "by keys"))
    gpu_matrix_tflops: dict = field(metadata=_spec(dict, "tflops"))
    gpu_gemm_efficiency: dict = field(metadata=_spec(dict, "gemm grids"))

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "HardwareProfile":
        """Build and validate a profile from the TOML layout (kind; sections link, cpu, gpu),
        as load_hardware reads it and to_dict writes it."""
        if not isinstance(data, dict):
            raise OptionError(f"{source or '<dict>'}: a hardware profile is a table of sections")
        source = source or str(data.get("source", "<dict>"))
        if data.get("kind") not in KINDS:
            raise OptionError(f"{source}: kind must be one of {', '.join(KINDS)} (the device "
                              f"the profile describes), got {data.get('kind')!r}")
        values = {"name": str(data.get("name", Path(source).stem)),
                  "description": str(data.get("description", "")), "source": source,
                  "kind": data["kind"]}
        expected = {}
        for f in _value_fields():
            section, key = f.name.split("_", 1)
            expected.setdefault(section, {})[key] = f
        for top in data:
            if top not in expected and top not in ("name", "description", "source", "kind"):
                raise OptionError(f"{source}: unknown key {top!r}; the known sections are "
                                  f"{', '.join(expected)} (and name, description, kind)")
        for section, keys in expected.items():
            table = data.get(section)
            if not isinstance(table, dict):
                raise OptionError(f"{source}: missing section [{section}]")
            for key in table:
                if key not in keys:
                    raise OptionError(f"{source}: unknown key [{section}] {key}; known keys: "
                                      f"{', '.join(keys)}")
            for key, f in keys.items():
                if key not in table:
                    raise OptionError(f"{source}: missing key [{section}] {key}")
                values[f.name] = _checked(table[key], f, f"{source}: [{section}] {key}")
        grids, peaks = set(values["gpu_gemm_efficiency"]), set(values["gpu_matrix_tflops"])
        if grids - peaks:
            raise OptionError(f"{source}: [gpu.gemm_efficiency] has a grid for "
                              f"{', '.join(sorted(grids - peaks))} but [gpu.matrix_tflops] no "
                              "peak; give both or neither")
        if peaks - grids:
            raise OptionError(f"{source}: [gpu.gemm_efficiency] has no grid for "
                              f"{', '.join(sorted(peaks - grids))}; give one per precision of "
                              "[gpu.matrix_tflops]")
        if values["gpu_graph_kernel_us"] > values["gpu_launch_us"]:
            raise OptionError(f"{source}: [gpu] graph_kernel_us "
                              f"({values['gpu_graph_kernel_us']:g}) exceeds launch_us "
                              f"({values['gpu_launch_us']:g}); a graph's kernel costs at most "
                              "an eager one's: lower it to launch_us at most")
        return cls(**values)

    # -- the cost functions (seconds) ----------------------------------------------------------
    def transfer_time(self, nbytes, direction: str, pinned: bool = True):
        """One copy of nbytes over the host link: latency + bytes / achieved bandwidth.
        direction: 'h2d' (host to GPU) or 'd2h'; pinned: from or to page-locked memory (a
        pageable copy is staged by the driver, at pageable_gb_per_s). On kind = "cpu" nothing
        crosses a link: the "device" is the host, and a copy to it is no copy at all."""
        if direction not in DIRECTIONS:
            raise OptionError(f"transfer direction {direction!r}: choose one of "
                              f"{', '.join(DIRECTIONS)}")
        bandwidth = (self.link_pageable_gb_per_s if not pinned else
                     self.link_h2d_gb_per_s if direction == "h2d" else self.link_d2h_gb_per_s)
        nbytes = np.asarray(nbytes, dtype=np.float64)
        if self.kind == "cpu":
            nbytes = 0 * nbytes
        return _free_when_idle(nbytes, self.link_latency_us * 1e-6 + nbytes / (bandwidth * _GB))

    def cpu_gather_time(self, rows, row_bytes):
        """CPU threads copy `rows` random rows of row_bytes each (e.g. into a pinned buffer).

            time = max(rows * (row_latency + row_bytes / thread_bandwidth) / threads,
                       rows * row_bytes / dram_bandwidth)

        The first term is the threads' own pace: each row costs a thread the memory latency
        it cannot hide (row_latency_ns: the DRAM latency left after the misses a core overlaps)
        plus the time to stream the row's bytes at thread_gb_per_s; `threads` share the rows.
        Small rows are latency-bound by it. The second term is the host's DRAM bandwidth, the
        limit that large rows reach when enough threads stream."""
        rows = np.asarray(rows, dtype=np.float64)
        row_bytes = np.asarray(row_bytes, dtype=np.float64)
        per_thread = rows * (self.cpu_row_latency_ns * 1e-9
                             + row_bytes / (self.cpu_thread_gb_per_s * _GB)) / self.cpu_threads
        dram_bound = rows * row_bytes / (self.cpu_dram_gb_per_s * _GB)
        return _free_when_idle(rows, np.maximum(per_thread, dram_bound))

    def cpu_scatter_time(self, rows, row_bytes):
        """CPU threads write `rows` random rows back (an optimizer update or an evicted row's
        write-back): as cpu_gather_time, but every byte is read and written (READ_MODIFY_WRITE),
        while the latency is paid once per row (the write does not wait). Pass row_bytes with
        the optimizer state when the state is updated with the row."""
        return self.cpu_gather_time(rows, READ_MODIFY_WRITE * np.asarray(row_bytes, np.float64))

    def gather_efficiency(self, row_bytes, table=None):
        """The fraction of hbm_gb_per_s a random row gather (or, given the scatter table, a
        scatter) reaches at this row size: interpolated in log(row bytes) between the
        profile's sizes, clamped outside them."""
        table = self.gpu_gather_efficiency if table is None else table
        sizes = sorted(table)
        return np.interp(np.log2(np.maximum(row_bytes, 1)), np.log2(sizes),
                         [table[s] for s in sizes])

    def gpu_gather_time(self, rows, row_bytes):
        """Device memory time of gathering `rows` random rows of row_bytes (no launch: the
        per-op costs are charged by the op that does it)."""
        return self._rows_time(rows, row_bytes, self.gpu_gather_efficiency)

    def gpu_scatter_time(self, rows, row_bytes):
        """Device memory time of writing `rows` random rows of row_bytes in place."""
        return self._rows_time(rows, row_bytes, self.gpu_scatter_efficiency)

    def _rows_time(self, rows, row_bytes, table):
        rows = np.asarray(rows, dtype=np.float64)
        bandwidth = self.gpu_hbm_gb_per_s * self.gather_efficiency(row_bytes, table) * _GB
        return _free_when_idle(rows, rows * row_bytes / bandwidth)

    def segment_time(self, keys):
        """Device time of the embedding backward's bookkeeping for `keys` lookups (sorting
        their ids, finding bags and runs): keys x the profile's time per key at that count
        (interpolated in log-log between its counts, clamped outside them)."""
        keys = np.asarray(keys, dtype=np.float64)
        counts = sorted(self.gpu_segment_ns_per_key)
        per_key = np.exp(np.interp(np.log(np.maximum(keys, 1)), np.log(counts),
                                   np.log([self.gpu_segment_ns_per_key[c] for c in counts])))
        return _free_when_idle(keys, keys * per_key * 1e-9)

    def stream_time(self, nbytes):
        """Device memory time of an elementwise op that reads and writes nbytes in all."""
        nbytes = np.asarray(nbytes, dtype=np.float64)
        return _free_when_idle(nbytes, nbytes / (self.gpu_hbm_gb_per_s * _GB
                                                 * self.gpu_stream_efficiency))

    def gemm_efficiency(self, m, k, n, precision: str = "fp32"):
        """The fraction of the matrix peak an (m x k) @ (k x n) product reaches: trilinear
        interpolation of the profile's grid in log(m), log(k), log(n), clamped to its edges."""
        if precision not in self.gpu_matrix_tflops:
            raise OptionError(f"hardware {self.name} has no {precision} matrix throughput; "
                              f"choose one of {', '.join(self.gpu_matrix_tflops)}")
        axes, table = _grid(self.gpu_gemm_efficiency[precision])
        point = [np.log2(np.maximum(np.asarray(x, float), 1)) for x in (m, k, n)]
        return _interp3(axes, table, point)

    def compute_time(self, flops, m, k, n, precision: str = "fp32"):
        """Matrix-unit time of `flops` of GEMMs of shape (m, k, n): flops / (the precision's
        peak x gemm_efficiency(m, k, n))."""
        rate = (self.gemm_efficiency(m, k, n, precision)
                * self.gpu_matrix_tflops[precision] * 1e12)
        flops = np.asarray(flops, dtype=np.float64)
        return _free_when_idle(flops, flops / rate)

    @property
    def batched_gemm_by_shape(self) -> bool:
        """Whether batched_gemm_ns has tables by product shape (else one number)."""
        return isinstance(self.gpu_batched_gemm_ns, dict)

    def batched_gemm_time(self, products, m, k, n, layout: str = "nn"):
        """Device time of a batched GEMM of `products` products of (m x k) by (k x n) each
        with operands in `layout` (BMM_LAYOUTS), besides its launch, from the batched_gemm_ns
        table of that layout (nn's when the profile has none for it): products x its ns at
        (m, k, n), interpolated in log-log, clamped to its grid. (With one number, the op
        prices the flops itself: see pipeline/ops.py.)"""
        if not self.batched_gemm_by_shape:
            raise ValueError(f"{self.name}: batched_gemm_ns is one number, not a table")
        products = np.asarray(products, dtype=np.float64)
        tables = self.gpu_batched_gemm_ns
        axes, table = _grid(tables.get(layout, tables["nn"]))
        point = [np.log2(np.maximum(np.asarray(x, float), 1)) for x in (m, k, n)]
        ns = np.exp(_interp3(axes, np.log(table), point))
        return _free_when_idle(products, products * ns * 1e-9)

    def plan_time(self, rows):
        """The host planner's time for a batch whose distinct rows plus misses are `rows`."""
        rows = np.asarray(rows, dtype=np.float64)
        return _free_when_idle(rows, self.cpu_plan_us * 1e-6 + rows * self.cpu_plan_row_ns * 1e-9)

    def dispatch_time(self, ops):
        """Host time to issue `ops` framework ops."""
        ops = np.asarray(ops, dtype=np.float64)
        return _free_when_idle(ops, ops * self.cpu_dispatch_us * 1e-6)

    # -- capacities ------------------------------------------------------------------------
    @property
    def hbm_capacity_bytes(self) -> int:
        return int(self.gpu_hbm_capacity_gib * 2**30)

    @property
    def dram_capacity_bytes(self) -> int:
        return int(self.cpu_dram_capacity_gib * 2**30)

    # -- variants and output -----------------------------------------------------------------
    def scaled(self, pcie: float = 1.0, dram: float = 1.0, hbm: float = 1.0) -> "HardwareProfile":
        """A copy with bandwidths multiplied (the overrides pcie_scale, dram_scale, hbm_scale):
        pcie scales the host link (both directions; on GH200 the link is NVLink-C2C), dram the
        host DRAM and per-thread bandwidths, hbm the HBM bandwidth. Latencies and capacities
        are unchanged."""
        for label, factor in (("pcie", pcie), ("dram", dram), ("hbm", hbm)):
            if isinstance(factor, bool) or not isinstance(factor, (int, float)) or factor <= 0:
                raise OptionError(f"the {label} scale factor must be positive, got {factor}")
        return dataclasses.replace(
            self,
            link_h2d_gb_per_s=self.link_h2d_gb_per_s * pcie,
            link_d2h_gb_per_s=self.link_d2h_gb_per_s * pcie,
            link_pageable_gb_per_s=self.link_pageable_gb_per_s * pcie,
            cpu_dram_gb_per_s=self.cpu_dram_gb_per_s * dram,
            cpu_thread_gb_per_s=self.cpu_thread_gb_per_s * dram,
            gpu_hbm_gb_per_s=self.gpu_hbm_gb_per_s * hbm)

    def to_dict(self) -> dict:
        """The profile in the TOML layout (from_dict reads it back), plus its source."""
        out = {"name": self.name, "description": self.description, "source": self.source,
               "kind": self.kind}
        for f in _value_fields():
            value = getattr(self, f.name)
            if isinstance(value, dict):  # string keys (row bytes, key counts); copies of ours
                value = {str(k): dict(v) if isinstance(v, dict) else v for k, v in value.items()}
            section, key = f.name.split("_", 1)
            out.setdefault(section, {})[key] = value
        return out

    def describe(self) -> str:
        """Readable multi-line text for `scratchsim hardware show`."""
        duplex = "full duplex" if self.link_full_duplex else "half duplex"
        tflops = ", ".join(f"{p} {t:g}" for p, t in self.gpu_matrix_tflops.items())
        gathers = ", ".join(f"{e:.0%} at {b} B" for b, e in sorted(self.gpu_gather_efficiency.items()))
        gemms = ", ".join(f"{p} {min(g.values()):.0%}-{max(g.values()):.0%}"
                          for p, g in self.gpu_gemm_efficiency.items())
        device = "GPU" if self.kind == "cuda" else "the host's cores (kind cpu: all in order)"
        lines = [
            f"{self.name}: {self.description}" if self.description else self.name,
            f"  link  H2D {self.link_h2d_gb_per_s:g} GB/s, D2H {self.link_d2h_gb_per_s:g} GB/s "
            f"(pinned, achieved), pageable {self.link_pageable_gb_per_s:g} GB/s, latency "
            f"{self.link_latency_us:g} us, {duplex}",
            f"  cpu   DRAM {self.cpu_dram_gb_per_s:g} GB/s, {self.cpu_dram_capacity_gib:g} GiB; "
            f"{self.cpu_threads} threads x {self.cpu_thread_gb_per_s:g} GB/s, "
            f"{self.cpu_row_latency_ns:g} ns per random row; {self.cpu_dispatch_us:g} us to "
            f"dispatch an op; planning {self.cpu_plan_us:g} us + {self.cpu_plan_row_ns:g} ns a row",
            f"  gpu   {device}: memory {self.gpu_hbm_gb_per_s:g} GB/s ({self.gpu_stream_efficiency:.0%} "
            f"elementwise; gathers {gathers}), {self.gpu_hbm_capacity_gib:g} GiB; "
            f"{self.gpu_launch_us:g} us a kernel ({self.gpu_graph_kernel_us:g} in a CUDA graph)",
            f"        matrix TFLOP/s {tflops}; GEMM efficiency by shape {gemms}",
            f"  from  {self.source}",
        ]
        return "\n".join(lines)


def _value_fields():
    return [f for f in dataclasses.fields(HardwareProfile) if f.metadata]


def _checked(value, f, where: str):
    kind, check = f.metadata["kind"], f.metadata["check"]
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{where} must be true or false, got {value!r}")
        return value
    if check in ("tflops", "gemm grids"):  # one entry per precision
        if check == "tflops" and not (isinstance(value, dict) and "fp32" in value):
            raise OptionError(f"{where} must be a table of TFLOP/s per precision with at least "
                              f"fp32 (precisions: {', '.join(PRECISIONS)})")
        if not isinstance(value, dict):
            raise OptionError(f"{where} must have one table per precision of MxKxN = efficiency")
        out = {}
        for precision, entry in value.items():
            if precision not in PRECISIONS:
                raise OptionError(f"{where}: unknown precision {precision!r}; known: "
                                  f"{', '.join(PRECISIONS)}")
            if check == "tflops":
                out[precision] = _checked_number(entry, float, "positive", f"{where} {precision}")
            else:
                out[precision] = _checked_grid(entry, f"{where}.{precision}")
        return out
    if check == "ns or ns by shape":
        if not isinstance(value, dict):
            return _checked_number(value, float, "non-negative", where)
        if "nn" not in value or set(value) - set(BMM_LAYOUTS):
            raise OptionError(f"{where} must be one number, or tables by operand layout "
                              f"(nn required; {', '.join(BMM_LAYOUTS)}) of \"MxKxN\" = ns")
        return {layout: _checked_grid(grid, f"{where}.{layout}", "positive", "ns a product")
                for layout, grid in value.items()}
    if check in ("by row bytes", "by keys"):
        what, example, value_check = (
            ("efficiencies by row bytes", " ".join(f"{b} = 0.5" for b in GATHER_ROW_BYTES),
             "fraction") if check == "by row bytes"
            else ("nanoseconds per key by key count", "1024 = 20 16384 = 2", "positive"))
        if not isinstance(value, dict) or not value:
            raise OptionError(f"{where} must be a table of {what}, e.g. {example}")
        out = {}
        for size, number in value.items():
            if not (str(size).isascii() and str(size).isdigit()) or int(size) <= 0:
                raise OptionError(f"{where}: {size!r} is not a positive whole number")
            out[int(size)] = _checked_number(number, float, value_check, f"{where} {size}")
        return out
    return _checked_number(value, kind, check, where)


def _checked_grid(table, where: str, value_check: str = "fraction",
                  what: str = "efficiency") -> dict:
    """A grid by GEMM shape: "MxKxN" = a fraction (an efficiency; or, with value_check, another
    number), for every M with every K and N."""
    if not isinstance(table, dict) or not table:
        raise OptionError(f"{where} must be a table of \"MxKxN\" = {what}")
    out = {}
    for shape, eff in table.items():
        parts = str(shape).split("x")
        if len(parts) != 3 or not all(p.isascii() and p.isdigit() and int(p) > 0
                                      for p in parts):
            raise OptionError(f"{where}: {shape!r} is not a GEMM shape MxKxN (positive integers)")
        canonical = "x".join(str(int(p)) for p in parts)
        if canonical in out:
            raise OptionError(f"{where}: the shape {shape!r} is given twice")
        out[canonical] = _checked_number(eff, float, value_check, f"{where} {shape}")
    axes, _ = _grid(out)
    if len(out) != np.prod([len(a) for a in axes]):
        raise OptionError(f"{where}: the shapes must form a grid (every M with every K and N); "
                          f"{len(out)} shapes over {' x '.join(str(len(a)) for a in axes)} "
                          "values of M, K, N")
    return out


def _grid(table: dict):
    """(log2 axes of M, K, N; a [M, K, N] array of efficiencies) of a checked grid table."""
    shapes = {tuple(int(p) for p in s.split("x")): e for s, e in table.items()}
    values = [sorted({s[i] for s in shapes}) for i in range(3)]
    array = np.full([len(v) for v in values], np.nan)
    for (m, k, n), eff in shapes.items():
        array[values[0].index(m), values[1].index(k), values[2].index(n)] = eff
    return [np.log2(v) for v in values], array


def _interp3(axes, table, point):
    """Trilinear interpolation of table over axes at point (each coordinate an array or a
    number), clamped to the axes' ends."""
    weights = []
    for axis, x in zip(axes, point):
        if len(axis) == 1:
            weights.append([(0, np.ones_like(x, dtype=float))])
            continue
        x = np.clip(x, axis[0], axis[-1])
        i = np.clip(np.searchsorted(axis, x, side="right") - 1, 0, len(axis) - 2)
        t = (x - axis[i]) / (axis[i + 1] - axis[i])
        weights.append([(i, 1 - t), (i + 1, t)])
    out = 0.0
    for i, wi in weights[0]:
        for j, wj in weights[1]:
            for k, wk in weights[2]:
                out = out + wi * wj * wk * table[i, j, k]
    return out


def _checked_number(value, kind: type, check: str, where: str):
    allowed = (int,) if kind is int else (int, float)
    if isinstance(value, bool) or not isinstance(value, allowed) or not math.isfinite(value):
        raise OptionError(f"{where} must be {'an integer' if kind is int else 'a number'}, "
                          f"got {value!r}")
    if check == "positive" and not value > 0:
        raise OptionError(f"{where} must be positive, got {value}")
    if check == "non-negative" and not value >= 0:
        raise OptionError(f"{where} must not be negative, got {value}")
    if check == "fraction" and not 0 < value <= 1:
        raise OptionError(f"{where} must be a fraction in (0, 1], got {value}")
    return kind(value)


def _free_when_idle(work: np.ndarray, seconds):
    """Zero where there is no work, so an empty batch costs no latency or launch; a float for a
    scalar, an array for an array."""
    out = np.where(work > 0, seconds, 0.0)
    return float(out) if out.ndim == 0 else out


# -- presets and files ---------------------------------------------------------------------------
def list_hardware() -> list[str]:
    """The names of the hardware presets."""
    return preset_names(PRESET_DIR)


def is_hardware_key(key: str) -> bool:
    """Whether an override key is a profile's (kind, link.*, cpu.*, gpu.*, SCALES), not a
    model's."""
    return key in SCALES or key.split(".")[0] in ("kind", "link", "cpu", "gpu")


def split_overrides(overrides: dict) -> tuple[dict, dict]:
    """(the hardware profile's keys, the others: the model's)."""
    hardware = {k: v for k, v in overrides.items() if is_hardware_key(k)}
    return hardware, {k: v for k, v in overrides.items() if k not in hardware}


def load_hardware(name_or_path, overrides: dict | None = None) -> HardwareProfile:
    """A hardware profile from a preset name (see list_hardware), a TOML file or a profile,
    with keys of the TOML layout overridden ({"link.h2d_gb_per_s": 40}), and the SCALES
    factors applied after them."""
    overrides = dict(overrides or {})
    scales = {k.removesuffix("_scale"): overrides.pop(k) for k in SCALES if k in overrides}
    profile = load_preset(name_or_path, HardwareProfile, PRESET_DIR, "hardware", overrides)
    return profile.scaled(**scales) if scales else profile


def describe_hardware_presets() -> str:
    """One line per preset, for `scratchsim hardware list`."""
    profiles = [load_hardware(n) for n in list_hardware()]
    width = max(len(p.name) for p in profiles)
    header = (f"{'name':<{width}}  {'H2D GB/s':>8}  {'HBM GB/s':>8}  {'HBM GiB':>7}  "
              f"{'DRAM GiB':>8}  description")
    rows = [f"{p.name:<{width}}  {p.link_h2d_gb_per_s:>8g}  {p.gpu_hbm_gb_per_s:>8g}  "
            f"{p.gpu_hbm_capacity_gib:>7g}  {p.cpu_dram_capacity_gib:>8g}  {p.description}"
            for p in profiles]
    return "\n".join([header, *rows])
