"""ScratchPipe: hand-computed schedules, the exact feasibility bound, agreement with LRU and
Belady at lookahead 0, and a pure-Python reference of the same semantics."""

import json

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import simulator.caches._pools as pools_module
from simulator import CapacityError, OptionError, generate, min_capacity, replay
from simulator.cli import main
from simulator.caches.base import EVICTIONS, HELD, HITS, MISSES, OCCUPANCY

COLUMNS = [HITS, MISSES, EVICTIONS, HELD, OCCUPANCY]


class Infeasible(Exception):
    pass


def reference_scratchpipe(batches, capacity, lookahead, victim):
    """The semantics written plainly. Per planned batch j: (lookups, unique, hits, misses,
    evictions, writebacks, conflict misses, held, occupancy). Raises Infeasible(j)."""
    uniques = [list(dict.fromkeys(b)) for b in batches]

    def next_use(row, after):
        return next((c for c in range(after + 1, len(batches)) if row in uniques[c]), np.inf)

    resident, recency, out = set(), {}, []
    for j, unique in enumerate(uniques):
        window = set().union(*uniques[max(0, j - lookahead):j + 1])
        hits = sum(r in resident for r in unique)
        for position, r in enumerate(unique):
            recency[r] = (j, position)  # rows of a batch age in first-occurrence order
        evictions = 0
        for r in unique:
            if r in resident:
                continue
            if len(resident) >= capacity:
                evictable = resident - window
                if not evictable:
                    raise Infeasible(j)
                if victim == "lru":
                    chosen = min(evictable, key=recency.__getitem__)
                else:
                    chosen = max(evictable, key=lambda c: (next_use(c, j), c))
                assert chosen not in window  # a held row is never evicted
                resident.remove(chosen)
                evictions += 1
            resident.add(r)
        assert window <= resident  # the whole window is resident: training always hits
        out.append([len(batches[j]), len(unique), hits, len(unique) - hits, evictions,
                    evictions, 0, len(window), len(resident)])
    return out


def window_union_bound(batches, lookahead):
    return max(len(set().union(*map(set, batches[max(0, j - lookahead):j + 1])))
               for j in range(len(batches)))


# -- hand-computed --------------------------------------------------------------------------------
CHAIN = [[1, 2], [2, 3], [3, 4], [1, 4]]


@pytest.mark.parametrize("victim", ["lru", "future"])
def test_chain_at_its_minimum_capacity(make_trace, victim):
    # W=1: the windows are {1,2}, {1,2,3}, {2,3,4}, {3,4,1}, so the bound is 3. At capacity
    # 3 the only row not held is the one the window just left (1, then 2): both victim
    # policies must take it.
    trace = make_trace(CHAIN)
    assert min_capacity(trace, 1) == 3
    result = replay(trace, "scratchpipe", capacity=3, lookahead=1, victim=victim)
    assert result.stats[:, COLUMNS].tolist() == [
        # hits, misses, evictions, held, occupancy
        [0, 2, 0, 2, 2],
        [1, 1, 0, 3, 3],
        [1, 1, 1, 3, 3],   # 4 evicts 1
        [1, 1, 1, 3, 3],   # 1 evicts 2
    ]
    assert result.extra == {"train_hit_rate": 1.0, "min_capacity": 3, "lookahead": 1,
                            "victim": victim}
    assert result.params == {"lookahead": 1, "victim": victim}


def test_chain_below_its_minimum_capacity_names_the_capacity_needed(make_trace):
    with pytest.raises(CapacityError, match=r"batch 1 .*at least 3 rows"):
        replay(make_trace(CHAIN), "scratchpipe", capacity=2, lookahead=1)


