import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm
from difmachine import testing
from difmachine.addressing import EPS
from difmachine.devices.sparse import least_used
from difmachine.protocol import activate


def _iface(dev, raw):
    fields = dev.interface()
    return {n: activate(f.activation, jnp.asarray(raw[n], jnp.float32)) for n, f in fields.items()}


def _random_raw(dev, rng, scale=2.0):
    return {n: scale * rng.standard_normal(f.shape) for n, f in dev.interface().items()}


def sparse_invariants(k):
    def check(final, reads, traces):
        if "read_weights" in traces:
            w = np.asarray(traces["read_weights"])
            assert np.all(w >= 0.0), "read weights must be non-negative"
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5, err_msg="read weights sum")
            assert np.all((w > 0).sum(-1) <= k), "a read head touched more than k slots"
        if "write_weights" in traces:
            w = np.asarray(traces["write_weights"])
            assert np.all(w >= 0.0), "write weights must be non-negative"
            np.testing.assert_allclose(
                w.sum(-1), np.asarray(traces["write_alpha"]), atol=1e-5, err_msg="sum to alpha"
            )
        np.testing.assert_allclose(np.asarray(final["read_w"]).sum(-1), 1.0, atol=1e-5)

    return check


@pytest.mark.parametrize(
    "device",
    [
        dm.SparseMemory(slots=16, width=4, k=3),
        dm.SparseMemory(slots=12, width=3, k=2, read_heads=2, write_heads=2),
        dm.SparseMemory(slots=8, width=3, k=8, read_heads=1, write_heads=0),
        dm.SparseMemory(slots=8, width=3, k=2, read_heads=0, write_heads=1),
    ],
    ids=["1r1w", "2r2w", "readonly-k=slots", "writeonly"],
)
def test_sparse_memory_protocol(device):
    testing.check_device(device, steps=5, invariants=sparse_invariants(device.k))


def test_sparse_memory_in_a_machine():
    machine = dm.Machine(dm.LSTM(8), dm.SparseMemory(slots=16, width=4, k=3))
    testing.check_machine(machine, input_size=3, output_size=2)


def test_interface_fields_and_read_size():
    dev = dm.SparseMemory(slots=32, width=5, k=4, read_heads=2, write_heads=1)
    fields = dev.interface()
    assert fields["read_key"].shape == (2, 5) and fields["read_key"].activation == "tanh"
    assert fields["read_beta"].shape == (2,) and fields["read_beta"].activation == "softplus"
    assert fields["write_alpha"].activation == fields["write_gamma"].activation == "sigmoid"
    assert fields["erase"].activation == "sigmoid" and fields["add"].activation == "tanh"
    assert dev.read_size == 10
    assert "write_gamma" not in dm.SparseMemory(slots=4, width=2, read_heads=0).interface()


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"slots": 0, "width": 4}, "slots must be a positive integer"),
        ({"slots": 8, "width": 0}, "width must be a positive integer"),
        ({"slots": 8, "width": 4, "k": 0}, "k must be an integer in 1..slots=8"),
        ({"slots": 8, "width": 4, "k": 9}, "k must be an integer in 1..slots=8"),
        ({"slots": 8, "width": 4, "read_heads": -1}, "read_heads must be a non-negative"),
        ({"slots": 8, "width": 4, "read_heads": 0, "write_heads": 0}, "at least one head"),
        ({"slots": 2, "width": 4, "k": 1, "write_heads": 3}, "needs as many slots"),
        ({"slots": 8, "width": 4, "delta": 1.5}, "delta must be in"),
    ],
)
def test_invalid_specs_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dm.SparseMemory(**kwargs)


# -- k = slots: the dense content-addressed memory -----------------------------------------------


def _softmax(x):
    e = np.exp(x - x.max())
    return e / e.sum()


def _cosine(M, key):
    return (M @ key) / (np.sqrt((M * M).sum(-1) + EPS) * np.sqrt(key @ key + EPS))


