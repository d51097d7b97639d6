"""The Neural GPU machine kind and the binary tasks (lean: small grids, few examples)."""

import dataclasses
import functools
import io
import json
import textwrap
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import difmachine as dm
import difmachine.training as train_mod
from difmachine.cli import app
from difmachine.neural_gpu import (
    cgru,
    conv,
    conv_matmul,
    hard_sigmoid,
    hard_tanh,
    init_cgru,
    relaxation_penalty,
    saturating_sigmoid,
    saturation_excess,
)
from difmachine.optim import (
    PlateauCutState,
    RateNoiseState,
    learning_rate_scale,
    loss_weights,
    states_of,
)
from difmachine.program import ProgramError, load_program
from difmachine.tasks.binary import BLANK, from_bits

# -- the CGRU against numpy ---------------------------------------------------------------------


def np_conv(s, kernel, bias):
    w, n, _ = s.shape
    kw, kn, _, out = kernel.shape
    res = np.zeros((w, n, out))
    for a in range(w):
        for b in range(n):
            for u in range(kw):
                for v in range(kn):
                    i, j = a + u - kw // 2, b + v - kn // 2
                    if 0 <= i < w and 0 <= j < n:
                        res[a, b] += s[i, j] @ kernel[u, v]
    return res + bias


def np_cgru(p, s, cutoff):
    def sat(x):
        return np.clip(cutoff / (1 + np.exp(-x)) - (cutoff - 1) / 2, 0, 1)

    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    u = sat(np_conv(s, p["U_u"], p["B_u"]))
    r = sat(np_conv(s, p["U_r"], p["B_r"]))
    return u * s + (1 - u) * np.tanh(np_conv(r * s, p["U"], p["B"]))


def np_dcgru(p, s):
    """Freivalds & Liepins's cell, written out cell by cell: hard gates, hard tanh, the kept
    state shifted (a third of the channels from the left neighbour, a third from the right),
    and the saturation excess summed over everything."""
    p = {k: np.asarray(v, np.float64) for k, v in p.items()}
    w, n, m = s.shape
    k = m // 3
    pre = [np_conv(s, p["U_u"], p["B_u"]), np_conv(s, p["U_r"], p["B_r"])]
    u, r = (np.clip(0.5 * x + 0.5, 0, 1) for x in pre)
    pre.append(np_conv(r * s, p["U"], p["B"]))
    c = np.clip(pre[2], -1, 1)
    kept = np.zeros_like(s)
    for t in range(n):
        for j in range(m):
            if j < m - 2 * k:
                kept[:, t, j] = s[:, t, j]
            elif j < m - k:
                kept[:, t, j] = s[:, t - 1, j] if t > 0 else 0.0
            else:
                kept[:, t, j] = s[:, t + 1, j] if t + 1 < n else 0.0
    excess = sum(np.sum(np.maximum(np.abs(x) - 0.9, 0)) for x in pre)
    return u * kept + (1 - u) * c, excess


@settings(max_examples=4, deadline=None)
@given(
    w=st.integers(1, 3),
    n=st.integers(1, 5),
    m=st.integers(1, 3),
    k=st.sampled_from([(1, 1), (3, 3), (3, 1), (1, 5)]),
    cutoff=st.sampled_from([1.0, 1.2]),
    seed=st.integers(0, 100),
)
def test_cgru_matches_numpy(w, n, m, k, cutoff, seed):
    key1, key2 = jax.random.split(jax.random.PRNGKey(seed))
    p = init_cgru(key1, m, k)
    p = {**p, "B": p["B"] + 0.3}  # a non-zero candidate bias too
    s = np.asarray(jax.random.normal(key2, (w, n, m)))
    want = np_cgru(p, s.astype(np.float64), cutoff)
    for convolve in (conv, conv_matmul):
        np.testing.assert_allclose(
            np_conv(s, np.asarray(p["U"]), np.asarray(p["B"])),
            convolve(jnp.asarray(s), p["U"], p["B"]),
            atol=1e-5,
        )
        gate = functools.partial(saturating_sigmoid, cutoff=cutoff)
        got, _ = cgru(p, jnp.asarray(s), gate, jnp.tanh, convolve)
        np.testing.assert_allclose(got, want, atol=1e-5)


@settings(max_examples=4, deadline=None)
@given(
    w=st.integers(1, 2),
    n=st.integers(1, 6),
    m=st.integers(1, 7),
    k=st.sampled_from([(1, 3), (3, 3)]),
    seed=st.integers(0, 100),
)
def test_diagonal_hard_cgru_matches_numpy(w, n, m, k, seed):
    key1, key2 = jax.random.split(jax.random.PRNGKey(seed))
    p = init_cgru(key1, m, k, (0.7, 0.5))
    p = {**p, "U": 3.0 * p["U"]}  # some candidates past the saturation threshold
    s = np.asarray(jax.random.normal(key2, (w, n, m)))
    want, want_excess = np_dcgru(p, s.astype(np.float64))
    got, pre = cgru(p, jnp.asarray(s), hard_sigmoid, hard_tanh, conv_matmul, diagonal=True)
    np.testing.assert_allclose(got, want, atol=1e-5)
    np.testing.assert_allclose(float(jnp.sum(saturation_excess(pre))), want_excess, rtol=1e-4)


