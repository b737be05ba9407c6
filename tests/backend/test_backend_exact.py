"""The backend's exactness: every mode and optimizer ends 50 iterations with gpu-only's
weights bit for bit (in program order and with the transfers overlapped by a host worker
thread, the plans on a planner thread of their own or on the main thread), and the cache
modes fetch and evict, batch by batch, what the replay of the same policy predicts; so do
the DCNv2 interaction and mixed embedding dims."""

import dataclasses
import threading

import numpy as np
import pytest

pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator import CapacityError, min_capacity, replay, train  # noqa: E402
from simulator.backend import planner, slots  # noqa: E402
from simulator.backend.base import Trainer  # noqa: E402

ITERATIONS = 50
CACHE_ROWS = 120  # below the rows of a few consecutive batches: misses and evictions each batch


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return simulator.generate("zipf", tmp_path_factory.mktemp("backend") / "t",
                              table_rows=[200, 300, 50], batch_size=16, num_batches=60,
                              seed=1, pooling="1-3", show_progress=False)


_references = {}


def reference(trace, optimizer, model=None, iterations=ITERATIONS):
    key = (optimizer, None if model is None else model.name, iterations)
    if key not in _references:
        _references[key] = train(trace, "gpu-only", iterations=iterations,
                                 optimizer=optimizer, model=model)
    return _references[key]


def assert_same_weights(result, ref):
    assert sorted(result.weights) == sorted(ref.weights)
    for name, value in ref.weights.items():
        assert np.array_equal(result.weights[name], value), name


# (mode, options, the replay that must agree: policy and its options), capacity "min"
# being min_capacity(trace, lookahead): rows updated one iteration ago get evicted.
CASES = {
    "hybrid": ("hybrid", {}, None),
    "cache-lru": ("cache", {"capacity": CACHE_ROWS}, ("lru", {})),
    "cache-prefetch": ("cache-prefetch", {"capacity": CACHE_ROWS + 20},
                       ("scratchpipe", {"lookahead": 1, "victim": "lru"})),
    "scratchpipe-W0-min": ("scratchpipe", {"capacity": "min", "lookahead": 0},
                           ("scratchpipe", {"lookahead": 0, "victim": "lru"})),
    "scratchpipe-W2-min-lru": ("scratchpipe", {"capacity": "min", "lookahead": 2},
                               ("scratchpipe", {"lookahead": 2, "victim": "lru"})),
    "scratchpipe-W2-min-future": ("scratchpipe",
                                  {"capacity": "min", "lookahead": 2, "victim": "future"},
                                  ("scratchpipe", {"lookahead": 2, "victim": "future"})),
    # Overlapped: a host worker thread writes back and fetches while the batch trains, and a
    # planner thread plans ahead beside it (planner "thread", the default) or the main thread
    # plans between the training steps (planner "main").
    "cache-prefetch-overlap": ("cache-prefetch", {"capacity": CACHE_ROWS + 20, "overlap": True},
                               ("scratchpipe", {"lookahead": 1, "victim": "lru"})),
    "cache-prefetch-overlap-main-planner": ("cache-prefetch",
                                            {"capacity": CACHE_ROWS + 20, "overlap": True,
                                             "planner": "main"},
                                            ("scratchpipe", {"lookahead": 1, "victim": "lru"})),
    "scratchpipe-W2-min-lru-overlap": ("scratchpipe",
                                       {"capacity": "min", "lookahead": 2, "overlap": True},
                                       ("scratchpipe", {"lookahead": 2, "victim": "lru"})),
    "scratchpipe-W2-min-future-overlap-main-planner": (
        "scratchpipe", {"capacity": "min", "lookahead": 2, "victim": "future", "overlap": True,
                        "planner": "main"},
        ("scratchpipe", {"lookahead": 2, "victim": "future"})),
    "scratchpipe-W0-min-overlap": ("scratchpipe",
                                   {"capacity": "min", "lookahead": 0, "overlap": True},
                                   ("scratchpipe", {"lookahead": 0, "victim": "lru"})),
    "scratchpipe-W2-min-future-overlap": ("scratchpipe", {"capacity": "min", "lookahead": 2,
                                                          "victim": "future", "overlap": True},
                                          ("scratchpipe", {"lookahead": 2, "victim": "future"})),
    "scratchpipe-W3-future": ("scratchpipe",
                              {"capacity": "180", "lookahead": 3, "victim": "future"},
                              ("scratchpipe", {"lookahead": 3, "victim": "future"})),
}


