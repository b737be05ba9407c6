"""Every mode's per-iteration times on a 3-batch trace, computed by hand.

Prices (round numbers): a 1,000-byte row costs 1 us to gather on the CPU, to cross the link
either way, and to gather on the GPU; a scatter (read-modify-write) costs 2 us a row on
either side; the MLPs take 10 us a batch; no latencies and no launch overheads. Small
transfers: a batch's inputs are 2 samples x (1 dense + 1 label) x 4 B + 2 ids x 8 B = 32 B
(0.032 us; hybrid sends no ids: 0.016 us) and a probe of the 2 distinct rows' 16-byte tags
costs 0.032 us.

Trace (one table, batch size 2): b0 = {0, 1}, b1 = {2, 3}, b2 = {0, 4}.
"""

import numpy as np
import pytest

from simulator import TraceWriter
from simulator.pipeline import simulate

US = 1e-6

PROFILE = """
name = "round"
[link]
h2d_gb_per_s = 1
d2h_gb_per_s = 1
latency_us = 0
full_duplex = true
[cpu]
dram_gb_per_s = 1000
row_latency_ns = 0
threads = 1
thread_gb_per_s = 1
dram_capacity_gib = 64
[gpu]
hbm_gb_per_s = 2
gather_efficiency = 0.5
mlp_efficiency = 1
launch_us = 0
hbm_capacity_gib = 16
[gpu.matrix_tflops]
fp32 = {tflops}
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
    from simulator import load_model
    flops_per_batch = load_model(d / "model.toml").mlp_flops(2, 1)
    # Pick the matrix peak that makes the MLPs of one batch take exactly 10 us.
    (d / "hw.toml").write_text(PROFILE.format(tflops=flops_per_batch / (10 * US) / 1e12))
    return trace, d / "hw.toml", d / "model.toml"


def ends(setup, mode, **kw):
    trace, hw, model = setup
    r = simulate(trace, mode=mode, hardware=hw, model=model, **kw)
    return r, r.iteration_end / US


def test_gpu_only(setup):
    # Train = gather 2 rows (2) + MLP (10) + update 2 rows (4) = 16 us, after its 0.032 us input.
    r, end = ends(setup, "gpu-only")
    assert end == pytest.approx([16.032, 32.032, 48.032])
    assert np.diff(end) == pytest.approx([16, 16])
    assert r.bytes_h2d == 3 * 32 and r.bytes_d2h == 0


def test_hybrid(setup):
    # In order: CPU gathers 2 rows (2), pooled H2D 2 x 1,000 B (2), MLP (10), gradients D2H (2),
    # CPU updates 2 rows (4): 20 us an iteration; the first ends after gather, copy and MLP.
    r, end = ends(setup, "hybrid")
    assert end == pytest.approx([14, 34, 54])
    assert r.bytes_h2d == 3 * (16 + 2000) and r.bytes_d2h == 3 * 2000


def test_cache_lru_on_demand(setup):
    # LRU with 2 rows: misses [2, 2, 2], victims [0, 2, 2].
    # b0: probe .032, collect 2 rows (2), H2D (2), insert 2 rows (4), train 16 -> 24.032.
    # b1, b2: probe .032, evict 2 rows on the GPU (2) while the CPU collects (2), H2D (2) while
    # the victims go D2H (2), insert (4), train (16): 24.032 each.
    r, end = ends(setup, "cache", capacity=2)
    assert end == pytest.approx([24.032, 48.064, 72.096])
    assert r.replay["misses"] == 6 and r.replay["evictions"] == 4
    assert r.bytes_d2h == 4 * 1000


def test_cache_prefetch(setup):
    # The lines of batch i are locked while i+1 is looked up (a 4-row cache): misses [2, 2, 1],
    # victims [0, 0, 1] (row 1, at b2).
    # GPU: lookup0 .032, insert0 (after collect 2 and H2D 2) 4.032->8.032, lookup1 -> 8.064,
    # train0 8.064->24.064 while b1's rows are collected (8.064->10.064) and copied (->12.064);
    # insert1 24.064->28.064; lookup2 -> 28.096, evict2 -> 29.096, train1 29.096->45.096;
    # meanwhile b2's row is collected and copied (-> 30.096); insert2 45.096->47.096;
    # train2 47.096->63.096.
    r, end = ends(setup, "cache-prefetch", capacity=4)
    assert end == pytest.approx([24.064, 45.096, 63.096])
    assert r.replay["misses"] == 5 and r.replay["evictions"] == 1


def test_scratchpipe(setup):
    # W = 1, 4 rows: the same decisions as cache-prefetch. CPU: plan0 (.032), collect0 (->2.032),
    # plan1 (->2.064), collect1 (->4.064); plan2 waits for train0. GPU: insert0 after H2D
    # (4.032->8.032), train0 8.032->24.032; plan2 24.032->24.064, evict2 24.064->25.064,
    # insert1 25.064->29.064, train1 29.064->45.064; b2's row is collected and copied by
    # 26.064, insert2 45.064->47.064, train2 47.064->63.064.
    r, end = ends(setup, "scratchpipe", capacity=4, lookahead=1)
    assert end == pytest.approx([24.032, 45.064, 63.064])
    # The victim (row 1, last used by b0) is written back after train0 has finished.
    assert r.schedule.start["writeback"][2] >= r.schedule.end["train"][0]
    assert r.to_dict()["replay"]["train_hit_rate"] == 1.0


def test_a_half_duplex_link_carries_one_direction_at_a_time(setup, tmp_path):
    trace, hw, model = setup
    half = tmp_path / "half.toml"
    half.write_text(hw.read_text().replace("full_duplex = true", "full_duplex = false"))
    full = simulate(trace, mode="scratchpipe", hardware=hw, model=model, capacity=4, lookahead=1)
    r = simulate(trace, mode="scratchpipe", hardware=half, model=model, capacity=4, lookahead=1)
    copies = sorted((r.schedule.start[s][b], r.schedule.end[s][b])
                    for s in ("input", "h2d", "d2h") for b in range(3))
    assert all(end <= next_start for (_, end), (next_start, _) in zip(copies, copies[1:]))
    assert r.busy()["d2h"] == 0 and r.bytes_d2h == full.bytes_d2h
    assert np.all(r.iteration_end >= full.iteration_end)
