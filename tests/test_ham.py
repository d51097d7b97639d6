"""Hierarchical attentive memory: tree indexing, JOIN / SEARCH / WRITE, both modes."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm
from difmachine.devices import ham
from difmachine.testing import check_device

sizes = st.sampled_from([2, 4, 8, 16])


def _tree(leaves, width=4, seed=0):
    device = dm.HAMMemory(leaves=leaves, width=width, hidden=8)
    params = device.init_params(jax.random.PRNGKey(seed))
    # a tree whose leaves differ (a fresh tree's levels are constant)
    noise = jax.random.normal(jax.random.PRNGKey(seed + 1), (leaves, width))
    nodes = device.init_state(params)
    nodes = ham.rejoin_all(params["join"], nodes.at[leaves - 1 :].set(jnp.tanh(noise)), leaves)
    return device, params, nodes


@settings(max_examples=10, deadline=None)
@given(leaves=sizes, j=st.integers(0, 15))
def test_path_nodes_run_from_the_root_to_the_leaf(leaves, j):
    j = j % leaves
    path = np.asarray(ham.path_nodes(leaves, j))
    assert path[0] == 0 and path[-1] == leaves - 1 + j and len(path) == ham.depth(leaves) + 1
    for up, down in zip(path[:-1], path[1:]):
        assert down in (2 * up + 1, 2 * up + 2)


@settings(max_examples=8, deadline=None)
@given(leaves=sizes, seed=st.integers(0, 1000))
def test_init_tree_is_joined_everywhere(leaves, seed):
    device = dm.HAMMemory(leaves=leaves, width=3, hidden=4)
    params = device.init_params(jax.random.PRNGKey(seed))
    nodes = device.init_state(params)
    assert nodes.shape == (2 * leaves - 1, 3)
    np.testing.assert_allclose(nodes, ham.rejoin_all(params["join"], nodes, leaves), atol=1e-6)


@settings(max_examples=8, deadline=None)
@given(leaves=sizes, seed=st.integers(0, 1000))
def test_soft_leaf_probabilities_are_a_distribution_of_path_products(leaves, seed):
    device, params, nodes = _tree(leaves, seed=seed)
    q = jnp.tanh(jax.random.normal(jax.random.PRNGKey(seed + 2), (4,)))
    probs = np.asarray(ham.leaf_probabilities(params["search"], nodes, q, leaves))
    assert np.all(probs >= 0) and abs(probs.sum() - 1) < 1e-5
    p_right = np.asarray(jax.nn.sigmoid(ham.search_logit(params["search"], nodes, q)))
    for j in range(leaves):
        path = np.asarray(ham.path_nodes(leaves, j))
        expected = np.prod(
            [p_right[a] if b == 2 * a + 2 else 1 - p_right[a] for a, b in zip(path[:-1], path[1:])]
        )
        np.testing.assert_allclose(probs[j], expected, rtol=1e-5, atol=1e-7)


@settings(max_examples=8, deadline=None)
@given(leaves=sizes, seed=st.integers(0, 1000))
def test_greedy_hard_path_follows_the_soft_modes_likelier_branches(leaves, seed):
    """The hard descent at evaluation takes the likelier branch at each node: the same branch
    probabilities as the soft mode, and the path's probability is the soft leaf probability.
    (It is not always the soft mode's most probable leaf: a greedy descent can miss it.)"""
    device, params, nodes = _tree(leaves, seed=seed)
    q = jnp.tanh(jax.random.normal(jax.random.PRNGKey(seed + 2), (4,)))
    j, actions, p_right, log_prob, _ = ham.descend(params["search"], nodes, q, leaves)
    probs = ham.leaf_probabilities(params["search"], nodes, q, leaves)
    np.testing.assert_allclose(np.exp(log_prob), probs[j], rtol=1e-4)
    np.testing.assert_array_equal(np.asarray(actions), np.asarray(p_right > 0.5, np.int32))
    if leaves == 2:
        assert int(j) == int(jnp.argmax(probs))


@settings(max_examples=8, deadline=None)
@given(leaves=sizes, j=st.integers(0, 15), seed=st.integers(0, 1000))
def test_write_rejoins_exactly_the_path(leaves, j, seed):
    j = j % leaves
    device, params, nodes = _tree(leaves, seed=seed)
    new_leaf = jnp.full((4,), 0.5)
    after = np.asarray(ham.write_path(params["join"], nodes, leaves, j, new_leaf))
    path = set(np.asarray(ham.path_nodes(leaves, j)).tolist())
    for i in range(2 * leaves - 1):
        if i not in path:
            np.testing.assert_array_equal(after[i], np.asarray(nodes)[i])
    np.testing.assert_allclose(after[leaves - 1 + j], new_leaf)
    # the whole tree is consistent again: the same as re-JOINing everything
    np.testing.assert_allclose(
        after, ham.rejoin_all(params["join"], jnp.asarray(after), leaves), atol=1e-6
    )


def test_sampled_descent_is_distributed_like_the_soft_probabilities():
    device, params, nodes = _tree(4, seed=3)
    q = jnp.tanh(jnp.arange(4.0) - 1.5)
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(0), n)
    leaves = jax.vmap(lambda k: ham.descend(params["search"], nodes, q, 4, k)[0])(keys)
    freq = np.bincount(np.asarray(leaves), minlength=4) / n
    probs = np.asarray(ham.leaf_probabilities(params["search"], nodes, q, 4))
    assert np.all(np.abs(freq - probs) < 5 * np.sqrt(probs * (1 - probs) / n) + 1e-3)


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_check_device(mode):
    check_device(
        dm.HAMMemory(leaves=4, width=3, hidden=4, mode=mode), steps=3, batch=2, max_examples=3
    )


