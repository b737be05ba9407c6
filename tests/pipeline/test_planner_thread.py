"""ScratchPipe's plan as a pipeline stage of its own (pipeline/scratchpipe.py's PLANNER): on
h100-pcie5 with dlrm-kaggle at batch 2048, a scratchpad as large as the trace's distinct rows
(capacity 100%) and W = 4, the main thread's issue of the ~175 ops of a training step takes
about as long as the GPU's step, and planning a batch (probing its ~15,000 distinct rows) a
quarter of that again. On a planner thread of its own the plan hides behind the issue and
scratchpipe trains within 5% of gpu-only (what is left: inserting the rows seen for the first
time); on the main thread every step waits for a plan, about 1.2 times gpu-only's iteration."""

import numpy as np
import pytest

import simulator
from simulator.pipeline import simulate

HARDWARE, MODEL, LOOKAHEAD = "h100-pcie5", "dlrm-kaggle", 4
BATCHES = 40  # the steady state (after 6 warm-up iterations) is most of the run


@pytest.fixture(scope="module")
def runs(tmp_path_factory):
    # As `scratchsim trace generate zipf --like dlrm-kaggle --batch-size 2048`.
    shape = simulator.load_model(MODEL).generator_options()
    rows = shape.pop("table_rows")
    trace = simulator.generate("zipf", tmp_path_factory.mktemp("kaggle") / "t", rows,
                               batch_size=2048, num_batches=BATCHES, seed=1,
                               show_progress=False, **shape)
    out = {"gpu-only": simulate(trace, mode="gpu-only", hardware=HARDWARE, model=MODEL)}
    for planner in ("thread", "main"):
        out[planner] = simulate(trace, mode="scratchpipe", hardware=HARDWARE, model=MODEL,
                                capacity="100%", lookahead=LOOKAHEAD, planner=planner)
    return out


def test_with_a_planner_thread_scratchpipe_trains_at_gpu_only_speed(runs):
    ratio = runs["thread"].iteration_time / runs["gpu-only"].iteration_time
    assert 1 <= ratio < 1.05
    # What limits both is the main thread's issue of the training step (the GPU waits out
    # its dispatch); the planner thread works beside it.
    r = runs["thread"]
    assert r.bottleneck == runs["gpu-only"].bottleneck == "cpu"
    assert r.schedule.stages["plan"] == "planner" and r.busy()["planner"] > 0.15
    # Each steady iteration the GPU inserts the rows seen for the first time, then trains.
    w = r.warmup
    gpu_work = (r.schedule.end["insert"] - r.schedule.start["insert"]
                + r.schedule.end["train"] - r.schedule.start["train"])[w:]
    assert r.steady_iteration_times == pytest.approx(gpu_work, rel=1e-3)


def test_planning_on_the_main_thread_adds_to_every_step(runs):
    r = runs["main"]
    ratio = r.iteration_time / runs["gpu-only"].iteration_time
    assert ratio == pytest.approx(1.2, abs=0.03)
    assert r.bottleneck == "cpu"
    # Between two training steps the main thread plans the batch W ahead and issues the
    # next step: until nothing is left to plan (the last W iterations), that is the
    # iteration (give or take the change in the step's copy of its row ids, a few ns).
    s, e, w = r.schedule.start, r.schedule.end, r.warmup
    plan = (e["plan"] - s["plan"])[w + LOOKAHEAD:]
    issue = (e["issue_train"] - s["issue_train"])[w:BATCHES - LOOKAHEAD]
    assert r.iteration_times[w:BATCHES - LOOKAHEAD] == pytest.approx(plan + issue, rel=1e-4)
    assert np.all(plan > 0.2 * issue)
