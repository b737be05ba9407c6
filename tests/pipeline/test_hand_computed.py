"""Every mode's per-iteration times on a 3-batch trace, computed by hand.

Prices (round numbers): a 1,000-byte row costs 1 us to gather, on the host or the device, and
to cross the link either way (pinned or pageable); a scatter (read-modify-write) costs 2 us a
row on either side; the GEMMs of a train step take 10 us in all; elementwise work is free
(a bandwidth of 1e9 GB/s) and so are dispatch, launches, latencies and sorts. A train step
pools its lookups' rows and in its backward sums their gradients into the 2 distinct rows,
all in the batch's own gathered rows (a small tensor, priced as elementwise work: free): the
train step is its GEMMs, 10 us.
Small transfers: a batch's inputs are 2 samples x (1 dense + 1 label) x 4 B + 2 lookup
positions x 8 B + 2 bag offsets x 8 B = 48 B in four copies (0.048 us); the ids of a batch's
2 distinct rows or slots 16 B (0.016 us); a plan probes its distinct rows and places its
misses at 16 bytes each (0.016 us each).

Trace (one table, batch size 2): b0 = {0, 1}, b1 = {2, 3}, b2 = {0, 4}.
"""

import tomllib

import numpy as np
import pytest

from simulator import TraceWriter, load_model
from simulator.hardware import HardwareProfile
from simulator.pipeline import simulate
from simulator.pipeline.costs import BatchWork, StageCosts

US = 1e-6

PROFILE = """
name = "round"
kind = "cuda"
[link]
h2d_gb_per_s = 1
d2h_gb_per_s = 1
pageable_gb_per_s = 1
latency_us = 0
full_duplex = true
[cpu]
dram_gb_per_s = 1e9
row_latency_ns = 0
threads = 1
thread_gb_per_s = 1
dram_capacity_gib = 64
dispatch_us = 0
plan_us = 0
plan_row_ns = 16
[gpu]
hbm_gb_per_s = 1e9
stream_efficiency = 1
launch_us = 0
graph_kernel_us = 0
batched_gemm_ns = 0
hbm_capacity_gib = 16
[gpu.gather_efficiency]
64 = 1e-9
[gpu.scatter_efficiency]
64 = 5e-10
[gpu.segment_ns_per_key]
1 = 1e-9
[gpu.matrix_tflops]
fp32 = {tflops}
[gpu.gemm_efficiency.fp32]
1x1x1 = 1
"""

MODEL = """
name = "tiny"
embedding_dim = 250
bottom_mlp = [1, 1]
top_mlp = [1]
interaction = "cat"
batch_size = 2
dtype = "fp32"
optimizer = "sgd"
"""


@pytest.fixture(scope="module")
def setup(tmp_path_factory):
    d = tmp_path_factory.mktemp("hand")
    with TraceWriter(d / "trace", ["t"], 2, {}, table_rows=[5]) as w:
        w.append(np.array([0, 1, 2, 3, 0, 4]))
        trace = w.close()
    (d / "model.toml").write_text(MODEL)
    one = np.ones(1, dtype=np.int64)
    step = StageCosts(BatchWork(2 * one, 2 * one, 2 * one, 0 * one, 0 * one),
                      load_hardware_round(1.0), load_model(d / "model.toml"), 1).train_step()
    flops_per_batch = sum(float(op.flops[0]) for op in step if op.kind == "gemm")
    # Pick the matrix peak that makes the GEMMs of one batch take exactly 10 us.
    (d / "hw.toml").write_text(PROFILE.format(tflops=flops_per_batch / (10 * US) / 1e12))
    return trace, d / "hw.toml", d / "model.toml"


def load_hardware_round(tflops):
    return HardwareProfile.from_dict(tomllib.loads(PROFILE.format(tflops=tflops)))


def ends(setup, mode, **kw):
    trace, hw, model = setup
    r = simulate(trace, mode=mode, hardware=hw, model=model, **kw)
    return r, r.iteration_end / US


