"""The Differentiable Neural Computer: its pure addressing functions against plain numpy
references of Graves et al. 2016 (Methods), the invariants deepmind/dnc's tests check, and the
device (protocol, and a discrete allocator under one-hot gates)."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm
from difmachine import testing
from difmachine.devices import dnc_addressing as dnc
from difmachine.protocol import activate

seeds = st.integers(0, 2**31 - 1)
few = settings(max_examples=8, deadline=None)
TOL = dict(rtol=1e-5, atol=1e-6)


def simplex(rng, *shape, total=1.0):
    """Non-negative rows summing to ``total``."""
    x = rng.exponential(size=shape)
    return (total * x / x.sum(-1, keepdims=True)).astype(np.float32)


def sub_simplex(rng, *shape):
    """Non-negative rows summing to at most 1."""
    return simplex(rng, *shape, total=rng.uniform(0.0, 1.0))


# -- numpy references of the paper's equations ---------------------------------------------------


def np_content(memory, key, beta):  # memory [W, N]
    eps = 1e-8
    cos = key @ memory / (np.sqrt((memory**2).sum(0) + eps) * np.sqrt((key**2).sum() + eps))
    z = np.exp(beta * cos - np.max(beta * cos))
    return z / z.sum()


def np_allocation(usage, tie_bin=dnc.TIE_BIN):
    u = dnc.USAGE_EPS + (1 - dnc.USAGE_EPS) * usage.astype(np.float64)
    keys = np.floor(u / tie_bin) if tie_bin > 0 else u
    phi = np.lexsort((np.arange(len(u)), keys))  # by key, then by slot index
    a = np.zeros_like(u)
    prod = 1.0
    for j in phi:
        a[j] = (1 - u[j]) * prod
        prod *= u[j]
    return a


def np_link(L, w, p):
    N = len(w)
    out = np.zeros_like(L)
    for i in range(N):
        for j in range(N):
            if i != j:
                out[i, j] = (1 - w[i] - w[j]) * L[i, j] + w[i] * p[j]
    return out


@few
@given(seed=seeds)
def test_content_weights(seed):
    rng = np.random.default_rng(seed)
    memory = rng.normal(size=(4, 6)).astype(np.float32)
    key, beta = rng.normal(size=4).astype(np.float32), np.float32(rng.uniform(1, 10))
    np.testing.assert_allclose(
        dnc.content_weights(memory, key, beta), np_content(memory, key, beta), **TOL
    )


@few
@given(seed=seeds)
def test_retention_and_usage(seed):
    rng = np.random.default_rng(seed)
    free, prev_r = rng.uniform(size=3).astype(np.float32), sub_simplex(rng, 3, 7)
    psi = np.ones(7)
    for i in range(3):
        psi *= 1 - free[i] * prev_r[i]
    np.testing.assert_allclose(dnc.retention(free, prev_r), psi, **TOL)
    u, w = rng.uniform(size=7).astype(np.float32), sub_simplex(rng, 7)
    usage = dnc.usage_update(u, w, psi.astype(np.float32))
    np.testing.assert_allclose(usage, (u + w - u * w) * psi, **TOL)
    assert np.all(np.asarray(usage) >= 0) and np.all(np.asarray(usage) <= 1)


@few
@given(seed=seeds, tie_bin=st.sampled_from([dnc.TIE_BIN, 0.0]))
def test_allocation_against_reference(seed, tie_bin):
    rng = np.random.default_rng(seed)
    usage = rng.uniform(size=9).astype(np.float32)
    usage[rng.integers(0, 9, size=3)] = usage[0]  # some exact ties
    a = np.asarray(dnc.allocation_weights(usage, tie_bin))
    np.testing.assert_allclose(a, np_allocation(usage, tie_bin), rtol=1e-4, atol=1e-6)
    assert np.all(a >= 0) and a.sum() <= 1 + 1e-6


def test_free_list_breaks_ties_by_slot_and_jit_agrees():
    usage = jnp.array([0.5, 0.2, 0.2, 0.0, 0.2, 0.0], jnp.float32)
    np.testing.assert_array_equal(dnc.free_list(usage), [3, 5, 1, 2, 4, 0])
    # near-equal usages (a last-bit difference, as jit and eager produce) stay in slot order
    nudged = usage.at[4].set(np.nextafter(np.float32(0.2), np.float32(0)))
    np.testing.assert_array_equal(dnc.free_list(nudged), [3, 5, 1, 2, 4, 0])
    for u in (usage, nudged, jnp.zeros(6), jnp.full((6,), 0.7)):
        np.testing.assert_array_equal(jax.jit(dnc.free_list)(u), dnc.free_list(u))
        eager = dnc.allocation_weights(u)
        np.testing.assert_allclose(jax.jit(dnc.allocation_weights)(u), eager, rtol=1e-6)
        assert int(jnp.argmax(eager)) == int(dnc.free_list(u)[0])


@few
@given(seed=seeds)
def test_write_erase_add(seed):
    rng = np.random.default_rng(seed)
    a, c = sub_simplex(rng, 5), simplex(rng, 5)
    ga, gw = np.float32(rng.uniform()), np.float32(rng.uniform())
    w = dnc.write_weights(a, c, ga, gw)
    np.testing.assert_allclose(w, gw * (ga * a + (1 - ga) * c), **TOL)
    memory = rng.normal(size=(3, 5)).astype(np.float32)
    e, v = rng.uniform(size=3).astype(np.float32), rng.normal(size=3).astype(np.float32)
    w = np.asarray(w)
    expected = (memory.T * (1 - np.outer(w, e)) + np.outer(w, v)).T
    np.testing.assert_allclose(dnc.erase_and_add(memory, w, e, v), expected, **TOL)


@few
@given(seed=seeds)
def test_links_precedence_and_reads(seed):
    rng = np.random.default_rng(seed)
    N = 6
    L, p = np.zeros((N, N)), np.zeros(N)
    for _ in range(3):  # a reachable link matrix and precedence (numpy reference)
        w = sub_simplex(rng, N)
        L, p = np_link(L, w, p), (1 - w.sum()) * p + w
    L, p, w = L.astype(np.float32), p.astype(np.float32), sub_simplex(rng, N)
    link = np.asarray(dnc.link_update(L, w, p))
    np.testing.assert_allclose(link, np_link(L, w, p), **TOL)
    prec = np.asarray(dnc.precedence_update(p, w))
    np.testing.assert_allclose(prec, (1 - w.sum()) * p + w, **TOL)
    # invariants (deepmind/dnc): zero diagonal, rows/columns and precedence sum to <= 1
    assert np.all(np.diag(link) == 0) and np.all(link >= -1e-7)
    assert link.sum(0).max() <= 1 + 1e-5 and link.sum(1).max() <= 1 + 1e-5
    assert 0 <= prec.sum() <= 1 + 1e-5
    prev_r = sub_simplex(rng, 2, N)
    fwd, bwd = dnc.directional_weights(link, prev_r)
    np.testing.assert_allclose(fwd, np.stack([link @ r for r in prev_r]), **TOL)
    np.testing.assert_allclose(bwd, np.stack([link.T @ r for r in prev_r]), **TOL)
    modes, content = simplex(rng, 2, 3), simplex(rng, 2, N)
    r = np.asarray(dnc.read_weights(modes, bwd, content, fwd))
    ref = modes[:, :1] * np.asarray(bwd) + modes[:, 1:2] * content + modes[:, 2:] * np.asarray(fwd)
    np.testing.assert_allclose(r, ref, **TOL)
    assert np.all(r >= -1e-7) and r.sum(-1).max() <= 1 + 1e-5
    memory = rng.normal(size=(4, N)).astype(np.float32)
    np.testing.assert_allclose(dnc.read(memory, r), r @ memory.T, **TOL)


link_update = jax.jit(dnc.link_update)
sparse_link_update = jax.jit(dnc.sparse_link_update)
sparse_directional = jax.jit(dnc.sparse_directional_weights)


def run_links(rng, N, ks, steps=7):
    """The dense link matrix and K-sparse ones driven by the same random writes and reads."""
    L, p = np.zeros((N, N), np.float32), np.zeros(N, np.float32)
    sparse = {k: dnc.sparse_link_init(N, k) for k in ks}
    for _ in range(steps):
        w, r = sub_simplex(rng, N), simplex(rng, 2, N)
        L = link_update(L, w, p)
        sparse = {k: sparse_link_update(s, w, p) for k, s in sparse.items()}
        p = dnc.precedence_update(p, w)
        yield L, sparse, r


@few
@given(seed=seeds)
def test_sparse_links_with_k_equal_slots_are_the_dense_links(seed):
    N = 5
    for L, sparse, r in run_links(np.random.default_rng(seed), N, [N]):
        np.testing.assert_allclose(dnc.sparse_link_dense(sparse[N]), L, **TOL)
        for dense, sp in zip(dnc.directional_weights(L, r), sparse_directional(sparse[N], r)):
            np.testing.assert_allclose(sp, dense, **TOL)


@few
@given(seed=seeds)
def test_sparse_links_keep_k_entries_and_the_invariants(seed):
    N, K = 8, 2
    for L, sparse, r in run_links(np.random.default_rng(seed), N, [K]):
        s = sparse[K]
        check_links(s)
        rows = np.asarray(dnc.sparse_link_dense(s))
        assert np.all(np.count_nonzero(rows, axis=1) <= K)
        assert np.all(rows <= np.asarray(L) + 1e-6), "a sparse link exceeds the dense one"
        fwd, bwd = sparse_directional(s, r)
        assert np.all(np.asarray(fwd) >= 0) and np.asarray(fwd).sum(-1).max() <= 1 + 1e-5
        assert np.all(np.asarray(bwd) >= 0) and np.asarray(bwd).sum(-1).max() <= 1 + 1e-5


# -- the device ----------------------------------------------------------------------------------


def check_links(links):
    """Zero diagonal, non-negative, rows and columns summing to at most 1 (dense or sparse:
    the sparse row table and column table both)."""
    if isinstance(links, dict):  # sparse: the row table and the column table
        rows = np.asarray(dnc.sparse_link_dense(links))
        cols = np.asarray(
            dnc.sparse_link_dense({"out_idx": links["in_idx"], "out_val": links["in_val"]})
        ).T
        pairs = [rows, cols]
    else:
        pairs = [np.asarray(links)]
    for link in pairs:
        assert np.all(np.diag(link) == 0), "link diagonal must be zero"
        assert np.all(link >= -1e-7), "negative links"
        assert link.sum(0).max() <= 1 + 1e-5 and link.sum(1).max() <= 1 + 1e-5


def dnc_invariants(final, reads, traces):
    """deepmind/dnc's invariants, on every step of a random run."""
    for key in ("allocation", "write_weights", "read_weights", "forward", "backward"):
        w = np.asarray(traces[key])
        assert np.all(w >= -1e-7), f"{key} has negative entries"
        assert w.sum(-1).max() <= 1 + 1e-5, f"{key} sums to more than 1"
    usage = np.asarray(traces["usage"])
    assert np.all(usage >= 0) and np.all(usage <= 1 + 1e-6), "usage left [0, 1]"
    check_links(final["link"])
    assert 0 <= float(final["precedence"].sum()) <= 1 + 1e-5