def test_saturating_sigmoid_reaches_0_and_1_and_relaxation_penalty():
    x = jnp.array([-10.0, 0.0, 10.0])
    np.testing.assert_allclose(saturating_sigmoid(x, 1.2), [0.0, 0.5, 1.0], atol=1e-6)
    same = {"a": jnp.ones((3, 2))}
    assert float(relaxation_penalty(same)) == 0.0
    apart = {"a": jnp.array([[0.0], [2.0]])}
    assert float(relaxation_penalty(apart)) == pytest.approx(2.0)


# -- the compiled machine -----------------------------------------------------------------------

SPEC = dm.NeuralGPU(width=3, channels=5, layers=2, relax=2, relax_pull=0.1)
TASK = dm.BinaryAddition(min_bits=1, max_bits=4)


@pytest.fixture(scope="module")
def model():
    return SPEC.compile(TASK.input_size, TASK.output_size, key=jax.random.PRNGKey(0))


@pytest.fixture(scope="module")
def batch():
    return TASK.sample(np.random.default_rng(0), 3)


def test_padding_never_leaks(model):
    short = TASK.sample(np.random.default_rng(1), 1, length=2)  # n = 5
    x, m = short.inputs[0], short.mask[0]
    alone, _ = model(x, m)
    junk = np.random.default_rng(2).normal(size=(6, x.shape[1])).astype(np.float32)
    padded, _ = model(np.concatenate([x, junk]), np.concatenate([m, np.zeros(6, np.float32)]))
    np.testing.assert_allclose(padded[:5], alone, atol=1e-5)


def test_jit_equals_eager_and_vmap_equals_loop(model, batch):
    eager = model(batch.inputs[0], batch.mask[0])[0]
    jitted = jax.jit(lambda mdl, x, m: mdl(x, m)[0])
    loop = [jitted(model, x, m) for x, m in zip(batch.inputs, batch.mask)]
    np.testing.assert_allclose(loop[0], eager, atol=1e-5)
    batched, aux = jax.vmap(lambda x, m: model(x, m))(batch.inputs, batch.mask)
    np.testing.assert_allclose(batched, np.stack(loop), atol=1e-5)
    assert set(aux["losses"]) == {"relaxation"} and aux["stats"] == {}


def test_gradients_are_finite_and_reach_every_parameter(model, batch):
    def loss(mdl):
        ys, aux = jax.vmap(lambda x, m: mdl(x, m))(batch.inputs, batch.mask)
        task = jax.vmap(TASK.loss)(ys, batch.targets, batch.loss_mask)
        return jnp.mean(task) + jnp.mean(aux["losses"]["relaxation"])

    grads = jax.jit(jax.grad(loss))(model)
    leaves = jax.tree.leaves(grads)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in leaves)
    assert all(float(jnp.max(jnp.abs(g))) > 0 for g in jax.tree.leaves(grads.params["cgru"]))


def test_trace_is_the_grid_per_step_and_generate_is_a_clear_error(model, batch):
    _, aux = model(batch.inputs[0], batch.mask[0], trace=True)
    n = batch.inputs.shape[1]
    assert aux["trace"]["grid"]["grid"].shape == (n, SPEC.width, n)
    answer = aux["trace"]["grid"]["answer"]  # the readout after each step; the last is the output
    assert answer.shape == (n, TASK.output_size, n)
    np.testing.assert_allclose(answer.sum(1), 1.0, atol=1e-5)
    ys, _ = model(batch.inputs[0], batch.mask[0])
    L = int(batch.mask[0].sum())
    np.testing.assert_allclose(answer[-1].T[:L], jax.nn.softmax(ys[:L]), atol=1e-5)
    with pytest.raises(dm.DifmachineError, match="whole input at once"):
        model.generate(batch.inputs[0, 0], 3, lambda y: y)


@pytest.mark.parametrize("field", ["dropout", "input_dropout"])
def test_dropout_draws_a_mask_per_key_and_evaluation_drops_nothing(model, batch, field):
    dropping = eqx.tree_at(lambda m: m.spec, model, dataclasses.replace(SPEC, **{field: 0.5}))
    assert dropping.stochastic() and not model.stochastic()
    x, m = batch.inputs[0], batch.mask[0]
    plain = model(x, m)[0]
    np.testing.assert_allclose(dropping(x, m)[0], plain, atol=1e-6)  # no key: no dropout
    a, b = (dropping(x, m, key=jax.random.PRNGKey(k))[0] for k in (1, 2))
    np.testing.assert_array_equal(a, dropping(x, m, key=jax.random.PRNGKey(1))[0])
    assert not np.allclose(a, b) and not np.allclose(a, plain)
    grads = jax.grad(lambda mdl: jnp.sum(mdl(x, m, key=jax.random.PRNGKey(1))[0]))(dropping)
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


