import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given

import difmachine as dm
from difmachine import testing

MACHINES = {
    "lstm-ntm": dm.Machine(dm.LSTM(8), dm.NTMMemory(slots=6, width=3)),
    "gru-two-ntms": dm.Machine(
        dm.GRU(6),
        {"a": dm.NTMMemory(slots=5, width=2), "b": dm.NTMMemory(slots=4, width=3, read_heads=2)},
    ),
    "rnn-no-device": dm.Machine(dm.RNN(5)),
    # a feed-forward controller and two inner steps per input, checked together
    "mlp-ntm-fixed2": dm.Machine(dm.MLP(8), dm.NTMMemory(slots=5, width=2), halting=dm.Fixed(2)),
}


# the two-device machine's checks (26 s in CI) are tests/test_structures.py's stack-and-NTM
# machine under a GRU, with two read heads; here it is compared with the eager reference below
@pytest.mark.parametrize("name", [name for name in MACHINES if name != "gru-two-ntms"])
def test_machine_jit_vmap_padding_gradients(name):
    testing.check_machine(MACHINES[name])


def _eager_reference(model, xs):
    """Step-by-step Python loop over the cell, no scan and no hoisting."""
    p = model.params
    carry = model.init_carry()
    ys = []
    for t in range(xs.shape[0]):
        inner = model.machine.halting.n
        for _ in range(inner):
            carry, (h, reads, _) = model.cell(carry, xs[t] @ p["W_x"])
        ys.append(jnp.concatenate([h, reads]) @ p["W_o"] + p["b_o"])
    return jnp.stack(ys)


@pytest.mark.parametrize("name", ["lstm-ntm", "gru-two-ntms", "mlp-ntm-fixed2"])
def test_compiled_equals_step_by_step_eager(name):
    model = dm.compile(MACHINES[name], 3, 2, key=jax.random.PRNGKey(1))
    xs = jax.random.normal(jax.random.PRNGKey(2), (7, 3))
    ys, _ = jax.jit(lambda m, x: m(x))(model, xs)
    with jax.disable_jit():
        ref = _eager_reference(model, xs)
    np.testing.assert_allclose(ys, ref, rtol=1e-4, atol=1e-5)


def test_layout_slices_are_contiguous_and_cover_the_interface():
    machine = MACHINES["gru-two-ntms"]
    layout = machine.layout()
    assert layout[0].start == 0
    for a, b in zip(layout, layout[1:]):
        assert a.stop == b.start
    total = sum(f.size for d in machine.devices for f in d.interface().values())
    assert layout[-1].stop == total
    model = dm.compile(machine, 3, 2, key=jax.random.PRNGKey(0))
    assert model.params["W_i"].shape == (6, total)
    assert model.params["W_r"].shape == (machine.read_size, 3 * 6)


def test_all_parameters_are_float32_and_strongly_typed():
    model = dm.compile(MACHINES["lstm-ntm"], 3, 2, key=jax.random.PRNGKey(0))
    for leaf in jax.tree.leaves(model):
        assert leaf.dtype == jnp.float32
        assert not leaf.weak_type


def test_trace_records_are_stacked_over_time():
    model = dm.compile(MACHINES["gru-two-ntms"], 3, 2, key=jax.random.PRNGKey(0))
    _, aux = model(jnp.ones((9, 3)), trace=True)
    assert aux["trace"]["a"]["read_weights"].shape == (9, 1, 5)
    assert aux["trace"]["b"]["read_weights"].shape == (9, 2, 4)
    _, aux = model(jnp.ones((9, 3)))
    assert aux["trace"] == {}


def test_device_names_from_sequence_are_unique():
    m = dm.Machine(dm.LSTM(4), [dm.NTMMemory(slots=4, width=2), dm.NTMMemory(slots=4, width=2)])
    assert m.names == ("ntmmemory0", "ntmmemory1")


@pytest.mark.parametrize(
    "build, message",
    [
        (lambda: dm.Machine("LSTM"), "controller must be a controller"),
        (lambda: dm.Machine(dm.LSTM(4), [3]), "must be a device"),
        (lambda: dm.Machine(dm.LSTM(4), halting=2), "halting must be a policy"),
        (lambda: dm.Machine(dm.LSTM(4), dm.GRU(8)), "devices must be a device"),
        (lambda: dm.Fixed(0), "Fixed n must be a positive integer"),
        (lambda: dm.compile(dm.Machine(dm.LSTM(4)), 0, 2, key=jax.random.PRNGKey(0)), "input_size"),
    ],
)
def test_bad_machines_are_rejected_with_a_fix(build, message):
    with pytest.raises((TypeError, ValueError), match=message):
        build()