@pytest.mark.parametrize(
    "device",
    [dm.DNCMemory(slots=5, width=3, read_heads=2), dm.DNCMemory(slots=6, width=3, sparse_links=2)],
    ids=["2 reads", "sparse links"],
)
def test_dnc_memory_protocol(device):
    testing.check_device(device, steps=3, batch=2, invariants=dnc_invariants)


def test_interface_and_read_size():
    dev = dm.DNCMemory(slots=16, width=5, read_heads=3)
    f = dev.interface()
    assert f["read_modes"] == (((3, 3)), "softmax")
    assert f["read_strengths"].activation == "oneplus" and f["free_gates"].shape == (3,)
    assert f["allocation_gate"] == ((), "sigmoid") and f["erase"].activation == "sigmoid"
    assert dev.read_size == 15
    with pytest.raises(ValueError, match="DNCMemory read_heads"):
        dm.DNCMemory(slots=4, width=2, read_heads=0)
    with pytest.raises(ValueError, match="sparse_links=5 exceeds slots=4"):
        dm.DNCMemory(slots=4, width=2, sparse_links=5)


def test_finite_values_and_gradients_at_zero_memory():
    dev = dm.DNCMemory(slots=4, width=3, read_heads=2)
    state = dev.init_state({})
    raw = {n: jnp.zeros(f.shape) for n, f in dev.interface().items()}

    def loss(raw):
        iface = {n: activate(f.activation, raw[n]) for n, f in dev.interface().items()}
        reads, new, _ = dev.step({}, state, iface)
        reads2, new, _ = dev.step({}, new, iface)
        return jnp.sum(reads**2) + jnp.sum(reads2) + sum(jnp.sum(x) for x in new.values())

    value, grads = jax.jit(jax.value_and_grad(loss))(raw)
    assert np.isfinite(value)
    testing.assert_finite(grads, "gradients at an all-zero memory")


