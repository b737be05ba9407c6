"""The train step's op rule (pipeline/ops.py) on tiny shapes worked out by hand: the DCNv2
cross layer's products and ops, full Adagrad's and Adam's row updates, Adam's dense step,
and the bytes a row carries with its optimizer state (test_op_counts.py checks the same
rules against the backend's ops)."""

import dataclasses

import numpy as np

from simulator.hardware import load_hardware
from simulator.pipeline import ops
from simulator.pipeline.costs import BatchWork, StageCosts
from simulator.workload import ModelConfig

# T = 2 tables of D = 4, bottom [3, 4], one cross layer of rank 2, top [2, 1]: x0 is
# N = (2 + 1) * 4 = 12 wide and the top MLP takes it.
DCN = ops.StepShape(dim=4, width=4, row_bytes=16, tables=2, bottom=(3, 4), top=(12, 2, 1),
                    interaction="dcn", optimizer="sgd", dcn_layers=1, dcn_rank=2)


def test_dcn_step_products_by_hand():
    # 10 samples. Forward: bottom (10, 3, 4); the cross layer V x (10, 12, 2) and W (V x)
    # (10, 2, 12); top (10, 12, 2) and (10, 2, 1). Backward, top first: each layer its
    # input's gradient (m, fan_out, fan_in) and its weight's (fan_in, m, fan_out); the cross
    # layer W's gradient (12, 10, 2), V x's (10, 12, 2), V's (2, 10, 12), x's (10, 2, 12);
    # bottom only its weight's (3, 10, 4), its input being the data. 5 + 9 = 14 products.
    step = ops.train_step(DCN, samples=10, lookups=30, unique=20)
    shapes = [tuple(int(x) for x in op.shape) for op in step if op.kind == "gemm"]
    assert shapes == [(10, 3, 4), (10, 12, 2), (10, 2, 12), (10, 12, 2), (10, 2, 1),
                      (10, 1, 2), (2, 10, 1), (10, 2, 12), (12, 10, 2),
                      (12, 10, 2), (10, 12, 2), (2, 10, 12), (10, 2, 12),
                      (3, 10, 4)]
    # 2mkn each: forward 240 + 480 + 480 + 480 + 40 = 1720 (ModelConfig.mlp_flops' 172 per
    # sample less the 36 elementwise); backward 80 (top.1) + 960 (top.0) + 4 x 480 (cross)
    # + 240 (bottom) = 3200.
    assert sum(float(op.flops) for op in step if op.kind == "gemm") == 1720 + 3200


def test_dcn_cross_layer_ops_by_hand():
    step = ops.train_step(DCN, samples=10, lookups=30, unique=20)

    def count(what):
        return sum(op.count for op in step if op.what == what)
    # Forward: t, mm, t, mm, add (bias), mul (x0), add (skip) = 7.
    assert count("cross.0") == 7
    # Backward: 2 mul, the bias's sum, view, detach; for W and for V: t, mm, 2 t, mm, t,
    # detach (7 each); 2 adds where gradients meet: 5 + 14 + 2 = 21.
    assert count("cross.0 backward") == 21
    # x0 built (unsqueeze, cat, flatten's view) and taken apart (view, 2 slices, squeeze).
    assert count("dcn") == 3 and count("dcn backward") == 4
    # SGD steps W, V and the bias besides the MLPs' 3 weights and 3 biases: 9 add_.
    assert count("optimizer") == 2 + 9


def test_full_adagrad_update_by_hand():
    # 20 rows of dim 4 stored with 4 state columns, width 8: clone (2 x 20 x 8 x 4 = 1280
    # bytes), the state block's squared gradient added and written (addcmul, copy_), the
    # step (sqrt, add_ eps, addcdiv, copy_) and 4 slices: 11 ops.
    shape = ops.StepShape(dim=4, width=8, row_bytes=16, tables=2, bottom=(3, 4),
                          top=(12, 2, 1), interaction="dcn", optimizer="adagrad",
                          dcn_layers=1, dcn_rank=2)
    update = ops.update_rows(shape, 20)
    assert sum(op.count for op in update) == 11
    assert sum(op.count for op in update if op.kind == "view") == 4
    assert float(update[0].nbytes) == 1280
    # Elementwise over the [20, 4] blocks (320 bytes each): addcmul reads 3 and writes 1,
    # addcdiv too, the rest read 1 and write 1: 4 + 2 + 2 + 2 + 4 + 2 = 16 of them.
    assert sum(float(op.nbytes) * op.count for op in update[1:]) == 16 * 320