def test_lru_and_future_victims_differ_by_hand(make_trace):
    # W=1, capacity 3, batches {1} {2} {3} {4} {1} {2}. Batch 3 must evict one of 1 and 2
    # (3 is held by the window {3,4}): lru takes 1 (used longest ago), future takes 2
    # (used again later), so that 1 is a hit at batch 4.
    trace = make_trace([[1], [2], [3], [4], [1], [2]])
    lru = replay(trace, "scratchpipe", capacity=3, lookahead=1, victim="lru")
    future = replay(trace, "scratchpipe", capacity=3, lookahead=1, victim="future")
    held, occupancy = [1, 2, 2, 2, 2, 2], [1, 2, 3, 3, 3, 3]
    assert lru.per_batch_hits.tolist() == [0, 0, 0, 0, 0, 0]
    assert lru.per_batch_evictions.tolist() == [0, 0, 0, 1, 1, 1]   # 1, then 2, then 3
    assert future.per_batch_hits.tolist() == [0, 0, 0, 0, 1, 0]
    assert future.per_batch_evictions.tolist() == [0, 0, 0, 1, 0, 1]  # 2, then 3 or 4
    for result in (lru, future):
        assert result.per_batch_held.tolist() == held
        assert result.per_batch_occupancy.tolist() == occupancy
        assert result.per_batch_writebacks.tolist() == result.per_batch_evictions.tolist()


# -- the feasibility bound ------------------------------------------------------------------------
batch_lists = st.lists(st.lists(st.integers(0, 11), min_size=1, max_size=5), min_size=1,
                       max_size=25)


@settings(max_examples=60, deadline=None)
@given(batches=batch_lists, lookahead=st.integers(0, 5), victim=st.sampled_from(["lru", "future"]))
def test_min_capacity_is_exactly_the_feasibility_bound(make_trace, batches, lookahead, victim):
    trace = make_trace(batches)
    bound = min_capacity(trace, lookahead)
    assert bound == window_union_bound(batches, lookahead)
    assert min_capacity(trace, lookahead, max_lookups=3) == bound
    result = replay(trace, "scratchpipe", capacity=bound, lookahead=lookahead, victim=victim)
    assert result.extra["min_capacity"] == bound
    if bound > 1:
        with pytest.raises(CapacityError, match=f"at least {bound:,} rows"):
            replay(trace, "scratchpipe", capacity=bound - 1, lookahead=lookahead, victim=victim)


@settings(max_examples=40, deadline=None)
@given(batches=batch_lists)
def test_min_capacity_never_shrinks_with_the_lookahead(make_trace, batches):
    trace = make_trace(batches)
    bounds = [min_capacity(trace, w) for w in range(8)]
    assert bounds == sorted(bounds)
    assert bounds[0] == max(len(set(b)) for b in batches)


def test_min_capacity_on_a_generated_trace(tmp_path):
    trace = generate("zipf", tmp_path / "z", [300, 200], batch_size=16, num_batches=60, seed=1,
                     alpha=0.9, pooling=2, show_progress=False)
    batches = [trace.batch(b).ids.tolist() for b in range(trace.num_batches)]
    bounds = [min_capacity(trace, w) for w in (0, 1, 2, 4, 8, 16)]
    assert bounds == [window_union_bound(batches, w) for w in (0, 1, 2, 4, 8, 16)]
    assert bounds == sorted(bounds)


# -- against the reference, LRU and Belady --------------------------------------------------------
@settings(max_examples=150, deadline=None)
@given(batches=batch_lists, lookahead=st.one_of(st.integers(0, 4), st.integers(0, 40)),
       victim=st.sampled_from(["lru", "future"]), extra=st.integers(0, 5),
       small_pool=st.booleans())
def test_matches_the_reference(make_trace, batches, lookahead, victim, extra, small_pool):
    capacity = window_union_bound(batches, lookahead) + extra
    with pytest.MonkeyPatch.context() as patch:
        if small_pool:  # makes the pools' compaction and growth run on small traces
            patch.setattr(pools_module, "POOL_MIN_SLOTS", 2)
        result = replay(make_trace(batches), "scratchpipe", capacity=capacity,
                        lookahead=lookahead, victim=victim, max_lookups=5)
    assert result.stats.tolist() == reference_scratchpipe(batches, capacity, lookahead, victim)
    assert result.misses >= len(set().union(*map(set, batches)))


def test_reference_raises_where_the_kernel_does(make_trace):
    with pytest.raises(Infeasible):
        reference_scratchpipe(CHAIN, 2, 1, "lru")


@pytest.fixture(scope="module")
def zipf_trace(tmp_path_factory):
    return generate("zipf", tmp_path_factory.mktemp("z") / "t", [3000, 2000], batch_size=32,
                    num_batches=300, seed=7, alpha=1.05, pooling=(1, 3), show_progress=False)