def test_the_improved_cell_ignores_padding_and_its_saturation_cost_trains():
    """Freivalds & Liepins's options together: a padded example gives its unpadded outputs and
    saturation cost (the shift and the cost see only real cells), and the cost has gradients."""
    spec = dm.NeuralGPU(
        width=1,
        channels=6,
        layers=1,
        kernel=(1, 3),
        nonlinearity="hard",
        diagonal=True,
        saturation=0.5,
    )
    model = spec.compile(TASK.input_size, TASK.output_size, key=jax.random.PRNGKey(3))
    model = eqx.tree_at(lambda m: m.params["cgru"]["U"], model, model.params["cgru"]["U"] * 4)
    short = TASK.sample(np.random.default_rng(4), 1, length=3)  # n = 7
    x, m = short.inputs[0], short.mask[0]
    alone, aux = model(x, m)
    junk = np.random.default_rng(5).normal(size=(4, x.shape[1])).astype(np.float32)
    padded, padded_aux = model(
        np.concatenate([x, junk]), np.concatenate([m, np.zeros(4, np.float32)])
    )
    np.testing.assert_allclose(padded[:7], alone, atol=1e-5)
    cost = float(aux["losses"]["saturation"])
    assert cost > 0 and float(padded_aux["losses"]["saturation"]) == pytest.approx(cost, 1e-5)
    grads = jax.grad(lambda mdl: mdl(x, m)[1]["losses"]["saturation"])(model)
    assert float(jnp.max(jnp.abs(grads.params["cgru"]["U"]))) > 0
    assert all(bool(jnp.all(jnp.isfinite(g))) for g in jax.tree.leaves(grads))


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"nonlinearity": "relu"}, "nonlinearity"),
        ({"freeze": 0}, "freeze"),
        ({"saturation": 1e-3}, "hard"),
        ({"nonlinearity": "hard", "sigmoid_cutoff": 1.5}, "cutoff"),
        ({"dropout": 1.0}, "dropout"),
        ({"input_dropout": -0.1}, "input_dropout"),
        ({"kernel": 2}, "odd"),
        ({"width": 0}, "width"),
        ({"sigmoid_cutoff": 0.5}, "sigmoid_cutoff"),
        ({"convolution": "fft"}, "convolution"),
    ],
)
def test_bad_specs_are_one_line_errors(kwargs, needle):
    with pytest.raises(ValueError, match=needle):
        dm.NeuralGPU(**kwargs)


def np_clipped_adamax(grads, lr, b1=0.9):
    """Freivalds & Liepins's AdaMax (their adamax.py), one array, step by step."""
    m = v = np.zeros_like(grads[0], np.float64)
    out = []
    for t, g in enumerate(grads):
        beta2 = 1 - max(0.0005, 0.01 * 0.5 ** (t / 2000))
        bound = 1.2 * v + 1e-4
        g = np.clip(g, -bound, bound)
        m = b1 * m + (1 - b1) * g
        v = np.maximum(beta2 * v, np.abs(g))
        out.append(-lr * m / (v + 1e-8))
    return out


@settings(max_examples=10, deadline=None)
@given(
    st.lists(
        st.lists(st.floats(-1e3, 1e3, width=32), min_size=3, max_size=3), min_size=1, max_size=6
    ),
    st.floats(1e-4, 1.0),
)
def test_clipped_adamax_follows_the_authors_update(rows, lr):
    """Against a numpy transcription of the authors' update: the per-entry clip against the
    running maximum (so a first gradient counts at most 1e-4), no bias correction, b2's
    schedule; its state (a count, not a key) checkpoints."""
    grads = [np.asarray(r, np.float32) for r in rows]
    opt = dm.clipped_adamax(lr)
    params = {"w": jnp.zeros(3, jnp.float32)}
    state = opt.init(params)
    update = jax.jit(opt.update)
    for g, want in zip(grads, np_clipped_adamax(grads, lr)):
        got, state = update({"w": jnp.asarray(g)}, state)
        assert got["w"].dtype == jnp.float32
        np.testing.assert_allclose(got["w"], want, rtol=2e-4, atol=1e-6 * lr)
    assert int(state.count) == len(grads)
    eqx.tree_serialise_leaves(io.BytesIO(), state)


def authors_plateau_scales(losses, every, factor=0.7, floor=1 / 60):
    """The authors' trainer's rule, as written there: a list of checks' mean losses starting
    with four of 1e6, and a cut when ``min(prev[-2:]) > min(prev[-3:])``."""
    prev, scale, total, out = [1e6] * 4, 1.0, 0.0, []
    for i, loss in enumerate(losses, start=1):
        total += loss
        if i % every == 0:
            prev.append(total / every)
            if min(prev[-2:]) > min(prev[-3:]):
                scale = max(scale * factor, floor)
            total = 0.0
        out.append(scale)
    return out


_plateau = dm.plateau_cut(every=3, factor=0.5, min_scale=0.2)
_plateau_update = jax.jit(_plateau.update)  # one compile for every example


@settings(max_examples=10, deadline=None)
@given(st.lists(st.integers(0, 1), min_size=9, max_size=60))
def test_plateau_cut_follows_the_authors_rule(losses):
    """Against the authors' list-based rule: the update is the gradient times the scale after
    each check. Losses of 0 or 1 make ties between checks common (a cut needs a strict rise),
    and their float32 means order exactly as the reference's."""
    want = authors_plateau_scales(losses, every=3, factor=0.5, floor=0.2)
    state = _plateau.init({"w": jnp.zeros(2, jnp.float32)})
    for loss, scale in zip(losses, want):
        got, state = _plateau_update({"w": jnp.ones(2, jnp.float32)}, state, value=loss)
        np.testing.assert_allclose(got["w"], [scale, scale], rtol=1e-6)
    assert np.isfinite(state.previous).all()  # the training step refuses a non-finite state
    with pytest.raises(TypeError, match="needs the loss"):
        _plateau.update({"w": jnp.ones(2)}, state)


