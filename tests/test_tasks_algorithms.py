"""The hierarchical attentive memory's tasks: each generator checked by a plain interpreter that
reads the one-hot inputs only and answers with Python (sorted, a dict look-up, int addition)."""

import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm

seeds = st.integers(0, 2**32 - 1)


def decode_step(row, keys, symbols):
    """``(key or None, value or None, separator)`` of one input row; fails unless each block
    is blank or one-hot."""
    assert set(np.unique(row)) <= {0.0, 1.0}
    k, v, sep = row[:keys], row[keys : keys + symbols], row[keys + symbols :]
    assert k.sum() <= 1 and v.sum() <= 1 and len(sep) == 1
    key = int(np.argmax(k)) if k.any() else None
    value = int(np.argmax(v)) if v.any() else None
    return key, value, bool(sep[0])


def read_episode(task, batch, b):
    """The input segments (lists of ``(key, value)`` pairs, closed by separators), the query
    the last separator carries, and the target classes of the scored steps."""
    n = int(batch.mask[b].sum())
    assert np.all(batch.mask[b, :n] == 1) and np.all(batch.mask[b, n:] == 0)
    segments, current, query = [], [], None
    first_scored = int(np.argmax(batch.loss_mask[b]))
    for t in range(first_scored):
        key, value, sep = decode_step(batch.inputs[b, t], task.keys, task.symbols)
        if sep:
            assert value is None
            segments.append(current)
            current, query = [], key
        else:
            assert key is not None and value is not None
            current.append((key, value))
    assert current == [] and not batch.inputs[b, first_scored:].any()  # blank while answering
    scored = batch.loss_mask[b] > 0
    assert np.all(scored[first_scored:n]) and not scored[n:].any()
    targets = batch.targets[b][scored]
    assert np.all(targets.sum(-1) == 1)
    return segments, query, [int(c) for c in np.argmax(targets, -1)]


def expected(name, segments, query):
    if name == "SearchPairs":
        (pairs,) = segments
        return [dict(pairs)[query]]
    if name == "MergePairs":
        first, second = segments
        return [v for _, v in sorted(first + second)]
    (pairs,) = segments
    return [v for _, v in sorted(pairs)]


TASKS = {"SearchPairs": dm.SearchPairs, "MergePairs": dm.MergePairs, "SortPairs": dm.SortPairs}


@pytest.mark.parametrize("name", sorted(TASKS))
@settings(max_examples=15, deadline=None)
@given(
    seed=seeds,
    symbols=st.integers(1, 6),
    lo=st.integers(1, 4),
    extra=st.integers(0, 3),
    batch=st.integers(1, 3),
    fixed=st.none() | st.integers(1, 8),
)
def test_episodes_match_a_plain_reference(name, seed, symbols, lo, extra, batch, fixed):
    task = TASKS[name](keys=20, symbols=symbols, min_length=lo, max_length=lo + extra)
    out = task.sample(np.random.default_rng(seed), batch, length=fixed)
    n_in, n_out = task.steps(fixed or lo + extra)
    T = n_in + n_out + 1
    assert out.inputs.shape == (batch, T, 20 + symbols + 1)
    assert out.targets.shape == (batch, T, symbols + 1)
    assert out.mask.shape == out.loss_mask.shape == (batch, T)
    for b in range(batch):
        segments, query, classes = read_episode(task, out, b)
        n = len(segments[0])
        assert (fixed is None and lo <= n <= lo + extra) or n == fixed
        keys = [k for seg in segments for k, _ in seg]
        assert len(set(keys)) == len(keys)  # distinct by construction
        if name != "SortPairs":
            assert all(seg == sorted(seg) for seg in segments)  # sorted inputs
            assert all(len(seg) == n for seg in segments)
        if name == "SearchPairs":
            assert query in keys
        else:
            assert query is None
        assert classes == expected(name, segments, query) + [symbols]  # values, then end
        assert int(out.mask[b].sum()) == sum(task.steps(n)) + 1


@pytest.mark.parametrize("name", sorted(TASKS))
def test_generators_are_pure_functions_of_the_rng(name):
    task = TASKS[name](keys=32, min_length=2, max_length=6)
    a, b = (task.sample(np.random.default_rng(7), 4) for _ in range(2))
    for x, y in zip(a, b):
        if x is not None:
            np.testing.assert_array_equal(x, y)