def test_gpu_only(setup):
    # Train = copy the 2 row ids (.016) + gather 2 rows (2) + step (10) + update 2 rows (4) =
    # 16.016 us, after its 0.048 us input.
    r, end = ends(setup, "gpu-only")
    assert end == pytest.approx([16.064, 32.08, 48.096])
    assert np.diff(end) == pytest.approx([16.016, 16.016])
    assert r.bytes_h2d == 3 * 32 and r.bytes_d2h == 0


def test_hybrid(setup):
    # In order: the host gathers 2 rows (2); the step pools them on the host (2), copies the
    # pooled 2 x 1,000 B H2D (2), runs the GEMMs (10), copies their gradients D2H (2) and
    # computes the rows' gradients on the host (2 + 4): 22; the host writes 2 rows back (4).
    # 28 us an iteration; the first ends after collect and step.
    r, end = ends(setup, "hybrid")
    assert end == pytest.approx([24, 52, 80])
    assert r.bytes_h2d == 3 * (16 + 2000) and r.bytes_d2h == 3 * 2000


def test_cache_lru_on_demand(setup):
    # LRU with 2 rows: misses [2, 2, 2], victims [0, 2, 2]. The host plans (2 probes + 2
    # misses: .064) and then, in order, writes the victims back and collects the misses.
    # b0: plan .064, collect 2 rows (2) -> 2.064, copy them in (2) -> 4.064, insert (slot ids
    # .016 + 2 rows 4) -> 8.08, train 16.016 -> 24.096.
    # b1, b2: after the last train, the GPU gathers the 2 victims (their slot ids .016 + 2),
    # they go D2H (2), the host writes them back (4) and only then collects (2), copy in (2),
    # insert (4.016), train (16.016): 32.048 each.
    r, end = ends(setup, "cache", capacity=2)
    assert end == pytest.approx([24.096, 56.144, 88.192])
    assert r.replay["misses"] == 6 and r.replay["evictions"] == 4
    assert r.bytes_d2h == 4 * 1000


def test_cache_prefetch(setup):
    # The lines of batch i are locked while i+1 is looked up (a 4-row cache): misses [2, 2, 1],
    # victims [0, 0, 1] (row 1, at b2). A stage with nothing to do waits for nothing.
    # Host: plan0 .064, collect0 -> 2.064, plan1 -> 2.128, collect1 -> 4.128; plan2 (2 probes,
    # 1 miss: .048) once train0 has started, 8.08 -> 8.128. b0's rows cross 2.064 -> 4.064,
    # insert0 (4.016) -> 8.08, train0 (16.016) -> 24.096.
    # GPU, per iteration: insert i+1, gather i+2's victims, train i+1: insert1 (4.016) ->
    # 28.112, evict2 (1 slot id .008 + 1 row) -> 29.12, train1 -> 45.136; meanwhile the victim
    # goes D2H (1) and is written back (2) before row 4 is collected (1) and copied (1): by
    # 34.12. insert2 (2.008) -> 47.144, train2 -> 63.16.
    r, end = ends(setup, "cache-prefetch", capacity=4)
    assert end == pytest.approx([24.096, 45.136, 63.16])
    assert r.replay["misses"] == 5 and r.replay["evictions"] == 1


def test_scratchpipe(setup):
    # W = 1, 4 rows: the same decisions as cache-prefetch. Host: plan0 .064, collect0 -> 2.064,
    # plan1 -> 2.128, collect1 -> 4.128; plan2 once train0 has started (8.08 -> 8.128), and
    # row 4 is collected (1) at once. GPU: insert0 after its copy (4.064 -> 8.08), train0
    # (16.016) -> 24.096; the victim's gather (.008 + 1) -> 25.104 (after train0, its last
    # use), insert1 (4.016) -> 29.12, train1 -> 45.136; insert2 (2.008) -> 47.144, train2 ->
    # 63.16.
    r, end = ends(setup, "scratchpipe", capacity=4, lookahead=1)
    assert end == pytest.approx([24.096, 45.136, 63.16])
    # The victim (row 1, last used by b0) is written back after train0 has finished.
    assert r.schedule.start["writeback"][2] >= r.schedule.end["train"][0]
    assert r.to_dict()["replay"]["train_hit_rate"] == 1.0


