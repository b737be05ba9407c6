"""Invariants of the timing model on random small traces (hypothesis)."""

import numpy as np
import pytest
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

from simulator import TraceWriter, load_hardware, min_capacity
from simulator.pipeline import MODES, simulate

MODEL = """
embedding_dim = 64
bottom_mlp = [13, 128, 64]
top_mlp = [128, 1]
interaction = "dot"
batch_size = 64
dtype = "fp32"
optimizer = "adagrad"
"""

SLOW = dict(max_examples=25, deadline=None,
            suppress_health_check=[HealthCheck.function_scoped_fixture, HealthCheck.too_slow])


@pytest.fixture(scope="module")
def model(tmp_path_factory):
    p = tmp_path_factory.mktemp("model") / "m.toml"
    p.write_text(MODEL)
    return p


def make_trace(path, rows, batch_ids, batch_size):
    ids = np.concatenate(batch_ids)
    with TraceWriter(path, ["t0", "t1"], batch_size, {}, table_rows=[rows, rows]) as w:
        w.append(ids)
        return w.close()


@st.composite
def traces(draw, warm_start=False):
    rows = draw(st.integers(4, 40))
    # With a warm start, batch 0 holds one sample per row: it touches every row of both tables.
    batch_size = rows if warm_start else draw(st.integers(1, 6))
    batches = draw(st.integers(3, 12))
    n = batch_size * 2 * batches  # two tables, one id each per sample (sample-major)
    ids = draw(st.lists(st.integers(0, rows - 1), min_size=n, max_size=n))
    ids = list(np.array(ids, dtype=np.int64).reshape(batches, -1))
    if warm_start:
        ids[0] = np.repeat(np.arange(rows), 2)
    return rows, batch_size, ids


# Where scratchpipe and cache-prefetch plan: a planner thread beside the main thread, or the
# main thread.
PLANNERS = st.sampled_from(("thread", "main"))


def simulate_all(trace, hw, model, lookahead, planner="thread"):
    need = min_capacity(trace, lookahead=max(lookahead, 1))
    out = {}
    for mode in MODES:
        out[mode] = simulate(trace, mode=mode, hardware=hw, model=model, capacity=need,
                             lookahead=lookahead, planner=planner, warmup=0)
    return out


@settings(**SLOW)
@given(t=traces(), lookahead=st.integers(0, 3), pcie=st.floats(1.0, 8.0), dram=st.floats(1.0, 8.0),
       planner=PLANNERS)
def test_more_bandwidth_never_slows_any_mode(tmp_path, model, t, lookahead, pcie, dram, planner):
    rows, batch_size, ids = t
    trace = make_trace(tmp_path / "t", rows, ids, batch_size)
    base = load_hardware("a100-pcie4")
    slow = simulate_all(trace, base, model, lookahead, planner)
    fast = simulate_all(trace, base.scaled(pcie=pcie, dram=dram), model, lookahead, planner)
    for mode in MODES:
        # Every training step ends no later (max-plus: finish times grow with durations).
        assert np.all(fast[mode].iteration_end <= slow[mode].iteration_end * (1 + 1e-12)), mode


@settings(**SLOW)
@given(t=traces(warm_start=True), lookahead=st.integers(0, 4), planner=PLANNERS)
def test_scratchpipe_with_everything_resident_matches_gpu_only(tmp_path, model, t, lookahead,
                                                               planner):
    rows, batch_size, ids = t
    ids = ids + [ids[-1]] * 30  # a long enough steady state
    trace = make_trace(tmp_path / "t", rows, ids, batch_size)
    warmup = lookahead + 2
    gpu = simulate(trace, mode="gpu-only", hardware="h100-pcie5", model=model, warmup=warmup)
    sp = simulate(trace, mode="scratchpipe", hardware="h100-pcie5", model=model,
                  capacity=2 * rows, lookahead=lookahead, planner=planner, warmup=warmup)
    assert sp.replay["misses"] == 2 * rows  # only batch 0 misses
    assert sp.iteration_time == pytest.approx(gpu.iteration_time, rel=0.02)


@settings(**SLOW)
@given(t=traces(), lookahead=st.integers(0, 3), planner=PLANNERS)
def test_no_writeback_before_the_last_training_step_that_used_its_row(tmp_path, model, t,
                                                                    lookahead, planner):
    rows, batch_size, ids = t
    trace = make_trace(tmp_path / "t", rows, ids, batch_size)
    runs = simulate_all(trace, "h100-pcie5", model, lookahead, planner)
    # A victim of batch j is outside the mode's window, so the last batch that used it is at
    # most j-1 (on-demand cache), j-2 (prefetch: batch j-1 is locked) or j-W-1 (scratchpipe).
    window = {"cache": 0, "cache-prefetch": 1, "scratchpipe": lookahead}
    for mode, held in window.items():
        r = runs[mode]
        s, e = r.schedule.start, r.schedule.end
        evicting = np.nonzero(r.work.evictions)[0]
        for j in evicting:
            last_use = j - held - 1
            if last_use >= 0:
                assert s["evict"][j] >= e["train"][last_use], (mode, j)
                assert s["writeback"][j] >= e["train"][last_use], (mode, j)
        # Slots are overwritten only after their victims are out, and a row evicted at j-1 is
        # collected again only after its write-back.
        fetching = r.work.misses > 0
        assert np.all(s["insert"][fetching] >= e["d2h"][fetching])
        assert np.all(s["collect"][1:] >= e["writeback"][:-1])
        # Training always hits: it starts after its rows were inserted (a stage with no work
        # waits for nothing).
        assert np.all(s["train"] >= e["insert"])
        # Training is issued once its batch is planned, and batch j is planned once training
        # j-W-1 has been issued (on the main thread, its program order says so).
        assert np.all(s["issue_train"] >= e["plan"])
        after = max(len(s["plan"]) - held - 1, 0)
        assert np.all(s["plan"][held + 1:] >= e["issue_train"][:after])
        thread = planner == "thread" and mode != "cache"  # cache plans on demand, in order
        assert {r.schedule.stages[x] for x in ("plan", "issue_evict")} == {
            "planner" if thread else "cpu"}
