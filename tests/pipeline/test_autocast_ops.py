"""Mixed precision as autocast runs it: pipeline/ops.py's train_step for half MLPs against the
real ops. The backend trains bf16 MLPs under torch.autocast (Trainer.train_step), so on the CPU
its bf16 run is counted stage by stage as test_op_counts.py counts fp32, and op by name: what
autocast adds to the fp32 step is its casts (_to_copy), exactly the rule's, moving the rule's
bytes. fp16 adds torch.amp.GradScaler's loss scaling, which this torch also runs on the CPU:
a dense step with a scaler against the same step in bf16 without one gives the scaler's ops."""

import collections

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator import simulate, train  # noqa: E402
from simulator.backend import base  # noqa: E402
from simulator.pipeline import ops  # noqa: E402
from simulator.pipeline.costs import BatchWork, StageCosts  # noqa: E402
from simulator.workload import ModelConfig  # noqa: E402
from test_op_counts import counting, cpu_profile  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

ITERATIONS = 6


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return simulator.generate("zipf", tmp_path_factory.mktemp("amp") / "t",
                              table_rows=[300, 500, 80], batch_size=16, num_batches=ITERATIONS,
                              seed=3, pooling="1-3", show_progress=False)


def model(interaction: str, optimizer: str, precision: str) -> ModelConfig:
    cross = {"dcn_layers": 2, "dcn_rank": 3} if interaction == "dcn" else {}
    return ModelConfig.from_dict(
        {"name": f"amp-{interaction}", "embedding_dim": 8, "bottom_mlp": [13, 16, 8],
         "top_mlp": [12, 6, 1], "interaction": interaction, "batch_size": 16,
         "dtype": "fp32", "mlp_precision": precision, "optimizer": optimizer, **cross})


class ByName(TorchDispatchMode):
    """Every op dispatched, by name (aten's packet: "_to_copy", "addmm"), and each cast's
    bytes (its input's and its output's)."""

    def __init__(self):
        super().__init__()
        self.names = collections.Counter()
        self.cast_bytes = 0

    def __torch_dispatch__(self, func, types, args=(), kwargs=None):
        out = func(*args, **(kwargs or {}))
        name = func.overloadpacket.__name__
        self.names[name] += 1
        if name == "_to_copy":
            self.cast_bytes += sum(t.numel() * t.element_size() for t in (args[0], out))
        return out


def rule_names(step: list, batch: int = 0) -> collections.Counter:
    """The rule's ops by name in batch `batch` (a stream op named "sigmoid sub mul div_" is
    one name: it cancels in the differences taken here)."""
    names = collections.Counter()
    for op in step:
        count = np.asarray(op.count)
        names[op.name] += int(count[batch] if count.ndim else count)
    return +names


def rule_step(mdl, samples=16):
    """The rule's train step of `mdl` on 3 tables (its casts depend on the samples alone)."""
    one = np.ones(1)
    shape = StageCosts(BatchWork(16 * one, 40 * one, 20 * one, 0 * one, 0 * one),
                       simulator.load_hardware("h100-pcie5"), mdl, 3).shape
    return ops.train_step(shape, samples, 40, 20)


CASES = [("dot", "sgd"), ("cat", "rowwise-adagrad"), ("dcn", "sgd"), ("dcn", "adam")]


@pytest.mark.parametrize("interaction,optimizer", CASES)
@pytest.mark.parametrize("mode", ["gpu-only", "hybrid"])
def test_bf16_stages_run_the_ops_their_rule_counts(trace, tmp_path, mode, interaction,
                                                    optimizer):
    mdl = model(interaction, optimizer, "bf16")
    with counting() as counts:
        train(trace, mode, model=mdl, optimizer=optimizer)
    predicted = simulate(trace, mode=mode, hardware=cpu_profile(tmp_path), model=mdl).op_counts
    assert sum(counts["iteration"].values()) == 0
    measured = {s: sum(c.values()) for s, c in counts.items() if s != "iteration"}
    assert measured == {s: int(c.sum()) for s, c in predicted.items() if c.sum() > 0}
    assert [counts["train"][i] for i in range(ITERATIONS)] == predicted["train"].tolist()