def resolved(trace, options):
    if options.get("capacity") == "min":
        return dict(options, capacity=min_capacity(trace, lookahead=options["lookahead"]))
    return options


@pytest.mark.parametrize("optimizer", ["sgd", "rowwise-adagrad", "adagrad", "adam"])
@pytest.mark.parametrize("case", list(CASES))
def test_mode_matches_gpu_only_and_replay(trace, case, optimizer):
    mode, options, policy = CASES[case]
    options = resolved(trace, options)
    result = train(trace, mode, iterations=ITERATIONS, optimizer=optimizer, **options)
    assert_same_weights(result, reference(trace, optimizer))
    assert np.array_equal(result.losses, reference(trace, optimizer).losses)
    if policy is None:
        return
    name, params = policy
    predicted = replay(trace, name, options["capacity"], per_batch=True, **params)
    assert np.array_equal(result.fetched, predicted.column("misses")[:ITERATIONS])
    assert np.array_equal(result.evicted, predicted.column("evictions")[:ITERATIONS])
    assert result.evicted.sum() > 0


def test_minimum_scratchpad_refetches_rows_updated_the_iteration_before(trace):
    # With no lookahead at the minimum capacity, a row used by batch i-1 can be evicted while
    # batch i is planned and fetched again by batch i+1: its write-back must have landed.
    options = resolved(trace, {"capacity": "min", "lookahead": 0})
    result = train(trace, "scratchpipe", iterations=ITERATIONS, **options)
    distinct = len(np.unique(np.concatenate([trace.batch(b).ids for b in range(ITERATIONS)])))
    assert result.fetched.sum() > distinct  # rows came back after an eviction
    assert_same_weights(result, reference(trace, "sgd"))


def test_a_lost_write_back_is_caught(trace, monkeypatch):
    # The exactness check must be able to fail: a store that forgets its write-backs hands
    # stale rows to later fetches, and the weights then differ.
    place = slots.SlotStore.place

    def forgetful_place(store, missing, victims, i):
        old_rows = store.row_of_slot[victims]
        before = store.host[old_rows].clone()
        place(store, missing, victims, i)
        store.host[old_rows] = before

    monkeypatch.setattr(slots.SlotStore, "place", forgetful_place)
    result = train(trace, "scratchpipe", iterations=ITERATIONS,
                   **resolved(trace, {"capacity": "min", "lookahead": 2}))
    ref = reference(trace, "sgd")
    assert not all(np.array_equal(result.weights[k], v) for k, v in ref.weights.items())


def test_too_small_a_device_store_is_refused(trace):
    need = min_capacity(trace, lookahead=2)
    with pytest.raises(CapacityError, match=f"at least {need:,} rows"):
        train(trace, "scratchpipe", capacity=need - 1, lookahead=2)  # every batch: the peak
    with pytest.raises(CapacityError, match="larger --capacity"):
        train(trace, "cache", iterations=ITERATIONS, capacity=5)


@pytest.mark.parametrize("optimizer", ["rowwise-adagrad", "adagrad", "adam"])
def test_tables_of_different_dims_with_cat_interaction(trace, optimizer):
    # Narrower tables are zero padded to the widest row, and so are full Adagrad's state and
    # Adam's two moments after it; the padding must never change.
    model = simulator.ModelConfig.from_dict({
        "name": "cat-mixed", "embedding_dim": [8, 16, 4], "bottom_mlp": [13, 16, 8],
        "top_mlp": [16, 1], "interaction": "cat", "batch_size": 16, "dtype": "fp32",
        "optimizer": optimizer})
    options = resolved(trace, {"capacity": "min", "lookahead": 2, "victim": "future"})
    ref = train(trace, "gpu-only", iterations=ITERATIONS, optimizer=optimizer, model=model)
    result = train(trace, "scratchpipe", iterations=ITERATIONS, optimizer=optimizer,
                   model=model, overlap=True, **options)
    assert [ref.weights[f"table.{t}"].shape[1] for t in range(3)] == [8, 16, 4]
    state = {"rowwise-adagrad": [(200,), (300,), (50,)],
             "adagrad": [(200, 8), (300, 16), (50, 4)],
             "adam": [(200, 2, 8), (300, 2, 16), (50, 2, 4)]}[optimizer]
    assert [ref.weights[f"table.{t}.state"].shape for t in range(3)] == state
    assert_same_weights(result, ref)


