"""The timing model's counting rules (pipeline/ops.py, each mode's stage_ops) against the
backend's real framework ops: a TorchDispatchMode counts every op the backend dispatches, by
the stage it runs in, and each stage's total over the run must equal the rule's; the train
step's, batch by batch. No op of an iteration may run outside a stage (it would be work the
model never charges)."""

import collections
import contextlib

import numpy as np
import pytest

torch = pytest.importorskip("torch")

import simulator  # noqa: E402
from simulator import min_capacity, simulate, train  # noqa: E402
from simulator.backend import base  # noqa: E402
from simulator.workload import ModelConfig  # noqa: E402
from torch.utils._python_dispatch import TorchDispatchMode  # noqa: E402

ITERATIONS = 12
PROFILE = "h100-pcie5"


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return simulator.generate("zipf", tmp_path_factory.mktemp("ops") / "t",
                              table_rows=[300, 500, 80], batch_size=16, num_batches=ITERATIONS,
                              seed=3, pooling="1-3", show_progress=False)


def model(interaction: str, optimizer: str) -> ModelConfig:
    cross = {"dcn_layers": 2, "dcn_rank": 3} if interaction == "dcn" else {}
    return ModelConfig.from_dict(
        {"name": f"ops-{interaction}", "embedding_dim": 8, "bottom_mlp": [13, 16, 8],
         "top_mlp": [12, 6, 1], "interaction": interaction, "batch_size": 16,
         "dtype": "fp32", "optimizer": optimizer, **cross})


def cpu_profile(tmp_path):
    """A preset turned into kind cpu: the backend runs on this machine's CPU."""
    import tomllib

    from simulator.hardware.profile import PRESET_DIR
    from simulator.backend.calibration import profile_toml
    data = tomllib.loads((PRESET_DIR / f"{PROFILE}.toml").read_text())
    data["kind"] = "cpu"
    path = tmp_path / "cpu.toml"
    path.write_text(profile_toml(data))
    return path


@contextlib.contextmanager
def counting():
    """Count the backend's ops by stage: {stage: Counter(iteration -> ops)}."""
    current = ["outside"]
    counts = collections.defaultdict(collections.Counter)
    original = base.StageTimer.stage

    class Span:
        def __init__(self, inner, name, i):
            self.inner, self.name, self.i = inner, name, i

        def __enter__(self):
            self.previous = current[0]
            current[0] = (self.name, self.i)
            return self.inner.__enter__()

        def __exit__(self, *exc):
            current[0] = self.previous
            return self.inner.__exit__(*exc)

    class Count(TorchDispatchMode):
        def __torch_dispatch__(self, func, types, args=(), kwargs=None):
            if current[0] != "outside":
                stage, i = current[0]
                counts[stage][i] += 1
            return func(*args, **(kwargs or {}))

    base.StageTimer.stage = lambda self, name, i, host=False: Span(
        original(self, name, i, host), name, i)
    try:
        with Count():
            yield counts
    finally:
        base.StageTimer.stage = original


CASES = {
    "gpu-only": ("gpu-only", {}),
    "hybrid": ("hybrid", {}),
    "cache": ("cache", {"capacity": 150}),
    "cache-prefetch": ("cache-prefetch", {"capacity": 200}),
    "scratchpipe-lru": ("scratchpipe", {"capacity": "min", "lookahead": 2}),
    "scratchpipe-future": ("scratchpipe", {"capacity": "min", "lookahead": 1,
                                           "victim": "future"}),
}


@pytest.mark.parametrize("interaction,optimizer", [("dot", "sgd"), ("cat", "rowwise-adagrad"),
                                                   ("dcn", "sgd"), ("dcn", "adagrad"),
                                                   ("dot", "adam"), ("dcn", "adam")])
@pytest.mark.parametrize("case", list(CASES))
def test_each_stage_runs_the_ops_its_rule_counts(trace, tmp_path, case, interaction, optimizer):
    mode, options = CASES[case]
    if options.get("capacity") == "min":
        options = dict(options, capacity=min_capacity(trace, lookahead=options["lookahead"]))
    mdl = model(interaction, optimizer)
    with counting() as counts:
        train(trace, mode, model=mdl, optimizer=optimizer, **options)
    predicted = simulate(trace, mode=mode, hardware=cpu_profile(tmp_path), model=mdl,
                         **options).op_counts
    inside = {s: c for s, c in counts.items() if s != "iteration"}
    # Every op of an iteration runs inside one of its stages.
    assert sum(counts["iteration"].values()) == 0
    measured = {s: sum(c.values()) for s, c in inside.items()}
    rule = {s: int(c.sum()) for s, c in predicted.items() if c.sum() > 0}
    assert measured == rule
    steps = [counts["train"][i] for i in range(ITERATIONS)]
    assert steps == predicted["train"].tolist()
    assert np.all(predicted["train"] > 50)
