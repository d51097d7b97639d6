"""Seq2Seq: encoders, teacher forcing vs step-by-step decoding, greedy decoding, routing."""

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm
from difmachine.testing import assert_trees_close, check_machine, seeds
from difmachine.training import batch_outputs

V_IN, V_OUT, S = 5, 4, 6  # source width, decoder output classes, padded source length
END = V_OUT - 1


def _source(key, real=4):
    ids = jax.random.randint(key, (S,), 0, V_IN)
    return dm.Context(jax.nn.one_hot(ids, V_IN), (jnp.arange(S) < real).astype(jnp.float32))


def _spec(attention=True, bidirectional=True):
    devices = [dm.Attention("additive", size=6)] if attention else []
    return dm.Seq2Seq(
        dm.Encoder(dm.LSTM(5), bidirectional=bidirectional), dm.Machine(dm.GRU(7), devices)
    )


def _model(spec, seed=0):
    return dm.compile(spec, V_OUT + 1, V_OUT, key=jax.random.PRNGKey(seed), context_size=V_IN)


@pytest.mark.parametrize("attention", [True, False], ids=["attention", "plain"])
def test_seq2seq_jit_vmap_padding_gradients(attention):
    check_machine(
        _spec(attention), V_OUT + 1, V_OUT, context=_source(jax.random.PRNGKey(3)), length=4
    )


def test_memory_network_machine_jit_vmap_padding_gradients():
    story = dm.StoryEmbedding(vocab=7, dim=6, sentences=5, words=3)
    machine = dm.Machine(
        dm.RNN(6, activation="identity"), dm.Attention("dot", story=story), dm.Fixed(3)
    )
    tokens = jnp.array([[1, 2, 0], [3, 4, 5], [6, 0, 0], [0, 0, 0]], jnp.int32)
    context = dm.Context(tokens, jnp.array([1.0, 1.0, 1.0, 0.0]))
    model = check_machine(machine, 7, 7, length=1, batch=2, context=context)
    ys, aux = model(jnp.ones((1, 7)), context=context, trace=True)
    weights = aux["trace"]["attention"]["weights"]
    assert weights.shape == (3, 4), "one row of sentence weights per hop"
    assert np.all(np.asarray(weights[:, 3]) == 0.0)


def _reference_decode(model, xs, context):
    """Step by step in Python, eagerly, from the documented equations (no scan, no jit)."""
    dec, p = model.decoder, model.decoder.params
    with jax.disable_jit():
        controller_state, routed = model.start(context)
        carry = dec.init_carry(routed, controller_state)
        ys = []
        for x in xs:
            carry, (h, reads, _) = dec.cell(carry, x @ p["W_x"])
            ys.append(jnp.concatenate([h, reads]) @ p["W_o"] + p["b_o"])
    return jnp.stack(ys)


@given(seed=seeds)
def test_teacher_forced_decoder_equals_a_step_by_step_eager_decode(seed):
    k_src, k_x = jax.random.split(jax.random.PRNGKey(seed))
    model = _model(_spec(), seed % 1000)
    context = _source(k_src)
    xs = jax.nn.one_hot(jax.random.randint(k_x, (4,), 0, V_OUT + 1), V_OUT + 1)
    ys, _ = _forced(model, xs, context)
    np.testing.assert_allclose(ys, _reference_decode(model, xs, context), rtol=1e-4, atol=1e-5)


_forced = jax.jit(lambda m, xs, c: m(xs, context=c))


def _feedback(y):
    return jax.nn.one_hot(jnp.argmax(y), V_OUT + 1)


def _stop(y):
    return jnp.argmax(y) == END


_generate = jax.jit(lambda m, x0, c: m.generate(x0, 6, _feedback, _stop, context=c))


@given(seed=seeds)
def test_greedy_decoding_equals_teacher_forcing_on_its_own_outputs_and_stops_at_the_end(seed):
    k_src = jax.random.PRNGKey(seed)
    model = _model(_spec(), seed % 1000)
    context = _source(k_src)
    start = jax.nn.one_hot(V_OUT, V_OUT + 1)
    ys, aux = _generate(model, start, context)
    produced = np.asarray(aux["produced"])
    tokens = np.asarray(jnp.argmax(ys, -1))
    ends = np.flatnonzero(tokens == END)
    n = ends[0] + 1 if len(ends) else len(tokens)
    np.testing.assert_array_equal(produced, (np.arange(6) < n).astype(np.float32))
    # teacher forcing with the decoder's own previous outputs gives the same outputs
    fed = jnp.concatenate([start[None], jax.vmap(_feedback)(ys[:-1])])
    forced, aux_forced = _forced(model, fed[:n], context)
    np.testing.assert_allclose(ys[:n], forced, rtol=1e-4, atol=1e-5)
    # after the end token the state is frozen: the final state is the state after step n
    assert_trees_close(aux["state"], aux_forced["state"], what="state frozen after the end")


