"""A policy and a mode declared here alone, registered, reach the CLI, sweeps and figures with
their options: nothing else in the package names them."""

import json

import numpy as np
import pytest

from simulator import generate, replay, simulate
from simulator.caches import POLICIES, Policy, register_policy
from simulator.caches.base import record_batch
from simulator.cli import main
from simulator.errors import OptionError
from simulator.options import Option
from simulator.pipeline import MODES, register_mode
from simulator.pipeline.mode import INPUT_BUFFERS, Mode, issue
from simulator.plots.figures import plot_breakdown, plot_gantt, plot_hit_rate
from simulator.sweep import load_spec, run_sweep


class RandomVictims(Policy):
    """Evicts random resident rows the batch does not use (a pure-Python toy)."""

    name = "toy-random"
    options = (Option("salt", int, 0, "seeds the victims' draw", minimum=0),)

    def __init__(self, trace, capacity, **params):
        super().__init__(trace, capacity, **params)
        self.resident: set[int] = set()
        self.rng = np.random.default_rng(self.salt)

    def process(self, chunk, stats):
        for b in range(chunk.num_batches):
            ids = chunk.ids[chunk.batch_ptr[b]:chunk.batch_ptr[b + 1]]
            rows = set(ids.tolist())
            if len(rows) > self.capacity:
                self.check_batch(b, len(rows), chunk.first_batch)
            misses = rows - self.resident
            over = len(self.resident) + len(misses) - self.capacity
            victims = (self.rng.choice(sorted(self.resident - rows), over, replace=False)
                       if over > 0 else [])
            self.resident = (self.resident - set(victims)) | misses
            record_batch(stats, b, len(ids), len(rows), len(misses), len(victims),
                         len(self.resident))


class Repeated(Mode):
    """gpu-only with every batch trained `repeats` times (a toy)."""

    name = "toy-repeat"
    options = (Option("repeats", int, 1, "training steps per batch", minimum=1),)
    tables_on_device = True

    def stage_ops(self, c):
        return {"input": c.inputs(), "train": c.train_on_rows() * self.repeats}

    def traffic(self, c):
        return c.input_dense_bytes + c.index_bytes, 0 * c.index_bytes

    def programs(self, n):
        return {"h2d": [("input", b) for b in range(n)],
                "cpu": [(issue("train"), b) for b in range(n)],
                "gpu": [("train", b) for b in range(n)]}

    def depends(self, stage, b):
        return (("train", b - INPUT_BUFFERS),) if stage == "input" else (("input", b),)


@pytest.fixture
def toys():
    register_policy(RandomVictims)
    register_mode(Repeated)
    yield
    del POLICIES["toy-random"], MODES["toy-repeat"]


@pytest.fixture(scope="module")
def trace(tmp_path_factory):
    return generate("zipf", tmp_path_factory.mktemp("toy") / "t", [400, 300], batch_size=16,
                    num_batches=20, seed=4, show_progress=False)


@pytest.fixture(scope="module")
def model(trace):
    """A model of the trace's two tables."""
    path = trace.path.parent / "model.toml"
    path.write_text('embedding_dim = 8\nbottom_mlp = [4, 8]\ntop_mlp = [8, 1]\n'
                    'interaction = "dot"\nbatch_size = 16\ndtype = "fp32"\n'
                    'optimizer = "sgd"\n')
    return str(path)


def run(capsys, *argv):
    code = main([str(a) for a in argv])
    out, err = capsys.readouterr()
    return code, out, err


def help_text(capsys, command: str) -> str:
    with pytest.raises(SystemExit) as e:
        main([command, "--help"])
    assert e.value.code == 0
    return " ".join(capsys.readouterr().out.split())