def test_lookahead_zero_lru_is_the_lru_cache(zipf_trace):
    smallest = min_capacity(zipf_trace, 0)
    for capacity in (smallest, smallest + 1, 2 * smallest, 5000):
        ours = replay(zipf_trace, "scratchpipe", capacity=capacity, lookahead=0,
                      max_lookups=1000)
        lru = replay(zipf_trace, "lru", capacity=capacity)
        assert ours.stats[:, [HITS, MISSES, EVICTIONS, OCCUPANCY]].tolist() == \
            lru.stats[:, [HITS, MISSES, EVICTIONS, OCCUPANCY]].tolist()


def test_lookahead_zero_future_is_belady(zipf_trace):
    smallest = min_capacity(zipf_trace, 0)
    for capacity in (smallest, smallest + 1, 2 * smallest, 5000):
        ours = replay(zipf_trace, "scratchpipe", capacity=capacity, lookahead=0, victim="future",
                      max_lookups=1000)
        belady = replay(zipf_trace, "belady", capacity=capacity)
        assert ours.stats[:, [HITS, MISSES, EVICTIONS, OCCUPANCY]].tolist() == \
            belady.stats[:, [HITS, MISSES, EVICTIONS, OCCUPANCY]].tolist()


def test_generated_trace_properties(zipf_trace):
    distinct = len(np.unique(zipf_trace.read(0, zipf_trace.num_batches).ids))
    for lookahead in (1, 4):
        capacity = 2 * min_capacity(zipf_trace, lookahead)
        for victim in ("lru", "future"):
            result = replay(zipf_trace, "scratchpipe", capacity=capacity, lookahead=lookahead,
                            victim=victim)
            assert result.extra["train_hit_rate"] == 1.0
            assert result.misses >= distinct
            assert (result.per_batch_occupancy <= capacity).all()
            assert (result.per_batch_held <= result.per_batch_occupancy).all()


# -- options --------------------------------------------------------------------------------------
@pytest.mark.parametrize("options, message", [
    ({"lookahead": -1}, "lookahead"), ({"lookahead": "two"}, "lookahead"),
    ({"lookahead": 1.5}, "lookahead"), ({"lookahead": "2"}, "lookahead must be an integer"),
    ({"victim": "mru"}, "victim 'mru' is not one of lru, future"),
    ({"window": 3}, "takes no option window"),
])
def test_bad_options_are_user_errors(make_trace, options, message):
    with pytest.raises(OptionError, match=message):
        replay(make_trace(CHAIN), "scratchpipe", capacity=4, **options)


def test_resolved_options_are_recorded(make_trace):
    assert replay(make_trace(CHAIN), "scratchpipe", capacity=4, lookahead=2).params == {
        "lookahead": 2, "victim": "lru"}


def test_future_victim_removes_its_next_use_file(make_trace, tmp_path):
    replay(make_trace(CHAIN), "scratchpipe", capacity=3, lookahead=1, victim="future",
           tmp_dir=tmp_path)
    with pytest.raises(CapacityError):
        replay(make_trace(CHAIN), "scratchpipe", capacity=2, lookahead=1, victim="future",
               tmp_dir=tmp_path)
    assert list(tmp_path.iterdir()) == []


# -- command line ---------------------------------------------------------------------------------
def test_min_capacity_command(make_trace, capsys):
    trace = make_trace(CHAIN)
    assert main(["min-capacity", str(trace.path), "--lookahead", "1"]) == 0
    assert capsys.readouterr().out == "minimum scratchpad capacity for lookahead 1: 3 rows\n"
    assert main(["min-capacity", str(trace.path), "--lookahead", "0", "--json"]) == 0
    assert json.loads(capsys.readouterr().out) == {"trace": str(trace.path), "lookahead": 0,
                                                   "min_capacity": 2}


@pytest.mark.parametrize("arguments", [["--lookahead", "-1"], [], ["--lookahead", "x"]])
def test_min_capacity_command_errors_are_one_line(make_trace, capsys, arguments):
    assert main(["min-capacity", str(make_trace(CHAIN).path)] + arguments) == 2
    err = capsys.readouterr().err
    assert err.startswith("scratchsim: error: ") and err.count("\n") == 1


def test_min_capacity_command_on_a_missing_trace(tmp_path, capsys):
    assert main(["min-capacity", str(tmp_path / "nope"), "--lookahead", "2"]) == 2
    assert "is not a directory" in capsys.readouterr().err