def test_kind_cpu_runs_every_stage_in_order(setup, tmp_path):
    # On kind cpu one resource runs all: an iteration is the sum of its stages, so the runs
    # end at the running sums (gpu-only: the 0.048 us input and the 0.016 us id copy are
    # not made, there being no link: 16 us a batch).
    trace, hw, model = setup
    cpu = tmp_path / "cpu.toml"
    cpu.write_text(hw.read_text().replace('kind = "cuda"', 'kind = "cpu"'))
    r = simulate(trace, mode="gpu-only", hardware=cpu, model=model)
    assert r.iteration_end / US == pytest.approx([16, 32, 48])
    r = simulate(trace, mode="scratchpipe", hardware=cpu, model=model, capacity=4, lookahead=1)
    busy = sum(float(np.sum(r.schedule.end[s] - r.schedule.start[s])) for s in r.schedule.stages)
    assert r.iteration_end[-1] == pytest.approx(busy)
    assert set(r.schedule.stages.values()) == {"cpu"}


def test_a_half_duplex_link_carries_one_direction_at_a_time(setup, tmp_path):
    trace, hw, model = setup
    half = tmp_path / "half.toml"
    half.write_text(hw.read_text().replace("full_duplex = true", "full_duplex = false"))
    full = simulate(trace, mode="scratchpipe", hardware=hw, model=model, capacity=4, lookahead=1)
    r = simulate(trace, mode="scratchpipe", hardware=half, model=model, capacity=4, lookahead=1)
    copies = sorted((r.schedule.start[s][b], r.schedule.end[s][b])
                    for s in ("input", "transfer", "d2h") for b in range(3))
    assert all(end <= next_start for (_, end), (next_start, _) in zip(copies, copies[1:]))
    assert r.busy()["d2h"] == 0 and r.bytes_d2h == full.bytes_d2h
    assert np.all(r.iteration_end >= full.iteration_end)


def test_on_cuda_the_host_thread_that_issues_the_gpu_work_can_be_the_bottleneck(setup, tmp_path):
    # Dispatch at 1 ms an op dwarfs every other price: gpu-only's host issues the train
    # step's ops one after another, and the GPU step can end no sooner, so an iteration is
    # the step's op count in milliseconds. The host works all the time; the GPU only for its
    # kernels, 16 us an iteration (gather 2 + step 10 + update 4), waiting out the dispatch in
    # between: the host is the bottleneck.
    trace, hw, model = setup
    slow = tmp_path / "slow-host.toml"
    slow.write_text(hw.read_text().replace("dispatch_us = 0", "dispatch_us = 1000"))
    r = simulate(trace, mode="gpu-only", hardware=slow, model=model)
    ops = r.op_counts["train"]
    assert np.diff(r.iteration_end) == pytest.approx(ops[1:] * 1e-3, rel=1e-4)
    busy = r.busy()
    assert busy["cpu"] == pytest.approx(1, abs=0.01)
    assert busy["gpu"] == pytest.approx(16 * US / (ops[-1] * 1e-3))  # the window: batch 2
    assert r.bottleneck == "cpu"
    # scratchpipe: the main thread plans and issues evict and train, the worker issues the
    # inserts (and does the host's row work): the main thread's ops set the pace.
    r = simulate(trace, mode="scratchpipe", hardware=slow, model=model, capacity=4, lookahead=1)
    main = r.op_counts["plan"] + r.op_counts["evict"] + r.op_counts["train"]
    assert r.iteration_end[-1] >= main.sum() * 1e-3
    assert r.schedule.stages["issue_insert"] == "worker"


