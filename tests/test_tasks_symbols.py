"""Symbol tasks: each generator checked by an independent interpreter that reads the one-hot
*inputs* only, plus the loss and the Grefenstette metrics on hand-made logits."""

import jax.numpy as jnp
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


def one_hot_symbol(row):
    """The symbol of a one-hot row, or None for a blank row (anything else fails)."""
    assert set(np.unique(row)) <= {0.0, 1.0}
    hot = np.flatnonzero(row)
    assert len(hot) <= 1, f"not one-hot: {row}"
    return int(hot[0]) if len(hot) else None


# Independent reference transductions, written as plain loops.
def reverse(src):
    return [src[len(src) - 1 - i] for i in range(len(src))]


def copy(src):
    return list(src)


def bigram_flip(src):
    out = []
    i = 0
    while i < len(src):
        if i + 1 < len(src):
            out += [src[i + 1], src[i]]
        else:
            out.append(src[i])
        i += 2
    return out


TRANSDUCTIONS = {"Reverse": reverse, "SymbolCopy": copy, "BigramFlip": bigram_flip}


@pytest.mark.parametrize("name", sorted(TRANSDUCTIONS))
@given(
    seed=seeds,
    symbols=st.integers(1, 9),
    lo=st.integers(1, 6),
    extra=st.integers(0, 5),
    batch=st.integers(1, 4),
    fixed=st.none() | st.integers(1, 12),
)
def test_transduction_batches(name, seed, symbols, lo, extra, batch, fixed):
    task = getattr(dm, name)(symbols=symbols, min_length=lo, max_length=lo + extra)
    b = task.sample(np.random.default_rng(seed), batch, length=fixed)
    T = 2 * (lo + extra if fixed is None else fixed) + 2
    assert b.inputs.shape == (batch, T, symbols + 2)
    assert b.targets.shape == (batch, T, symbols + 1)
    assert b.mask.shape == b.loss_mask.shape == (batch, T)
    SEP, END_IN, END_OUT = symbols, symbols + 1, symbols
    for x, y, m, lm in zip(*b[:4]):
        n = real_steps(m)
        seen = [one_hot_symbol(row) for row in x]
        L = seen.index(SEP)
        source = seen[:L]
        assert all(s is not None and 0 <= s < symbols for s in source), "source: symbols only"
        assert all(s is None for s in seen[L + 1 :]), "blank after the separator"
        assert END_IN not in seen, "the end marker is never an input (no feedback)"
        if fixed is None:
            assert lo <= L <= lo + extra
        else:
            assert L == fixed
        assert n == 2 * L + 2
        expected = TRANSDUCTIONS[name](source) + [END_OUT]
        got = [one_hot_symbol(row) for row in y]
        assert got[L + 1 : 2 * L + 2] == expected
        assert all(g is None for i, g in enumerate(got) if not L + 1 <= i < 2 * L + 2)
        scored = np.zeros(T)
        scored[L + 1 : 2 * L + 2] = 1
        np.testing.assert_array_equal(lm, scored)


@given(
    seed=seeds, lo=st.integers(1, 6), extra=st.integers(0, 6), fixed=st.none() | st.integers(1, 15)
)
def test_anbn_batches(seed, lo, extra, fixed):
    task = dm.AnBn(min_n=lo, max_n=lo + extra)
    b = task.sample(np.random.default_rng(seed), 3, length=fixed)
    T = 2 * (lo + extra if fixed is None else fixed) + 1
    assert b.inputs.shape == b.targets.shape == (3, T, 3)
    A, B, END = 0, 1, 2
    for x, y, m, lm in zip(*b[:4]):
        steps = real_steps(m)
        seen = [one_hot_symbol(row) for row in x[:steps]]
        assert all(one_hot_symbol(row) is None for row in x[steps:])
        n = seen.count(A)
        assert seen == [A] * n + [B] * n + [END], seen
        assert (lo <= n <= lo + extra) if fixed is None else n == fixed
        # the next symbol is determined exactly when the input is a b
        for t in range(T):
            target = one_hot_symbol(y[t])
            if t < steps - 1 and seen[t] == B:
                assert lm[t] == 1 and target == seen[t + 1]
            else:
                assert lm[t] == 0 and target is None
        assert lm.sum() == n


