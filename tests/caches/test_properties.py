"""Invariants of the past-looking policies on small random traces (hypothesis), and agreement
batch for batch with plain-Python models written straight from DESIGN.md §4."""

import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st

import simulator as sim
from simulator.caches.base import STATS
from simulator.caches.setassoc import set_of

SETTINGS = settings(max_examples=100, deadline=None,
                    suppress_health_check=[HealthCheck.function_scoped_fixture])


@st.composite
def traces(draw, max_rows=12, max_batches=25, max_batch=6):
    rows = draw(st.integers(1, max_rows))
    batches = draw(st.lists(st.lists(st.integers(0, rows - 1), max_size=max_batch),
                            min_size=1, max_size=max_batches))
    return rows, batches


def unique(batch):
    return list(dict.fromkeys(batch))


def max_unique(batches):
    return max(len(set(b)) for b in batches)


# -- models: per batch (hits, misses, evictions, conflict misses, occupancy) -----------------
def model_lru(batches, capacity):
    order, out = [], []  # least recent first
    for batch in batches:
        u = unique(batch)
        misses = sum(r not in order for r in u)
        victims = [r for r in order if r not in u][:max(0, len(order) + misses - capacity)]
        order = [r for r in order if r not in u and r not in victims] + u
        out.append((len(u) - misses, misses, len(victims), 0, len(order)))
    return out


def model_fifo(batches, capacity):
    order, out = [], []  # oldest first
    for batch in batches:
        u = unique(batch)
        missing = [r for r in u if r not in order]
        victims = [r for r in order if r not in u][:max(0, len(order) + len(missing) - capacity)]
        order = [r for r in order if r not in victims] + missing
        out.append((len(u) - len(missing), len(missing), len(victims), 0, len(order)))
    return out


def model_lfu(batches, capacity):
    count, key, resident, out, seq = {}, {}, set(), [], 0
    for batch in batches:
        u = unique(batch)
        for r in batch:
            count[r] = count.get(r, 0) + 1
        misses = sum(r not in resident for r in u)
        candidates = sorted((r for r in resident if r not in u), key=key.get)
        victims = candidates[:max(0, len(resident) + misses - capacity)]
        resident -= set(victims)
        for r in u:
            key[r] = (count[r], seq)
            seq += 1
            resident.add(r)
        out.append((len(u) - misses, misses, len(victims), 0, len(resident)))
    return out


def model_setassoc(batches, capacity, ways, inner):
    sets = capacity // ways
    slots = [dict() for _ in range(sets)]  # per set: row -> key of its way
    count, seq, out = {}, 0, []
    for batch in batches:
        u = unique(batch)
        for r in batch:
            count[r] = count.get(r, 0) + 1
        # Keys, ascending: (0, ...) for rows of other batches, (1, ...) for this batch's.
        key = {r: (1, count[r] if inner == "lfu" else 0, seq + i) for i, r in enumerate(u)}
        hits = misses = evictions = conflicts = 0
        for r in u:
            s = slots[set_of(r, sets)]
            if r in s:
                s[r] = key[r]
                hits += 1
        for r in u:
            s = slots[set_of(r, sets)]
            if r in s:  # a hit, settled above
                continue
            misses += 1
            if len(s) == ways:
                victim = min(s, key=s.get)
                if s[victim][0] == 1:
                    conflicts += 1
                    continue
                del s[victim]
                evictions += 1
            s[r] = key[r]
        for s in slots:  # the batch is over: its keys become past keys
            for r in s:
                s[r] = (0,) + s[r][1:]
        seq += len(u)
        out.append((hits, misses, evictions, conflicts, sum(len(s) for s in slots)))
    return out


def model_static(batches, capacity, profile_batches):
    count = {}
    for batch in batches[:profile_batches]:
        for r in batch:
            count[r] = count.get(r, 0) + 1
    hot = set(sorted(count, key=lambda r: (-count[r], r))[:capacity])
    return [(len(set(b) & hot), len(set(b) - hot), 0, 0, len(hot)) for b in batches]