def test_hybrid_busy_time_is_what_each_resource_works(setup):
    # The window (after 2 warm-up iterations) is batch 2's iteration, 52 -> 80 us (28 us).
    # The GPU's train step spans 22 us of it (58 -> 80), but its kernels are only the 10 us of
    # GEMMs; the host pools and updates (2 + 6 us: the issue of the step, on the main thread),
    # the link carries the pooled 2,000 B each way (2 us H2D, 2 us D2H). The main thread also
    # writes batch 1's rows back (4 us, from 52) and gathers batch 2's (2): 14 us. So the host
    # works half the window and the GPU 10/28 of it: the host is the bottleneck, not the GPU
    # whose whole span (22/28) would have said it was.
    r, end = ends(setup, "hybrid")
    busy = r.busy()
    assert busy["cpu"] == pytest.approx(14 / 28)
    assert busy["gpu"] == pytest.approx(10 / 28)
    assert busy["h2d"] == pytest.approx(2 / 28) and busy["d2h"] == pytest.approx(2 / 28)
    assert busy["worker"] == busy["planner"] == 0
    assert r.bottleneck == "cpu"


def test_a_planner_thread_plans_while_the_main_thread_issues_training(setup, tmp_path):
    # Ten batches of the rows {0, 1} and a scratchpad of 2 rows (W = 1): only batch 0 misses.
    # Dispatch costs 1 us an op and a plan 20 us plus 16 ns a row probed (2) plus its one op
    # (the wrap of its slots): 21.032 us. The train step's K ops (op_counts: the same in both
    # modes) take K us to issue; on the GPU it lasts max(its 16 us of kernels, K) plus its 16 B
    # of slot ids (.016 us), K + .016 (K > 16): gpu-only's iteration.
    # planner "main": the main thread plans batch i+1 and issues training i, 21.032 + K us an
    # iteration, the GPU waiting; the last iteration, with nothing left to plan, K + .016.
    # planner "thread": the planner thread plans batch i+1 (once training i-1 is issued)
    # while the main thread issues training i, and the GPU sets the pace: K + .016.
    trace, hw, model = setup
    with TraceWriter(tmp_path / "trace", ["t"], 2, {}, table_rows=[5]) as w:
        w.append(np.array([0, 1] * 10))
        resident = w.close()
    slow = tmp_path / "planner.toml"
    slow.write_text(hw.read_text().replace("dispatch_us = 0", "dispatch_us = 1")
                    .replace("plan_us = 0", "plan_us = 20"))
    gpu = simulate(resident, mode="gpu-only", hardware=slow, model=model)
    k = gpu.op_counts["train"][0]
    assert k > 16 and np.all(gpu.op_counts["train"] == k)
    assert gpu.iteration_times[2:] / US == pytest.approx(k + 0.016)
    runs = {planner: simulate(resident, mode="scratchpipe", hardware=slow, model=model,
                              capacity=2, lookahead=1, planner=planner)
            for planner in ("main", "thread")}
    main, thread = runs["main"], runs["thread"]
    assert main.replay["misses"] == 2 and np.all(main.op_counts["train"] == k)
    assert main.iteration_times[2:-1] / US == pytest.approx(k + 21.032)
    assert main.iteration_times[-1] / US == pytest.approx(k + 0.016)
    assert thread.iteration_times[2:] / US == pytest.approx(k + 0.016)
    # Batch j is planned as soon as training j-2 is issued, while training j-1 is being issued.
    s, e = thread.schedule.start, thread.schedule.end
    assert s["plan"][3:] == pytest.approx(e["issue_train"][1:-2])
    assert np.all(s["plan"][3:] < e["issue_train"][2:-1])
    assert thread.schedule.stages["plan"] == "planner" and main.schedule.stages["plan"] == "cpu"
    assert thread.busy()["planner"] > 0 and main.busy()["planner"] == 0
    # On kind cpu one resource runs everything in order: where the plan runs changes nothing.
    cpu = tmp_path / "cpu.toml"
    cpu.write_text(slow.read_text().replace('kind = "cuda"', 'kind = "cpu"'))
    on_cpu = [simulate(resident, mode="scratchpipe", hardware=cpu, model=model, capacity=2,
                       lookahead=1, planner=planner).iteration_end
              for planner in ("main", "thread")]
    assert np.array_equal(*on_cpu)
