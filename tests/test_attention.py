"""The Attention device: masked softmax, score kinds, story embedding, protocol checks."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm
from difmachine.devices.attention import attend, position_encoding
from difmachine.testing import assert_trees_close, check_device

attend_jit = jax.jit(attend)


@given(
    scores=st.lists(st.floats(-50, 50, width=32), min_size=1, max_size=12),
    data=st.data(),
)
def test_attention_weights_are_a_distribution_over_real_positions_and_zero_on_padding(scores, data):
    mask = np.array(data.draw(st.lists(st.booleans(), min_size=len(scores), max_size=len(scores))))
    w = np.asarray(attend_jit(jnp.array(scores, jnp.float32), jnp.asarray(mask, jnp.float32)))
    assert np.all(w[~mask] == 0.0), "padded positions must get exactly zero weight"
    assert np.all(w >= 0)
    if mask.any():
        np.testing.assert_allclose(w.sum(), 1.0, rtol=1e-5)
        # agrees with a plain softmax over the real positions only
        real = np.array(scores, np.float64)[mask]
        ref = np.exp(real - real.max()) / np.exp(real - real.max()).sum()
        np.testing.assert_allclose(w[mask], ref, rtol=1e-4, atol=1e-6)
    else:
        assert w.sum() == 0.0


def test_masked_attention_has_finite_gradients_even_with_nothing_to_attend():
    g = jax.grad(lambda s, m: jnp.sum(attend(s, m) * jnp.arange(3.0)))(jnp.ones(3), jnp.zeros(3))
    assert np.all(np.isfinite(g))


@given(k=st.integers(0, 5), length=st.integers(1, 6), sharp=st.floats(5.0, 20.0))
def test_dot_attention_on_a_one_hot_context_picks_the_matching_state(k, length, sharp):
    k = k % length
    dev = dm.Attention("dot", context_size=6)
    values = jnp.eye(6, dtype=jnp.float32)[:length]
    state = dev.init_state({}, dm.Context(values, jnp.ones(length)))
    query = sharp * jnp.eye(6, dtype=jnp.float32)[k]
    read, _, trace = dev.step({}, state, {"query": query})
    assert int(jnp.argmax(trace["weights"])) == k
    expected = np.exp(sharp) / (np.exp(sharp) + length - 1)  # every other score is 0
    np.testing.assert_allclose(float(trace["weights"][k]), expected, rtol=1e-5)
    np.testing.assert_allclose(read[k], expected, rtol=1e-5)


def _context(key, S=5, E=4, real=3):
    values = jax.random.normal(key, (S, E), jnp.float32)
    return dm.Context(values, (jnp.arange(S) < real).astype(jnp.float32))


@pytest.mark.parametrize("kind", ["additive", "dot", "general"])
def test_attention_device_protocol(kind):
    dev = dm.Attention(kind, size=None if kind == "dot" else 6, context_size=4)

    def invariants(state, reads, traces):
        w = np.asarray(traces["weights"])
        assert np.all(w[:, 3:] == 0.0)
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-5)

    check_device(dev, context=_context(jax.random.PRNGKey(1)), invariants=invariants)


def test_coverage_attention_device_protocol():
    dev = dm.Attention("additive", size=6, context_size=4, coverage=True)
    check_device(dev, context=_context(jax.random.PRNGKey(1)))


@given(kind=st.sampled_from(["additive", "dot", "general"]), seed=st.integers(0, 2**31 - 1))
def test_coverage_sums_the_past_weights_and_starts_as_plain_attention(kind, seed):
    size = None if kind == "dot" else 6
    plain = dm.Attention(kind, size=size, context_size=4)
    covered = dm.Attention(kind, size=size, context_size=4, coverage=True)
    k_p, k_c, k_q = jax.random.split(jax.random.PRNGKey(seed), 3)
    params = plain.init_params(k_p)
    params_c = {**params, "w_c": covered.init_params(k_p)["w_c"]}
    context = _context(k_c)
    state, state_c = plain.init_state(params, context), covered.init_state(params_c, context)
    total = np.zeros(5)
    for q in jax.random.normal(k_q, (4, plain.interface()["query"].shape[0])):
        _, state, t = plain.step(params, state, {"query": q})
        _, state_c, t_c = covered.step(params_c, state_c, {"query": q})
        np.testing.assert_allclose(t_c["weights"], t["weights"], rtol=1e-5, atol=1e-7)  # w_c = 0
        total += np.asarray(t_c["weights"])
        np.testing.assert_allclose(state_c["coverage"], total, rtol=1e-5, atol=1e-6)


def test_negative_coverage_weight_moves_attention_on():
    dev = dm.Attention("dot", context_size=2, coverage=True)
    params = {"w_c": jnp.asarray(-20.0)}
    context = dm.Context(jnp.eye(2, dtype=jnp.float32), jnp.ones(2))
    state = dev.init_state(params, context)
    query = {"query": jnp.array([1.0, 0.0])}  # always asks for position 0
    _, state, first = dev.step(params, state, query)
    _, state, second = dev.step(params, state, query)
    assert first["weights"][0] > 0.5 and second["weights"][1] > 0.99  # read, then moved on


def test_location_attention_device_protocol():
    dev = dm.Attention("additive", size=6, context_size=4, location=True)

    def invariants(state, reads, traces):
        w = np.asarray(traces["weights"])
        assert np.all(w[:, 3:] == 0.0)
        np.testing.assert_allclose(w.sum(-1), 1.0, rtol=1e-4)

    check_device(dev, context=_context(jax.random.PRNGKey(2)), invariants=invariants)


def _np_locate(content, previous, gate, shift, gamma, real):
    """The reference: interpolate, shift by -1/0/+1 without wrapping, sharpen over the real
    positions (uniform when nothing is left there)."""
    w = gate * content + (1 - gate) * previous
    moved = np.zeros_like(w)
    for s_j, o in zip(shift, (-1, 0, 1)):
        moved += s_j * np.roll(np.pad(w, 1), o)[1:-1]
    p = np.where(real, (moved + 1e-12) ** gamma, 0.0)
    return p / p.sum()


@given(
    kind=st.sampled_from(["additive", "dot"]),
    real=st.integers(1, 5),
    seed=st.integers(0, 2**31 - 1),
    gamma=st.floats(1.0, 4.0),
)
def test_location_attention_gates_shifts_and_sharpens_the_content_weights(kind, real, seed, gamma):
    dev = dm.Attention(kind, size=None if kind == "dot" else 6, context_size=4, location=True)
    plain = dm.Attention(kind, size=dev.size, context_size=4)
    k_p, k_c, k_q = jax.random.split(jax.random.PRNGKey(seed), 3)
    params, context = dev.init_params(k_p), _context(k_c, real=real)
    state, plain_state = dev.init_state(params, context), plain.init_state(params, context)
    mask = np.asarray(context.mask) > 0
    previous = np.zeros(5)
    queries = jax.random.normal(k_q, (4, dev.interface()["query"].shape[0]))
    gates, shifts = np.linspace(1.0, 0.0, 4), jax.nn.softmax(2 * queries[:, :3], axis=-1)
    for q, gate, shift in zip(queries, gates, np.asarray(shifts)):
        iface = {"query": q, "gate": jnp.array([gate]), "shift": shift, "gamma": jnp.array([gamma])}
        _, state, trace = dev.step(params, state, iface)
        content = np.asarray(plain.step(params, plain_state, {"query": q})[2]["weights"], float)
        ref = _np_locate(content, previous, gate, shift, gamma, mask)
        np.testing.assert_allclose(trace["weights"], ref, rtol=1e-4, atol=1e-6)
        assert np.all(np.asarray(trace["weights"])[~mask] == 0.0)
        previous = np.asarray(trace["weights"], float)


def test_location_attention_finds_the_end_by_content_then_walks_back_one_step_at_a_time():
    dev = dm.Attention("dot", context_size=6, location=True)
    context = dm.Context(jnp.eye(6, dtype=jnp.float32), (jnp.arange(6) < 4).astype(jnp.float32))
    state = dev.init_state({}, context)
    back = jnp.array([1.0, 0.0, 0.0])  # one-hot on the shift -1
    iface = {"query": 30 * jnp.eye(6)[3], "gate": jnp.ones(1), "shift": back, "gamma": jnp.ones(1)}
    focus = []
    for step in range(5):
        _, state, trace = dev.step({}, state, iface)
        focus.append(np.asarray(trace["weights"]))
        iface = {**iface, "query": 30 * jnp.eye(6)[5], "gate": jnp.zeros(1)}  # content ignored
    # step 0: content finds position 3, shifted to 2; then 1, 0; then it has walked off the end
    assert [int(np.argmax(w)) for w in focus[:3]] == [2, 1, 0]
    assert all(w.max() > 0.99 for w in focus[:3])
    # nothing left but rounding dust: spread over the real positions, none on padding
    np.testing.assert_allclose(focus[3].sum(), 1.0, rtol=1e-5)
    assert focus[3].max() < 0.5 and np.all(focus[3][4:] == 0.0)


def test_location_attention_needs_the_softmax():
    with pytest.raises(ValueError, match="location addressing .* needs the softmax"):
        dm.Attention("dot", context_size=2, location=True, linear=True)
    with pytest.raises(ValueError, match="location must be true or false"):
        dm.Attention("dot", context_size=2, location="yes")


def test_memory_network_story_device_protocol():
    story = dm.StoryEmbedding(vocab=9, dim=5, sentences=6, words=4)
    dev = dm.Attention("dot", story=story)
    tokens = jnp.array([[1, 2, 3, 0], [4, 5, 0, 0], [0, 0, 0, 0]], jnp.int32)
    check_device(dev, context=dm.Context(tokens, jnp.array([1.0, 1.0, 0.0])))


@given(n=st.integers(1, 7))
def test_position_encoding_matches_the_papers_formula(n):
    J, d = 7, 5
    got = np.asarray(position_encoding(jnp.asarray(n), J, d))
    for j in range(1, J + 1):
        for k in range(1, d + 1):
            ref = (1 - j / n) - (k / d) * (1 - 2 * j / n)
            np.testing.assert_allclose(got[j - 1, k - 1], ref, rtol=1e-5, atol=1e-6)


def test_story_embedding_is_position_sensitive_and_ignores_padding_words():
    story = dm.StoryEmbedding(vocab=6, dim=4, sentences=3, words=4, temporal=False)
    params = story.init_params(jax.random.PRNGKey(0))
    mask = jnp.ones(2)
    ab = story.embed(params, jnp.array([[1, 2, 0, 0], [2, 1, 0, 0]]), mask)[0]
    assert not np.allclose(ab[0], ab[1]), "word order must matter with position encoding"
    bag = dm.StoryEmbedding(6, 4, 3, 4, position_encoding=False, temporal=False)
    same = bag.embed(params, jnp.array([[1, 2, 0, 0], [2, 1, 0, 0]]), mask)[0]
    np.testing.assert_allclose(same[0], same[1], rtol=1e-6)
    np.testing.assert_allclose(same[0], params["A"][1] + params["A"][2], rtol=1e-6)


def test_temporal_encoding_counts_back_from_the_latest_real_sentence():
    story = dm.StoryEmbedding(vocab=4, dim=3, sentences=5, words=2, position_encoding=False)
    params = story.init_params(jax.random.PRNGKey(0))
    tokens = jnp.zeros((4, 2), jnp.int32)  # empty sentences: only the temporal term remains
    keys, _ = story.embed(params, tokens, jnp.array([1.0, 1.0, 1.0, 0.0]))
    assert_trees_close(keys[:3], params["T_A"][jnp.array([2, 1, 0])])


def test_attention_errors_are_clear():
    with pytest.raises(ValueError, match="kind must be one of"):
        dm.Attention("cosine", size=4)
    with pytest.raises(ValueError, match="needs size"):
        dm.Attention("additive")
    with pytest.raises(ValueError, match="context_size"):
        dm.Attention("dot").interface()
    dev = dm.Attention("dot", context_size=3)
    with pytest.raises(ValueError, match="needs a context"):
        dev.init_state({})
    with pytest.raises(ValueError, match="4 wide"):
        dev.init_state({}, dm.Context(jnp.zeros((2, 4)), jnp.ones(2)))


@given(seed=st.integers(0, 2**31 - 1), start=st.integers(1, 50), step=st.integers(0, 100))
def test_linear_start_weighs_by_the_raw_scores_until_its_step(seed, start, step):
    staged = dm.Attention("dot", context_size=4, linear_start=start).at_step(step)
    assert staged.linear == (step < start)
    assert staged.at_step(step) is staged  # the same form: the same object, no recompile
    ctx = _context(jax.random.PRNGKey(seed % 1000))
    query = jax.random.normal(jax.random.PRNGKey(seed), (4,))
    _, _, trace = staged.step({}, staged.init_state({}, ctx), {"query": query})
    scores = np.asarray(ctx.values @ query)
    expected = scores * np.asarray(ctx.mask) if staged.linear else attend(scores, ctx.mask)
    np.testing.assert_allclose(trace["weights"], expected, rtol=1e-5, atol=1e-6)
    always = dm.Attention("dot", context_size=4, linear=True)  # no linear start: never softmax
    assert always.at_step(step) is always
    with pytest.raises(ValueError, match="linear_start must be a non-negative integer"):
        dm.Attention("dot", context_size=4, linear_start=-1)