def reference_step(dev, state, iface):
    """SAM in dense numpy: every weighting over all slots (the equations of the docstring)."""
    M, last, t, prev = state
    M, last, t = M.copy(), last.copy(), t + 1
    N, H, R = dev.slots, dev.write_heads, dev.read_heads
    if H:
        lru = np.argsort(last, kind="stable")[:H]
        prev_mean = prev.mean(0) if R else np.zeros(N)
        keep, add, total = np.ones_like(M), np.zeros_like(M), np.zeros(N)
        for h in range(H):
            alpha = iface["write_alpha"][h]
            gamma = iface["write_gamma"][h] if R else 0.0
            w = alpha * (gamma * prev_mean + (1.0 - gamma) * np.eye(N)[lru[h]])
            keep *= 1.0 - np.outer(w, iface["erase"][h])
            add += np.outer(w, iface["add"][h])
            total += w
        keep[lru] = 0.0
        M = M * keep + add
        last[total > dev.delta] = t
    reads, prev = [], np.zeros((R, N))
    for r in range(R):
        prev[r] = _softmax(iface["read_beta"][r] * _cosine(M, iface["read_key"][r]))
        reads.append(prev[r] @ M)
        last[prev[r] > dev.delta] = t
    return np.concatenate(reads) if R else np.zeros(0), (M, last, t, prev)


K_EQUALS_SLOTS = dm.SparseMemory(slots=6, width=3, k=6, read_heads=2, write_heads=2)
_jit_step = jax.jit(lambda state, iface: K_EQUALS_SLOTS.step({}, state, iface))