def observed(result):
    cols = [STATS.index(c) for c in ("hits", "misses", "evictions", "conflict_misses", "occupancy")]
    return [tuple(row) for row in result.stats[:, cols].tolist()]


# -- agreement with the models ------------------------------------------------------------------
@SETTINGS
@given(traces(), st.data())
def test_lru_fifo_lfu_match_their_models(make_trace, trace, data):
    rows, batches = trace
    capacity = data.draw(st.integers(max_unique(batches) or 1, rows + 2))
    t = make_trace(batches, rows)
    for policy, model in (("lru", model_lru), ("fifo", model_fifo), ("lfu", model_lfu)):
        assert observed(sim.replay(t, policy, capacity)) == model(batches, capacity), policy


@SETTINGS
@given(traces(max_rows=30, max_batch=10), st.integers(1, 4), st.integers(1, 3),
       st.sampled_from(["lru", "lfu"]))
def test_setassoc_matches_its_model(make_trace, trace, ways, sets, inner):
    rows, batches = trace
    capacity = ways * sets
    r = sim.replay(make_trace(batches, rows), "setassoc", capacity, ways=ways, inner=inner)
    assert observed(r) == model_setassoc(batches, capacity, ways, inner)


@SETTINGS
@given(traces(), st.integers(1, 14), st.integers(1, 30))
def test_static_matches_its_model(make_trace, trace, capacity, profile_batches):
    rows, batches = trace
    r = sim.replay(make_trace(batches, rows), "static", capacity, profile_batches=profile_batches)
    assert observed(r) == model_static(batches, capacity, profile_batches)


# -- invariants -----------------------------------------------------------------------------------
@SETTINGS
@given(traces())
def test_lru_misses_never_grow_with_capacity(make_trace, trace):
    rows, batches = trace
    t = make_trace(batches, rows)
    misses = [sim.replay(t, "lru", c).misses for c in range(max_unique(batches) or 1, rows + 2)]
    assert misses == sorted(misses, reverse=True)


@SETTINGS
@given(traces())
def test_mrc_equals_lru_replays_at_every_feasible_capacity(make_trace, trace):
    rows, batches = trace
    t = make_trace(batches, rows)
    curve = sim.mrc(t)
    assert curve.min_capacity == max_unique(batches)
    assert curve.distinct_rows == len(set().union(*map(set, batches)))
    for c in range(max(curve.min_capacity, 1), rows + 3):
        assert curve.misses_at(c) == sim.replay(t, "lru", c).misses, c
    for c in range(curve.min_capacity):
        assert curve.misses_at(c) is None and np.isnan(curve.misses[c])


@SETTINGS
@given(traces())
def test_with_room_for_every_row_only_first_uses_miss(make_trace, trace):
    """Every policy that starts empty misses each distinct row once; static preloads its hot
    set (the whole trace here) and misses nothing."""
    rows, batches = trace
    t = make_trace(batches, rows)
    distinct = len(set().union(*map(set, batches)))
    for policy, params in (("lru", {}), ("fifo", {}), ("lfu", {}),
                           ("setassoc", {"ways": rows, "inner": "lru"}),
                           ("setassoc", {"ways": rows, "inner": "lfu"})):
        r = sim.replay(t, policy, rows, **params)
        assert (r.misses, r.evictions, r.conflict_misses) == (distinct, 0, 0), policy
    assert sim.replay(t, "static", rows).misses == 0


POLICY_PARAMS = (("lru", {}), ("fifo", {}), ("lfu", {}), ("setassoc", {"ways": 2}),
                 ("setassoc", {"ways": 3, "inner": "lfu"}), ("static", {"profile_batches": 5}))


@SETTINGS
@given(traces(), st.data())
def test_chunking_does_not_change_results(make_trace, trace, data):
    rows, batches = trace
    capacity = data.draw(st.integers(max(max_unique(batches), 3), rows + 3))
    t = make_trace(batches, rows)
    for policy, params in POLICY_PARAMS:
        small = sim.replay(t, policy, capacity, max_lookups=1, **params)
        big = sim.replay(t, policy, capacity, **params)
        assert np.array_equal(small.stats, big.stats), policy
    assert np.array_equal(sim.mrc(t, max_lookups=1).misses, sim.mrc(t).misses, equal_nan=True)


