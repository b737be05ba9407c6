import numpy as np
import pytest

from simulator import OptionError
from simulator.hardware import HardwareProfile, describe_hardware_presets, list_hardware, load_hardware

# Round numbers, so that every cost below can be checked by hand. The GEMM grid is 2x2x2 over
# M, K, N in {64, 1024} (2**6, 2**10) and linear in the grid indices:
#   efficiency(i, j, k) = 0.1 + 0.4 i + 0.2 j + 0.1 k   (i: M, j: K, k: N; 0 = 64, 1 = 1024)
# so trilinear interpolation in log2 of the sizes is exact and easy to compute.
ROUND = """
name = "round"
description = "round numbers for hand-computed costs"
kind = "cuda"

[link]
h2d_gb_per_s = 10
d2h_gb_per_s = 20
pageable_gb_per_s = 5
latency_us = 1
full_duplex = true

[cpu]
dram_gb_per_s = 100
row_latency_ns = 100
threads = 20
thread_gb_per_s = 10
dram_capacity_gib = 64
dispatch_us = 4
plan_us = 10
plan_row_ns = 50

[gpu]
hbm_gb_per_s = 1000
stream_efficiency = 0.8
launch_us = 2
graph_kernel_us = 1
batched_gemm_ns = 100
hbm_capacity_gib = 16

[gpu.gather_efficiency]
16 = 0.1
64 = 0.4
256 = 0.5
512 = 0.8

[gpu.scatter_efficiency]
16 = 0.05
64 = 0.2
256 = 0.25
512 = 0.4

[gpu.segment_ns_per_key]
1000 = 10
100000 = 1

[gpu.matrix_tflops]
fp32 = 10

[gpu.gemm_efficiency.fp32]
"64x64x64" = 0.1
"64x64x1024" = 0.2
"64x1024x64" = 0.3
"64x1024x1024" = 0.4
"1024x64x64" = 0.5
"1024x64x1024" = 0.6
"1024x1024x64" = 0.7
"1024x1024x1024" = 0.8
"""