def test_adam_update_by_hand():
    # 20 rows of dim 4 stored with 2 x 4 moment columns, width 12: clone (2 x 20 x 12 x 4 =
    # 1920 bytes), 2 slices (exp_avg, exp_avg_sq), lerp_, mul_, addcmul_, sqrt, div, add_
    # (eps), a slice (the row) and addcdiv_: 11 ops, 3 of them views.
    shape = ops.StepShape(dim=4, width=12, row_bytes=16, tables=2, bottom=(3, 4),
                          top=(12, 2, 1), interaction="dcn", optimizer="adam",
                          dcn_layers=1, dcn_rank=2)
    update = ops.update_rows(shape, 20)
    assert sum(op.count for op in update) == 11
    assert sum(op.count for op in update if op.kind == "view") == 3
    assert float(update[0].nbytes) == 1920
    # Over the [20, 4] blocks (320 bytes each): lerp_ 3, mul_ 2, addcmul_ 4, sqrt 2, div 2,
    # add_ 2, addcdiv_ 4: 19 of them.
    assert sum(float(op.nbytes) * op.count for op in update[1:]) == 19 * 320


def test_dense_adam_creates_its_state_on_the_first_step():
    # DCN's 9 parameters (3 weights, 3 biases, W, V, b) hold 12 + 24 + 2 (weights) + 4 + 2 +
    # 1 (biases) + 24 + 24 + 12 (cross) = 105 values, 420 bytes. Every step: 2 record
    # functions and 9 ops per parameter (add_ step, lerp_, mul_, addcmul_, the step read,
    # sqrt, div, add_, addcdiv_): 83. The first also creates each parameter's state (a lifted
    # step and 2 zeros_like): 27 more, zeroing 2 x 420 bytes.
    shape = dataclasses.replace(DCN, optimizer="adam")
    step = ops.train_step(shape, samples=np.array([10, 10, 10]), lookups=30, unique=20)
    optimizer = [op for op in step if op.what.startswith("optimizer")]
    assert ops.count(optimizer, 3).tolist() == [83 + 27, 83, 83]
    zeroed = [op for op in optimizer if op.name == "zeros_like"]
    assert sum(float(op.nbytes) * op.count for op in zeroed).tolist() == [840, 0, 0]
    # lerp_ reads exp_avg and the gradient and writes exp_avg: 3 x 420 bytes per step.
    assert sum(float(op.nbytes) for op in optimizer if op.name == "lerp_") == 3 * 420
    # One step alone (scalars) is a step of the steady state.
    steady = ops.train_step(shape, samples=10, lookups=30, unique=20)
    assert sum(op.count for op in steady if op.what.startswith("optimizer")) == 83


def test_full_adagrad_rows_travel_with_their_state():
    # dim 4, fp32, adagrad: a row of 16 bytes and 4 fp32 sums; 3 misses and 2 evictions
    # move 3 x 32 and 2 x 32 bytes. Row-wise Adagrad: 16 + 4 bytes and width 5.
    def costs(optimizer):
        model = ModelConfig.from_dict(
            {"name": "t", "embedding_dim": 4, "bottom_mlp": [3, 4], "top_mlp": [2, 1],
             "interaction": "dcn", "dcn_layers": 1, "dcn_rank": 2, "batch_size": 10,
             "dtype": "fp32", "optimizer": optimizer})
        one = np.ones(1)
        work = BatchWork(samples=10 * one, lookups=30 * one, unique=20 * one,
                         misses=3 * one, evictions=2 * one)
        return StageCosts(work, load_hardware("h100-pcie5"), model, num_tables=2)
    full = costs("adagrad")
    assert (full.shape.width, full.shape.optimizer) == (8, "adagrad")
    assert (full.fetch_bytes[0], full.evict_bytes[0]) == (96, 64)
    rowwise = costs("rowwise-adagrad")
    assert (rowwise.shape.width, rowwise.row_state_bytes) == (5, 20)
    # Adam: 16 bytes and 2 x 4 fp32 moments, width 12; 3 x 48 and 2 x 48 bytes move.
    adam = costs("adam")
    assert (adam.shape.width, adam.row_state_bytes) == (12, 48)
    assert (adam.fetch_bytes[0], adam.evict_bytes[0]) == (144, 96)
    assert costs("sgd").shape.width == 4
