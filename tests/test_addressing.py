"""Property tests for :mod:`difmachine.addressing` against plain numpy (float64) references.

Every jitted function is defined once at module level, so each distinct shape compiles once and
is then reused across examples and tests.
"""

from __future__ import annotations

import functools

import hypothesis.extra.numpy as hnp
import hypothesis.strategies as st
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from jax.test_util import check_grads

from difmachine import addressing as A
from difmachine.testing import assert_finite as assert_all_finite

# --------------------------------------------------------------------------------------------
# Strategies (all bounded; no NaN, inf or subnormals).
# --------------------------------------------------------------------------------------------

SLOTS = st.integers(2, 12)
WIDTH = st.integers(1, 6)
HEADS = st.integers(1, 4)
BETA = st.floats(0.0, 20.0, width=32)
GAMMA = st.floats(1.0, 5.0, width=32)
GATE = st.floats(0.0, 1.0, width=32)
#: Offset tuples, including an unsorted one and ones wider than the smallest memories.
OFFSETS = st.sampled_from(
    [(-1, 0, 1), (-2, -1, 0, 1, 2), (0, 1), (1, 0, -1), (-3, -2, -1, 0, 1, 2, 3)]
)


def _floats(lo=-3.0, hi=3.0, width=32):
    return st.floats(
        lo, hi, width=width, allow_nan=False, allow_infinity=False, allow_subnormal=False
    )


def arrays(shape, lo=-3.0, hi=3.0, dtype=np.float32):
    width = 32 if dtype == np.float32 else 64
    return hnp.arrays(dtype, shape, elements=_floats(lo, hi, width))


@st.composite
def distributions(draw, n, floor=0.0, dtype=np.float32):
    """A probability vector over ``n`` entries; with ``floor=0`` it may contain exact zeros."""
    raw = draw(hnp.arrays(np.float64, n, elements=_floats(floor, 1.0, 64)))
    # Tiny entries become exact zeros, so no float32 subnormals appear (XLA on CPU flushes them).
    raw = np.where(raw < 1e-6, 0.0, raw)
    if raw.sum() <= 1e-6:
        raw = np.zeros(n)
        raw[draw(st.integers(0, n - 1))] = 1.0
    return (raw / raw.sum()).astype(dtype)


@st.composite
def one_hots(draw, n, dtype=np.float32):
    out = np.zeros(n, dtype)
    out[draw(st.integers(0, n - 1))] = 1.0
    return out


def f32(x):
    return np.float32(x)


@st.composite
def address_inputs(draw, n=None, width=None, offsets=None, positive=False, dtype=np.float32):
    """Inputs to :func:`address` as ``(args, offsets)``.

    ``positive=True`` keeps gate in [0.1, 0.9] and the shift / previous weights away from zero,
    so the sharpen input stays strictly positive even under finite-difference perturbations.
    """
    n = draw(SLOTS) if n is None else n
    width = draw(WIDTH) if width is None else width
    offsets = draw(OFFSETS) if offsets is None else offsets
    fw = 32 if dtype == np.float32 else 64
    floor = 0.05 if positive else 0.0
    memory = draw(arrays((n, width), dtype=dtype))
    key = draw(arrays(width, dtype=dtype))
    beta = dtype(draw(st.floats(0.0, 20.0, width=fw)))
    gate = dtype(draw(st.floats(0.1, 0.9, width=fw) if positive else st.floats(0.0, 1.0, width=fw)))
    s = draw(distributions(len(offsets), floor=floor, dtype=dtype))
    gamma = dtype(draw(st.floats(1.0, 5.0, width=fw)))
    w_prev = draw(distributions(n, floor=floor, dtype=dtype))
    return (memory, key, beta, gate, s, gamma, w_prev), offsets


# --------------------------------------------------------------------------------------------
# Plain numpy references, float64, written from the paper's equations (explicit loops where the
# indexing is the point).
# --------------------------------------------------------------------------------------------

NP_EPS = 1e-8


def np_cosine(memory, key):
    memory = np.asarray(memory, np.float64)
    key = np.asarray(key, np.float64)
    out = np.empty(memory.shape[0])
    for i, row in enumerate(memory):
        out[i] = float(np.dot(row, key)) / (
            np.sqrt(np.dot(row, row) + NP_EPS) * np.sqrt(np.dot(key, key) + NP_EPS)
        )
    return out


