"""The backend's planner (simulator/backend/planner.py): hand-computed victim orders for LRU
(held rows and the batch's hits never chosen, stale entries skipped) and for future (rows never
used again first, the most recently released first, then the furthest next use, ties to the
larger row), infeasibility, and every victim on random small instances against a brute-force
sort over all resident rows."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

pytest.importorskip("torch")

from simulator.backend.base import POSITION_BITS  # noqa: E402
from simulator.backend.planner import NOT_RESIDENT, Planner, TooFewVictims  # noqa: E402


def plan_all(planner, batches, next_uses=None):
    """Plan each batch; returns the rows each one evicted."""
    evicted = []
    for j, rows in enumerate(batches):
        plan = planner.plan(j, np.array(rows, dtype=np.int64),
                            None if next_uses is None else np.array(next_uses[j]))
        evicted.append(plan.evicted.tolist())
    return evicted


def test_lru_skips_held_rows_and_the_batch_hits():
    planner = Planner(total_rows=10, capacity=5, lookahead=1, victim="lru")
    evicted = plan_all(planner, [[0, 1, 2], [3, 0], [4, 5], [2, 6, 7]])
    # Batch 2 releases batch 0: row 0 was used again by batch 1 (its entry is stale), so the
    # least recent is 1. Batch 3 releases batch 1 (3, then 0); row 2, though older, is a hit
    # of batch 3, and batch 2's rows are held.
    assert evicted == [[], [], [1], [3, 0]]
    assert planner.occupancy == 5
    resident = {r: s for r, s in enumerate(planner.slot_of_row) if s != NOT_RESIDENT}
    assert sorted(resident) == [2, 4, 5, 6, 7]
    assert sorted(resident.values()) == list(range(5))


def test_a_plan_says_where_every_row_goes():
    planner = Planner(total_rows=10, capacity=3, lookahead=0, victim="lru")
    planner.plan(0, np.array([4, 7]))
    plan = planner.plan(1, np.array([9, 7, 1]))
    # 9 takes the victim's slot (row 4: batch 0's only row that batch 1 does not use), 1
    # the last free one.
    assert plan.missing.tolist() == [9, 1]
    assert plan.victims.tolist() == [0] and plan.evicted.tolist() == [4]
    assert plan.missing_slots.tolist() == [0, 2]
    assert plan.slots.tolist() == [0, 1, 2]
    assert plan.slots_tensor.tolist() == plan.slots.tolist()
    assert planner.slot_of_row[[4, 7, 9, 1]].tolist() == [NOT_RESIDENT, 1, 0, 2]


def test_future_evicts_the_never_used_first_then_the_furthest():
    planner = Planner(total_rows=10, capacity=4, lookahead=0, victim="future", never=10)
    batches = [[0, 1, 2, 3], [4, 5], [6], [7, 8], [9]]
    next_uses = [[7, 10, 7, 10], [10, 6], [10], [10, 10], [10]]
    # Never used again: 1 and 3 (3 released last), then 4, then 6; batch 3 then takes the
    # furthest next use, 7, shared by rows 0 and 2: the larger row goes first.
    assert plan_all(planner, batches, next_uses) == [[], [3, 1], [4], [6, 2], [8]]


def test_a_hit_is_never_its_batch_victim_even_when_nothing_else_is_left():
    planner = Planner(total_rows=10, capacity=2, lookahead=0, victim="future", never=9)
    plan_all(planner, [[0], [1]], [[2], [9]])
    # Batch 2 uses row 0, whose heap entry (next use 2) is then stale; row 1 goes, and the
    # third row finds no victim.
    with pytest.raises(TooFewVictims, match="batch 2 needs 2 victims but only 1 rows"):
        planner.plan(2, np.array([0, 2, 3]), np.array([9, 9, 9]))


def test_too_few_evictable_rows_is_infeasible():
    planner = Planner(total_rows=10, capacity=4, lookahead=1, victim="lru")
    plan_all(planner, [[0, 1], [2, 3], [4, 1]])
    # Batch 3 releases batch 1: row 3 (2 is a hit); batch 2's rows 4 and 1 are held.
    with pytest.raises(TooFewVictims, match="batch 3 needs 2 victims but only 1 rows"):
        planner.plan(3, np.array([5, 6, 2]))


@pytest.mark.parametrize("victim", ["lru", "future"])
def test_compaction_keeps_the_order_over_many_batches(victim):
    # Batches of two hot rows and two of eight others in a store of 6 slots: rows used again
    # after their release leave stale entries, which fill the pool's room (twice the
    # capacity) every few batches; a brute-force replay must agree throughout.
    rng = np.random.default_rng(0)
    batches = [list(dict.fromkeys([0, 1, int(r), int(s)]))
               for r, s in rng.integers(2, 10, size=(200, 2))]
    check_against_brute_force(batches, rows=10, capacity=6, lookahead=0, victim=victim)


# -- against a brute-force sort over all resident rows ----------------------------------------
def next_uses_of(batches):
    """Per batch, each row's next use after it (len(batches): never)."""
    out = []
    for j, rows in enumerate(batches):
        out.append([next((b for b in range(j + 1, len(batches)) if r in batches[b]),
                         len(batches)) for r in rows])
    return out


