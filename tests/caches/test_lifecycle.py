"""The replay driver's policy lifecycle: process() for every chunk, then finish(), and close()
in any case; and the one rule for 32-bit state words."""

from types import SimpleNamespace

import numpy as np
import pytest

from simulator import replay
from simulator.caches import POLICIES
from simulator.caches._pools import row_state_dtype, word_dtype

BATCHES = [[0, 1], [2, 3], [0, 2], [4, 1], [3, 0], [1, 2], [4, 0]]
FUTURE_AWARE = [("belady", {}), ("scratchpipe", {"victim": "future", "lookahead": 1}),
                ("oracle", {"lookahead": 2})]


class Failure(Exception):
    pass


@pytest.mark.parametrize("policy, options", FUTURE_AWARE)
def test_an_error_mid_replay_closes_the_next_use_file(make_trace, tmp_path, monkeypatch,
                                                      policy, options):
    cls = POLICIES[policy]
    process, seen = cls.process, []

    def failing(self, chunk, stats):
        seen.append(sorted(p.name for p in tmp_path.iterdir()))  # the file is there meanwhile
        if chunk.first_batch > 0:
            raise Failure("mid-replay")
        process(self, chunk, stats)

    monkeypatch.setattr(cls, "process", failing)
    with pytest.raises(Failure):
        replay(make_trace(BATCHES), policy, capacity=4, max_lookups=4, tmp_dir=tmp_path,
               **options)
    assert len(seen) == 2 and all(seen)  # it failed in its second chunk, with a file open
    assert list(tmp_path.iterdir()) == []


@pytest.mark.parametrize("policy, options", FUTURE_AWARE + [("lru", {}), ("static", {})])
def test_finish_then_close_once_each_after_the_last_chunk(make_trace, monkeypatch, policy,
                                                          options):
    cls, calls = POLICIES[policy], []
    for name in ("process", "finish", "close"):
        original = getattr(cls, name)

        def spy(self, *args, _name=name, _original=original):
            calls.append(_name)
            return _original(self, *args)
        monkeypatch.setattr(cls, name, spy)
    replay(make_trace(BATCHES), policy, capacity=4, max_lookups=4, **options)
    assert calls[-2:] == ["finish", "close"] and set(calls[:-2]) == {"process"}
    assert len(calls) > 3  # several chunks


def test_close_is_idempotent(make_trace, tmp_path):
    policy = POLICIES["belady"](make_trace(BATCHES), 4, tmp_dir=tmp_path)
    assert list(tmp_path.iterdir())
    with policy:
        pass
    policy.close()
    assert list(tmp_path.iterdir()) == []


def test_word_dtype_by_hand():
    assert word_dtype(0) == np.int32
    assert word_dtype(2**31 - 1, -2**31) == np.int32  # the two ends of a signed 32-bit word
    assert word_dtype(2**31) == np.int64
    assert word_dtype(-2**31 - 1) == np.int64
    assert word_dtype(5, 2**31, -1) == np.int64  # every value must fit
    assert word_dtype() == np.int32


def test_row_state_dtype_by_hand():
    # USE holds 2 * last use + 1 (at most 2 * B - 1) and 2 * never_used = -2 * (B + 2); KEY
    # holds next uses up to B. -2 * (B + 2) >= -2**31 while B <= 2**30 - 2.
    def trace(batches):
        return SimpleNamespace(num_batches=batches, total_rows=10)
    assert row_state_dtype(trace(2**30 - 2)) == np.int32
    assert row_state_dtype(trace(2**30 - 1)) == np.int64
    assert row_state_dtype(trace(1)) == np.int32
