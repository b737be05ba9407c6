"""Hardware profiles: the speeds and sizes of one GPU, its host link and its host, read from
TOML, and the cost functions the timing pipeline charges its stages with.

A profile file has three sections; every key is required (the numbers are data, each preset
cites its source beside it):

    name = "a100-pcie4"            # optional, defaults to the file name
    description = "..."            # optional

    [link]                         # host <-> GPU: PCIe, or NVLink-C2C on Grace Hopper
    h2d_gb_per_s, d2h_gb_per_s     # ACHIEVED copy bandwidth of pinned memory, not the peak
    latency_us                     # fixed cost of one transfer (DMA setup and completion)
    full_duplex                    # can H2D and D2H run at full speed at the same time?

    [cpu]
    dram_gb_per_s                  # achieved (STREAM-like) bandwidth of the whole host
    row_latency_ns                 # time one thread waits per random row (see cpu_gather_time)
    threads                        # threads that gather and scatter rows
    thread_gb_per_s                # streaming bandwidth one thread reaches
    dram_capacity_gib

    [gpu]
    hbm_gb_per_s                   # peak HBM bandwidth
    gather_efficiency              # fraction of hbm_gb_per_s random row gathers reach
    mlp_efficiency                 # fraction of the matrix peak the MLPs sustain
    launch_us                      # kernel-launch overhead
    hbm_capacity_gib
    [gpu.matrix_tflops]            # dense peak per precision; fp32 required, others optional
    fp32, tf32, fp16, bf16

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

from .._presets import preset_names, read_toml
from ..errors import OptionError

PRESET_DIR = Path(__file__).parent / "presets"
DIRECTIONS = ("h2d", "d2h")
PRECISIONS = ("fp32", "tf32", "fp16", "bf16")
# A scatter reads each row before writing it: an optimizer update is a read-modify-write, and
# overwriting a row through the caches reads its lines first (write-allocate). Twice the bytes.
READ_MODIFY_WRITE = 2
_GB = 1e9


def _spec(section: str, kind: type, check: str = "positive") -> dict:
    """Field metadata: the TOML section a value lives in, its type and its allowed range."""
    return {"section": section, "kind": kind, "check": check}


@dataclass(frozen=True)
class HardwareProfile:
    """One machine: a GPU, its link to the host, and the host's CPUs and DRAM. Field names are
    <section>_<key> of the TOML file (see the module docstring)."""

    name: str
    description: str
    source: str
    link_h2d_gb_per_s: float = field(metadata=_spec("link", float))
    link_d2h_gb_per_s: float = field(metadata=_spec("link", float))
    link_latency_us: float = field(metadata=_spec("link", float, "non-negative"))
    link_full_duplex: bool = field(metadata=_spec("link", bool, "any"))
    cpu_dram_gb_per_s: float = field(metadata=_spec("cpu", float))
    cpu_row_latency_ns: float = field(metadata=_spec("cpu", float, "non-negative"))
    cpu_threads: int = field(metadata=_spec("cpu", int))
    cpu_thread_gb_per_s: float = field(metadata=_spec("cpu", float))
    cpu_dram_capacity_gib: float = field(metadata=_spec("cpu", float))
    gpu_hbm_gb_per_s: float = field(metadata=_spec("gpu", float))
    gpu_gather_efficiency: float = field(metadata=_spec("gpu", float, "fraction"))
    gpu_mlp_efficiency: float = field(metadata=_spec("gpu", float, "fraction"))
    gpu_launch_us: float = field(metadata=_spec("gpu", float, "non-negative"))
    gpu_hbm_capacity_gib: float = field(metadata=_spec("gpu", float))
    gpu_matrix_tflops: dict = field(metadata=_spec("gpu", dict, "tflops"))

    # -- loading ----------------------------------------------------------------------------
    @classmethod
    def from_dict(cls, data: dict, source: str | None = None) -> "HardwareProfile":
        """Build and validate a profile from the TOML layout (sections link, cpu, gpu), as
        load_hardware reads it and to_dict writes it."""
        if not isinstance(data, dict):
            raise OptionError(f"{source or '<dict>'}: a hardware profile is a table of sections")
        source = source or str(data.get("source", "<dict>"))
        values = {"name": str(data.get("name", Path(source).stem)),
                  "description": str(data.get("description", "")), "source": source}
        expected = {}
        for f in _value_fields():
            section, key = f.metadata["section"], f.name.split("_", 1)[1]
            expected.setdefault(section, {})[key] = f
        for top in data:
            if top not in expected and top not in ("name", "description", "source"):
                raise OptionError(f"{source}: unknown key {top!r}; the known sections are "
                                  f"{', '.join(expected)} (and name, description)")
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
        return cls(**values)

    # -- the cost functions (seconds) ----------------------------------------------------------
    def transfer_time(self, nbytes, direction: str):
        """One copy of nbytes over the host link: latency + bytes / achieved bandwidth.
        direction: 'h2d' (host to GPU) or 'd2h'."""
        if direction == "h2d":
            bandwidth = self.link_h2d_gb_per_s
        elif direction == "d2h":
            bandwidth = self.link_d2h_gb_per_s
        else:
            raise OptionError(f"transfer direction {direction!r}: choose one of "
                              f"{', '.join(DIRECTIONS)}")
        nbytes = np.asarray(nbytes, dtype=np.float64)
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
        return self._cpu_rows_time(rows, row_bytes, bytes_moved_per_row_byte=1)

    def cpu_scatter_time(self, rows, row_bytes):
        """CPU threads write `rows` random rows back (an optimizer update or an evicted row's
        write-back): as cpu_gather_time, but every byte is read and written (READ_MODIFY_WRITE),
        while the latency is paid once per row (the write does not wait). Pass row_bytes with
        the optimizer state when the state is updated with the row."""
        return self._cpu_rows_time(rows, row_bytes, bytes_moved_per_row_byte=READ_MODIFY_WRITE)

    def _cpu_rows_time(self, rows, row_bytes, bytes_moved_per_row_byte: int):
        rows = np.asarray(rows, dtype=np.float64)
        moved = bytes_moved_per_row_byte * np.asarray(row_bytes, dtype=np.float64)
        per_thread = rows * (self.cpu_row_latency_ns * 1e-9
                             + moved / (self.cpu_thread_gb_per_s * _GB)) / self.cpu_threads
        dram_bound = rows * moved / (self.cpu_dram_gb_per_s * _GB)
        return _free_when_idle(rows, np.maximum(per_thread, dram_bound))

    def gpu_gather_time(self, rows, row_bytes):
        """A GPU kernel gathers `rows` random rows of row_bytes from HBM at
        hbm_gb_per_s * gather_efficiency, plus one kernel launch."""
        return self._gpu_rows_time(rows, row_bytes, bytes_moved_per_row_byte=1)

    def gpu_scatter_time(self, rows, row_bytes):
        """A GPU kernel updates or writes `rows` random rows in HBM: READ_MODIFY_WRITE times the
        bytes of a gather, plus one kernel launch."""
        return self._gpu_rows_time(rows, row_bytes, bytes_moved_per_row_byte=READ_MODIFY_WRITE)

    def _gpu_rows_time(self, rows, row_bytes, bytes_moved_per_row_byte: int):
        rows = np.asarray(rows, dtype=np.float64)
        moved = rows * bytes_moved_per_row_byte * np.asarray(row_bytes, dtype=np.float64)
        bandwidth = self.gpu_hbm_gb_per_s * self.gpu_gather_efficiency * _GB
        return _free_when_idle(rows, self.gpu_launch_us * 1e-6 + moved / bandwidth)

    def compute_time(self, flops, precision: str = "fp32"):
        """Dense matrix work (the MLPs): flops / (matrix peak of `precision` x mlp_efficiency).
        Launches are charged separately (launch_time)."""
        tflops = self.gpu_matrix_tflops.get(precision)
        if tflops is None:
            raise OptionError(f"hardware {self.name} has no {precision} matrix throughput; "
                              f"choose one of {', '.join(self.gpu_matrix_tflops)}")
        flops = np.asarray(flops, dtype=np.float64)
        return _free_when_idle(flops, flops / (tflops * 1e12 * self.gpu_mlp_efficiency))

    def launch_time(self, kernels):
        """The launch overhead of `kernels` GPU kernels."""
        kernels = np.asarray(kernels, dtype=np.float64)
        return _free_when_idle(kernels, kernels * self.gpu_launch_us * 1e-6)

    # -- capacities ------------------------------------------------------------------------
    @property
    def hbm_capacity_bytes(self) -> int:
        return int(self.gpu_hbm_capacity_gib * 2**30)

    @property
    def dram_capacity_bytes(self) -> int:
        return int(self.cpu_dram_capacity_gib * 2**30)

    # -- variants and output -----------------------------------------------------------------
    def scaled(self, pcie: float = 1.0, dram: float = 1.0, hbm: float = 1.0) -> "HardwareProfile":
        """A copy with bandwidths multiplied, for sweeps: pcie scales the host link (both
        directions; on GH200 the link is NVLink-C2C), dram the host DRAM and per-thread
        bandwidths, hbm the HBM bandwidth. Latencies and capacities are unchanged."""
        for label, factor in (("pcie", pcie), ("dram", dram), ("hbm", hbm)):
            if not factor > 0:
                raise OptionError(f"the {label} scale factor must be positive, got {factor}")
        return dataclasses.replace(
            self,
            link_h2d_gb_per_s=self.link_h2d_gb_per_s * pcie,
            link_d2h_gb_per_s=self.link_d2h_gb_per_s * pcie,
            cpu_dram_gb_per_s=self.cpu_dram_gb_per_s * dram,
            cpu_thread_gb_per_s=self.cpu_thread_gb_per_s * dram,
            gpu_hbm_gb_per_s=self.gpu_hbm_gb_per_s * hbm)

    def to_dict(self) -> dict:
        """The profile in the TOML layout (from_dict reads it back), plus its source."""
        out = {"name": self.name, "description": self.description, "source": self.source}
        for f in _value_fields():
            value = getattr(self, f.name)
            out.setdefault(f.metadata["section"], {})[f.name.split("_", 1)[1]] = (
                dict(value) if isinstance(value, dict) else value)
        return out

    def describe(self) -> str:
        """Readable multi-line text for `scratchsim hardware show`."""
        duplex = "full duplex" if self.link_full_duplex else "half duplex"
        tflops = ", ".join(f"{p} {t:g}" for p, t in self.gpu_matrix_tflops.items())
        lines = [
            f"{self.name}: {self.description}" if self.description else self.name,
            f"  link  H2D {self.link_h2d_gb_per_s:g} GB/s, D2H {self.link_d2h_gb_per_s:g} GB/s "
            f"(achieved), latency {self.link_latency_us:g} us, {duplex}",
            f"  cpu   DRAM {self.cpu_dram_gb_per_s:g} GB/s, {self.cpu_dram_capacity_gib:g} GiB; "
            f"{self.cpu_threads} threads x {self.cpu_thread_gb_per_s:g} GB/s, "
            f"{self.cpu_row_latency_ns:g} ns per random row",
            f"  gpu   HBM {self.gpu_hbm_gb_per_s:g} GB/s ({self.gpu_gather_efficiency:.0%} on "
            f"row gathers), {self.gpu_hbm_capacity_gib:g} GiB; launch {self.gpu_launch_us:g} us",
            f"        matrix TFLOP/s {tflops} ({self.gpu_mlp_efficiency:.0%} sustained by MLPs)",
            f"  from  {self.source}",
        ]
        return "\n".join(lines)


def _value_fields():
    return [f for f in dataclasses.fields(HardwareProfile) if "section" in f.metadata]


def _checked(value, f, where: str):
    kind, check = f.metadata["kind"], f.metadata["check"]
    if kind is bool:
        if not isinstance(value, bool):
            raise OptionError(f"{where} must be true or false, got {value!r}")
        return value
    if kind is dict:
        if not isinstance(value, dict) or "fp32" not in value:
            raise OptionError(f"{where} must be a table of TFLOP/s per precision with at least "
                              f"fp32 (precisions: {', '.join(PRECISIONS)})")
        for precision, tflops in value.items():
            if precision not in PRECISIONS:
                raise OptionError(f"{where}: unknown precision {precision!r}; known: "
                                  f"{', '.join(PRECISIONS)}")
            _checked_number(tflops, float, "positive", f"{where} {precision}")
        return {p: float(t) for p, t in value.items()}
    return _checked_number(value, kind, check, where)


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


def load_hardware(name_or_path) -> HardwareProfile:
    """A hardware profile from a preset name (see list_hardware) or a TOML file."""
    if isinstance(name_or_path, HardwareProfile):
        return name_or_path
    data, path = read_toml(name_or_path, PRESET_DIR, "hardware")
    return HardwareProfile.from_dict(data, source=str(path))


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
