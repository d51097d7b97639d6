import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays

import difmachine as dm
from difmachine import testing
from difmachine.halting import act_weights

act_jit = jax.jit(act_weights, static_argnums=1)


def reference(h, eps):
    total = 0.0
    for n, hn in enumerate(h):
        if total + hn >= 1 - eps or n == len(h) - 1:
            p = np.zeros(len(h))
            p[:n] = h[:n]
            p[n] = 1 - total
            return p, n + 1, 1 - total
        total += hn


halting_values = st.integers(1, 12).flatmap(
    lambda M: arrays(np.float32, M, elements=st.floats(0, 1, width=32))
)


@given(h=halting_values, eps=st.sampled_from([0.01, 0.1, 0.3]))
def test_act_weights_match_the_papers_definition(h, eps):
    p, n, r = act_jit(jnp.asarray(h), eps)
    p_ref, n_ref, r_ref = reference(h.astype(np.float64), eps)
    assert int(n) == n_ref and 1 <= int(n) <= len(h)
    np.testing.assert_allclose(p, p_ref, atol=1e-5)
    np.testing.assert_allclose(r, r_ref, atol=1e-5)
    assert np.all(np.asarray(p) >= 0)
    np.testing.assert_allclose(float(jnp.sum(p)), 1.0, atol=1e-5)
    assert 0 < float(r) <= 1 + 1e-6
    cumulative = np.cumsum(h.astype(np.float64))
    if int(n) < len(h):  # N is the first index whose cumulative sum crosses 1 - eps
        assert cumulative[int(n) - 1] >= 1 - eps - 1e-6
    assert np.all(cumulative[: int(n) - 1] < 1 - eps + 1e-6)


def test_act_weights_extremes():
    p, n, r = act_weights(jnp.ones(5), 0.01)
    assert int(n) == 1 and float(r) == 1.0
    np.testing.assert_array_equal(p, [1, 0, 0, 0, 0])
    p, n, r = act_weights(jnp.zeros(5), 0.01)
    assert int(n) == 5 and float(r) == 1.0
    np.testing.assert_array_equal(p, [0, 0, 0, 0, 1])


@given(h=arrays(np.float32, 6, elements=st.floats(0.0625, 0.25, width=32)))
def test_the_remainder_carries_gradient_to_every_step_before_halting(h):
    g = jax.grad(lambda h: act_weights(h, 0.01)[2])(jnp.asarray(h))
    n = int(act_weights(jnp.asarray(h), 0.01)[1])
    assert np.all(np.isfinite(g))
    np.testing.assert_allclose(g[: n - 1], -1.0)
    np.testing.assert_allclose(g[n - 1 :], 0.0)


MACHINES = {
    "rnn-act": dm.Machine(dm.RNN(6), halting=dm.ACT(max_ponder=4)),
    "lstm-ntm-act": dm.Machine(
        dm.LSTM(6), dm.NTMMemory(slots=5, width=3), halting=dm.ACT(max_ponder=3)
    ),
}


@pytest.mark.parametrize("name", MACHINES)
def test_act_machines_jit_vmap_padding_gradients(name):
    testing.check_machine(MACHINES[name])


@pytest.mark.parametrize("name", MACHINES)
def test_act_forced_to_halt_at_once_equals_fixed_1(name):
    machine = MACHINES[name]
    act = dm.compile(machine, 3, 2, key=jax.random.PRNGKey(4))
    fixed_machine = dm.Machine(machine.controller, dict(zip(machine.names, machine.devices)))
    fixed = dm.compile(fixed_machine, 3, 2, key=jax.random.PRNGKey(4))
    halting = {
        "w": jnp.zeros_like(act.params["halting"]["w"]),
        "b": jnp.array(50.0),
        "flag": jnp.zeros_like(act.params["halting"]["flag"]),
    }
    params = {**fixed.params, "halting": halting}
    act = jax.tree_util.tree_map(lambda x: x, act)  # a copy we can rebuild
    act = dm.CompiledMachine(act.machine, act.input_size, act.output_size, act.remat, params)
    xs = jax.random.normal(jax.random.PRNGKey(5), (6, 3))
    ys_act, aux = act(xs)
    ys_fixed, _ = fixed(xs)
    np.testing.assert_allclose(ys_act, ys_fixed, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(aux["stats"]["ponder"], 2.0)  # N = 1, R = 1 each step


def test_ponder_cost_is_added_to_the_loss_and_reported():
    task = dm.Parity(bits=4)
    machine = dm.Machine(dm.RNN(8), halting=dm.ACT(max_ponder=5, time_penalty=0.1))
    model = dm.compile(machine, task.input_size, task.output_size, key=jax.random.PRNGKey(0))
    batch = task.sample(np.random.default_rng(0), 8)
    from difmachine.training import loss_and_metrics

    total, metrics = loss_and_metrics(model, task, batch)
    np.testing.assert_allclose(total, metrics["loss"] + metrics["ponder_cost"], rtol=1e-5)
    np.testing.assert_allclose(metrics["ponder_cost"], 0.1 * metrics["ponder"], rtol=1e-5)
    assert 1 <= float(metrics["ponder"]) <= 6


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"max_ponder": 0}, "max_ponder"),
        ({"epsilon": 1.5}, "epsilon must be in"),
        ({"time_penalty": -1}, ">= 0"),
        ({"time_penalty": "high"}, "time_penalty must be a number >= 0, got 'high'"),
        ({"time_penalty": float("nan")}, "time_penalty must be a number >= 0"),
    ],
)
def test_bad_act_settings(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dm.ACT(**kwargs)


@given(seed=st.integers(0, 2**32 - 1), bits=st.integers(1, 12), n=st.none() | st.integers(1, 12))
def test_parity_targets_by_construction(seed, bits, n):
    task = dm.Parity(bits=bits)
    if n is not None and n > bits:
        with pytest.raises(ValueError, match="non-zero entries"):
            task.sample(np.random.default_rng(seed), 2, length=n)
        return
    batch = task.sample(np.random.default_rng(seed), 4, length=n)
    for x, y in zip(batch.inputs[:, 0], batch.targets[:, 0, 0]):
        nonzero = np.count_nonzero(x)
        assert 1 <= nonzero <= bits and (n is None or nonzero == n)
        assert set(np.unique(x)) <= {-1.0, 0.0, 1.0}
        assert y == np.sum(x == 1) % 2