@pytest.mark.parametrize(
    "build, owner, name",
    [
        (lambda v: dm.LSTM(v), "LSTM", "hidden size"),
        (lambda v: dm.GRU(v), "GRU", "hidden size"),
        (lambda v: dm.MLP((4, v)), "MLP", "layer width"),
        (lambda v: dm.Copy(bits=v), "Copy", "bits"),
        (lambda v: dm.Parity(bits=v), "Parity", "bits"),
        (lambda v: dm.ACT(max_ponder=v), "ACT", "max_ponder"),
        (lambda v: dm.PonderNet(max_steps=v), "PonderNet", "max_steps"),
        (lambda v: dm.Fixed(v), "Fixed", "n"),
        (lambda v: dm.NTMMemory(slots=v, width=2), "NTMMemory", "slots"),
        (
            lambda v: dm.OpSelector(dm.ARITHMETIC_OPS, columns=("a",), numbers=v),
            "OpSelector",
            "numbers",
        ),
    ],
)
@pytest.mark.parametrize("bad", [True, 0, 2.0, "3"])
def test_every_count_goes_through_one_validator(build, owner, name, bad):
    """One message for every spec: ``True`` is not a count, nor is 0, a float or a string."""
    with pytest.raises(ValueError, match=f"^{owner} {name} must be a positive integer, got"):
        build(bad)


def test_padding_never_touches_the_loss_or_gradients():
    task = dm.Copy(bits=3, min_length=1, max_length=5)
    model = dm.compile(
        MACHINES["lstm-ntm"], task.input_size, task.output_size, key=jax.random.PRNGKey(0)
    )
    batch = task.sample(np.random.default_rng(0), 1, length=3)
    pad = 4
    inputs = np.concatenate(
        [batch.inputs[0], np.random.default_rng(1).normal(size=(pad, 4))]
    ).astype(np.float32)
    targets = np.concatenate([batch.targets[0], np.ones((pad, 3), np.float32)])
    mask = np.concatenate([batch.mask[0], np.zeros(pad, np.float32)])
    loss_mask = np.concatenate([batch.loss_mask[0], np.zeros(pad, np.float32)])

    def loss(m, x, y, mk, lm):
        return task.loss(m(x, mk)[0], y, lm)

    g = jax.jit(jax.value_and_grad(loss))
    v_pad, g_pad = g(model, inputs, targets, mask, loss_mask)
    v, gr = g(model, batch.inputs[0], batch.targets[0], batch.mask[0], batch.loss_mask[0])
    np.testing.assert_allclose(v_pad, v, rtol=1e-5)
    testing.assert_trees_close(g_pad, gr, rtol=1e-4, atol=1e-6)


@given(
    mask=st.lists(st.sampled_from([0.0, 1.0]), min_size=1, max_size=4),
    seed=st.integers(0, 2**16),
)
def test_keep_padding_has_the_value_and_gradient_of_a_select(mask, seed):
    """keep_padding's own VJP (which keeps only the scalar mask, not a dense boolean per state)
    gives the value and gradients of the plain jnp.where, and lets integer states through."""
    from difmachine.machine import keep_padding

    m = jnp.asarray(mask, jnp.float32)
    rng = np.random.default_rng(seed)
    new, old, c = (jnp.asarray(rng.normal(size=(len(mask), 3, 5)), jnp.float32) for _ in range(3))
    count = jnp.arange(len(mask), dtype=jnp.int32)

    def loss(select, new, old):
        kept = jax.vmap(select)(m, {"x": new, "n": count + 1}, {"x": old, "n": count})
        return jnp.sum(jnp.sin(kept["x"]) * c), kept["n"]

    def plain(m, a, b):
        return jax.tree.map(lambda x, y: jnp.where(m > 0, x, y), a, b)

    (value, n), grads = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(
        keep_padding, new, old
    )
    (value_ref, n_ref), grads_ref = jax.value_and_grad(loss, argnums=(1, 2), has_aux=True)(
        plain, new, old
    )
    np.testing.assert_array_equal(n, n_ref)
    np.testing.assert_allclose(value, value_ref, rtol=1e-6)
    for g, g_ref in zip(grads, grads_ref, strict=True):
        np.testing.assert_array_equal(g, g_ref)
