"""How the dense step is issued (ModelConfig.dense_step) and mixed precision as autocast runs it
(ops.train_step's half bytes and casts; test_autocast_ops.py counts them), on hand-computed
cases.

Dense step: a profile where only the host's dispatch costs (1 us an op) and the device is free.
The tiny model (one table of dim 250, bottom MLP 1-1, top MLP 251-1, cat interaction, SGD)
lists 60 ops in its train step (ops.train_step):
    embedding forward  alias, detach, _embedding_bag, view                              4
    bottom.0           t, addmm, relu, detach                                           4
    cat                select, cat                                                      2
    top.0              t, addmm                                                         2
    loss, zero_grad    squeeze, binary_cross_entropy_with_logits, 2 _record_function    4
    loss backward      ones_like, 4 of sigmoid sub mul div_, unsqueeze                  6
    top.0 backward     t, mm, t, mm, t, sum, view, detach, t, detach                   10
    cat backward       2 slices, select_backward                                        3
    bottom.0 backward  detach, threshold_backward, t, mm, t, sum, view, detach, t, detach 10
    embedding backward view, _embedding_bag_backward, detach                            3
    optimizer          2 _record_function, an add_ for each of 2 weights and 2 biases    6
    loss.item()        _local_scalar_dense                                              1
    update (SGD)       clone, alias, mul, sub, copy_                                    5
gpu-only's train stage adds the row ids' copy, the rows' gather and their scatter: 63 ops,
63 us of dispatch eager. As a CUDA graph, the 47 dense ops (all but the 4 + 3 embedding ops,
loss.item() and the 5 update ops) are one launch: 63 - 47 + 1 = 17 us.
"""

import tomllib

import numpy as np
import pytest

from simulator import TraceWriter, load_hardware, load_model
from simulator.errors import OptionError
from simulator.hardware import HardwareProfile
from simulator.pipeline import ops, simulate
from simulator.pipeline.costs import BatchWork, StageCosts

US = 1e-6

PROFILE = """
name = "dispatch-only"
kind = "{kind}"
[link]
h2d_gb_per_s = 1e9
d2h_gb_per_s = 1e9
pageable_gb_per_s = 1e9
latency_us = 0
full_duplex = true
[cpu]
dram_gb_per_s = 1e9
row_latency_ns = 0
threads = 1
thread_gb_per_s = 1e9
dram_capacity_gib = 64
dispatch_us = 1
plan_us = 0
plan_row_ns = 0
[gpu]
hbm_gb_per_s = {hbm}
stream_efficiency = 1
launch_us = 0
graph_kernel_us = 0
batched_gemm_ns = 0
hbm_capacity_gib = 16
[gpu.gather_efficiency]
64 = 1
[gpu.scatter_efficiency]
64 = 1
[gpu.segment_ns_per_key]
1 = 1e-9
[gpu.matrix_tflops]
fp32 = 1e9
fp16 = 100
[gpu.gemm_efficiency.fp32]
1x1x1 = 1
[gpu.gemm_efficiency.fp16]
1024x64x64 = 0.2
4096x64x64 = 0.6
"""

MODEL = {"name": "tiny", "embedding_dim": 250, "bottom_mlp": [1, 1], "top_mlp": [1],
         "interaction": "cat", "batch_size": 2, "dtype": "fp32", "optimizer": "sgd"}


def profile(kind="cuda", hbm=1e9):
    return HardwareProfile.from_dict(tomllib.loads(PROFILE.format(kind=kind, hbm=hbm)))


def model(**keys):
    from simulator.workload import ModelConfig
    return ModelConfig.from_dict({**MODEL, **keys})


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    d = tmp_path_factory.mktemp("dense")
    with TraceWriter(d / "trace", ["t"], 2, {}, table_rows=[5]) as w:
        w.append(np.array([0, 1, 2, 3, 0, 4]))
        return w.close()


def issue_us(trace, dense_step):
    r = simulate(trace, mode="gpu-only", hardware=profile(), model=model(dense_step=dense_step))
    return r.schedule.end["issue_train"] - r.schedule.start["issue_train"], r


def test_the_train_stage_dispatches_every_op_eagerly_and_one_launch_as_a_graph(trace):
    eager, r = issue_us(trace, "eager")
    assert eager / US == pytest.approx([63, 63, 63])
    graph, g = issue_us(trace, "cuda-graph")
    assert graph / US == pytest.approx([17, 17, 17])
    # The graph's ops are still counted (the launch is not a framework op of its own).
    assert g.op_counts["train"].tolist() == r.op_counts["train"].tolist() == [63, 63, 63]


def test_a_graph_kernel_costs_the_graph_per_kernel_time_not_an_eager_launch():
    hw = HardwareProfile.from_dict({**profile().to_dict(), "gpu": {
        **profile().to_dict()["gpu"], "launch_us": 3.0, "graph_kernel_us": 1.0}})
    prices = ops.Costs(hw)
    relu = ops.stream("relu", 0, what="bottom.0")
    graphed, = [op for op in ops.graph_dense([relu]) if op.kind == "stream"]
    # No work: 3 us eager, 1 us in a graph; no dispatch of its own in the graph.
    assert float(prices.device(relu)) / US == pytest.approx(3.0)
    assert float(prices.device(graphed)) / US == pytest.approx(1.0)
    assert float(prices.host(graphed)) == 0