_weight = dm.adaptive_weight("saturation", rate=0.5, every=3, low=1e-3, high=2.0)
_weight_update = jax.jit(_weight.update)  # one compile for every example
_steps = st.tuples(
    st.floats(0.0, 10.0, width=32), st.floats(2**-10, 10.0, width=32), st.sampled_from([1.0, 0.7])
)


@settings(max_examples=10, deadline=None)
@given(st.lists(_steps, min_size=3, max_size=12))
def test_adaptive_weight_follows_the_authors_rule(steps):
    """Every 3 updates the factor becomes clip(rate * scale * mean loss / mean term, low, high),
    the scale the check's own; between checks it holds; the updates pass through unchanged."""
    state = _weight.init({"w": jnp.zeros(2, jnp.float32)})
    want = 1.0
    for i, (loss, term, scale) in enumerate(steps):
        got, state = _weight_update(
            {"w": jnp.full(2, 3.0)}, state, value=loss, losses={"saturation": term}, lr_scale=scale
        )
        np.testing.assert_array_equal(got["w"], [3.0, 3.0])
        if i % 3 == 2:
            window = np.array(steps[i - 2 : i + 1], np.float64)
            want = np.clip(0.5 * scale * window[:, 0].mean() / window[:, 1].mean(), 1e-3, 2.0)
        np.testing.assert_allclose(float(state.factor), want, rtol=1e-5)
    assert list(loss_weights(("other", state))) == ["saturation"]
    with pytest.raises(TypeError, match="needs the task loss"):
        _weight.update({"w": jnp.ones(2)}, state, value=1.0)