def np_softmax(x):
    x = np.asarray(x, np.float64)
    e = np.exp(x - x.max())
    return e / e.sum()


def np_content(memory, key, beta):
    return np_softmax(float(beta) * np_cosine(memory, key))


def np_interpolate(wc, wp, g):
    g = float(g)
    return g * np.asarray(wc, np.float64) + (1.0 - g) * np.asarray(wp, np.float64)


def np_shift(w, s, offsets, circular=True):
    w = np.asarray(w, np.float64)
    n = len(w)
    out = np.zeros(n)
    for i in range(n):
        for j, o in enumerate(offsets):
            if circular or 0 <= i - o < n:
                out[i] += float(s[j]) * w[(i - o) % n]
    return out


def np_sharpen(w, gamma):
    p = np.asarray(w, np.float64) ** float(gamma)
    return p / p.sum()


def np_address(memory, key, beta, gate, s, gamma, w_prev, offsets):
    w = np_content(memory, key, beta)
    w = np_interpolate(w, w_prev, gate)
    w = np_shift(w, s, offsets)
    return np_sharpen(w, gamma)


def np_read(memory, w):
    memory = np.asarray(memory, np.float64)
    out = np.zeros(memory.shape[1])
    for i in range(memory.shape[0]):
        out += float(w[i]) * memory[i]
    return out


def np_write(memory, w, erase, add):
    m = np.array(memory, np.float64)
    n, width = m.shape
    for i in range(n):
        for k in range(width):
            m[i, k] = m[i, k] * (1.0 - float(w[i]) * float(erase[k])) + float(w[i]) * float(add[k])
    return m


def np_write_many(memory, w, erase, add):
    m = np.array(memory, np.float64)
    heads, n = np.shape(w)
    for h in range(heads):  # every head erases first ...
        for i in range(n):
            m[i] *= 1.0 - float(w[h][i]) * np.asarray(erase[h], np.float64)
    for h in range(heads):  # ... then every head adds
        for i in range(n):
            m[i] += float(w[h][i]) * np.asarray(add[h], np.float64)
    return m


# --------------------------------------------------------------------------------------------
# Module-level jitted functions: one compilation per shape (and offsets tuple).
# --------------------------------------------------------------------------------------------

cosine_j = jax.jit(A.cosine_similarity)
content_j = jax.jit(A.content_weights)
interpolate_j = jax.jit(A.interpolate)
shift_j = jax.jit(A.shift, static_argnames=("offsets", "circular"))
sharpen_j = jax.jit(A.sharpen)
address_j = jax.jit(A.address, static_argnames="offsets")
read_j = jax.jit(A.read)
write_j = jax.jit(A.write)
write_many_j = jax.jit(A.write_many)


@functools.partial(jax.jit, static_argnames="offsets")
def address_batched(memory, key, beta, gate, s, gamma, w_prev, offsets):
    return jax.vmap(functools.partial(A.address, offsets=offsets))(
        memory, key, beta, gate, s, gamma, w_prev
    )


def _address_loss(memory, key, beta, gamma, gate, s, w_prev, c, offsets):
    """A non-trivial scalar of ``address``; the intermediate values ride along as aux."""
    out = A.address(memory, key, beta, gate, s, gamma, w_prev, offsets)
    aux = (A.cosine_similarity(memory, key), A.content_weights(memory, key, beta), out)
    return jnp.sum(c * out), aux


#: ``((loss, (cosine, content weights, address)), grads wrt memory, key, beta, gamma)``, so the
#: degenerate-input test compiles one function per shape.
address_grads_j = jax.jit(
    jax.value_and_grad(_address_loss, argnums=(0, 1, 2, 3), has_aux=True),
    static_argnames="offsets",
)


def _sharpen_loss(w, gamma, c):
    return jnp.sum(c * A.sharpen(w, gamma))


sharpen_grads_j = jax.jit(jax.value_and_grad(_sharpen_loss, argnums=(0, 1)))


def assert_distribution(w, name, atol=1e-5):
    w = np.asarray(w)
    assert np.all(np.isfinite(w)), f"{name}: non-finite entries {w}"
    assert np.all(w >= 0.0), f"{name}: negative entries {w}"
    assert abs(float(np.sum(w, dtype=np.float64)) - 1.0) <= atol, f"{name}: sums to {w.sum()}"