DCN = simulator.ModelConfig.from_dict({
    "name": "dcn", "embedding_dim": 8, "bottom_mlp": [13, 16, 8], "top_mlp": [16, 1],
    "interaction": "dcn", "dcn_layers": 2, "dcn_rank": 4, "batch_size": 16, "dtype": "fp32",
    "optimizer": "sgd"})
DCN_ITERATIONS = 20
DCN_CASES = {
    "hybrid": ("hybrid", {}),
    "cache": ("cache", {"capacity": CACHE_ROWS}),
    "cache-prefetch-overlap": ("cache-prefetch", {"capacity": CACHE_ROWS + 20, "overlap": True}),
    "scratchpipe-W2-min-future-overlap": ("scratchpipe", {"capacity": "min", "lookahead": 2,
                                                          "victim": "future", "overlap": True}),
}


@pytest.mark.parametrize("optimizer", ["sgd", "adagrad", "adam"])
@pytest.mark.parametrize("case", list(DCN_CASES))
def test_dcn_interaction_in_every_mode(trace, case, optimizer):
    # The DCNv2 cross layers train like the MLPs: every mode ends with gpu-only's weights,
    # the cross layers' among them, and the rows evicted and fetched again are exact.
    mode, options = DCN_CASES[case]
    model = dataclasses.replace(DCN, optimizer=optimizer)
    result = train(trace, mode, iterations=DCN_ITERATIONS, optimizer=optimizer, model=model,
                   **resolved(trace, options))
    ref = reference(trace, optimizer, model, DCN_ITERATIONS)
    assert {f"cross.{kind}.{layer}" for kind in ("W_kernels", "V_kernels", "bias")
            for layer in (0, 1)} <= set(ref.weights)
    assert ref.weights["cross.V_kernels.1"].shape == (4, 32)  # rank x (3 tables + 1) * 8
    assert_same_weights(result, ref)
    assert np.array_equal(result.losses, ref.losses)
    assert mode == "hybrid" or result.evicted.sum() > 0


def test_full_adagrad_takes_torch_adagrads_steps():
    # The rows' full Adagrad, its state beside each row, is torch.optim.Adagrad bit for bit
    # (with the rows' eps).
    import torch

    from simulator.backend.base import ADAGRAD_EPS, update_rows
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(20, 4, generator=generator)
    rows = torch.cat([weights, torch.zeros(20, 4)], dim=1)
    param = torch.nn.Parameter(weights.clone())
    optimizer = torch.optim.Adagrad([param], lr=0.05, eps=ADAGRAD_EPS)
    for _ in range(3):
        grad = torch.randn(20, 4, generator=generator)
        rows = update_rows(rows, grad, None, "adagrad", 0.05, 4)
        param.grad = grad.clone()
        optimizer.step()
    assert torch.equal(rows[:, :4], param.detach())
    assert torch.equal(rows[:, 4:], optimizer.state[param]["sum"])


def test_adam_takes_torch_adams_steps_on_rows_every_batch_updates():
    # Rows that every batch looks up take torch.optim.Adam's steps bit for bit, their two
    # moments beside them (exp_avg, then exp_avg_sq).
    import torch

    from simulator.backend.base import ADAM_BETAS, ADAM_EPS, update_rows
    generator = torch.Generator().manual_seed(0)
    weights = torch.randn(20, 4, generator=generator)
    rows = torch.cat([weights, torch.zeros(20, 8)], dim=1)
    param = torch.nn.Parameter(weights.clone())
    optimizer = torch.optim.Adam([param], lr=0.05, betas=ADAM_BETAS, eps=ADAM_EPS)
    for step in (1, 2, 3):
        grad = torch.randn(20, 4, generator=generator)
        rows = update_rows(rows, grad, None, "adam", 0.05, 4, step=step)
        param.grad = grad.clone()
        optimizer.step()
    assert torch.equal(rows[:, :4], param.detach())
    assert torch.equal(rows[:, 4:8], optimizer.state[param]["exp_avg"])
    assert torch.equal(rows[:, 8:], optimizer.state[param]["exp_avg_sq"])


