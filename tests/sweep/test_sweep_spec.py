import pytest

from simulator.errors import OptionError
from simulator.sweep import load_spec

GOOD_AXES = """
[axes]
policy = ["lru", "belady"]
capacity = ["10%", 500]
"""


@pytest.mark.parametrize("body, key", [
    (GOOD_AXES + "speed = [1]\n", "axes.speed"),
    (GOOD_AXES + "\n[fixed]\nwarp = 2\n", "fixed.warp"),
    ("[axes]\npolicy = [\"lru\", \"mru\"]\ncapacity = [100]\n", "axes.policy"),
    ("[axes]\nmode = [\"turbo\"]\ncapacity = [100]\n", "axes.mode"),
    ("[axes]\nmode = [\"hybrid\"]\nhardware = [\"tpu-v9\"]\n", "axes.hardware"),
    ("[axes]\nmode = [\"hybrid\"]\nmodel = [\"gpt-5\"]\n", "axes.model"),
    ("[axes]\npolicy = [\"lru\"]\ncapacity = []\n", "axes.capacity"),
    ("[axes]\npolicy = [\"lru\"]\ncapacity = [-5]\n", "axes.capacity"),
    ("[axes]\npolicy = [\"lru\"]\ncapacity = [\"lots\"]\n", "axes.capacity"),
    ("[axes]\nmode = [\"scratchpipe\"]\ncapacity = [100]\nlookahead = [1.5]\n", "axes.lookahead"),
    ("[axes]\nmode = [\"hybrid\"]\npcie_scale = [0]\n", "axes.pcie_scale"),
    ("[axes]\nmode = [\"hybrid\"]\nbatch_size = [\"big\"]\n", "axes.batch_size"),
    ("[axes]\npolicy = \"lru\"\ncapacity = [100]\n", "axes.policy"),
    (GOOD_AXES + "\n[fixed]\nlookahead = [1, 2]\n", "fixed.lookahead"),
    (GOOD_AXES + "\n[fixed]\ncapacity = 100\n", "fixed.capacity"),
    (GOOD_AXES + "mode = [\"hybrid\"]\n", "policy"),
    ("[axes]\npolicy = [\"lru\"]\n", "capacity"),
])
def test_each_mistake_is_one_line_naming_file_and_key(write_spec, body, key):
    spec = write_spec(body)
    with pytest.raises(OptionError) as e:
        load_spec(spec)
    message = str(e.value)
    assert "\n" not in message
    assert message.startswith(f"{spec}: {key}:"), message


@pytest.mark.parametrize("trace, key", [
    ("[trace]\ngenerator = \"zipf\"\ntable_rows = [10]\n", "trace.batches"),
    ("[trace]\ngenerator = \"pareto\"\ntable_rows = [10]\nbatches = 2\n", "trace.generator"),
    ("[trace]\ngenerator = \"zipf\"\ntable_rows = [10]\nbatches = 2\nsize = 3\n", "trace.size"),
    ("[trace]\ngenerator = \"zipf\"\ntable_rows = [0]\nbatches = 2\n", "trace.table_rows"),
    ("[trace]\ngenerator = \"zipf\"\nlike = \"nonesuch\"\nbatches = 2\n", "trace.like"),
    ("[trace]\npath = \"no/such/dir\"\n", "trace.path"),
    ("", "trace"),
])
def test_trace_mistakes(write_spec, trace, key):
    spec = write_spec(GOOD_AXES, trace=trace)
    with pytest.raises(OptionError, match=f"^{spec}: {key}:"):
        load_spec(spec)


def test_unknown_top_level_key(write_spec, small_trace):
    spec = write_spec(GOOD_AXES, trace="colour = 1\n" + small_trace)
    with pytest.raises(OptionError, match=f"^{spec}: colour: unknown key"):
        load_spec(spec)


def test_grid_is_the_cartesian_product_with_inapplicable_keys_merged(write_spec):
    spec = load_spec(write_spec("""
        [axes]
        mode = ["hybrid", "scratchpipe"]
        lookahead = [1, 2, 4]
        capacity = ["50%"]
    """))
    points = spec.points()
    # hybrid neither looks ahead nor caches: its three lookaheads are one point
    assert [(p.config["mode"], p.config["lookahead"]) for p in points] == [
        ("hybrid", None), ("scratchpipe", 1), ("scratchpipe", 2), ("scratchpipe", 4)]
    assert points[0].config["capacity"] is None
    assert len({p.id for p in points}) == 4
    assert [p.id for p in points] == [p.id for p in spec.points()]  # stable