# --------------------------------------------------------------------------------------------
# Each function against its numpy reference.
# --------------------------------------------------------------------------------------------


@given(data=st.data(), n=SLOTS, width=WIDTH, beta=BETA)
def test_cosine_and_content_weights_match_numpy(data, n, width, beta):
    memory = data.draw(arrays((n, width)))
    key = data.draw(arrays(width))
    cos = np.asarray(cosine_j(memory, key))
    np.testing.assert_allclose(cos, np_cosine(memory, key), rtol=1e-5, atol=1e-6)
    assert np.all(np.abs(cos) <= 1.0 + 1e-6)
    w = np.asarray(content_j(memory, key, f32(beta)))
    np.testing.assert_allclose(w, np_content(memory, key, beta), rtol=1e-4, atol=1e-6)


@given(data=st.data(), n=SLOTS, gate=GATE)
def test_interpolate_matches_numpy(data, n, gate):
    wc = data.draw(distributions(n))
    wp = data.draw(distributions(n))
    out = np.asarray(interpolate_j(wc, wp, f32(gate)))
    np.testing.assert_allclose(out, np_interpolate(wc, wp, gate), rtol=1e-6, atol=1e-7)
    # The gate's end points select one input exactly.
    np.testing.assert_array_equal(np.asarray(interpolate_j(wc, wp, f32(1.0))), wc)
    np.testing.assert_array_equal(np.asarray(interpolate_j(wc, wp, f32(0.0))), wp)


@given(data=st.data(), n=SLOTS, offsets=OFFSETS)
def test_shift_matches_numpy_loop(data, n, offsets):
    w = data.draw(arrays(n))  # any vector, not only distributions
    s = data.draw(distributions(len(offsets)))
    for circular in (True, False):
        out = np.asarray(shift_j(w, s, offsets=offsets, circular=circular))
        ref = np_shift(w, s, offsets, circular)
        np.testing.assert_allclose(out, ref, rtol=1e-5, atol=1e-6)


@given(data=st.data(), n=SLOTS, gamma=GAMMA)
def test_sharpen_matches_numpy(data, n, gamma):
    w = data.draw(distributions(n))
    out = np.asarray(sharpen_j(w, f32(gamma)))
    np.testing.assert_allclose(out, np_sharpen(w, gamma), rtol=1e-4, atol=1e-6)


@given(data=st.data())
def test_address_matches_numpy(data):
    args, offsets = data.draw(address_inputs())
    out = np.asarray(address_j(*args, offsets=offsets))
    np.testing.assert_allclose(out, np_address(*args, offsets), rtol=1e-4, atol=1e-6)


@given(data=st.data(), n=SLOTS, width=WIDTH)
def test_read_matches_numpy(data, n, width):
    memory = data.draw(arrays((n, width)))
    w = data.draw(distributions(n))
    out = np.asarray(read_j(memory, w))
    assert out.shape == (width,)
    np.testing.assert_allclose(out, np_read(memory, w), rtol=1e-5, atol=1e-5)


@given(data=st.data(), n=SLOTS, width=WIDTH)
def test_write_matches_numpy(data, n, width):
    memory = data.draw(arrays((n, width)))
    w = data.draw(distributions(n))
    erase = data.draw(arrays(width, 0.0, 1.0))
    add = data.draw(arrays(width))
    out = np.asarray(write_j(memory, w, erase, add))
    assert out.shape == (n, width)
    np.testing.assert_allclose(out, np_write(memory, w, erase, add), rtol=1e-5, atol=1e-5)


@given(data=st.data(), n=SLOTS, width=WIDTH, heads=HEADS)
def test_write_many_matches_numpy(data, n, width, heads):
    memory = data.draw(arrays((n, width)))
    w = np.stack([data.draw(distributions(n)) for _ in range(heads)])
    erase = data.draw(arrays((heads, width), 0.0, 1.0))
    add = data.draw(arrays((heads, width)))
    out = np.asarray(write_many_j(memory, w, erase, add))
    assert out.shape == (n, width)
    np.testing.assert_allclose(out, np_write_many(memory, w, erase, add), rtol=1e-5, atol=1e-5)
    # All heads erase before any adds, so the order of the heads does not matter.
    perm = data.draw(st.permutations(range(heads)))
    out_perm = np.asarray(write_many_j(memory, w[perm], erase[perm], add[perm]))
    np.testing.assert_allclose(out_perm, out, rtol=1e-5, atol=1e-5)