@pytest.mark.parametrize("interaction,optimizer", CASES)
def test_autocast_adds_the_rules_casts_and_nothing_else(trace, interaction, optimizer):
    runs = {}
    for precision in ("fp32", "bf16"):
        with ByName() as run:
            train(trace, "gpu-only", model=model(interaction, optimizer, precision),
                  optimizer=optimizer)
        runs[precision] = run
    added = runs["bf16"].names.copy()
    added.subtract(runs["fp32"].names)
    step = rule_step(model(interaction, optimizer, "bf16"))
    casts = [op for op in step if op.what.endswith("autocast cast")]
    assert {op.name for op in casts} == {"_to_copy"}
    per_step = sum(int(op.count) for op in casts)
    assert +added == {"_to_copy": ITERATIONS * per_step}
    rule_added = rule_names(step)
    rule_added.subtract(rule_names(rule_step(model(interaction, optimizer, "fp32"))))
    assert +rule_added == {"_to_copy": per_step}
    # Each cast reads 4 bytes and writes 2 per value, or reads 2 and writes 4 (the fp32 run's
    # own _to_copy ops, outside the steps, taken away).
    assert (runs["bf16"].cast_bytes - runs["fp32"].cast_bytes
            == ITERATIONS * sum(float(op.nbytes) * int(op.count) for op in casts))
    # The hand count for dot, cat and dcn's two cross layers (N = 4 x 8 = 32 wide):
    # 5 linear layers x 4 (weight and bias, forward and back) + bottom.0's input + the
    # loss's 2, and the interaction's: dot the bottom output and both bmm operands, and their
    # gradients (6); cat the bottom output and top.0's input, both ways (4); dcn the bottom
    # output and top.0's input both ways (4) and per layer 3 forward and 4 backward (14).
    assert per_step == 20 + 1 + 2 + {"dot": 6, "cat": 4, "dcn": 4 + 14}[interaction]


def dense_steps(mdl, scaler: bool) -> list[collections.Counter]:
    """Two of Trainer.train_step's dense steps (the rows' update aside) on the CPU under
    autocast in the model's half precision, with a GradScaler("cpu") as an fp16 program
    runs it, or without: each step's ops by name."""
    dims = np.array([8, 8, 8])
    torch.manual_seed(0)
    dense_model = base.DenseModel(mdl, dims, 13)
    optimizer = torch.optim.SGD(dense_model.parameters(), lr=0.05)
    grad_scaler = torch.amp.GradScaler("cpu") if scaler else None
    dtype = {"fp16": torch.float16, "bf16": torch.bfloat16}[mdl.mlp_precision]
    rows = torch.randn(20, 8)
    local, offsets = torch.randint(0, 20, (96,)), torch.arange(0, 96, 2)
    dense, labels = torch.randn(16, 13), (torch.rand(16) < 0.5).float()
    steps = []
    for _ in range(2):
        emb = rows.detach().requires_grad_()
        with ByName() as run:
            with torch.autocast("cpu", dtype=dtype):
                pooled = torch.nn.functional.embedding_bag(local, emb, offsets, mode="sum")
                logits = dense_model(dense, pooled.view(16, 3, 8))
                loss = torch.nn.functional.binary_cross_entropy_with_logits(logits, labels)
            optimizer.zero_grad(set_to_none=True)
            if grad_scaler is None:
                loss.backward()
                optimizer.step()
            else:
                grad_scaler.scale(loss).backward()
                grad_scaler.step(optimizer)
                grad_scaler.update()
            loss.item()
        steps.append(run.names)
    return steps


@pytest.mark.parametrize("interaction", ["dot", "dcn"])
def test_fp16_adds_grad_scalers_ops(interaction):
    fp16 = dense_steps(model(interaction, "sgd", "fp16"), scaler=True)
    bf16 = dense_steps(model(interaction, "sgd", "bf16"), scaler=False)
    two = np.array([16, 16])  # a first step and one of the steady state

    def rule(precision):
        return [rule_names(rule_step(model(interaction, "sgd", precision), two), b)
                for b in (0, 1)]
    predicted = []
    for half, scaled in zip(rule("bf16"), rule("fp16")):
        scaled.subtract(half)
        predicted.append(+scaled)
    measured = []
    for half, scaled in zip(bf16, fp16):
        scaled.subtract(half)
        measured.append(+scaled)
    assert measured == predicted
    # By hand: the loss's scale and its backward (2 mul), the inverse scale (2 _to_copy and a
    # reciprocal), found_inf (a full) and the two copies its replicator makes, one unscale
    # over the MLPs' fp32 gradients, found_inf's read, _amp_update_scale_: 11 ops; the
    # first step also creates the scale and its growth tracker (2 full).
    steady = {"mul": 2, "_to_copy": 4, "reciprocal": 1, "full": 1,
              "_amp_foreach_non_finite_check_and_unscale_": 1, "_local_scalar_dense": 1,
              "_amp_update_scale_": 1}
    assert predicted == [{**steady, "full": 3}, steady]