BIG = 50.0


@settings(max_examples=6, deadline=None)
@given(ops=st.lists(st.integers(-1, 5), min_size=4, max_size=12))
def test_one_hot_gates_give_a_discrete_allocator(ops):
    """Write gate, allocation gate and erase fully on: every write goes to the lowest free slot.
    ``op = -1`` writes; ``op = k`` frees the k-th live slot (a content read of it, then its free
    gate) and writes. A freed slot is reused; a slot never freed is never written twice."""
    N = 6
    dev = dm.DNCMemory(slots=N, width=N)
    fields = dev.interface()
    step = jax.jit(dev.step)
    state = dev.init_state({})

    def run(state, key=None, free=False, write=True, slot=0):
        raw = {
            "read_keys": (jnp.zeros((1, N)) if key is None else key[None]),
            "read_strengths": jnp.full((1,), BIG),
            "write_key": jnp.zeros(N),
            "write_strength": jnp.array(0.0),
            "erase": jnp.full(N, BIG),
            "write_vector": jax.nn.one_hot(slot, N),  # a distinct code per slot
            "free_gates": jnp.full((1,), BIG if free else -BIG),
            "allocation_gate": jnp.array(BIG),
            "write_gate": jnp.array(BIG if write else -BIG),
            "read_modes": jnp.array([[-BIG, BIG, -BIG]]),  # content
        }
        iface = {n: activate(f.activation, raw[n]) for n, f in fields.items()}
        return step({}, state, iface)

    live: list[int] = []
    for op in ops:
        free = op >= 0 and bool(live)
        if free:
            k = live.pop(op % len(live))
            _, state, trace = run(state, key=jax.nn.one_hot(k, N), write=False)
            assert float(trace["read_weights"][0, k]) > 0.99
        elif len(live) == N:
            continue
        slot = min(set(range(N)) - set(live))
        _, state, trace = run(state, free=free, slot=slot)
        w = np.asarray(trace["write_weights"][0])
        assert w[slot] > 0.99, f"wrote {w.round(3)}, expected slot {slot} (live {live})"
        # usage counts a write one step later (u_t uses w_{t-1}): the slots live before this one
        assert np.all(np.asarray(state["usage"])[live] > 0.99)
        live.append(slot)