@jax.jit
def _slots_last(memory_t, key, beta, gate, s, gamma, w_prev, erase, add):
    kw = {"slots_last": True}
    w = A.address(memory_t, key, beta, gate, s, gamma, w_prev, (-1, 0, 1), **kw)
    written = A.write_many(memory_t, w[None], erase[None], add[None], **kw)
    return w, A.read(written, w, **kw), written, A.cosine_similarity(memory_t, key, **kw)


@given(data=st.data())
def test_slots_last_layout_is_the_transposed_memory(data):
    """Every function on the ``[W, N]`` layout equals the numpy reference on ``[N, W]``."""
    (memory, key, beta, gate, s, gamma, w_prev), offsets = data.draw(
        address_inputs(offsets=(-1, 0, 1))
    )
    width = memory.shape[1]
    erase = data.draw(arrays(width, 0.0, 1.0))
    add = data.draw(arrays(width))
    w, r, written, cos = _slots_last(memory.T, key, beta, gate, s, gamma, w_prev, erase, add)
    w_ref = np_address(memory, key, beta, gate, s, gamma, w_prev, offsets)
    written_ref = np_write(memory, np.asarray(w, np.float64), erase, add)
    np.testing.assert_allclose(w, w_ref, rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(cos, np_cosine(memory, key), rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(np.asarray(written).T, written_ref, rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(r, np_read(written_ref, np.asarray(w)), rtol=1e-4, atol=1e-5)


# --------------------------------------------------------------------------------------------
# Distributions stay distributions.
# --------------------------------------------------------------------------------------------


@given(data=st.data())
def test_outputs_are_distributions(data):
    (memory, key, beta, gate, s, gamma, w_prev), offsets = data.draw(address_inputs())
    n = memory.shape[0]
    wc = content_j(memory, key, beta)
    assert_distribution(wc, "content_weights")
    other = data.draw(distributions(n))
    wi = interpolate_j(wc, other, gate)
    assert_distribution(wi, "interpolate")
    ws = shift_j(data.draw(distributions(n)), s, offsets=offsets)
    assert_distribution(ws, "shift")
    assert_distribution(sharpen_j(data.draw(distributions(n)), gamma), "sharpen")
    assert_distribution(
        address_j(memory, key, beta, gate, s, gamma, w_prev, offsets=offsets), "address"
    )


# --------------------------------------------------------------------------------------------
# Shift convention.
# --------------------------------------------------------------------------------------------


@given(data=st.data(), n=SLOTS, offsets=OFFSETS)
def test_shift_convention(data, n, offsets):
    w = data.draw(arrays(n))

    def one_hot_shift(o):
        s = np.zeros(len(offsets), np.float32)
        s[offsets.index(o)] = 1.0
        return np.asarray(shift_j(w, s, offsets=offsets))

    if 1 in offsets:
        out = one_hot_shift(1)
        np.testing.assert_array_equal(out, np.asarray(jnp.roll(w, 1)))
        # The focus moves from slot i to slot i + 1.
        for i in range(n):
            assert out[(i + 1) % n] == w[i]
    if -1 in offsets:
        out = one_hot_shift(-1)
        np.testing.assert_array_equal(out, np.asarray(jnp.roll(w, -1)))
        for i in range(n):
            assert out[(i - 1) % n] == w[i]
    np.testing.assert_array_equal(one_hot_shift(0), w)
    for o in offsets:  # every offset, including |o| >= n, wraps around
        np.testing.assert_array_equal(one_hot_shift(o), np.roll(w, o))
        # ... unless the shift is not circular: then what moves past an end is gone
        s = np.eye(len(offsets), dtype=np.float32)[offsets.index(o)]
        unwrapped = np.asarray(shift_j(w, s, offsets=offsets, circular=False))
        kept = np.zeros(n, np.float32)
        if abs(o) < n:
            kept[max(o, 0) : n + min(o, 0)] = w[max(-o, 0) : n - max(o, 0)]
        np.testing.assert_array_equal(unwrapped, kept)


def test_shift_rejects_wrong_length():
    with pytest.raises(ValueError):
        A.shift(jnp.ones(4) / 4, jnp.ones(2) / 2, (-1, 0, 1))


# --------------------------------------------------------------------------------------------
# Sharpen.
# --------------------------------------------------------------------------------------------


@given(data=st.data(), n=SLOTS, gamma=GAMMA)
def test_sharpen_preserves_argmax_and_does_not_flatten(data, n, gamma):
    raw = data.draw(hnp.arrays(np.float64, n, elements=_floats(0.0, 1.0, 64)))
    top = data.draw(st.integers(0, n - 1))
    raw[top] = raw.max() + data.draw(_floats(0.05, 1.0, 64))  # unique maximum by a margin
    w = (raw / raw.sum()).astype(np.float32)
    out = np.asarray(sharpen_j(w, f32(gamma)))
    assert int(np.argmax(out)) == top
    # For gamma >= 1 the peak can only grow: sum_i w_i^g <= max(w)^(g-1).
    assert out[top] >= w[top] - 1e-6


@given(data=st.data(), n=SLOTS)
def test_sharpen_gamma_one_is_identity(data, n):
    w = data.draw(distributions(n))
    np.testing.assert_allclose(np.asarray(sharpen_j(w, f32(1.0))), w, rtol=1e-5, atol=1e-7)


# --------------------------------------------------------------------------------------------
# Write semantics.
# --------------------------------------------------------------------------------------------


@given(data=st.data(), n=SLOTS, width=WIDTH)
def test_write_full_erase_one_hot_replaces_one_slot(data, n, width):
    memory = data.draw(arrays((n, width)))
    slot = data.draw(st.integers(0, n - 1))
    w = np.zeros(n, np.float32)
    w[slot] = 1.0
    add = data.draw(arrays(width))
    out = np.asarray(write_j(memory, w, np.ones(width, np.float32), add))
    expected = memory.copy()
    expected[slot] = add
    np.testing.assert_array_equal(out, expected)


@given(data=st.data(), n=SLOTS, width=WIDTH, heads=HEADS)
def test_zero_erase_and_add_leave_memory_unchanged(data, n, width, heads):
    memory = data.draw(arrays((n, width)))
    w = data.draw(arrays(n, 0.0, 1.0))  # any weights in [0, 1]
    zeros = np.zeros(width, np.float32)
    np.testing.assert_array_equal(np.asarray(write_j(memory, w, zeros, zeros)), memory)
    wh = data.draw(arrays((heads, n), 0.0, 1.0))
    zh = np.zeros((heads, width), np.float32)
    np.testing.assert_array_equal(np.asarray(write_many_j(memory, wh, zh, zh)), memory)


@given(data=st.data(), n=SLOTS, width=WIDTH)
def test_write_many_with_one_head_equals_write(data, n, width):
    memory = data.draw(arrays((n, width)))
    w = data.draw(distributions(n))
    erase = data.draw(arrays(width, 0.0, 1.0))
    add = data.draw(arrays(width))
    single = np.asarray(write_j(memory, w, erase, add))
    many = np.asarray(write_many_j(memory, w[None], erase[None], add[None]))
    np.testing.assert_allclose(many, single, rtol=1e-6, atol=1e-6)


# --------------------------------------------------------------------------------------------
# Degenerate inputs: finite values and finite gradients.
# --------------------------------------------------------------------------------------------


@given(data=st.data(), zero=st.sampled_from(["memory", "key", "both", "rows"]))
def test_zero_memory_and_key_give_finite_values_and_gradients(data, zero):
    (memory, key, beta, gate, s, gamma, w_prev), offsets = data.draw(address_inputs())
    n, width = memory.shape
    if zero in ("memory", "both"):
        memory = np.zeros_like(memory)
    if zero in ("key", "both"):
        key = np.zeros_like(key)
    if zero == "rows":  # some rows zero, including possibly all of them
        mask = data.draw(hnp.arrays(np.bool_, n))
        memory = np.where(mask[:, None], np.float32(0.0), memory)
    # Sometimes make the sharpen input one-hot, i.e. full of exact zeros.
    if data.draw(st.booleans()):
        w_prev = data.draw(one_hots(n))
        gate = np.float32(0.0)
        s = data.draw(one_hots(len(offsets)))
    c = data.draw(arrays(n))

    (value, (cos, wc, out)), grads = address_grads_j(
        memory, key, beta, gamma, gate, s, w_prev, c, offsets=offsets
    )
    assert_all_finite((cos, wc))
    if zero != "rows":  # all-zero memory or key: every cosine is 0, content weights are uniform
        np.testing.assert_allclose(np.asarray(cos), 0.0, atol=1e-7)
        np.testing.assert_allclose(np.asarray(wc), np.full(n, 1.0 / n), rtol=1e-6)
    assert_distribution(out, "address")
    assert_all_finite((value, grads))
    assert grads[0].shape == (n, width) and grads[1].shape == (width,)


@given(data=st.data(), n=SLOTS, gamma=GAMMA)
def test_sharpen_with_exact_zeros_is_finite_with_finite_gradients(data, n, gamma):
    w = data.draw(distributions(n)).astype(np.float64)
    zero_mask = data.draw(hnp.arrays(np.bool_, n))
    keep = data.draw(st.integers(0, n - 1))
    zero_mask[keep] = False
    if w[keep] == 0.0:
        w[keep] = 1.0
    w = np.where(zero_mask, 0.0, w)
    w = (w / w.sum()).astype(np.float32)
    assert np.any(w == 0.0) or not zero_mask.any()
    c = data.draw(arrays(n))
    out = np.asarray(sharpen_j(w, f32(gamma)))
    assert_distribution(out, "sharpen")
    assert np.all(out[w == 0.0] <= 1e-6), "zero weights must stay (numerically) zero"
    value, (g_w, g_gamma) = sharpen_grads_j(w, f32(gamma), c)
    assert_all_finite((value, g_w, g_gamma))


# --------------------------------------------------------------------------------------------
# Transformations: jit == eager, vmap == loop, gradients == finite differences.
# --------------------------------------------------------------------------------------------


@given(data=st.data())
def test_address_jit_equals_eager(data):
    args, offsets = data.draw(address_inputs())
    eager = np.asarray(A.address(*(jnp.asarray(a) for a in args), offsets=offsets))
    jitted = np.asarray(address_j(*args, offsets=offsets))
    np.testing.assert_allclose(jitted, eager, rtol=1e-5, atol=1e-7)


@st.composite
def address_batches(draw):
    n, width, offsets = draw(SLOTS), draw(WIDTH), draw(OFFSETS)
    size = draw(st.integers(1, 4))
    examples = [draw(address_inputs(n=n, width=width, offsets=offsets))[0] for _ in range(size)]
    return [np.stack(column) for column in zip(*examples)], offsets


@given(batch=address_batches())
def test_address_vmap_equals_loop(batch):
    stacked, offsets = batch
    batched = np.asarray(address_batched(*stacked, offsets=offsets))
    looped = np.stack(
        [
            np.asarray(address_j(*(a[b] for a in stacked), offsets=offsets))
            for b in range(len(stacked[0]))
        ]
    )
    assert batched.shape == looped.shape
    np.testing.assert_allclose(batched, looped, rtol=1e-5, atol=1e-7)


@settings(max_examples=3)
@given(data=st.data())
def test_address_gradients_match_finite_differences_float64(data):
    (memory, key, *rest), offsets = data.draw(address_inputs(positive=True, dtype=np.float64))
    # Keep rows and key away from zero: there the EPS regularisation makes the cosine vary on a
    # 1e-4 scale, which finite differences cannot resolve (zero inputs are covered above).
    memory = np.where(np.abs(memory) < 0.1, 0.1, memory)
    key = np.where(np.abs(key) < 0.1, 0.1, key)
    args = (memory, key, *rest)
    with jax.enable_x64(True):
        args64 = tuple(jnp.asarray(a, jnp.float64) for a in args)
        assert all(a.dtype == jnp.float64 for a in args64)
        assert address_j(*args64, offsets=offsets).dtype == jnp.float64
        check_grads(
            functools.partial(address_j, offsets=offsets),  # jitted: one compile per shape
            args64,
            order=1,
            modes=["rev"],
            atol=1e-5,
            rtol=1e-5,
            eps=1e-7,
        )