@pytest.mark.parametrize("hardware", ["h100-pcie5", "a100-pcie4", "v100-pcie3"])
@pytest.mark.parametrize("mode", ["gpu-only", "hybrid", "scratchpipe"])
def test_a_cuda_graph_never_makes_an_iteration_slower(tmp_path_factory, hardware, mode):
    from simulator import generate
    d = tmp_path_factory.mktemp("mono")
    t = generate("zipf", d / "t", table_rows=[20_000] * 4, batch_size=256, num_batches=12,
                 seed=1, alpha=1.05)
    base = {"embedding_dim": 16, "bottom_mlp": [13, 64, 16], "top_mlp": [64, 1],
            "interaction": "dot", "batch_size": 256, "dtype": "fp32", "optimizer": "sgd"}
    times = {}
    for step in ("eager", "cuda-graph"):
        from simulator.workload import ModelConfig
        m = ModelConfig.from_dict({**base, "dense_step": step})
        times[step] = simulate(t, mode=mode, hardware=hardware, model=m,
                               capacity="80%" if mode == "scratchpipe" else None).iteration_time
    assert times["cuda-graph"] <= times["eager"] * (1 + 1e-12)


def test_kind_cpu_refuses_a_cuda_graph():
    one = np.ones(1, dtype=np.int64)
    with pytest.raises(OptionError, match="kind cpu, which has none; set dense_step"):
        StageCosts(BatchWork(one, one, one, 0 * one, 0 * one), profile(kind="cpu"),
                   model(dense_step="cuda-graph"), 1)


def test_the_model_validates_dense_step():
    with pytest.raises(OptionError, match=r"dense_step must be one of eager, cuda-graph"):
        model(dense_step="graph")
    assert model().dense_step == "eager"
    assert load_model("dlrm-kaggle", {"dense_step": "cuda-graph"}).dense_step == "cuda-graph"


def test_a_graph_kernel_dearer_than_an_eager_one_is_refused():
    data = profile().to_dict()
    data["gpu"]["graph_kernel_us"] = 1.0
    with pytest.raises(OptionError, match=r"graph_kernel_us \(1\) exceeds launch_us \(0\)"):
        HardwareProfile.from_dict(data)


# -- mixed precision ----------------------------------------------------------------------------
def stream_us(prices, op):
    return float(prices.device(op)) / US


def test_autocast_halves_the_bytes_of_the_mlp_ops_and_adds_its_casts():
    # At 1 GB/s (1 byte a ns, no launch) an op's time in us is its bytes / 1,000.
    prices = ops.Costs(profile(hbm=1.0), "fp16")
    m = 1000
    fp32 = [op for op in ops.linear_forward(m, 10, 20, True, "bottom.0") if op.kind == "stream"]
    half = [op for op in ops.linear_forward(m, 10, 20, True, "bottom.0", half=True,
                                            cast_input=True) if op.kind == "stream"]
    # relu reads and writes m x 20 values: 160,000 B in fp32 (160 us), 80,000 B in fp16.
    assert [stream_us(prices, op) for op in fp32] == pytest.approx([160])
    # fp16: the weight (200 values), the bias (20) and the fp32 input (10,000) cast, 6 bytes
    # a value (4 read, 2 written), then the half relu.
    assert [op.name for op in half] == ["_to_copy"] * 3 + ["relu"]
    assert [stream_us(prices, op) for op in half] == pytest.approx([1.2, 0.12, 60, 80])
    backward = [op for op in ops.linear_backward(m, 10, 20, True, True, "top.1 backward",
                                                 half=True, cast_input=True)
                if op.kind == "stream"]
    # threshold_backward 3 x 2 x 20,000 = 120,000 B, the bias's sum 40,000 B; the weight's
    # and bias's gradients (200, 20 values) and the input's (10,000) cast back to fp32.
    assert [stream_us(prices, op) for op in backward] == pytest.approx([120, 40, 1.2, 0.12, 60])
    # The gemm's operands are half: 2 x (1000x10 + 10x20 + 1000x20) bytes.
    gemm, = [op for op in ops.linear_forward(m, 10, 20, True, "x", half=True) if op.kind == "gemm"]
    assert float(gemm.nbytes) == 2 * (10_000 + 200 + 20_000)


def test_an_fp16_gemm_runs_at_the_fp16_peak_and_its_shape_efficiency():
    # gemm(2048, 64, 64): 2 x 2048 x 64 x 64 = 16,777,216 flops. The fp16 grid gives 0.2 at
    # M = 1024 and 0.6 at M = 4096; M = 2048 lies halfway in log2(M): 0.4. At 100 TFLOPS:
    # 16,777,216 / (0.4 x 100e12) = 0.4194304 us. Its bytes, 4 x (2048x64 + 64x64 + 2048x64)
    # = 1,064,960 in fp32, halved to 532,480, take 0.53 ns at 1e6 GB/s: compute-bound (the
    # roofline takes the larger).
    prices = ops.Costs(profile(hbm=1e6), "fp16")
    op = ops.gemm("addmm", 2048, 64, 64, what="bottom.0", elem=ops.HALF_BYTES)
    assert float(prices.device(op)) / US == pytest.approx(0.4194304)
    assert float(op.nbytes) == 532_480


def test_a_precision_without_a_grid_is_a_one_line_error():
    prices = ops.Costs(load_hardware("v100-pcie3"), "bf16")
    with pytest.raises(OptionError, match="hardware v100-pcie3 has no bf16 matrix throughput"):
        prices.device(ops.gemm("addmm", 128, 16, 16, what="top.0"))