@pytest.mark.parametrize("mode", ["hard", "soft"])
def test_machine_gradients_are_finite(mode):
    machine = dm.Machine(dm.LSTM(8), dm.HAMMemory(leaves=8, width=4, hidden=8, mode=mode))
    model = dm.compile(machine, 3, 2, key=jax.random.PRNGKey(0))
    assert model.stochastic() == (mode == "hard")
    xs = jnp.ones((5, 3))

    def loss(model):
        ys, aux = model(xs, key=jax.random.PRNGKey(1) if mode == "hard" else None)
        return jnp.sum(ys**2) + (aux["log_prob"] if mode == "hard" else 0.0)

    grads = jax.jit(jax.grad(loss))(model)
    for leaf in jax.tree.leaves(grads):
        assert np.all(np.isfinite(leaf))
    search = grads.params["devices"]["hammemory"]["search"]["W1"]
    assert np.any(search != 0)  # the log-probability (hard) or the read (soft) trains SEARCH


def test_bad_settings_are_one_line_errors():
    with pytest.raises(ValueError, match="power of 2"):
        dm.HAMMemory(leaves=6, width=4)
    with pytest.raises(ValueError, match="mode must be"):
        dm.HAMMemory(leaves=8, width=4, mode="dense")


@settings(max_examples=3, deadline=None)
@given(seed=st.integers(0, 1000))
def test_sparse_storage_equals_the_dense_tree(seed):
    """With a capacity the hard mode stores only written nodes: reads, log-probabilities and
    every node it reconstructs are those of the dense tree, step after step (sampled paths)."""
    steps, leaves = 5, 8
    dense = dm.HAMMemory(leaves=leaves, width=3, hidden=4)
    sparse = dm.HAMMemory(leaves=leaves, width=3, hidden=4, capacity=steps)
    params = dense.init_params(jax.random.PRNGKey(seed))
    raw = jax.random.normal(jax.random.PRNGKey(seed + 1), (steps, 3 + 3 + 1))
    keys = jax.random.split(jax.random.PRNGKey(seed + 2), steps)

    @jax.jit
    def run(params, raw, keys):
        d_state, s_state = dense.init_state(params), sparse.init_state(params)
        outs = []
        for t in range(steps):
            iface = {"query": jnp.tanh(raw[t, :3]), "value": jnp.tanh(raw[t, 3:6]),
                     "write": jax.nn.sigmoid(raw[t, 6:])}  # fmt: skip
            a = dense.sample_step(params, d_state, iface, keys[t])
            b = sparse.sample_step(params, s_state, iface, keys[t])
            d_state, s_state = a.state, b.state
            outs.append((a.read, b.read, a.log_prob, b.log_prob))
        nodes = jax.vmap(lambda i: ham.get_node(s_state, i))(jnp.arange(2 * leaves - 1))
        return outs, d_state, nodes

    outs, d_state, nodes = run(params, raw, keys)
    for a_read, b_read, a_lp, b_lp in outs:
        np.testing.assert_allclose(a_read, b_read, rtol=1e-5, atol=1e-6)
        np.testing.assert_allclose(a_lp, b_lp, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nodes, d_state, rtol=1e-5, atol=1e-6)


def test_capacity_is_checked_against_the_sequence_length():
    device = dm.HAMMemory(leaves=8, width=3, capacity=5)
    device.check_length(5)
    with pytest.raises(ValueError, match="raise capacity to at least 6"):
        device.check_length(6)
    with pytest.raises(ValueError, match="needs mode='hard'"):
        dm.HAMMemory(leaves=8, width=3, mode="soft", capacity=5)


def test_check_device_sparse_storage():
    check_device(
        dm.HAMMemory(leaves=8, width=3, hidden=4, capacity=3), steps=3, batch=2, max_examples=3
    )


def test_trace_shows_the_path_down_the_tree():
    import io
    import re

    from rich.console import Console

    from difmachine.trace import render, run_example

    program = dm.Program(
        machine=dm.Machine(dm.LSTM(8), {"ham": dm.HAMMemory(leaves=8, width=4, hidden=8)}),
        task=dm.Reverse(symbols=3, min_length=2, max_length=3),
    )
    model = dm.build(program)
    example = run_example(model, program.task, length=2, seed=0)
    console = Console(file=io.StringIO(), force_terminal=True, width=100)
    console.print(render(example, model, width=90))
    text = re.sub(r"\x1b\[[0-9;]*m", "", console.file.getvalue())
    assert "path down the tree" in text and "P(right) along the path" in text
    paths = re.findall(r"\b([LR]{3}) -> leaf (\d)", text)
    assert paths and all(
        int("".join("1" if c == "R" else "0" for c in p), 2) == int(j) for p, j in paths
    )