def brute_force_victims(resident, rows, j, count, lookahead, victim, never, total_rows):
    """Sort every resident row that is evictable (last used before j - lookahead, not in
    batch j); None when too few are."""
    evictable = [r for r, (key, _) in resident.items()
                 if key >> POSITION_BITS < j - lookahead and r not in rows]
    if len(evictable) < count:
        return None
    if victim == "lru":
        order = sorted(evictable, key=lambda r: resident[r][0])
    else:
        unused = sorted((r for r in evictable if resident[r][1] == never),
                        key=lambda r: -resident[r][0])
        rest = sorted((r for r in evictable if resident[r][1] != never),
                      key=lambda r: -(resident[r][1] * total_rows + r))
        order = unused + rest
    return order[:count]


def check_against_brute_force(batches, rows, capacity, lookahead, victim):
    never = len(batches)
    next_uses = next_uses_of(batches)
    planner = Planner(rows, capacity, lookahead, victim, never=never)
    resident = {}  # row -> (recency key, next use)
    for j, batch in enumerate(batches):
        hits = [r for r in batch if r in resident]
        count = max(0, len(resident) + len(batch) - len(hits) - capacity)
        expected = brute_force_victims(resident, batch, j, count, lookahead, victim, never,
                                       rows)
        if expected is None:
            with pytest.raises(TooFewVictims):
                planner.plan(j, np.array(batch), np.array(next_uses[j]))
            return
        plan = planner.plan(j, np.array(batch), np.array(next_uses[j]))
        assert plan.evicted.tolist() == expected, j
        assert plan.missing.tolist() == [r for r in batch if r not in resident]
        for r in expected:
            del resident[r]
        for k, r in enumerate(batch):
            resident[r] = ((j << POSITION_BITS) + k, next_uses[j][k])
        assert planner.occupancy == len(resident)
        assert planner.slot_of_row[batch].tolist() == plan.slots.tolist()
        assert len(set(planner.slot_of_row[list(resident)])) == len(resident)
        assert (planner.slot_of_row[[r for r in range(rows) if r not in resident]]
                == NOT_RESIDENT).all()


@settings(max_examples=300, deadline=None)
@given(data=st.data(), rows=st.integers(2, 20), capacity=st.integers(1, 12),
       lookahead=st.integers(0, 3), victim=st.sampled_from(["lru", "future"]))
def test_victims_agree_with_a_brute_force_sort(data, rows, capacity, lookahead, victim):
    batch = st.lists(st.integers(0, rows - 1), min_size=1, max_size=min(rows, 4), unique=True)
    batches = data.draw(st.lists(batch, min_size=1, max_size=40))
    check_against_brute_force(batches, rows, capacity, lookahead, victim)