def test_adam_bias_correction_counts_batches_not_a_rows_updates():
    # One row of dim 3 padded to 4, looked up by batches 1 and 3 and skipped by batch 2.
    import torch

    from simulator.backend.base import update_rows
    row = torch.tensor([[0.5, -0.25, 1.0, 0.0]])
    rows = torch.cat([row, torch.zeros(1, 8)], dim=1)
    first = torch.tensor([[1.0, -2.0, 0.5, 0.0]])  # the padding column gets no gradient
    rows = update_rows(rows, first, None, "adam", 0.05, 4, step=1)
    # Step 1: m = 0.1 g and v = 0.001 g^2, corrected by 1 - 0.9 and 1 - 0.999 back to g and
    # g^2: each element moves by lr * g / (|g| + eps), 0.05 against its gradient's sign.
    assert torch.allclose(rows[0, :3], torch.tensor([0.45, -0.2, 0.95]), atol=1e-6)
    assert torch.allclose(rows[0, 4:7], 0.1 * first[0, :3])
    assert torch.allclose(rows[0, 8:11], 0.001 * first[0, :3] ** 2)
    # The padding column and its moments stay exactly zero.
    assert rows[0, 3] == rows[0, 7] == rows[0, 11] == 0
    second = torch.tensor([[-0.5, 1.0, 2.0, 0.0]])
    rows = update_rows(rows, second, None, "adam", 0.05, 4, step=3)
    # Batch 3 corrects by 1 - beta^3 while the moments have seen 2 gradients (FBGEMM's
    # global iteration): torch.optim.Adam bit for bit once its step count is moved on past
    # the skipped batch, and not its own second step (a count per row).
    param = torch.nn.Parameter(row.clone())
    optimizer = torch.optim.Adam([param], lr=0.05)
    param.grad = first.clone()
    optimizer.step()
    per_row = torch.nn.Parameter(param.detach().clone())
    per_row_optimizer = torch.optim.Adam([per_row], lr=0.05)
    per_row_optimizer.load_state_dict(optimizer.state_dict())
    optimizer.state[param]["step"].fill_(2.0)  # batch 2 skipped this row
    param.grad = second.clone()
    optimizer.step()
    assert torch.equal(rows[:, :4], param.detach())
    assert torch.equal(rows[:, 4:8], optimizer.state[param]["exp_avg"])
    assert torch.equal(rows[:, 8:], optimizer.state[param]["exp_avg_sq"])
    per_row.grad = second.clone()
    per_row_optimizer.step()
    assert not torch.equal(rows[0, :3], per_row.detach()[0, :3])


@pytest.mark.parametrize("arrangement", ["thread", "main"])
def test_the_planner_thread_plans_batch_j_once_training_j_minus_w_minus_1_is_issued(
        trace, monkeypatch, arrangement):
    # With overlap, planner "thread" plans on a thread of its own, batch j only once the main
    # thread has issued (on the CPU: finished) training j-W-1, whose rows it may evict;
    # "main" plans on the main thread. The weights are gpu-only's either way.
    events = []  # (what, batch, thread), in the order they happened (appends hold the GIL)
    plan, train_rows = planner.Planner.plan, Trainer.train_rows

    def recording_plan(self, j, *args):
        events.append(("plan", j, threading.current_thread().name))
        return plan(self, j, *args)

    def recording_train_rows(self, store, index, batch, i):
        train_rows(self, store, index, batch, i)
        events.append(("trained", i, threading.current_thread().name))

    monkeypatch.setattr(planner.Planner, "plan", recording_plan)
    monkeypatch.setattr(Trainer, "train_rows", recording_train_rows)
    lookahead = 2
    result = train(trace, "scratchpipe", iterations=ITERATIONS, overlap=True,
                   planner=arrangement, **resolved(trace, {"capacity": "min",
                                                           "lookahead": lookahead}))
    assert result.config["planner"] == arrangement
    assert_same_weights(result, reference(trace, "sgd"))
    order = {(what, b): k for k, (what, b, _) in enumerate(events)}
    planning = "MainThread" if arrangement == "main" else "scratchpipe-planner"
    assert all(name.startswith(planning) for what, _, name in events if what == "plan")
    assert all(name == "MainThread" for what, _, name in events if what == "trained")
    for j in range(lookahead + 1, ITERATIONS):
        assert order[("plan", j)] > order[("trained", j - lookahead - 1)], j
        assert order[("plan", j)] < order[("trained", j)], j


def test_an_infeasible_plan_on_the_planner_thread_is_refused(trace):
    need = min_capacity(trace, lookahead=2)
    with pytest.raises(CapacityError, match=f"at least {need:,} rows"):
        train(trace, "scratchpipe", capacity=need - 1, lookahead=2, overlap=True)