def test_a_weighted_saturation_cost_trains_as_the_machine_with_that_weight():
    """A factor of 0.25 from ``adaptive_weight`` makes the training step of the machine whose own
    saturation weight is a quarter; the step logs the factor and the weighted cost, gives the
    optimizer the unweighted one and the plateau cut's scale, and compiles once."""
    spec = dm.NeuralGPU(
        width=1, channels=4, layers=1, kernel=(1, 3), nonlinearity="hard", saturation=0.5
    )
    model = spec.compile(TASK.input_size, TASK.output_size, key=jax.random.PRNGKey(1))
    model = eqx.tree_at(lambda m: m.params["cgru"]["U"], model, model.params["cgru"]["U"] * 4)
    quarter = eqx.tree_at(lambda m: m.spec, model, dataclasses.replace(spec, saturation=0.125))
    params = eqx.filter(model, eqx.is_array)
    adaptive = optax.chain(
        optax.sgd(0.1), dm.plateau_cut(), dm.adaptive_weight("saturation", rate=0.3, every=1)
    )
    state = adaptive.init(params)
    state = eqx.tree_at(lambda s: s[2].factor, state, jnp.asarray(0.25, jnp.float32))
    state = eqx.tree_at(lambda s: s[1].scale, state, jnp.asarray(0.5, jnp.float32))
    batch = TASK.sample(np.random.default_rng(2), 4, length=3)
    step = train_mod.make_train_step(TASK, adaptive)
    new, state, metrics = step(model, state, batch)
    half = optax.sgd(0.05)  # the cut's scale of 0.5 on the updates
    want, _, plain = train_mod.make_train_step(TASK, half)(quarter, half.init(params), batch)
    assert float(plain["saturation"]) > 0
    for got, ref in zip(jax.tree.leaves(eqx.filter(new, eqx.is_array)), jax.tree.leaves(want)):
        np.testing.assert_allclose(got, ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(metrics["saturation"], plain["saturation"], rtol=1e-5)
    assert float(metrics["weight/saturation"]) == 0.25 and float(metrics["lr_scale"]) == 0.5
    unweighted = float(metrics["saturation"]) / 0.25
    expected = np.clip(0.3 * 0.5 * float(metrics["loss"]) / unweighted, 1e-20, 1.0)
    np.testing.assert_allclose(float(loss_weights(state)["saturation"]), expected, rtol=1e-5)
    assert float(learning_rate_scale(state)) == 0.5
    step(new, state, batch)
    assert step._cache_size() == 1  # the factor's state keeps its types: no second compile
    typo = optax.chain(optax.sgd(0.1), dm.adaptive_weight("saturaton", rate=0.3))
    with pytest.raises(dm.DifmachineError, match="'saturaton', which this machine does not"):
        train_mod.make_train_step(TASK, typo)(model, typo.init(params), batch)


_noise = dm.rate_noise(lambda t: 0.5 / (1.0 + t), factor=1e-2, seed=3)
_noise_update = jax.jit(_noise.update)  # one compile for every example
TRUNCATED_STD = 0.8796  # a standard normal truncated at ±2


@settings(max_examples=10, deadline=None)
@given(st.floats(0.1, 1.0), st.integers(0, 5))
def test_rate_noise_is_truncated_normal_noise_times_the_current_rate(scale, t):
    """Update ``t`` adds ``factor * rate(t) * lr_scale * z`` to every entry, ``z`` a standard
    normal truncated at ±2 (bounded; the truncated law's mean and spread; each leaf its own
    draw), fresh at the next update and the same again from the same state (a resume adds the
    same noise)."""
    grads = {"a": jnp.full((6000,), 3.0, jnp.float32), "b": jnp.zeros((2, 3000), jnp.float32)}
    state = RateNoiseState(jnp.asarray(t, jnp.int32))
    got, new = _noise_update(grads, state, lr_scale=scale)
    size = 1e-2 * 0.5 / (1.0 + t) * scale
    za, zb = (np.asarray(got["a"]) - 3.0) / size, np.asarray(got["b"]).ravel() / size
    for z in (za, zb):
        assert np.abs(z).max() <= 2.01
        assert abs(z.mean()) < 0.05 and abs(z.std() - TRUNCATED_STD) < 0.03
    assert abs(np.corrcoef(za, zb)[0, 1]) < 0.06
    assert int(new.count) == t + 1
    again, _ = _noise_update(grads, state, lr_scale=scale)
    later, _ = _noise_update(grads, new, lr_scale=scale)
    np.testing.assert_array_equal(again["b"], got["b"])
    assert abs(np.corrcoef(np.ravel(later["b"]), zb)[0, 1]) < 0.06
    with pytest.raises(ValueError, match="rate must be positive"):
        dm.rate_noise(0.0)


def test_the_training_step_gives_rate_noise_the_cuts_scale():
    """With a plateau cut at scale 0.5 the noise is half the rate's: the step equals the one whose
    noise rate is half and whose cut is 1, with its update halved."""
    task = dm.Copy(bits=2, max_length=2)
    model = dm.compile(
        dm.Machine(dm.RNN(3)), task.input_size, task.output_size, key=jax.random.PRNGKey(1)
    )
    params = eqx.filter(model, eqx.is_array)
    batch = task.sample(np.random.default_rng(2), 2)

    def step(rate, scale):
        opt = optax.chain(dm.rate_noise(rate, factor=1.0), optax.sgd(1.0), dm.plateau_cut())
        state = eqx.tree_at(lambda s: s[2].scale, opt.init(params), jnp.asarray(scale))
        new = train_mod.make_train_step(task, opt)(model, state, batch)[0]
        return [n - p for n, p in zip(jax.tree.leaves(eqx.filter(new, eqx.is_array)),
                                      jax.tree.leaves(params))]  # fmt: skip

    for cut, half in zip(step(0.1, 0.5), step(0.05, 1.0), strict=True):
        np.testing.assert_allclose(cut, 0.5 * half, rtol=1e-5, atol=1e-7)


# -- the tasks ----------------------------------------------------------------------------------


def _decode(batch, b):
    L = int(batch.mask[b].sum())
    x = batch.inputs[b, :L]
    symbols = [int(np.argmax(v)) if v.any() else -1 for v in x]
    classes = [int(np.argmax(v)) for v in batch.targets[b, :L]]
    return symbols, classes


def _result(classes):
    bits = [c for c in classes if c != BLANK]
    assert classes == bits + [BLANK] * (len(classes) - len(bits))  # blanks only at the end
    return bits


@settings(max_examples=10, deadline=None)
@given(k=st.integers(1, 70), seed=st.integers(0, 10**6))
def test_arithmetic_targets_are_right(k, seed):
    for task, op, symbol in (
        (dm.BinaryAddition(), lambda a, b: a + b, 2),
        (dm.BinaryMultiplication(), lambda a, b: a * b, 3),
    ):
        batch = task.sample(np.random.default_rng(seed), 2, length=k)
        assert batch.inputs.shape[1] == 2 * k + 1
        for b in range(2):
            symbols, classes = _decode(batch, b)
            assert symbols[k] == symbol
            a, c = from_bits(symbols[:k]), from_bits(symbols[k + 1 :])
            bits = _result(classes)
            assert from_bits(bits) == op(a, c)
            assert bits[-1] == 1 or bits == [0]  # no leading zeros


@settings(max_examples=5, deadline=None)
@given(k=st.integers(1, 30), seed=st.integers(0, 10**6))
def test_sanity_task_targets_are_right(k, seed):
    rng = np.random.default_rng(seed)
    symbols, classes = _decode(dm.BinaryCopy().sample(rng, 1, length=k), 0)
    assert classes == symbols and len(symbols) == k
    symbols, classes = _decode(dm.BinaryReverse().sample(rng, 1, length=k), 0)
    assert classes == symbols[::-1]
    symbols, classes = _decode(dm.BinaryDuplicate().sample(rng, 1, length=k), 0)
    assert symbols[k:] == [-1] * k and classes == symbols[:k] * 2


def test_training_batches_mix_lengths_favouring_short_ones_with_a_curriculum():
    rng = np.random.default_rng(0)
    task = dm.BinaryAddition(min_bits=1, max_bits=8, curriculum=2.0)
    batch = task.sample(rng, 256)
    assert batch.inputs.shape[1] == 17  # padded to 8 bits: one shape per run
    ks = (batch.mask.sum(1) - 1) / 2
    assert ks.min() == 1 and np.mean(ks <= 2) > 0.6
    assert np.array_equal(batch.mask, batch.loss_mask)
    with pytest.raises(ValueError, match="curriculum"):
        dm.BinaryAddition(curriculum=-1)


def test_bucketed_batches_hold_one_length_and_evaluation_stays_mixed():
    task = dm.BinaryAddition(min_bits=1, max_bits=8, curriculum=1.0, bucket=True)
    shapes = set()
    for step in range(40):
        batch = task.sample(np.random.default_rng(step), 8)
        ks = (batch.mask.sum(1) - 1) / 2
        assert len(set(ks)) == 1 and batch.inputs.shape[1] == 2 * ks[0] + 1  # no padding
        shapes.add(batch.inputs.shape[1])
    assert len(shapes) > 3  # the curriculum still draws many lengths, one per batch
    evaluated = [b for b, _ in train_mod.eval_batches(task, 64, seed=0, batch_size=64)]
    ks = (evaluated[0].mask.sum(1) - 1) / 2
    assert len(set(ks)) > 3 and evaluated[0].inputs.shape[1] == 17  # mixed, as without buckets
    assert np.mean(ks >= 5) > 0.3  # and uniform: the curriculum's short numbers would flatter it
    fixed = task.sample(np.random.default_rng(0), 4, length=5)
    assert fixed.inputs.shape[1] == 11 and fixed.mask.all()


def test_a_bucket_can_hold_shorter_numbers_padded_to_its_longest():
    task = dm.BinaryAddition(min_bits=1, max_bits=8, bucket=True, shorter=0.25)
    short = total = 0
    for step in range(30):
        batch = task.sample(np.random.default_rng(step), 16)
        L = batch.mask.sum(1)
        assert batch.inputs.shape[1] == L.max()  # padded to the longest, no further
        short, total = short + int(np.sum(L < L.max())), total + 16
    assert 0.1 < short / total < 0.3  # about a quarter (fewer: some draw the bucket's own k)
    assert task.evaluation_source() == dm.BinaryAddition(min_bits=1, max_bits=8)
    with pytest.raises(ValueError, match="bucket=True"):
        dm.BinaryAddition(shorter=0.05)


@given(
    gaps=st.lists(st.integers(1, 6), min_size=1, max_size=5),
    first=st.integers(3, 9),
    max_bits=st.integers(1, 12),
    shorter=st.sampled_from([0.0, 0.3]),
    seed=st.integers(0, 2**16),
)
def test_binned_batches_pad_to_a_bin_and_each_example_draws_a_length_within_it(
    gaps, first, max_bits, shorter, seed
):
    bins = tuple(int(b) for b in np.cumsum([first, *gaps]))
    task = dm.BinaryAddition(max_bits=max_bits, bucket=True, bins=bins, shorter=shorter)
    rng = np.random.default_rng(seed)
    for _ in range(12):
        batch = task.sample(rng, 16)
        n = batch.inputs.shape[1]
        assert n in bins  # padded to one of the bins, whatever its examples hold
        L = batch.mask.sum(1).astype(int)  # real lengths 2 k + 1
        ks = (L - 1) // 2
        assert (L <= n).all() and (ks >= 1).all() and (ks <= max_bits).all()
        below = max([0] + [b for b in bins if b < n])
        fits = (ks == max_bits) | (2 * (ks + 1) + 1 > below + 1)  # no bin below held it all
        if not shorter:
            assert fits.all()
        np.testing.assert_array_equal(batch.inputs[:, :, 2].sum(1), 1)  # one '+' each
        np.testing.assert_array_equal(batch.inputs[np.arange(16), ks, 2], 1)  # at position k
    assert task.evaluation_source() == dm.BinaryAddition(max_bits=max_bits)


def test_the_dngpu_program_takes_the_authors_bins_and_bad_bins_are_one_line_errors():
    root = Path(__file__).resolve().parents[1] / "programs" / "dngpu_add.py"
    binned = load_program(root, {"bins": "true"})
    assert binned.task.bins == (8, 12, 16, 20, 25, 28, 31, 36, 41) and not binned.machine.freeze
    rng = np.random.default_rng(0)  # every bin is drawn (uniformly: 200 batches, 9 bins)
    assert {binned.task.sample(rng, 2).inputs.shape[1] for _ in range(200)} == set(binned.task.bins)
    assert load_program(root, {"bins": "true", "bits": "8"}).task.bins == (8, 12, 16, 17)
    assert load_program(root).task.bins == () and load_program(root).machine.freeze
    reverse = load_program(root.with_name("dngpu_reverse.py"), {"bins": "true"}).task
    assert reverse.bins == (8, 12, 16, 20, 25, 28, 31, 36, 40) and reverse.max_bits == 40
    for bad, match in [
        (dict(bins=5), "whole sequence lengths"),
        (dict(bins=(12, 8)), "increasing"),
        (dict(bins=(2, 8)), "at least 3"),
        (dict(bins=(8, 12), bucket=False), "bucket=True"),
        (dict(bins=(8, 12), adaptive=0.15), "adaptive=0"),
    ]:
        with pytest.raises(ValueError, match=match):
            dm.BinaryAddition(**{"bucket": True, **bad})


@settings(max_examples=10, deadline=None)
@given(seed=st.integers(0, 2**31 - 1), k=st.integers(1, 12))
def test_mean_loss_is_the_summed_loss_over_the_scored_positions(seed, k):
    summed, mean = dm.BinaryAddition(max_bits=12), dm.BinaryAddition(max_bits=12, mean_loss=True)
    rng = np.random.default_rng(seed)
    batch = summed.sample(rng, 1, length=k)
    logits = jnp.asarray(rng.normal(size=(*batch.targets.shape[1:2], 3)), jnp.float32)
    args = (logits, jnp.asarray(batch.targets[0]), jnp.asarray(batch.loss_mask[0]))
    scored = float(batch.loss_mask[0].sum())
    assert scored == 2 * k + 1  # every real position, blanks included
    assert float(mean.loss(*args)) == pytest.approx(float(summed.loss(*args)) / scored, rel=1e-6)
    root = Path(__file__).resolve().parents[1] / "programs" / "dngpu_add.py"
    assert load_program(root, {"mean_loss": "true"}).task.mean_loss
    with pytest.raises(ValueError, match="mean_loss"):
        dm.BinaryAddition(mean_loss=1)


@settings(max_examples=20, deadline=None)
@given(k=st.integers(1, 30), data=st.data())
def test_hand_built_operands_encode_as_sampled_sums_do(k, data):
    a, b = (data.draw(st.integers(0, 2**k - 1)) for _ in range(2))
    for task, op in ((dm.BinaryAddition(), int.__add__), (dm.BinaryMultiplication(), int.__mul__)):
        batch = task.encode([task.operands(a, b, k)], task.size(k))
        x, t = batch.inputs[0], batch.targets[0].argmax(-1)
        assert from_bits(x[:k].argmax(-1)) == a and from_bits(x[k + 1 :].argmax(-1)) == b
        result = t[t != BLANK]
        assert from_bits(result) == op(a, b) and np.all(t[len(result) :] == BLANK)
        assert batch.mask.sum() == batch.loss_mask.sum() == 2 * k + 1


def test_accumulate_averages_that_many_batches_into_each_update():
    root = Path(__file__).resolve().parents[1] / "programs" / "dngpu_add.py"
    settings = {"accumulate": "3", "bits": "2", "channels": "4", "plateau": "true"}
    program = load_program(root, settings)
    model = dm.build(program)
    step = train_mod.make_train_step(program.task, program.optimizer)
    opt_state = program.optimizer.init(eqx.filter(model, eqx.is_array))
    rng = np.random.default_rng(0)
    batches = [program.task.sample(rng, 4, length=2) for _ in range(6)]
    changed = []
    for batch in batches:
        new, opt_state, _ = step(model, opt_state, batch)
        leaves = zip(jax.tree.leaves(eqx.filter(model, eqx.is_array)), jax.tree.leaves(new))
        changed.append(any(not np.array_equal(a, b) for a, b in leaves))
        model = new
    assert changed == [False, False, True, False, False, True]
    # the loss reaches the plateau cut inside the accumulation: it saw the 2 updates
    (cut,) = states_of(opt_state, PlateauCutState)
    assert int(cut.count) == 2 and float(cut.total) > 0
    with pytest.raises(ProgramError, match="accumulate=0"):
        load_program(root, {"accumulate": "0"})


def test_without_freezing_every_example_takes_the_batchs_steps_and_padding_still_never_leaks(
    model,
):
    running = eqx.tree_at(lambda m: m.spec, model, dataclasses.replace(SPEC, freeze=False))
    full = TASK.sample(np.random.default_rng(1), 1, length=3)
    x, m = full.inputs[0], full.mask[0]
    np.testing.assert_allclose(running(x, m)[0], model(x, m)[0], atol=1e-6)  # no padding: same
    short = TASK.sample(np.random.default_rng(1), 1, length=2)  # n = 5, padded to 11
    x, m = short.inputs[0], short.mask[0]
    pad = np.zeros(6, np.float32)
    outputs = []
    for seed in (2, 3):
        junk = np.random.default_rng(seed).normal(size=(6, x.shape[1])).astype(np.float32)
        outputs.append(running(np.concatenate([x, junk]), np.concatenate([m, pad]))[0][:5])
    np.testing.assert_allclose(outputs[0], outputs[1], atol=1e-6)  # the junk is never seen
    frozen = model(np.concatenate([x, np.zeros((6, x.shape[1]), np.float32)]),
                   np.concatenate([m, pad]))[0][:5]  # fmt: skip
    assert not np.allclose(outputs[0], frozen, atol=1e-4)  # 11 steps, not 5


@settings(max_examples=5, deadline=None)
@given(k=st.integers(1, 12), seed=st.integers(0, 10**6))
def test_answer_after_reads_the_input_then_scores_the_answer(k, seed):
    plain = dm.BinaryAddition(max_bits=12).sample(np.random.default_rng(seed), 2, length=k)
    after = dm.BinaryAddition(max_bits=12, answer_after=True)
    batch = after.sample(np.random.default_rng(seed), 2, length=k)
    n = 2 * k + 1
    assert batch.inputs.shape[1] == 2 * n and batch.mask.all()
    np.testing.assert_array_equal(batch.inputs[:, :n], plain.inputs)
    assert not batch.inputs[:, n:].any()  # blanks while answering
    np.testing.assert_array_equal(batch.targets[:, n:], plain.targets)
    np.testing.assert_array_equal(batch.loss_mask, np.repeat([[0.0] * n + [1.0] * n], 2, 0))
    mixed = after.sample(np.random.default_rng(seed), 16)  # real steps first, scored after input
    lengths = mixed.mask.sum(1)
    assert np.all(mixed.loss_mask.sum(1) == lengths / 2)
    assert all(mixed.mask[b, : int(lengths[b])].all() for b in range(16))


# -- a program end to end -----------------------------------------------------------------------

PROGRAM = textwrap.dedent(
    """
    import optax
    import difmachine as dm

    program = dm.Program(
        machine=dm.NeuralGPU(
            width=2, channels=dm.param("channels", 4), layers=1, relax=2, dropout=0.1
        ),
        task=dm.BinaryAddition(min_bits=1, max_bits=3, curriculum=1.0),
        optimizer=optax.chain(dm.gradient_noise(1e-3), optax.adam(1e-2)),
        batch_size=4, steps=5, eval_every=5, eval_samples=8, checkpoint_every=5, log_every=5,
    )
    """
)


def test_a_program_trains_evaluates_and_traces_through_the_cli(tmp_path):
    source = tmp_path / "ngpu.py"
    source.write_text(PROGRAM)
    run_dir = tmp_path / "run"
    runner = CliRunner()
    result = runner.invoke(app, ["run", str(source), "--out", str(run_dir)])
    assert result.exit_code == 0, result.output
    assert "done: step 5" in result.output
    program, model, header = dm.load_run(run_dir)
    assert header["step"] == 5 and isinstance(model, dm.CompiledNeuralGPU)
    shown = runner.invoke(app, ["show", str(source)])
    assert shown.exit_code == 0 and "parameter copies" in shown.output, shown.output
    js = tmp_path / "eval.json"
    evaluated = runner.invoke(
        app, ["eval", str(run_dir), "--lengths", "2,6", "--samples", "4", "--json", str(js)]
    )
    assert evaluated.exit_code == 0, evaluated.output
    rows = json.loads(js.read_text())["rows"]
    assert [r["length"] for r in rows] == [2, 6]
    assert {"errors", "symbol_errors", "token_accuracy"} <= set(rows[0])
    traced = runner.invoke(app, ["trace", str(run_dir), "--length", "3"])
    assert traced.exit_code == 0, traced.output
    assert "grid row 0" in traced.output and "grid row 1" in traced.output
    other = runner.invoke(app, ["eval", str(run_dir), "--set", "channels=5"])
    assert other.exit_code == 2 and "another machine" in other.output


# -- the adaptive curriculum --------------------------------------------------------------------

ADAPTIVE = textwrap.dedent(
    """
    import optax
    import difmachine as dm

    program = dm.Program(
        machine=dm.NeuralGPU(width=2, channels=4, layers=1),
        task=dm.BinaryCopy(min_bits=1, max_bits=6, adaptive=0.999),
        optimizer=optax.adam(1e-2),
        batch_size=4, steps=dm.param("steps", 14), eval_every=100, eval_samples=4,
        checkpoint_every=100, log_every=2,
    )
    """
)


def test_the_adaptive_curriculum_moves_up_is_logged_and_resumes_exactly(tmp_path, monkeypatch):
    from difmachine import checkpoint

    def read_metrics(path):
        return [json.loads(line) for line in path.read_text().splitlines()]

    monkeypatch.setattr(dm.BinaryCopy, "curriculum_window", 4)
    task = dm.BinaryCopy(min_bits=1, max_bits=6, adaptive=0.15)
    assert task.curriculum_start() == 2 and task.next_level(2, 0.1) == 3
    assert task.next_level(2, 0.2) == 2 and task.next_level(6, 0.0) == 6
    at3 = task.at_level(3).sample(np.random.default_rng(0), 256)
    assert set(at3.mask.sum(1)) == {1.0, 2.0, 3.0}  # never beyond the level
    assert np.mean(at3.mask.sum(1) == 3) > 0.4  # the longest favoured (uniform: 1/3)

    source = tmp_path / "adaptive.py"
    source.write_text(ADAPTIVE)
    runner = CliRunner()
    whole, split = tmp_path / "whole", tmp_path / "split"
    assert runner.invoke(app, ["run", str(source), "--out", str(whole)]).exit_code == 0
    rows = [r for r in read_metrics(whole / "metrics.jsonl") if "loss" in r]
    levels = {r["step"]: r["level"] for r in rows}
    assert levels[2] == 2 and levels[4] == 3 and levels[8] == 4 and levels[14] == 5
    # stopped at step 9 (mid-window, a step not yet fetched), then resumed: the same run
    first = runner.invoke(app, ["run", str(source), "--out", str(split), "--set", "steps=9"])
    assert first.exit_code == 0, first.output
    header = checkpoint.read_header(split / "checkpoint.eqx")
    assert header["curriculum"]["level"] == 4 and header["curriculum"]["window"][1] == 1
    again = runner.invoke(
        app, ["run", str(source), "--out", str(split), "--set", "steps=14", "--resume"]
    )
    assert again.exit_code == 0, again.output
    resumed = {r["step"]: r for r in read_metrics(split / "metrics.jsonl") if "loss" in r}
    for r in rows:  # (the row at step 10 averages steps 9-10 in one run, only 10 in the other)
        assert resumed[r["step"]]["level"] == r["level"]
        if r["step"] != 10:
            np.testing.assert_allclose(resumed[r["step"]]["loss"], r["loss"], rtol=1e-5)


def test_a_sweep_of_an_adaptive_curriculum_runs_its_seeds_as_processes(tmp_path, monkeypatch):
    """The vmapped sweep samples from the task itself: it would skip the curriculum."""
    import io

    from rich.console import Console

    import difmachine.sweep as sweep_mod

    calls = []
    monkeypatch.setattr(sweep_mod, "_run_processes", lambda *a, **k: calls.append(a) or False)
    source = tmp_path / "adaptive.py"
    source.write_text(ADAPTIVE)
    out = io.StringIO()
    result = sweep_mod.sweep(source, [0, 1], tmp_path / "sw", console=Console(file=out))
    assert result["mode"] == "processes" and len(calls) == 1
    assert "adaptive curriculum" in out.getvalue()