def test_greedy_decoding_stops_at_once_when_the_end_token_wins():
    model = _model(_spec())
    model = eqx.tree_at(
        lambda m: m.decoder.params["b_o"], model, jnp.zeros(V_OUT).at[END].set(100.0)
    )
    ys, aux = _generate(model, jax.nn.one_hot(V_OUT, V_OUT + 1), _source(jax.random.PRNGKey(0)))
    np.testing.assert_array_equal(np.asarray(aux["produced"]), [1, 0, 0, 0, 0, 0])


@given(real=st.integers(1, S))
def test_bidirectional_encoder_ignores_padding(real):
    enc = dm.BiLSTM(4)
    params = enc.init_params(jax.random.PRNGKey(0), V_IN)
    ctx = _source(jax.random.PRNGKey(1), real)
    padded, summary = jax.jit(enc.encode)(params, ctx.values, ctx.mask)
    alone, summary_alone = jax.jit(enc.encode)(params, ctx.values[:real], ctx.mask[:real])
    np.testing.assert_allclose(padded[:real], alone, rtol=1e-5, atol=1e-6)
    assert_trees_close(summary, summary_alone, what="summary with padding vs without")
    assert padded.shape == (S, 8)


def test_context_is_routed_by_the_name_each_device_reads():
    story = dm.StoryEmbedding(vocab=5, dim=3, sentences=4, words=2)
    a, b = dm.Attention("dot", context_size=2), dm.Attention("dot", story=story)
    machine = dm.Machine(dm.RNN(4), {"a": a, "b": b})
    assert (a.context(), b.context()) == ("source", "story")
    model = dm.compile(machine, 1, 1, key=jax.random.PRNGKey(0))
    source = dm.Context(jnp.eye(2), jnp.ones(2))
    story_ids = dm.Context(jnp.ones((3, 2), jnp.int32), jnp.ones(3))
    _, states, _ = model.init_carry({"source": source, "story": story_ids})
    assert states["a"]["values"].shape == (2, 2) and states["b"]["values"].shape == (3, 3)
    with pytest.raises(ValueError, match="reads the context 'story'"):
        machine.check_contexts({"source": 2})
    with pytest.raises(dm.ProgramError, match="reads the context 'source'"):
        dm.Program(machine=dm.Machine(dm.LSTM(3), dm.Attention("dot")), task=dm.Copy())


def test_a_plain_machine_attends_over_its_task_source_with_the_width_filled_in():
    task = dm.ReverseString(symbols=3, min_length=2, max_length=3)
    program = dm.Program(machine=dm.Machine(dm.LSTM(4), dm.Attention("dot")), task=task)
    model = dm.build(program)
    assert model.machine.devices[0].context_size == task.contexts["source"]
    batch = task.sample(np.random.default_rng(0), 2)
    ys, _ = batch_outputs(model, batch)
    assert ys.shape == batch.targets.shape and np.all(np.isfinite(ys))


def test_the_encoder_may_be_a_machine_with_its_own_memory():
    task = dm.ReverseString(symbols=3, min_length=2, max_length=3)
    encoder = dm.Machine(dm.LSTM(5), dm.NeuralStack(width=3, capacity=8))
    spec = dm.Seq2Seq(encoder, dm.Machine(dm.LSTM(4), dm.Attention("dot")))
    assert spec.decoder.devices[0].context_size == 5  # the encoder machine's states
    model = dm.build(dm.Program(machine=spec, task=task))
    batch = task.sample(np.random.default_rng(0), 2)
    ys, _ = batch_outputs(model, batch)
    assert np.all(np.isfinite(ys))
    grads = jax.grad(lambda m: jnp.sum(batch_outputs(m, batch)[0] ** 2))(model)
    encoder_grads = jax.tree.leaves(grads.encoder.params)
    assert all(np.all(np.isfinite(g)) for g in encoder_grads)
    assert any(np.any(np.asarray(g) != 0) for g in encoder_grads)  # the source reaches the loss


def test_seq2seq_spec_errors_are_clear():
    with pytest.raises(TypeError, match="Seq2Seq encoder"):
        dm.Seq2Seq("lstm", dm.Machine(dm.LSTM(3)))
    with pytest.raises(ValueError, match="context's vectors are 8 wide"):
        dm.Seq2Seq(dm.BiLSTM(4), dm.Machine(dm.LSTM(3), dm.Attention("dot", context_size=5)))
    with pytest.raises(ValueError, match="context_size"):
        dm.compile(_spec(), 3, 3, key=jax.random.PRNGKey(0))
    spec = _spec()
    assert spec.decoder.devices[0].context_size == 10  # filled in from the encoder
    with pytest.raises(dm.ProgramError, match="encodes the context 'source'"):
        dm.Program(machine=spec, task=dm.Copy())