# -- input_leaves: the paper's embedding of the input into the leaves ---------------------------


@settings(max_examples=5, deadline=None)
@given(leaves=sizes, data=st.data(), seed=st.integers(0, 1000))
def test_input_leaves_embed_each_real_input_step(leaves, data, seed):
    """Leaf ``t`` is ``tanh(W x_t + b)`` for each real step, the learned leaf elsewhere
    (padding and beyond the sequence), and every inner node the JOIN of its children."""
    T = data.draw(st.integers(1, leaves))
    real = data.draw(st.integers(0, T))
    device = dm.HAMMemory(leaves=leaves, width=3, hidden=4, input_leaves=True, input_size=5)
    params = device.init_params(jax.random.PRNGKey(seed))
    xs = np.asarray(jax.random.normal(jax.random.PRNGKey(seed + 1), (T, 5)))
    mask = (np.arange(T) < real).astype(np.float32)
    nodes = np.asarray(device.init_state(params, dm.Context(xs, mask)))
    W, b = np.asarray(params["input"]["W"]), np.asarray(params["input"]["b"])
    for t in range(leaves):
        want = np.tanh(xs[t] @ W + b) if t < real else np.asarray(params["leaf"])
        np.testing.assert_allclose(nodes[leaves - 1 + t], want, rtol=1e-5, atol=1e-6)
    np.testing.assert_allclose(nodes, ham.rejoin_all(params["join"], nodes, leaves), atol=1e-6)


def test_input_leaves_without_the_option_draw_the_same_parameters():
    plain = dm.HAMMemory(leaves=8, width=3, hidden=4)
    embedded = dm.HAMMemory(leaves=8, width=3, hidden=4, input_leaves=True, input_size=2)
    a, b = (d.init_params(jax.random.PRNGKey(0)) for d in (plain, embedded))
    assert set(b) == set(a) | {"input"}
    for x, y in zip(jax.tree.leaves(a), jax.tree.leaves({k: b[k] for k in a})):
        np.testing.assert_array_equal(x, y)


def test_check_device_input_leaves():
    device = dm.HAMMemory(leaves=4, width=3, hidden=4, input_leaves=True, input_size=2)
    context = dm.Context(np.eye(3, 2, dtype=np.float32), np.ones(3, np.float32))
    check_device(device, steps=3, batch=2, max_examples=3, context=context)


def test_machine_hands_the_device_its_whole_input_before_the_first_step():
    """In a Machine the device's input width is bound at compile time and its leaves hold the
    whole sequence before step 0: with the soft read (every leaf weighted) the first output
    depends on later inputs, which the plain memory cannot see yet. Padding leaks nothing."""
    xs = jax.random.normal(jax.random.PRNGKey(3), (6, 3))
    later = xs.at[1:].set(-xs[1:])
    for input_leaves in (False, True):
        device = dm.HAMMemory(leaves=8, width=4, hidden=8, mode="soft", input_leaves=input_leaves)
        model = dm.compile(dm.Machine(dm.LSTM(8), {"ham": device}), 3, 2, key=jax.random.PRNGKey(0))
        assert model.machine.devices[0].input_size == (3 if input_leaves else None)
        first = [float(jnp.abs(model(x)[0][0]).sum()) for x in (xs, later)]
        assert (first[0] != first[1]) == input_leaves
        padded = jnp.concatenate([xs[:4], jnp.full((2, 3), 9.0)])
        mask = jnp.array([1, 1, 1, 1, 0, 0], jnp.float32)
        np.testing.assert_allclose(model(padded, mask)[0][:4], model(xs[:4])[0], atol=1e-5)


def test_input_leaves_errors_are_one_line():
    device = dm.HAMMemory(leaves=8, width=3, input_leaves=True)
    device.check_length(8)
    with pytest.raises(ValueError, match="9 steps and there are 8 leaves; raise leaves to 16"):
        device.check_length(9)
    with pytest.raises(ValueError, match="drop capacity"):
        dm.HAMMemory(leaves=8, width=3, input_leaves=True, capacity=4)
    with pytest.raises(ValueError, match="input_leaves must be true or false"):
        dm.HAMMemory(leaves=8, width=3, input_leaves="yes")
    with pytest.raises(ValueError, match="compile it in a Machine"):
        device.init_params(jax.random.PRNGKey(0))
    model = dm.compile(dm.Machine(dm.LSTM(4), {"ham": device}), 2, 2, key=jax.random.PRNGKey(0))
    with pytest.raises(dm.DifmachineError, match="device 'ham': .* raise leaves to 16"):
        model(jnp.zeros((9, 2)))
    with pytest.raises(dm.DifmachineError, match="reads the whole input sequence"):
        model.generate(jnp.zeros(2), 3, lambda y: y)