def test_the_toys_options_are_checked_and_used(toys, trace, model):
    a, b = (replay(trace, "toy-random", 60, salt=s) for s in (1, 2))
    assert a.params == {"salt": 1} and a.hits != b.hits
    with pytest.raises(OptionError, match="policy toy-random: salt must be an integer >= 0"):
        replay(trace, "toy-random", 60, salt=-1)
    once, twice = (simulate(trace, "toy-repeat", model=model, repeats=r) for r in (1, 2))
    assert twice.iteration_time > once.iteration_time and once.hit_rate == 1.0
    assert twice.config["repeats"] == 2 and "repeats 2" in twice.format()
    with pytest.raises(OptionError, match="no mode takes option bogus"):
        simulate(trace, "toy-repeat", model=model, bogus=1)
    # The cache mode takes any past-looking policy with that policy's options.
    cached = simulate(trace, "cache", model=model, capacity=60, cache_policy="toy-random",
                      salt=1)
    assert cached.replay["params"] == {"salt": 1} and cached.replay["hits"] == a.hits
    assert cached.config["cache_policy"] == "toy-random" and cached.config["salt"] == 1
    with pytest.raises(OptionError, match="mode cache takes no option salt"):
        simulate(trace, "cache", model=model, capacity=60, salt=1)  # LRU has no salt


def test_the_toys_and_their_options_are_in_the_cli(toys, trace, model, capsys):
    out = help_text(capsys, "replay")
    assert "toy-random" in out
    assert "--salt SALT toy-random: seeds the victims' draw (default 0)" in out
    out = help_text(capsys, "simulate")
    assert "toy-repeat" in out
    assert "--repeats REPEATS toy-repeat: training steps per batch (default 1)" in out
    code, out, err = run(capsys, "replay", trace.path, "--policy", "toy-random", "--capacity",
                         "60", "--salt", "3", "--json")
    assert code == 0, err
    assert json.loads(out)["params"] == {"salt": 3}
    base = ["simulate", trace.path, "--mode", "toy-repeat", "--hardware", "h100-pcie5",
            "--model", model, "--set", "link.h2d_gb_per_s=20", "--set", "embedding_dim=16"]
    code, out, err = run(capsys, *base, "--repeats", "2", "--json")
    assert code == 0, err
    assert json.loads(out)["config"]["repeats"] == 2
    code, _, err = run(capsys, *base, "--repeats", "0")
    assert code == 2 and "repeats must be a positive integer, got 0" in err
    assert err.count("\n") == 1


def test_the_toys_options_are_sweep_axes_and_the_figures_draw_them(toys, trace, model,
                                                                    tmp_path):
    replays = tmp_path / "replay.toml"
    replays.write_text(f'[trace]\npath = "{trace.path}"\n\n[axes]\n'
                       'policy = ["lru", "toy-random"]\nsalt = [0, 5]\n'
                       'capacity = [60, 120, 240]\n')
    points = [p.config for p in load_spec(replays).points()]
    # lru takes no salt: its two salts are one point
    assert [(c["policy"], c["salt"]) for c in points if c["capacity"] == 60] == [
        ("lru", None), ("toy-random", 0), ("toy-random", 5)]
    df = run_sweep(replays, tmp_path / "replay.csv", workers=1, progress=False)
    assert df["error"].isna().all() and len(df) == 9
    _, data = plot_hit_rate(df)
    assert set(data["policy"]) == {"lru", "toy-random"}  # at the first salt
    toy = df[(df["policy"] == "toy-random") & (df["salt"] == 0)].sort_values("capacity_rows")
    assert list(data[data["policy"] == "toy-random"]["hit_rate"]) == list(toy["hit_rate"])

    modes = tmp_path / "modes.toml"
    modes.write_text(f'[trace]\npath = "{trace.path}"\n\n[axes]\n'
                     'mode = ["hybrid", "toy-repeat"]\nrepeats = [1, 3]\n\n[fixed]\n'
                     f'model = "{model}"\n"link.h2d_gb_per_s" = 20.0\n')
    df = run_sweep(modes, tmp_path / "modes.csv", workers=1, progress=False)
    assert [(m, r) for m, r in zip(df["mode"], df["repeats"].fillna(0))] == [
        ("hybrid", 0), ("toy-repeat", 1), ("toy-repeat", 3)]
    assert (df["link.h2d_gb_per_s"] == 20.0).all()
    _, data = plot_breakdown(df)
    assert list(dict.fromkeys(data["mode"])) == ["hybrid", "toy-repeat"]
    _, gantt = plot_gantt(df)
    assert "toy-repeat" in set(gantt["mode"])
    bad = tmp_path / "bad.toml"
    bad.write_text(f'[trace]\npath = "{trace.path}"\n\n[axes]\nmode = ["toy-repeat"]\n'
                   'repeats = [0]\n')
    with pytest.raises(OptionError, match=rf"^{bad}: axes.repeats: repeats must be a positive"):
        load_spec(bad)