def write(tmp_path, text, name="hw.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def hw(tmp_path):
    return load_hardware(write(tmp_path, ROUND))


def test_transfer_is_latency_plus_bytes_over_bandwidth(hw):
    # Pinned: 1 us + 1e6 B / 10 GB/s = 101 us H2D; 1 us + 1e6 B / 20 GB/s = 51 us D2H.
    assert hw.transfer_time(1e6, "h2d") == pytest.approx(101e-6)
    assert hw.transfer_time(1e6, "d2h") == pytest.approx(51e-6)
    assert hw.transfer_time(0, "h2d") == 0.0
    np.testing.assert_allclose(hw.transfer_time(np.array([0, 1e6]), "h2d"), [0.0, 101e-6])
    with pytest.raises(OptionError, match="h2d, d2h"):
        hw.transfer_time(1, "sideways")


def test_pageable_transfers_run_at_the_pageable_bandwidth_both_ways(hw):
    # 1 us + 1e6 B / 5 GB/s = 201 us, whichever the direction.
    assert hw.transfer_time(1e6, "h2d", pinned=False) == pytest.approx(201e-6)
    assert hw.transfer_time(1e6, "d2h", pinned=False) == pytest.approx(201e-6)
    assert hw.transfer_time(0, "d2h", pinned=False) == 0.0


def test_on_a_cpu_device_a_transfer_is_free(tmp_path):
    cpu = load_hardware(write(tmp_path, ROUND.replace('kind = "cuda"', 'kind = "cpu"')))
    assert cpu.kind == "cpu"
    assert cpu.transfer_time(1e6, "h2d") == 0.0
    assert cpu.transfer_time(1e6, "d2h", pinned=False) == 0.0
    np.testing.assert_array_equal(cpu.transfer_time(np.array([0, 1e6]), "h2d"), [0.0, 0.0])
    # Everything else still costs what it costs on the cuda profile.
    assert cpu.stream_time(8e8) == pytest.approx(1e-3)
    assert cpu.dispatch_time(1) == pytest.approx(4e-6)


def test_cpu_gather_small_rows_are_latency_bound(hw):
    # Threads: 1000 x (100 ns + 64 B / 10 GB/s) / 20 = 1000 x 106.4 ns / 20 = 5.32 us;
    # DRAM: 1000 x 64 B / 100 GB/s = 0.64 us. The threads' pace wins.
    assert hw.cpu_gather_time(1000, 64) == pytest.approx(5.32e-6)


def test_cpu_gather_large_rows_are_bandwidth_bound(hw):
    # Threads: 1000 x (100 ns + 100 us) / 20 = 5.0005 ms; DRAM: 1e9 B / 100 GB/s = 10 ms.
    assert hw.cpu_gather_time(1000, 1e6) == pytest.approx(10e-3)


def test_cpu_scatter_moves_every_byte_twice_and_pays_latency_once(hw):
    # Threads: 1000 x (100 ns + 128 B / 10 GB/s) / 20 = 5.64 us.
    assert hw.cpu_scatter_time(1000, 64) == pytest.approx(5.64e-6)
    # DRAM: 2 x 1e9 B / 100 GB/s = 20 ms.
    assert hw.cpu_scatter_time(1000, 1e6) == pytest.approx(20e-3)
    assert hw.cpu_scatter_time(0, 64) == 0.0 and hw.cpu_gather_time(0, 64) == 0.0


def test_gather_efficiency_interpolates_in_log_row_size_and_clamps(hw):
    # At the table's sizes, the table's values.
    np.testing.assert_allclose(hw.gather_efficiency(np.array([16, 64, 256, 512])),
                               [0.1, 0.4, 0.5, 0.8])
    # 32 B is halfway from 16 to 64 in log2 (4 -> 5 -> 6): (0.1 + 0.4) / 2.
    assert hw.gather_efficiency(32) == pytest.approx(0.25)
    # 128 B is halfway from 64 to 256 (6 -> 7 -> 8): (0.4 + 0.5) / 2.
    assert hw.gather_efficiency(128) == pytest.approx(0.45)
    # 362 B ~ 2**8.5 is halfway from 256 to 512: (0.5 + 0.8) / 2.
    assert hw.gather_efficiency(2 ** 8.5) == pytest.approx(0.65)
    # Clamped outside 16..512 (and a zero-byte row does not take a log of zero).
    assert hw.gather_efficiency(8) == pytest.approx(0.1)
    assert hw.gather_efficiency(0) == pytest.approx(0.1)
    assert hw.gather_efficiency(4096) == pytest.approx(0.8)


def test_gpu_gather_and_scatter_at_the_row_size_efficiency_without_a_launch(hw):
    # 1e6 rows x 64 B = 64e6 B at 1000 GB/s x 0.4 = 160 us (launches are charged by the op).
    assert hw.gpu_gather_time(1e6, 64) == pytest.approx(160e-6)
    # A scatter at its own table's efficiency, 0.2 at 64 B: 64e6 B / 200 GB/s = 320 us.
    assert hw.gpu_scatter_time(1e6, 64) == pytest.approx(320e-6)
    # Between sizes, interpolated in log size: 128 B is halfway from 64 (0.2) to 256 (0.25).
    assert hw.gpu_scatter_time(1e6, 128) == pytest.approx(128e6 / 225e9)
    np.testing.assert_allclose(hw.gpu_gather_time(np.array([0, 1e6]), 64), [0.0, 160e-6])


def test_stream_time_is_bytes_over_efficient_hbm_bandwidth(hw):
    # 8e8 B / (1000 GB/s x 0.8) = 1 ms.
    assert hw.stream_time(8e8) == pytest.approx(1e-3)
    assert hw.stream_time(0) == 0.0
    np.testing.assert_allclose(hw.stream_time(np.array([0, 8e8, 4e8])), [0.0, 1e-3, 0.5e-3])


def test_gemm_efficiency_at_the_grid_corners(hw):
    # Keys are "MxKxN": M = 1024, K = 64, N = 1024 is "1024x64x1024" = 0.6.
    assert hw.gemm_efficiency(64, 64, 64) == pytest.approx(0.1)
    assert hw.gemm_efficiency(1024, 64, 1024) == pytest.approx(0.6)
    assert hw.gemm_efficiency(64, 1024, 64) == pytest.approx(0.3)
    assert hw.gemm_efficiency(1024, 1024, 1024) == pytest.approx(0.8)


def test_gemm_efficiency_interpolates_in_log_sizes(hw):
    # M = 256 is halfway from 64 to 1024 in log2 (6 -> 8 -> 10): 0.1 + 0.4 x 0.5 = 0.3.
    assert hw.gemm_efficiency(256, 64, 64) == pytest.approx(0.3)
    # The midpoint of the whole grid is the mean of its eight corners: 0.45.
    assert hw.gemm_efficiency(256, 256, 256) == pytest.approx(0.45)
    # M = 128 is a quarter of the way (log2 7), K = 256 half, N = 64 at the start:
    # 0.1 + 0.4 x 0.25 + 0.2 x 0.5 + 0.1 x 0 = 0.3.
    assert hw.gemm_efficiency(128, 256, 64) == pytest.approx(0.3)
    # Arrays of shapes, one entry per batch.
    np.testing.assert_allclose(hw.gemm_efficiency(np.array([64, 256]), 64, np.array([64, 1024])),
                               [0.1, 0.4])


def test_gemm_efficiency_clamps_outside_the_grid(hw):
    # Below every axis: the smallest corner; above every axis: the largest.
    assert hw.gemm_efficiency(1, 1, 1) == pytest.approx(0.1)
    assert hw.gemm_efficiency(16, 8, 2 ** 20) == pytest.approx(0.2)
    assert hw.gemm_efficiency(10 ** 6, 10 ** 6, 10 ** 6) == pytest.approx(0.8)
    # Clamped on one axis, interpolated on another: M = 2**20 -> 1024, K = 256 halfway, N = 8 -> 64.
    assert hw.gemm_efficiency(2 ** 20, 256, 8) == pytest.approx(0.1 + 0.4 + 0.1)


def test_compute_time_uses_the_shape_efficiency(hw):
    # 1e12 flops / (10 TFLOP/s x 0.8) = 0.125 s at 1024^3; x 0.1 at 64^3 is 1 s.
    assert hw.compute_time(1e12, 1024, 1024, 1024) == pytest.approx(0.125)
    assert hw.compute_time(1e12, 64, 64, 64) == pytest.approx(1.0)
    assert hw.compute_time(0, 64, 64, 64) == 0.0
    np.testing.assert_allclose(hw.compute_time(np.array([0, 1e12]), 64, 64, 64), [0.0, 1.0])
    with pytest.raises(OptionError, match="no tf32 matrix throughput; choose one of fp32"):
        hw.compute_time(1e9, 64, 64, 64, "tf32")
    with pytest.raises(OptionError, match="no bf16 matrix throughput"):
        hw.gemm_efficiency(64, 64, 64, "bf16")


def test_segment_time_interpolates_per_key_in_log_log_and_clamps(hw):
    # 1,000 keys at 10 ns, 100,000 at 1 ns: 10,000 keys (halfway in log) at sqrt(10) ns.
    assert hw.segment_time(1000) == pytest.approx(10e-6)
    assert hw.segment_time(100_000) == pytest.approx(100e-6)
    assert hw.segment_time(10_000) == pytest.approx(10_000 * 10**0.5 * 1e-9)
    assert hw.segment_time(10) == pytest.approx(100e-9)        # 10 ns a key below the table
    assert hw.segment_time(10**7) == pytest.approx(10e-3)      # 1 ns a key above it
    assert hw.segment_time(0) == 0.0


def test_batched_gemm_by_product_shape(tmp_path, hw):
    # One number: the products' flops at the stacked shape's efficiency plus 100 ns each
    # (see tests/pipeline for the op); a table by product shape: the whole time of each.
    assert not hw.batched_gemm_by_shape
    with pytest.raises(ValueError, match="one number"):
        hw.batched_gemm_time(10, 4, 4, 4)
    # 4x4x4 products take 100 ns, 16x4x4 ones 400 ns, 4x16x4 and 4x4x16 ones 200 ns; the
    # table is interpolated in log-log: 8x4x4 (halfway from 4 to 16 in log) sqrt(100 * 400)
    grid = "".join(f'"{m}x{k}x{n}" = {100 * (4 if m == 16 else 1) * (2 if k == 16 else 1) * (2 if n == 16 else 1)}\n'
                   for m in (4, 16) for k in (4, 16) for n in (4, 16))
    # ... for both operands contiguous (nn); a transposed first operand (tn) twice as slow
    tn = "".join(f"{line.split(' = ')[0]} = {2 * int(line.split(' = ')[1])}\n"
                 for line in grid.splitlines())
    table = load_hardware(write(tmp_path, ROUND.replace(
        "batched_gemm_ns = 100\n", "").replace(
        "[gpu.gather_efficiency]", "[gpu.batched_gemm_ns.nn]\n" + grid
        + "\n[gpu.batched_gemm_ns.tn]\n" + tn + "\n[gpu.gather_efficiency]")))
    assert table.batched_gemm_by_shape
    assert table.batched_gemm_time(1000, 4, 4, 4) == pytest.approx(1000 * 100e-9)
    assert table.batched_gemm_time(1000, 16, 16, 16) == pytest.approx(1000 * 1600e-9)
    assert table.batched_gemm_time(1000, 8, 4, 4) == pytest.approx(1000 * 200e-9)
    assert table.batched_gemm_time(1000, 8, 8, 4) == pytest.approx(1000 * 200e-9 * 2**0.5)
    assert table.batched_gemm_time(1000, 2, 4, 64) == pytest.approx(1000 * 200e-9)  # clamped
    assert table.batched_gemm_time(1000, 8, 4, 4, "tn") == pytest.approx(1000 * 400e-9)
    assert table.batched_gemm_time(1000, 8, 4, 4, "nt") == pytest.approx(1000 * 200e-9)  # nn's
    assert table.batched_gemm_time(0, 4, 4, 4) == 0.0
    np.testing.assert_allclose(table.batched_gemm_time(np.array([0, 10]), 4, 4, 4),
                               [0.0, 1e-6])
    assert load_hardware(table).to_dict()["gpu"]["batched_gemm_ns"]["nn"]["16x16x16"] == 1600
    # A bmm op priced by the table: one launch (2 us) and its products, whatever its flops
    from simulator.pipeline import ops
    bmm = ops.gemm("bmm", 16, 4, 4, batched=1000)
    assert ops.Costs(table).device(bmm) == pytest.approx(2e-6 + 1000 * 400e-9)
    bmm_tn = ops.gemm("bmm", 16, 4, 4, batched=1000, layout="tn")
    assert ops.Costs(table).device(bmm_tn) == pytest.approx(2e-6 + 1000 * 800e-9)
    for bad, message in (('[gpu.batched_gemm_ns.nn]\n"4x4x4" = 0\n', r"nn 4x4x4 must be positive"),
                         ('[gpu.batched_gemm_ns.tn]\n"4x4x4" = 1\n', r"nn required"),
                         ('[gpu.batched_gemm_ns.nn]\n"4x4x4" = 1\n[gpu.batched_gemm_ns.tt]\n'
                          '"4x4x4" = 1\n', r"tables by operand layout")):
        with pytest.raises(OptionError, match=message):
            load_hardware(write(tmp_path, ROUND.replace("batched_gemm_ns = 100\n", "").replace(
                "[gpu.gather_efficiency]", bad + "\n[gpu.gather_efficiency]"), "bad.toml"))


def test_dispatch_times(hw):
    # Host: 4 us an op.
    assert hw.dispatch_time(3) == pytest.approx(12e-6)
    assert hw.dispatch_time(0) == 0.0
    np.testing.assert_allclose(hw.dispatch_time(np.array([0, 1, 5])), [0.0, 4e-6, 20e-6])


def test_capacities_are_binary(hw):
    assert hw.hbm_capacity_bytes == 16 * 2**30
    assert hw.dram_capacity_bytes == 64 * 2**30


def test_scaled_multiplies_bandwidths_only(hw):
    fast = hw.scaled(pcie=2, dram=0.5, hbm=4)
    # 1 us + 1e6 B / 40 GB/s = 26 us; pageable 1 us + 1e6 B / 10 GB/s = 101 us.
    assert fast.transfer_time(1e6, "d2h") == pytest.approx(26e-6)
    assert fast.transfer_time(1e6, "h2d", pinned=False) == pytest.approx(101e-6)
    assert (fast.cpu_dram_gb_per_s, fast.cpu_thread_gb_per_s, fast.gpu_hbm_gb_per_s) == (50, 5, 4000)
    assert (fast.link_latency_us, fast.gpu_launch_us, fast.cpu_row_latency_ns,
            fast.cpu_dispatch_us) == (1, 2, 100, 4)
    assert fast.gpu_gemm_efficiency == hw.gpu_gemm_efficiency
    assert hw.link_h2d_gb_per_s == 10  # the original is untouched
    assert hw.scaled() == hw
    with pytest.raises(OptionError, match="hbm scale factor must be positive"):
        hw.scaled(hbm=0)


def test_to_dict_round_trips_and_describe_names_the_numbers(hw):
    data = hw.to_dict()
    assert data["kind"] == "cuda"
    assert data["gpu"]["gather_efficiency"] == {"16": 0.1, "64": 0.4, "256": 0.5, "512": 0.8}
    assert HardwareProfile.from_dict(data) == hw
    text = hw.describe()
    assert text.startswith("round: round numbers")
    for part in ("H2D 10 GB/s", "D2H 20 GB/s", "pageable 5 GB/s", "4 us to dispatch an op",
                 "2 us a kernel", "80% elementwise", "10% at 16 B", "fp32 10", "fp32 10%-80%"):
        assert part in text, part


# Per-socket peak DRAM bandwidth of each preset's host (channels x MT/s x 8 bytes), so that a
# two-socket STREAM figure next to one socket's cores would show up as exceeding it.
SOCKET_PEAK_GB_PER_S = {
    "v100-pcie3": 6 * 2.666 * 8,     # Xeon Gold 6148: 6 x DDR4-2666
    "a100-pcie4": 8 * 3.2 * 8,       # EPYC 7742: 8 x DDR4-3200
    "h100-pcie5": 8 * 4.8 * 8,       # Xeon Platinum 8480+: 8 x DDR5-4800
    "h100-sxm5": 8 * 4.8 * 8,        # Xeon Platinum 8480C: 8 x DDR5-4800
    "h200-pcie5": 8 * 4.8 * 8,
    "gh200-c2c": 546.0,              # Grace: LPDDR5X, 546 GB/s
}
SOCKET_CORES = {"v100-pcie3": 20, "a100-pcie4": 64, "h100-pcie5": 56, "h100-sxm5": 56,
                "h200-pcie5": 56, "gh200-c2c": 72}


def test_every_preset_loads_with_sensible_numbers():
    names = list_hardware()
    assert names == ["a100-pcie4", "gh200-c2c", "h100-pcie5", "h100-sxm5", "h200-pcie5",
                     "v100-pcie3"]
    p = {n: load_hardware(n) for n in names}
    listing = describe_hardware_presets()
    for name, hw in p.items():
        assert hw.name == name and name in listing and hw.kind == "cuda"
        assert HardwareProfile.from_dict(hw.to_dict()) == hw
        # The GPU's own memory outruns the host's, which outruns the host link.
        assert hw.gpu_hbm_gb_per_s > hw.cpu_dram_gb_per_s > hw.link_h2d_gb_per_s
        assert hw.gpu_hbm_capacity_gib < hw.cpu_dram_capacity_gib
        # [cpu] is one socket: its cores, and no more DRAM bandwidth than that socket's peak;
        # its threads can still stream at least that bandwidth.
        assert hw.cpu_threads == SOCKET_CORES[name]
        assert hw.cpu_dram_gb_per_s <= SOCKET_PEAK_GB_PER_S[name]
        assert hw.cpu_threads * hw.cpu_thread_gb_per_s >= hw.cpu_dram_gb_per_s
        # Pageable copies are slower than pinned ones.
        assert hw.link_pageable_gb_per_s < min(hw.link_h2d_gb_per_s, hw.link_d2h_gb_per_s)
        # Per-op costs of a few microseconds.
        assert 0.5 <= hw.gpu_launch_us <= 5 and 2 <= hw.cpu_dispatch_us <= 20
        assert 0.6 <= hw.gpu_stream_efficiency <= 0.95
        # Gathers: all four row sizes, better with bigger rows, never above the stream rate.
        gathers = [hw.gpu_gather_efficiency[b] for b in (16, 64, 256, 512)]
        assert sorted(hw.gpu_gather_efficiency) == [16, 64, 256, 512]
        assert gathers == sorted(gathers) and gathers[-1] <= hw.gpu_stream_efficiency
        # One GEMM grid per precision: tiny shapes reach a few % at most, large ones 60-90%.
        assert set(hw.gpu_gemm_efficiency) == set(hw.gpu_matrix_tflops)
        for precision in hw.gpu_matrix_tflops:
            tiny = hw.gemm_efficiency(128, 16, 16, precision)
            mid = hw.gemm_efficiency(2048, 256, 256, precision)
            big = hw.gemm_efficiency(32768, 4096, 4096, precision)
            assert tiny < mid < big and tiny < 0.05 and 0.6 <= big <= 0.9, (name, precision)
        assert hw.gpu_matrix_tflops["fp32"] < max(hw.gpu_matrix_tflops.values())
    links = [p[n].link_h2d_gb_per_s for n in ("v100-pcie3", "a100-pcie4", "h100-pcie5", "gh200-c2c")]
    assert links == sorted(links) and links[-1] > 5 * links[-2]
    assert p["h200-pcie5"].gpu_hbm_gb_per_s > p["h100-pcie5"].gpu_hbm_gb_per_s
    assert p["h200-pcie5"].gpu_hbm_capacity_gib > p["h100-pcie5"].gpu_hbm_capacity_gib
    fp32 = [p[n].gpu_matrix_tflops["fp32"] for n in ("v100-pcie3", "a100-pcie4", "h100-pcie5")]
    assert fp32 == sorted(fp32)


def test_presets_fixed_by_the_issue():
    # The A100's own source shows H2D collapsing while D2H runs: half duplex.
    assert load_hardware("a100-pcie4").link_full_duplex is False
    # PCIe 5.0 x16, achieved per nvbandwidth: about 55 GB/s H2D and 53 GB/s D2H.
    for name in ("h100-pcie5", "h100-sxm5", "h200-pcie5"):
        hw = load_hardware(name)
        assert (hw.link_h2d_gb_per_s, hw.link_d2h_gb_per_s) == (55.0, 53.0)
    # The H200 preset says which part it is.
    assert "NVL" in load_hardware("h200-pcie5").description
    # The new H100 SXM5: HBM3 at 3.35 TB/s and the SXM peaks.
    sxm = load_hardware("h100-sxm5")
    assert sxm.gpu_hbm_gb_per_s == 3350 and sxm.gpu_hbm_capacity_gib == 80
    assert sxm.gpu_matrix_tflops == {"fp32": 66.9, "tf32": 494.7, "fp16": 989.4, "bf16": 989.4}


def test_a_cpu_kind_profile_round_trips(tmp_path):
    cpu = load_hardware(write(tmp_path, ROUND.replace('kind = "cuda"', 'kind = "cpu"')))
    assert HardwareProfile.from_dict(cpu.to_dict()) == cpu
    assert "kind cpu" in cpu.describe()


@pytest.mark.parametrize("edit, message", [
    (('kind = "cuda"\n', ""), r"hw\.toml: kind must be one of cuda, cpu .*got None"),
    (('kind = "cuda"', 'kind = "tpu"'), r"hw\.toml: kind must be one of cuda, cpu .*got 'tpu'"),
    (("latency_us = 1\n", ""), r"hw\.toml: missing key \[link\] latency_us"),
    (("pageable_gb_per_s = 5\n", ""), r"missing key \[link\] pageable_gb_per_s"),
    (("dispatch_us = 4\n", ""), r"missing key \[cpu\] dispatch_us"),
    (("threads = 20", "threads = 0"), r"hw\.toml: \[cpu\] threads must be positive, got 0"),
    (("threads = 20", "threads = 2.5"), r"\[cpu\] threads must be an integer"),
    (("hbm_gb_per_s = 1000", "hbm_gb_per_s = -1"), r"\[gpu\] hbm_gb_per_s must be positive"),
    (("hbm_gb_per_s = 1000", 'hbm_gb_per_s = "fast"'), r"\[gpu\] hbm_gb_per_s must be a number"),
    (("stream_efficiency = 0.8", "stream_efficiency = 0"), r"stream_efficiency must be a fraction"),
    (("dispatch_us = 4", "dispatch_us = -1"), r"\[cpu\] dispatch_us must not be negative"),
    (("full_duplex = true", "full_duplex = 1"), r"\[link\] full_duplex must be true or false"),
    (("launch_us = 2", "launch_us = 2\nlaunch_ms = 0.002"), r"unknown key \[gpu\] launch_ms"),
    (("launch_us = 2", "launch_us = 2\nmlp_efficiency = 0.5"), r"unknown key \[gpu\] mlp_efficiency"),
    # The gather table: numeric row sizes only, fractions only.
    (("512 = 0.8", "512 = 0.8\nbig = 0.9"), r"gather_efficiency: 'big' is not a positive whole number"),
    (("512 = 0.8", "512 = 0.8\n0 = 0.9"), r"gather_efficiency: '0' is not a positive whole number"),
    (("16 = 0.1", "16 = 1.5"), r"gather_efficiency 16 must be a fraction"),
    (("[gpu.gather_efficiency]\n16 = 0.1\n64 = 0.4\n256 = 0.5\n512 = 0.8\n",
      "[gpu.gather_efficiency]\n"), r"gather_efficiency must be a table of efficiencies by row bytes"),
    # The GEMM grids: full grids, well-formed shapes, one per precision of matrix_tflops.
    (('"1024x1024x1024" = 0.8\n', ""),
     r"gemm_efficiency\.fp32: the shapes must form a grid .* 7 shapes over 2 x 2 x 2"),
    (('"64x64x64" = 0.1', '"64x64x64" = 0.1\n"32x64x64" = 0.1'),
     r"gemm_efficiency\.fp32: the shapes must form a grid .* 9 shapes over 3 x 2 x 2"),
    (('"64x64x64" = 0.1', '"64x64" = 0.1'), r"'64x64' is not a GEMM shape MxKxN"),
    (('"64x64x64" = 0.1', '"64x0x64" = 0.1'), r"'64x0x64' is not a GEMM shape MxKxN"),
    (('"64x64x64" = 0.1', '"64x64x64" = 1.1'), r"gemm_efficiency\.fp32 64x64x64 must be a fraction"),
    (("fp32 = 10", "fp32 = 10\ntf32 = 40"), r"\[gpu.gemm_efficiency\] has no grid for tf32"),
    (("[gpu.gemm_efficiency.fp32]", "[gpu.gemm_efficiency.fp8]"), r"unknown precision 'fp8'"),
    (("fp32 = 10", "fp32 = 10\nfp8 = 40"), r"unknown precision 'fp8'"),
    (("fp32 = 10", "tf32 = 40"), r"matrix_tflops must be a table .* at least fp32"),
    (("[cpu]", "[host]"), r"unknown key 'host'"),
])
def test_bad_files_name_the_file_and_key(tmp_path, edit, message):
    old, new = edit
    assert old in ROUND
    path = write(tmp_path, ROUND.replace(old, new, 1))
    with pytest.raises(OptionError, match=message):
        load_hardware(path)


def test_name_defaults_to_the_file_name(tmp_path):
    text = ROUND.replace('name = "round"\n', "")
    assert load_hardware(write(tmp_path, text, "my-box.toml")).name == "my-box"


def test_bad_names_and_syntax(tmp_path):
    with pytest.raises(OptionError, match="unknown hardware 'tpu-v9'.*a100-pcie4"):
        load_hardware("tpu-v9")
    with pytest.raises(OptionError, match=r"bad\.toml: not a valid TOML file"):
        load_hardware(write(tmp_path, "[link\n", "bad.toml"))
    with pytest.raises(OptionError, match=r"missing section \[gpu\]"):
        load_hardware(write(tmp_path, ROUND.split("[gpu]")[0], "short.toml"))