@given(seed=testing.seeds)
def test_k_equals_slots_is_the_dense_content_memory(seed):
    """With k = slots, several steps of reads, writes and usage equal the dense numpy SAM."""
    dev, rng = K_EQUALS_SLOTS, np.random.default_rng(seed)
    state = dev.init_state({})
    M0 = rng.standard_normal((dev.slots, dev.width)).astype(np.float32)
    state["memory"] = jnp.asarray(M0)
    prev0 = np.zeros((dev.read_heads, dev.slots))
    prev0[:, 0] = 1.0  # the device starts with its previous reads on slot 0
    ref = (M0.astype(np.float64), np.zeros(dev.slots), 0, prev0)
    for _ in range(4):
        iface = _iface(dev, _random_raw(dev, rng))
        reads, state, trace = _jit_step(state, iface)
        ref_reads, ref = reference_step(dev, ref, {n: np.asarray(v) for n, v in iface.items()})
        np.testing.assert_allclose(reads, ref_reads, rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(state["memory"], ref[0], rtol=1e-4, atol=1e-5)
        np.testing.assert_allclose(trace["read_weights"], ref[3], rtol=1e-4, atol=1e-6)
        np.testing.assert_array_equal(state["last_access"], ref[1])


@given(seed=testing.seeds)
def test_k_equals_slots_reads_like_ntm_content_addressing(seed):
    """A read-only SparseMemory with k = slots reads what NTMMemory reads with content addressing
    only (gate 1, no shift, no sharpening) on the same memory and keys."""
    rng = np.random.default_rng(seed)
    sparse = dm.SparseMemory(slots=10, width=4, k=10, read_heads=2, write_heads=0)
    ntm = dm.NTMMemory(slots=10, width=4, read_heads=2, write_heads=0)
    memory = jnp.asarray(rng.standard_normal((10, 4)), jnp.float32)
    key, beta = 2.0 * rng.standard_normal((2, 4)), 3.0 * rng.standard_normal(2)
    s_state = {**sparse.init_state({}), "memory": memory}
    n_params = ntm.init_params(jax.random.PRNGKey(0))
    n_state = ntm.init_state(n_params)
    # NTMMemory may store its memory transposed ([width, slots]): give it the same contents
    n_memory = memory if n_state["memory"].shape == memory.shape else memory.T
    n_state = {**n_state, "memory": n_memory}
    big = 50.0
    n_raw = {
        "read_key": key,
        "read_beta": beta,
        "read_gate": [big, big],
        "read_shift": [[-big, big, -big]] * 2,
        "read_gamma": [-big, -big],
    }
    s_read, _, s_trace = sparse.step(
        {}, s_state, _iface(sparse, {"read_key": key, "read_beta": beta})
    )
    n_read, _, n_trace = ntm.step(n_params, n_state, _iface(ntm, n_raw))
    np.testing.assert_allclose(s_read, n_read, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(s_trace["read_weights"], n_trace["read_weights"], atol=1e-5)


# -- sparsity of reads and of their gradients --------------------------------------------------


def _memory_grad(dev, seed):
    rng = np.random.default_rng(seed)
    state = dev.init_state({})
    memory = jnp.asarray(rng.standard_normal((dev.slots, dev.width)), jnp.float32)
    iface = _iface(dev, _random_raw(dev, rng))
    cot = jnp.asarray(rng.standard_normal(dev.read_size), jnp.float32)

    def read(memory, head_mask):
        reads, new_state, _ = dev.step({}, {**state, "memory": memory}, iface)
        return jnp.sum(reads * cot * head_mask), new_state

    return read, memory


@settings(max_examples=5)
@given(seed=testing.seeds)
def test_reads_touch_only_k_rows_per_head(seed):
    """The gradient of a read with respect to the memory is non-zero in at most k rows per head,
    exactly the rows the head read."""
    dev = dm.SparseMemory(slots=64, width=5, k=3, read_heads=2, write_heads=0)
    read, memory = _memory_grad(dev, seed)
    grad = jax.jit(jax.grad(read, has_aux=True))
    for r in range(dev.read_heads):
        head_mask = jnp.repeat(jnp.arange(dev.read_heads) == r, dev.width).astype(jnp.float32)
        g, new_state = grad(memory, head_mask)
        rows = set(np.flatnonzero(np.any(np.asarray(g) != 0, axis=1)).tolist())
        assert len(rows) <= dev.k, f"head {r}: gradient in {len(rows)} rows > k={dev.k}"
        assert rows <= set(np.asarray(new_state["read_index"][r]).tolist())


@settings(max_examples=5)
@given(seed=testing.seeds)
def test_write_then_read_gradient_stays_sparse(seed):
    """With a write head the gradient also reaches the written rows, still O(k) of them."""
    dev = dm.SparseMemory(slots=64, width=5, k=3, read_heads=1, write_heads=1)
    read, memory = _memory_grad(dev, seed)
    g, _ = jax.jit(jax.grad(read, has_aux=True))(memory, jnp.ones(dev.read_size))
    rows = np.flatnonzero(np.any(np.asarray(g) != 0, axis=1))
    # k read rows + the previous read slots and the least used slot the write touched
    assert len(rows) <= dev.k + dev.read_heads * dev.k + 1


def _backward_temp_bytes(dev, T: int) -> int:
    """Temporary memory of the compiled gradient of a T-step scan of the device alone."""
    fields = dev.interface()
    raw = {n: jnp.zeros((T, *f.shape), jnp.float32) for n, f in fields.items()}

    def loss(raw):
        def body(state, raw_t):
            iface = {n: activate(fields[n].activation, raw_t[n]) for n in fields}
            reads, state, _ = dev.step(dev.init_params(None), state, iface)
            return state, reads

        state0 = dev.init_state(dev.init_params(jax.random.PRNGKey(0)))
        return jnp.sum(jax.lax.scan(body, state0, raw)[1] ** 2)

    compiled = jax.jit(jax.grad(loss)).lower(raw).compile()
    return compiled.memory_analysis().temp_size_in_bytes


def test_backward_memory_grows_with_k_not_slots():
    """Per time step, backpropagation through the sparse memory keeps O(k x width) values (a few
    KB here), not a copy of the slots x width memory (128 KB here), which is what the dense NTM
    keeps (bench/memory_scaling.py compares them); measured on the compiled gradient, no run."""
    dev = dm.SparseMemory(slots=4096, width=8, k=4)
    per_step = (_backward_temp_bytes(dev, 24) - _backward_temp_bytes(dev, 8)) / 16
    memory_bytes = dev.slots * dev.width * 4
    assert per_step < memory_bytes / 20, f"sparse keeps {per_step:.0f} bytes per step"


# -- least recently used allocation ------------------------------------------------------------


@given(
    last=st.lists(st.integers(min_value=0, max_value=5), min_size=3, max_size=12),
    n=st.integers(min_value=1, max_value=3),
)
def test_least_used_is_the_oldest_slot_lowest_index_first(last, n):
    got = np.asarray(least_used(jnp.asarray(last, jnp.int32), n))
    np.testing.assert_array_equal(got, np.argsort(np.asarray(last), kind="stable")[:n])


LRU_DEVICE = dm.SparseMemory(slots=8, width=3, k=2, read_heads=1, write_heads=1)
_lru_step = jax.jit(lambda state, iface: LRU_DEVICE.step({}, state, iface))


@settings(max_examples=8)
@given(
    gates=st.lists(
        st.tuples(st.sampled_from([-20.0, 20.0]), st.sampled_from([-20.0, 0.0, 20.0])),
        min_size=4,
        max_size=12,
    ),
    seed=testing.seeds,
)
def test_lru_allocation_picks_the_least_recently_accessed_slot(gates, seed):
    """Random access patterns (writes on/off, to the LRU slot or the previous reads, random read
    keys): every step allocates the slot whose last access (any read or write weight above delta,
    replayed from the traces) is oldest, ties to the lowest index."""
    dev, rng = LRU_DEVICE, np.random.default_rng(seed)
    state = dev.init_state({})
    last = np.zeros(dev.slots, int)
    for t, (alpha, gamma) in enumerate(gates, start=1):
        raw = _random_raw(dev, rng)
        raw["write_alpha"], raw["write_gamma"] = [alpha], [gamma]
        _, state, trace = _lru_step(state, _iface(dev, raw))
        assert int(trace["lru"][0]) == int(np.argsort(last, kind="stable")[0])
        touched = (np.asarray(trace["write_weights"]).sum(0) > dev.delta) | (
            np.asarray(trace["read_weights"]).max(0) > dev.delta
        )
        last[touched] = t
        np.testing.assert_array_equal(state["last_access"], last)


def test_fresh_memory_is_filled_like_a_tape():
    """Writing to the LRU slot every step (alpha 1, gamma 0) uses slots 0, 1, 2, ... in order."""
    dev = dm.SparseMemory(slots=16, width=4, k=2, read_heads=1, write_heads=1)
    state, rng = dev.init_state({}), np.random.default_rng(0)
    order = []
    for _ in range(6):
        raw = _random_raw(dev, rng)
        raw["write_alpha"], raw["write_gamma"] = [20.0], [-20.0]
        raw["read_beta"] = [-20.0]  # a flat read: weights 1/k, above delta
        _, state, trace = dev.step({}, state, _iface(dev, raw))
        order.append(int(trace["lru"][0]))
    assert len(set(order)) == len(order)  # never the same slot twice
    assert order[0] == 0


# -- traces ------------------------------------------------------------------------------------


def test_trace_draws_dense_weightings():
    from rich.console import Console

    from difmachine import trace as tr

    machine = dm.Machine(dm.LSTM(16), dm.SparseMemory(slots=64, width=6, k=4))
    task = dm.Copy(bits=4, min_length=3, max_length=5)
    model = dm.compile(machine, task.input_size, task.output_size, key=jax.random.PRNGKey(0))
    example = tr.run_example(model, task, length=4)
    w = example.traces["sparsememory"]["read_weights"]
    assert w.shape == (example.inputs.shape[0], 1, 64)
    assert np.all((w > 0).sum(-1) <= 4)
    console = Console(file=__import__("io").StringIO(), force_terminal=True, width=100)
    tr.print_trace(example, model, console)
    text = console.file.getvalue()
    assert "read head 0 weighting" in text and "write head 0 weighting" in text