@SETTINGS
@given(traces(), st.data())
def test_totals_are_consistent(make_trace, trace, data):
    rows, batches = trace
    capacity = data.draw(st.integers(max(max_unique(batches), 3), rows + 3))
    t = make_trace(batches, rows)
    for policy, params in POLICY_PARAMS:
        r = sim.replay(t, policy, capacity, **params)
        assert np.array_equal(r.per_batch_lookups, [len(b) for b in batches])
        assert np.array_equal(r.per_batch_unique, [len(set(b)) for b in batches])
        assert np.array_equal(r.per_batch_hits + r.per_batch_misses, r.per_batch_unique)
        assert np.array_equal(r.per_batch_evictions, r.per_batch_writebacks)
        assert (r.per_batch_conflict_misses <= r.per_batch_misses).all()
        assert (r.per_batch_occupancy <= capacity).all()
        assert r.hits + r.misses == r.unique


def test_lfu_matches_its_model_on_a_larger_trace(make_trace):
    """A deeper heap than the random traces above reach: 600 batches, capacity 40."""
    rng = np.random.default_rng(7)
    batches = [list(rng.zipf(1.2, rng.integers(1, 12)) % 200) for _ in range(600)]
    assert observed(sim.replay(make_trace(batches, 200), "lfu", 40)) == model_lfu(batches, 40)


def test_mrc_survives_many_compactions(make_stream):
    """A long stream over few rows forces the position line to be compacted many times."""
    ids = np.random.default_rng(3).zipf(1.3, 20_000) % 300
    t = make_stream(ids, 300)
    curve = sim.mrc(t)
    for c in (1, 2, 5, 17, 60, 150, 299, 300):
        assert curve.misses_at(c) == sim.replay(t, "lru", c).misses


@st.composite
def streams(draw, max_rows=12, max_lookups=60):
    rows = draw(st.integers(1, max_rows))
    return rows, draw(st.lists(st.integers(0, rows - 1), min_size=1, max_size=max_lookups))


@SETTINGS
@given(streams(), st.data())
def test_one_lookup_streams_match_the_models(make_stream, stream, data):
    """The per-access kernels of lru and fifo (taken when every batch is one lookup), across
    chunk boundaries, ring compactions and totals-only replays."""
    rows, ids = stream
    capacity = data.draw(st.integers(1, rows + 2))
    max_lookups = data.draw(st.integers(1, 8))
    t = make_stream(ids, rows)
    batches = [[r] for r in ids]
    for policy, model in (("lru", model_lru), ("fifo", model_fifo), ("lfu", model_lfu)):
        r = sim.replay(t, policy, capacity, max_lookups=max_lookups, per_batch=True)
        assert observed(r) == model(batches, capacity), policy
        totals = sim.replay(t, policy, capacity, max_lookups=max_lookups, per_batch=False)
        assert totals.to_dict() == r.to_dict(), policy


def test_lru_positions_restart_without_changing_results(make_trace, make_stream, monkeypatch):
    """Positions that would overflow the state word restart from zero: forced here every few
    dozen uses, on a stream and on batches, the replay is unchanged."""
    import simulator.caches.lru as lru

    rng = np.random.default_rng(11)
    stream = make_stream(rng.zipf(1.2, 3000) % 80, 80)
    batched = make_trace([list(rng.zipf(1.2, rng.integers(0, 9)) % 80) for _ in range(400)], 80)
    expected = [sim.replay(t, "lru", c, max_lookups=5) for t in (stream, batched)
                for c in (8, 30, 79)]
    monkeypatch.setattr(lru, "INT32_POSITIONS", 64)
    got = [sim.replay(t, "lru", c, max_lookups=5) for t in (stream, batched) for c in (8, 30, 79)]
    for e, g in zip(expected, got):
        assert np.array_equal(e.stats, g.stats)
    assert expected[0].misses > 0 and expected[3].misses > 0