def logits_for(targets, wrong_at=None):
    """Logits whose argmax is the target class, except at step ``wrong_at``."""
    logits = np.where(targets > 0.5, 3.0, -3.0).astype(np.float32)
    if wrong_at is not None:
        logits[wrong_at] = np.roll(logits[wrong_at], 1)
    return jnp.asarray(logits)


@pytest.mark.parametrize("name", ["Reverse", "SymbolCopy", "BigramFlip", "AnBn"])
@given(seed=seeds, length=st.integers(1, 10), data=st.data())
def test_metrics_perfect_and_one_wrong(name, seed, length, data):
    task = dm.AnBn() if name == "AnBn" else getattr(dm, name)(symbols=5)
    b = task.sample(np.random.default_rng(seed), 1, length=length)
    y, lm = b.targets[0], b.loss_mask[0]
    scored = np.flatnonzero(lm)
    k = len(scored)
    perfect = {key: float(v) for key, v in task.metrics(logits_for(y), y, lm).items()}
    assert perfect == {"errors": 0.0, "coarse": 1.0, "fine": 1.0, "token_accuracy": 1.0}
    i = data.draw(st.integers(0, k - 1), label="wrong position among scored steps")
    bad = {key: float(v) for key, v in task.metrics(logits_for(y, scored[i]), y, lm).items()}
    assert bad["coarse"] == 0.0 and bad["errors"] == 1.0
    np.testing.assert_allclose(bad["fine"], i / k, rtol=1e-6)
    np.testing.assert_allclose(bad["token_accuracy"], 1 - 1 / k, rtol=1e-6)
    # confident nonsense on the unscored steps does not count
    noise = np.asarray(logits_for(y)).copy()
    noise[lm == 0] = np.random.default_rng(seed).normal(size=noise[lm == 0].shape) * 10
    noise[lm == 0, -1] = 100.0  # the last class: never argmax(0-vector) = 0
    off = {key: float(v) for key, v in task.metrics(jnp.asarray(noise), y, lm).items()}
    assert off == perfect


def test_loss_is_masked_cross_entropy():
    task = dm.Reverse(symbols=4, min_length=3, max_length=3)
    b = task.sample(np.random.default_rng(1), 1)
    y, lm = b.targets[0], b.loss_mask[0]
    logits = np.random.default_rng(2).normal(size=y.shape).astype(np.float32)
    log_p = logits - np.log(np.exp(logits).sum(-1, keepdims=True))
    expected = -sum(log_p[t, int(np.argmax(y[t]))] for t in np.flatnonzero(lm))
    np.testing.assert_allclose(float(task.loss(jnp.asarray(logits), y, lm)), expected, rtol=1e-5)
    assert float(task.loss(logits_for(y), y, lm)) < float(task.loss(jnp.asarray(logits), y, lm))
    probs = np.asarray(task.present(jnp.asarray(logits)))
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)


def test_declared_sizes_and_metric_names():
    task = dm.Reverse()
    assert task.symbols == 128  # Grefenstette et al. (2015)
    assert (task.input_size, task.output_size) == (130, 129)
    assert (task.min_length, task.max_length) == (8, 16)
    assert task.main_metric == "errors" and task.length_name == "length"
    assert dm.AnBn().length_name == "n" and dm.AnBn().max_n == 20
    assert dm.AnBn().input_size == dm.AnBn().output_size == 3


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: dm.Reverse(min_length=5, max_length=2), "min_length <= max_length"),
        (lambda: dm.SymbolCopy(symbols=0), "symbols must be a positive"),
        (lambda: dm.BigramFlip(min_length=0), "min_length must be a positive integer"),
        (lambda: dm.AnBn(min_n=3, max_n=2), "min_n <= max_n"),
        (lambda: dm.Reverse().sample(np.random.default_rng(0), 1, length=0), "positive integer"),
        (lambda: dm.AnBn().sample(np.random.default_rng(0), 1, length=0), "positive integer"),
    ],
)
def test_bad_settings(build, message):
    with pytest.raises(ValueError, match=message):
        build()