DNC_PANELS = (
    "allocation weighting a",
    "usage u",
    "write weighting",
    "read head 0 weighting",
    "read head 1 weighting",
    "read head 0 mode",
    "read head 1 forward weighting f (links)",
    "read head 1 backward weighting b (links)",
)


def test_trace_of_a_dnc_program_draws_allocation_usage_writes_modes_and_links(monkeypatch):
    """``difmachine trace`` of programs/dnc_babi.py (small sizes): the terminal shows every DNC
    panel by title, the read modes as named rows, the words of the story; the PNG gets the
    same panels (matplotlib replaced by a recorder, so this runs without the extra)."""
    import io
    import pathlib
    from unittest import mock

    from rich.console import Console

    from difmachine import trace as trace_module
    from difmachine.program import build

    path = pathlib.Path(__file__).parent.parent / "programs" / "dnc_babi.py"
    overrides = {"hidden": "8", "slots": "6", "width": "4", "max_sentences": "2"}
    program = dm.load_program(path, overrides)
    model = build(program)
    example = trace_module.run_example(model, program.task, seed=0)
    console = Console(file=io.StringIO(), width=140, color_system=None)
    trace_module.print_trace(example, model, console)
    text = console.file.getvalue()
    for title in DNC_PANELS:
        assert title in text, title
    for mode in ("backward", "content", "forward"):  # the options rows of the read modes
        assert any(line.lstrip().startswith(mode) for line in text.splitlines()), mode
    assert "where is" in text and " - " in text + " "  # the words, the answer marker

    labels = []

    def subplots(n, *args, **kwargs):
        axes = np.empty((n, 1), dtype=object)
        for i in range(n):
            axes[i, 0] = mock.MagicMock()
            axes[i, 0].set_ylabel.side_effect = lambda label, **kw: labels.append(label)
        return mock.MagicMock(), axes

    monkeypatch.setattr(trace_module, "pyplot", lambda: mock.MagicMock(subplots=subplots))
    trace_module.save_png(example, model, "unused.png")
    drawn = " | ".join(labels)
    for title in DNC_PANELS:
        assert title in drawn, title