def test_the_cache_modes_policy_brings_its_own_options_to_the_grid(write_spec, tmp_path):
    from simulator.sweep import run_sweep

    spec = write_spec("""
        [axes]
        mode = ["cache"]
        cache_policy = ["lru", "setassoc"]
        ways = [4, 8]
        inner = ["lru", "lfu"]
        [fixed]
        capacity = "50%"
    """)
    points = [p.config for p in load_spec(spec).points()]
    # LRU has no ways nor inner policy: its four combinations are one point
    assert [(c["cache_policy"], c["ways"], c["inner"]) for c in points] == [
        ("lru", None, None), ("setassoc", 4, "lru"), ("setassoc", 4, "lfu"),
        ("setassoc", 8, "lru"), ("setassoc", 8, "lfu")]
    results = run_sweep(spec, tmp_path / "r.csv", workers=1, progress=False)
    # The same trace replayed directly (SMALL_TRACE's recipe) gives each point's hit rate.
    from simulator import generate, replay
    trace = generate("zipf", tmp_path / "t", [3000, 800, 100], batch_size=64, num_batches=30,
                     seed=7, alpha=1.05, show_progress=False)
    expected = [replay(trace, c["cache_policy"], "50%", **({} if c["ways"] is None else
                       {"ways": c["ways"], "inner": c["inner"]})).hit_rate for c in points]
    assert list(results["hit_rate"]) == pytest.approx(expected)
    assert len(set(expected)) == 5


def test_batch_size_axis_makes_one_trace_per_batch_size(write_spec):
    spec = load_spec(write_spec("""
        [axes]
        policy = ["lru"]
        capacity = [900]
        batch_size = [32, 64]
    """))
    recipes = [p.recipe for p in spec.points()]
    assert [r["batch_size"] for r in recipes] == [32, 64]
    assert len({p.config["trace"] for p in spec.points()}) == 2


def test_a_trace_given_by_path_is_found_beside_the_spec(write_spec, tmp_path):
    from simulator import generate
    from simulator.sweep import run_sweep

    generate("zipf", tmp_path / "mine", [500, 200], batch_size=32, num_batches=10, seed=1,
             show_progress=False)
    spec = write_spec("[axes]\npolicy = [\"lru\"]\ncapacity = [\"50%\"]\n",
                      trace="[trace]\npath = \"mine\"\n")
    results = run_sweep(spec, tmp_path / "r.csv", workers=1, progress=False)
    assert list(results["trace"]) == ["mine"] and results["hit_rate"].notna().all()
    bad = write_spec("[axes]\npolicy = [\"lru\"]\ncapacity = [100]\nbatch_size = [8, 16]\n",
                     trace="[trace]\npath = \"mine\"\n", name="bad.toml")
    with pytest.raises(OptionError, match=f"^{bad}: batch_size: changes the trace"):
        load_spec(bad)


def test_hardware_and_model_keys_are_axes_of_simulated_points(write_spec):
    spec = load_spec(write_spec("""
        [axes]
        mode = ["hybrid"]
        link.h2d_gb_per_s = [16, 32]
        "gpu.hbm_gb_per_s" = [1000.0]
        embedding_dim = [8, 16]
    """))
    points = [p.config for p in spec.points()]
    assert [(c["link.h2d_gb_per_s"], c["embedding_dim"]) for c in points] == [
        (16, 8), (16, 16), (32, 8), (32, 16)]
    assert {c["gpu.hbm_gb_per_s"] for c in points} == {1000.0}
    bad = write_spec("[axes]\nmode = [\"hybrid\"]\nlink.h2d_gb_per_s = [-1]\n", name="bad.toml")
    with pytest.raises(OptionError, match=rf"^{bad}: axes.link.h2d_gb_per_s: .*\[link\] "
                                          "h2d_gb_per_s must be positive, got -1"):
        load_spec(bad)


def test_a_model_axis_shapes_the_traces_made_for_it(write_spec):
    # No table_rows in [trace]: each point's model shapes its trace, overrides included, so a
    # pooling axis gives traces of 1 and 3 ids a bag, and mlperf-dlrm-dcnv2 its multi-hot bags.
    spec = load_spec(write_spec("""
        [axes]
        mode = ["hybrid"]
        pooling = [1, 3]
    """, trace="[trace]\ngenerator = \"zipf\"\nbatches = 4\nbatch_size = 8\n"))
    assert [p.recipe["pooling"] for p in spec.points()] == [[1, 1], [3, 3]]
    spec = load_spec(write_spec("""
        [axes]
        mode = ["hybrid"]
        model = ["mlperf-dlrm-dcnv2"]
    """, trace="[trace]\ngenerator = \"zipf\"\nbatches = 4\n", name="mlperf.toml"))
    (recipe,) = [p.recipe for p in spec.points()]
    assert recipe["multi_hot"] == "mlperf" and recipe["batch_size"] == 8192
    assert sum(lo for lo, _ in recipe["pooling"]) == 214