@pytest.mark.parametrize("name", sorted(TASKS))
def test_lengths_beyond_the_keys_are_one_line_errors(name):
    cls = TASKS[name]
    need = cls.keys_needed(8)
    with pytest.raises(dm.DifmachineError, match=f"needs {need} distinct keys but keys=4"):
        cls(keys=4, min_length=1, max_length=8)
    task = cls(keys=need, min_length=1, max_length=8)
    with pytest.raises(ValueError, match="raise keys to at least") as info:
        task.sample(np.random.default_rng(0), 1, length=9)
    assert "\n" not in str(info.value)
    with pytest.raises(ValueError, match="positive integer"):
        task.sample(np.random.default_rng(0), 1, length=0)
    with pytest.raises(ValueError, match="min_length <= max_length"):
        cls(min_length=5, max_length=4)


def test_scored_like_the_symbol_tasks():
    task = dm.SortPairs(keys=8, symbols=3, min_length=2, max_length=2)
    batch = task.sample(np.random.default_rng(0), 1)
    perfect = np.where(batch.targets[0] > 0, 10.0, -10.0)
    m = task.metrics(perfect, batch.targets[0], batch.loss_mask[0])
    assert float(m["errors"]) == 0 and float(m["coarse"]) == 1
    wrong = perfect.copy()
    last = int(np.flatnonzero(batch.loss_mask[0])[-1])  # the end class
    wrong[last] = -wrong[last]
    assert float(task.metrics(wrong, batch.targets[0], batch.loss_mask[0])["errors"]) == 1


@settings(max_examples=15, deadline=None)
@given(k=st.integers(1, 10), seed=seeds)
def test_binary_addition_answered_after_the_input_is_int_addition(k, seed):
    """The paper's Add is ``BinaryAddition(answer_after=True)``: ``k`` bits of ``a``, ``+``,
    ``k`` bits of ``b`` (least significant first), then as many blank steps that answer."""
    task = dm.BinaryAddition(max_bits=10, answer_after=True)
    batch = task.sample(np.random.default_rng(seed), 2, length=k)
    n = 2 * k + 1
    for b in range(2):
        symbols = [int(np.argmax(r)) if r.any() else None for r in batch.inputs[b]]
        assert symbols[k] == 2 and symbols[n:] == [None] * n  # "+", then blanks
        a = sum(bit << i for i, bit in enumerate(symbols[:k]))
        c = sum(bit << i for i, bit in enumerate(symbols[k + 1 : n]))
        classes = np.argmax(batch.targets[b, n:], -1)
        digits = [int(x) for x in classes if x != 2]
        assert all(x == 2 for x in classes[len(digits) :])  # blanks after the sum
        assert sum(bit << i for i, bit in enumerate(digits)) == a + c
        assert batch.loss_mask[b, n:].all() and not batch.loss_mask[b, :n].any()


def test_labels_name_each_step_for_traces():
    task = dm.SearchPairs(keys=8, symbols=3, min_length=2, max_length=2)
    batch = task.sample(np.random.default_rng(0), 1)
    labels = task.labels(batch, 0)
    segments, query, classes = read_episode(task, batch, 0)
    (pairs,) = segments
    assert labels["input"] == [f"{k}:{v}" for k, v in pairs] + [f"|{query}", "_", "_"]
    assert labels["target"] == ["_"] * 3 + [str(classes[0]), "$"]


@settings(max_examples=6, deadline=None)
@given(seed=seeds, level=st.integers(1, 4))
def test_the_length_curriculum_draws_up_to_its_level_in_one_shape(seed, level):
    """A level bounds the pairs drawn for training (every count from min_length up to it turns
    up), keeps the padded shape (no recompile per level), moves up below its threshold, and
    MemoryInput (the HAM's layout) passes it through."""
    for name, kind in sorted(TASKS.items()):
        task = kind(keys=16, min_length=1, max_length=4, adaptive=0.1)
        batch = task.at_level(level).sample(np.random.default_rng(seed), 48)
        counts = {len(read_episode(task, batch, b)[0][0]) for b in range(48)}
        assert counts == set(range(1, level + 1)), name
        assert batch.inputs.shape == task.sample(np.random.default_rng(seed), 48).inputs.shape
    wrapped = dm.MemoryInput(task)
    assert wrapped.curriculum_start() == 1 and task.next_level(level, 0.05) == min(level + 1, 4)
    assert wrapped.at_level(level).task.level == level and task.next_level(level, 0.2) == level
    with pytest.raises(ValueError, match="level must be within 1..4 pairs"):
        task.at_level(5)
