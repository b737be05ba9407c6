import numpy as np
import pytest

from simulator import OptionError
from simulator.hardware import HardwareProfile, describe_hardware_presets, list_hardware, load_hardware

ROUND = """
name = "round"
description = "round numbers for hand-computed costs"

[link]
h2d_gb_per_s = 10
d2h_gb_per_s = 10
latency_us = 1
full_duplex = true

[cpu]
dram_gb_per_s = 100
row_latency_ns = 100
threads = 20
thread_gb_per_s = 10
dram_capacity_gib = 64

[gpu]
hbm_gb_per_s = 1000
gather_efficiency = 0.5
mlp_efficiency = 0.5
launch_us = 2
hbm_capacity_gib = 16

[gpu.matrix_tflops]
fp32 = 10
"""


def write(tmp_path, text, name="hw.toml"):
    path = tmp_path / name
    path.write_text(text)
    return path


@pytest.fixture
def hw(tmp_path):
    return load_hardware(write(tmp_path, ROUND))


def test_transfer_is_latency_plus_bytes_over_bandwidth(hw):
    # 1 us + 1e6 B / 10e9 B/s = 1 us + 100 us.
    assert hw.transfer_time(1e6, "h2d") == pytest.approx(101e-6)
    assert hw.transfer_time(1e6, "d2h") == pytest.approx(101e-6)
    assert hw.transfer_time(0, "h2d") == 0.0
    np.testing.assert_allclose(hw.transfer_time(np.array([0, 1e6]), "h2d"), [0.0, 101e-6])
    with pytest.raises(OptionError, match="h2d, d2h"):
        hw.transfer_time(1, "sideways")


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


def test_gpu_gather_and_scatter_at_efficient_hbm_bandwidth_plus_one_launch(hw):
    # 1e6 rows x 100 B = 1e8 B at 1000 GB/s x 0.5 = 200 us, plus a 2 us launch.
    assert hw.gpu_gather_time(1e6, 100) == pytest.approx(202e-6)
    assert hw.gpu_scatter_time(1e6, 100) == pytest.approx(402e-6)
    np.testing.assert_allclose(hw.gpu_gather_time(np.array([0, 1e6]), 100), [0.0, 202e-6])


def test_compute_and_launch(hw):
    # 1e12 flops / (10 TFLOP/s x 0.5) = 0.2 s.
    assert hw.compute_time(1e12) == pytest.approx(0.2)
    assert hw.compute_time(0) == 0.0
    with pytest.raises(OptionError, match="no tf32 matrix throughput; choose one of fp32"):
        hw.compute_time(1e9, "tf32")
    assert hw.launch_time(3) == pytest.approx(6e-6)
    assert hw.launch_time(0) == 0.0


def test_capacities_are_binary(hw):
    assert hw.hbm_capacity_bytes == 16 * 2**30
    assert hw.dram_capacity_bytes == 64 * 2**30


def test_scaled_multiplies_bandwidths_only(hw):
    fast = hw.scaled(pcie=2, dram=0.5, hbm=4)
    # 1 us + 1e6 B / 20 GB/s = 51 us.
    assert fast.transfer_time(1e6, "d2h") == pytest.approx(51e-6)
    assert (fast.cpu_dram_gb_per_s, fast.cpu_thread_gb_per_s, fast.gpu_hbm_gb_per_s) == (50, 5, 4000)
    assert (fast.link_latency_us, fast.gpu_launch_us, fast.cpu_row_latency_ns) == (1, 2, 100)
    assert hw.link_h2d_gb_per_s == 10  # the original is untouched
    assert hw.scaled() == hw
    with pytest.raises(OptionError, match="hbm scale factor must be positive"):
        hw.scaled(hbm=0)


def test_to_dict_round_trips_and_describe_names_the_numbers(hw):
    assert HardwareProfile.from_dict(hw.to_dict()) == hw
    text = hw.describe()
    assert text.startswith("round: round numbers") and "H2D 10 GB/s" in text and "fp32 10" in text


def test_every_preset_loads_with_sensible_numbers():
    names = list_hardware()
    assert names == ["a100-pcie4", "gh200-c2c", "h100-pcie5", "h200-pcie5", "v100-pcie3"]
    p = {n: load_hardware(n) for n in names}
    for hw in p.values():
        assert hw.name in describe_hardware_presets()
        assert HardwareProfile.from_dict(hw.to_dict()) == hw
        # The GPU's own memory outruns the host's, which outruns the host link.
        assert hw.gpu_hbm_gb_per_s > hw.cpu_dram_gb_per_s > hw.link_h2d_gb_per_s
        assert hw.gpu_hbm_capacity_gib < hw.cpu_dram_capacity_gib
        assert hw.cpu_threads * hw.cpu_thread_gb_per_s >= hw.cpu_dram_gb_per_s
        assert hw.gpu_matrix_tflops["fp32"] < max(hw.gpu_matrix_tflops.values())
    links = [p[n].link_h2d_gb_per_s for n in ("v100-pcie3", "a100-pcie4", "h100-pcie5", "gh200-c2c")]
    assert links == sorted(links) and links[-1] > 5 * links[-2]
    assert p["h200-pcie5"].gpu_hbm_gb_per_s > p["h100-pcie5"].gpu_hbm_gb_per_s
    assert p["h200-pcie5"].gpu_hbm_capacity_gib > p["h100-pcie5"].gpu_hbm_capacity_gib
    fp32 = [p[n].gpu_matrix_tflops["fp32"] for n in ("v100-pcie3", "a100-pcie4", "h100-pcie5")]
    assert fp32 == sorted(fp32)


@pytest.mark.parametrize("edit, message", [
    (("latency_us = 1\n", ""), r"hw\.toml: missing key \[link\] latency_us"),
    (("threads = 20", "threads = 0"), r"hw\.toml: \[cpu\] threads must be positive, got 0"),
    (("threads = 20", "threads = 2.5"), r"\[cpu\] threads must be an integer"),
    (("hbm_gb_per_s = 1000", "hbm_gb_per_s = -1"), r"\[gpu\] hbm_gb_per_s must be positive"),
    (("hbm_gb_per_s = 1000", 'hbm_gb_per_s = "fast"'), r"\[gpu\] hbm_gb_per_s must be a number"),
    (("gather_efficiency = 0.5", "gather_efficiency = 1.5"), r"gather_efficiency must be a fraction"),
    (("full_duplex = true", "full_duplex = 1"), r"\[link\] full_duplex must be true or false"),
    (("launch_us = 2", "launch_us = 2\nlaunch_ms = 0.002"), r"unknown key \[gpu\] launch_ms"),
    (("fp32 = 10", "fp32 = 10\nfp8 = 40"), r"unknown precision 'fp8'"),
    (("fp32 = 10", "tf32 = 40"), r"matrix_tflops must be a table .* at least fp32"),
    (("[cpu]", "[host]"), r"unknown key 'host'"),
])
def test_bad_files_name_the_file_and_key(tmp_path, edit, message):
    old, new = edit
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
