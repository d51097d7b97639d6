"""Each generator checked by an independent interpreter that reads the *inputs* only."""

import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm

seeds = st.integers(0, 2**32 - 1)


def real_steps(mask):
    n = int(mask.sum())
    assert np.all(mask[:n] == 1) and np.all(mask[n:] == 0), "mask must be a prefix"
    return n


@given(
    seed=seeds,
    L=st.integers(1, 4),
    R=st.integers(1, 4),
    fixed=st.none() | st.integers(1, 6),
    vary=st.sampled_from(["repeats", "length"]),
)
def test_repeat_copy(seed, L, R, fixed, vary):
    task = dm.RepeatCopy(
        bits=3, min_length=1, max_length=L, min_repeats=1, max_repeats=R, vary=vary
    )
    assert task.length_name == vary
    batch = task.sample(np.random.default_rng(seed), 3, length=fixed)
    for x, y, m, lm in zip(*batch[:4]):
        n = real_steps(m)
        delim = int(np.argmax(x[:, 3]))
        repeats = round(float(x[delim, 4]) * R)
        assert x[delim, 3] == 1
        fixed_length = fixed if vary == "length" else None
        fixed_repeats = fixed if vary == "repeats" else None
        assert delim == fixed_length if fixed_length else 1 <= delim <= L
        assert repeats == fixed_repeats if fixed_repeats else 1 <= repeats <= R
        seq = x[:delim, :3]
        expected = np.zeros((n, 4))
        expected[delim + 1 : delim + 1 + delim * repeats, :3] = np.tile(seq, (repeats, 1))
        expected[delim + delim * repeats + 1, 3] = 1.0
        assert n == delim + delim * repeats + 2
        np.testing.assert_array_equal(y[:n], expected)
        scored = np.zeros(len(m))
        scored[delim + 1 : n] = 1
        np.testing.assert_array_equal(lm, scored)


@given(seed=seeds, k=st.integers(1, 3), hi=st.integers(2, 5), fixed=st.none() | st.integers(2, 7))
def test_associative_recall(seed, k, hi, fixed):
    task = dm.AssociativeRecall(bits=4, item_length=k, min_items=2, max_items=hi)
    batch = task.sample(np.random.default_rng(seed), 3, length=fixed)
    for x, y, m, lm in zip(*batch[:4]):
        n = real_steps(m)
        item_marks = np.where(x[:n, 4] == 1)[0]
        query_marks = np.where(x[:n, 5] == 1)[0]
        items = [x[t + 1 : t + 1 + k, :4] for t in item_marks]
        assert 2 <= len(items) <= (hi if fixed is None else fixed)
        assert len(query_marks) == 2 and query_marks[1] - query_marks[0] == k + 1
        query = x[query_marks[0] + 1 : query_marks[1], :4]
        matches = [i for i, item in enumerate(items[:-1]) if np.array_equal(item, query)]
        assert matches, "the query must be one of the items except the last"
        answers = {items[i + 1].tobytes() for i in matches}
        out = query_marks[1] + 1
        assert n == out + k
        assert y[out : out + k].tobytes() in answers
        assert np.all(lm[out : out + k] == 1) and lm.sum() == k


@given(seed=seeds, lo=st.integers(1, 6), extra=st.integers(0, 4), outputs=st.integers(1, 8))
def test_priority_sort(seed, lo, extra, outputs):
    task = dm.PrioritySort(bits=3, min_inputs=lo, max_inputs=lo + extra, outputs=outputs)
    batch = task.sample(np.random.default_rng(seed), 3)
    for x, y, m, lm in zip(*batch[:4]):
        n_real = real_steps(m)
        delim = int(np.argmax(x[:, 4]))
        assert lo <= delim <= lo + extra
        pairs = sorted(
            ((float(x[t, 3]), tuple(x[t, :3])) for t in range(delim)), key=lambda p: -p[0]
        )
        m_out = min(outputs, delim)
        assert n_real == delim + 1 + m_out and lm.sum() == m_out
        expected = np.array([v for _, v in pairs[:m_out]])
        np.testing.assert_array_equal(y[delim + 1 : delim + 1 + m_out], expected)


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: dm.RepeatCopy(min_repeats=3, max_repeats=2), "min_repeats <= max_repeats"),
        (lambda: dm.AssociativeRecall(min_items=1), "min_items must be an integer >= 2"),
        (lambda: dm.PrioritySort(outputs=0), "outputs must be a positive"),
        (lambda: dm.RepeatCopy(bits=0), "bits must be a positive"),
    ],
)
def test_bad_task_settings(build, message):
    with pytest.raises(ValueError, match=message):
        build()


def test_bit_metrics():
    task = dm.RepeatCopy(bits=2, max_length=2, max_repeats=2)
    batch = task.sample(np.random.default_rng(0), 1)
    y, lm = batch.targets[0], batch.loss_mask[0]
    logits = np.where(y > 0.5, 4.0, -4.0)
    perfect = task.metrics(logits, y, lm)
    assert float(perfect["bit_errors"]) == 0 and float(perfect["perfect"]) == 1
    assert float(perfect["bit_accuracy"]) == 1
    per_bit = np.log2(1 + np.exp(-4.0))  # the cost in bits of one bit right at logit +-4
    np.testing.assert_allclose(float(perfect["cost_bits"]), lm.sum() * 3 * per_bit, rtol=1e-5)
    first = int(np.argmax(lm))
    logits[first, 0] *= -1
    one_off = task.metrics(logits, y, lm)
    assert float(one_off["bit_errors"]) == 1 and float(one_off["perfect"]) == 0
    np.testing.assert_allclose(float(one_off["bit_accuracy"]), 1 - 1 / (lm.sum() * 3), rtol=1e-6)


@given(seed=seeds, flips=st.lists(st.tuples(st.integers(0, 40), st.integers(0, 3)), max_size=6))
def test_repeat_copy_reports_marker_errors_apart_from_data_bits(seed, flips):
    task = dm.RepeatCopy(bits=3, max_length=3, max_repeats=3)
    batch = task.sample(np.random.default_rng(seed), 1)
    y, lm = batch.targets[0], batch.loss_mask[0]
    outputs = np.where(y > 0.5, 5.0, -5.0)
    for t, c in flips:  # flip some outputs: only the scored ones count, by channel
        outputs[t % len(y), c] *= -1
    wrong = (outputs > 0) != (y > 0.5)
    metrics = {k: float(v) for k, v in task.metrics(outputs, y, lm).items()}
    assert metrics["data_bit_errors"] == np.sum(wrong[:, :3] * lm[:, None])
    assert metrics["marker_errors"] == np.sum(wrong[:, 3] * lm)
    assert metrics["bit_errors"] == metrics["data_bit_errors"] + metrics["marker_errors"]
