"""Stochastic devices: sampling, log-probabilities, the REINFORCE estimator, keys and training."""

import json
import textwrap

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from hypothesis.extra.numpy import arrays
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.protocol import Field, Sampled
from difmachine.stochastic import (
    Reinforce,
    bernoulli,
    categorical,
    reinforce_terms,
    reward_to_go_terms,
    sample_key,
)
from difmachine.training import make_train_step

# float32 values (the greedy action is compared with numpy's argmax of the same numbers) and no
# subnormals, which XLA on the CPU flushes to zero: [-1e-45, 0] would be a tie there
logit_vectors = st.lists(
    st.floats(-2.0, 2.0, width=32, allow_subnormal=False), min_size=2, max_size=5
).map(lambda v: np.asarray(v, np.float32))


class Choose(dm.AbstractStochasticDevice):
    """A toy stochastic device: picks one of ``n`` options; its read is the option's one-hot."""

    n: int = eqx.field(static=True, default=3)

    def interface(self):
        return {"logits": Field((self.n,), "identity")}

    @property
    def read_size(self):
        return self.n

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        return jnp.zeros((), jnp.float32)

    def sample_step(self, params, state, iface, key):
        c = categorical(iface["logits"], key)
        read = jax.nn.one_hot(c.action, self.n)
        trace = {"action": c.action, "log_prob": c.log_prob}
        return Sampled(read, state + c.action, trace, c.log_prob, c.entropy)


@settings(max_examples=5, deadline=None)
@given(logits=logit_vectors, seed=st.integers(0, 2**16))
def test_categorical_frequencies_match_probabilities(logits, seed):
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    actions = jax.vmap(lambda k: categorical(jnp.asarray(logits), k).action)(keys)
    freq = np.bincount(np.asarray(actions), minlength=len(logits)) / n
    p = np.asarray(jax.nn.softmax(logits))
    np.testing.assert_array_less(np.abs(freq - p), 5 * np.sqrt(p * (1 - p) / n) + 1e-3)


@settings(max_examples=5, deadline=None)
@given(logit=st.floats(-3.0, 3.0, width=32, allow_subnormal=False), seed=st.integers(0, 2**16))
def test_bernoulli_frequency_and_log_prob(logit, seed):
    n = 4000
    keys = jax.random.split(jax.random.PRNGKey(seed), n)
    out = jax.vmap(lambda k: bernoulli(jnp.float32(logit), k))(keys)
    p1 = 1 / (1 + np.exp(-logit))
    assert abs(np.mean(out.action) - p1) < 5 * np.sqrt(p1 * (1 - p1) / n) + 1e-3
    expected = np.where(np.asarray(out.action) == 1, np.log(p1), np.log(1 - p1))
    np.testing.assert_allclose(out.log_prob, expected, rtol=1e-4, atol=1e-5)
    assert bernoulli(jnp.float32(logit)).action == int(np.float32(logit) > 0)


@settings(max_examples=5, deadline=None)
@given(logits=logit_vectors, seed=st.integers(0, 2**16))
def test_categorical_log_prob_entropy_and_greedy(logits, seed):
    c = categorical(jnp.asarray(logits), jax.random.PRNGKey(seed))
    logp = np.log(np.asarray(jax.nn.softmax(logits), np.float64))
    np.testing.assert_allclose(c.log_prob, logp[int(c.action)], rtol=1e-4, atol=1e-5)
    np.testing.assert_allclose(c.entropy, -np.sum(np.exp(logp) * logp), rtol=1e-4, atol=1e-5)
    assert int(categorical(jnp.asarray(logits)).action) == int(np.argmax(logits))


@pytest.mark.parametrize("baseline", [0.0, 1.5])
def test_reinforce_is_unbiased_against_the_exact_gradient(baseline):
    """3 actions with known rewards: the mean of many REINFORCE gradient samples equals the
    gradient of the exact expected reward (the surrogate's gradient is its negative)."""
    theta = jnp.array([0.3, -0.5, 0.1])
    r = jnp.array([1.0, 3.0, -2.0])
    exact = jax.grad(lambda t: jnp.sum(jax.nn.softmax(t) * r))(theta)

    def sample_grad(key):
        def surrogate(t):
            c = categorical(t, key)
            terms = reinforce_terms(
                Reinforce(), r[c.action][None], c.log_prob[None], jnp.full(1, baseline), c.entropy
            )
            return terms["reinforce"]

        return -jax.grad(surrogate)(theta)

    n = 20000
    grads = np.asarray(jax.jit(jax.vmap(sample_grad))(jax.random.split(jax.random.PRNGKey(0), n)))
    se = grads.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(grads.mean(axis=0) - np.asarray(exact)) < 4 * se + 1e-3), (
        grads.mean(axis=0),
        exact,
        se,
    )


def test_reward_to_go_is_unbiased_against_the_exact_gradient():
    """Two steps, three actions each; step 0 earns ``r0[a0]``, step 1 ``r1[a0, a1]``. Weighing
    step 0's action by ``r0 + r1`` and step 1's by ``r1`` alone (minus per-step baselines) has
    the gradient of the exact expected total reward, found by enumerating the nine outcomes."""
    theta = jnp.array([[0.3, -0.5, 0.1], [-0.2, 0.4, 0.0]])
    r0 = jnp.array([1.0, 3.0, -2.0])
    r1 = jnp.array([[0.5, -1.0, 2.0], [1.5, 0.0, -0.5], [-2.0, 1.0, 0.3]])

    def expected(t):
        p0, p1 = jax.nn.softmax(t[0]), jax.nn.softmax(t[1])
        return p0 @ r0 + p0 @ r1 @ p1

    exact = jax.grad(expected)(theta)
    settings = Reinforce(credit="to_go")

    def sample_grad(key):
        k0, k1 = jax.random.split(key)

        def surrogate(t):
            c0, c1 = categorical(t[0], k0), categorical(t[1], k1)
            rewards = jnp.stack([r0[c0.action], r1[c0.action, c1.action]])[None]
            logp = jnp.stack([c0.log_prob, c1.log_prob])[None]
            terms = reward_to_go_terms(
                settings, rewards, logp, jnp.array([[0.7, -0.3]]), jnp.ones((1, 2)), jnp.zeros(1)
            )
            return terms["reinforce"]

        return -jax.grad(surrogate)(theta)

    n = 20000
    grads = np.asarray(jax.jit(jax.vmap(sample_grad))(jax.random.split(jax.random.PRNGKey(1), n)))
    se = grads.std(axis=0) / np.sqrt(n)
    assert np.all(np.abs(grads.mean(axis=0) - np.asarray(exact)) < 4 * se + 1e-3)


@settings(max_examples=5, deadline=None)
@given(
    rewards=arrays(np.float32, (3, 4), elements=st.floats(-3, 3, width=32)),
    logp=arrays(np.float32, (3, 4), elements=st.floats(-3, 0, width=32)),
    lengths=st.lists(st.integers(1, 4), min_size=3, max_size=3),
)
def test_reward_to_go_terms_against_a_loop(rewards, logp, lengths):
    """Against a plain loop: each real step weighs its log-prob by the rewards of its own and
    later real steps minus its baseline; padding steps add nothing; normalising divides by the
    standard deviation of the real steps' advantages."""
    base = np.full((3, 4), 0.5, np.float32)
    mask = (np.arange(4)[None, :] < np.array(lengths)[:, None]).astype(np.float32)
    adv = np.zeros((3, 4))
    for b in range(3):
        for t in range(lengths[b]):
            adv[b, t] = rewards[b, t : lengths[b]].sum() - base[b, t]
    real = mask > 0
    for normalise in (False, True):
        terms = reward_to_go_terms(
            Reinforce(credit="to_go", normalise=normalise, baseline=2.0),
            jnp.asarray(rewards),
            jnp.asarray(logp),
            jnp.asarray(base),
            jnp.asarray(mask),
            jnp.zeros(3),
        )
        scale = adv[real].std() + 1e-6 if normalise else 1.0
        want = -np.sum(adv / scale * logp * mask) / 3
        np.testing.assert_allclose(terms["reinforce"], want, rtol=1e-4, atol=1e-4)
        np.testing.assert_allclose(
            terms["baseline"], 2.0 * np.mean(adv[real] ** 2), rtol=1e-4, atol=1e-4
        )


def test_reinforce_terms_options():
    rewards, logp = jnp.array([1.0, 2.0, 4.0]), jnp.array([-1.0, -0.5, -2.0])
    base, ent = jnp.array([2.0, 2.0, 2.0]), jnp.array([0.5, 0.5, 0.5])
    plain = reinforce_terms(Reinforce(), rewards, logp, base, ent)
    np.testing.assert_allclose(plain["reinforce"], -np.mean((rewards - base) * logp))
    np.testing.assert_allclose(plain["baseline"], np.mean((rewards - base) ** 2))
    assert "entropy_bonus" not in plain
    both = reinforce_terms(Reinforce(normalise=True, entropy=0.1), rewards, logp, base, ent)
    adv = (rewards - base) / (np.std(rewards - base) + 1e-6)
    np.testing.assert_allclose(both["reinforce"], -np.mean(adv * logp), rtol=1e-5)
    np.testing.assert_allclose(both["entropy_bonus"], -0.05, rtol=1e-6)
    with pytest.raises(ValueError, match="reward must be one of"):
        Reinforce(reward="accuracy")
    with pytest.raises(ValueError, match="credit must be one of"):
        Reinforce(credit="step")
    with pytest.raises(ValueError, match="needs per-step rewards"):
        Reinforce(credit="to_go", reward="metric")


def _model(seed=0):
    return dm.compile(
        dm.Machine(dm.LSTM(8), {"choose": Choose()}), 2, 2, key=jax.random.PRNGKey(seed)
    )


def test_machine_samples_per_key_and_jit_equals_eager():
    model = _model()
    xs, mask = jnp.ones((6, 2)), jnp.array([1, 1, 1, 1, 0, 0], jnp.float32)
    greedy = model(xs, mask)[1]
    assert greedy["log_prob"].shape == () and "baseline" in greedy
    keys = jax.random.split(jax.random.PRNGKey(3), 8)
    run = lambda k: model(xs, mask, key=k, trace=True)[1]  # noqa: E731
    batched = jax.jit(jax.vmap(run))(keys)
    with jax.disable_jit():
        eager = run(keys[0])
    np.testing.assert_allclose(batched["log_prob"][0], eager["log_prob"], rtol=1e-5)
    np.testing.assert_array_equal(
        batched["trace"]["choose"]["action"][0], eager["trace"]["choose"]["action"]
    )
    actions = np.asarray(batched["trace"]["choose"]["action"])
    assert len({tuple(a[:4]) for a in actions}) > 1  # examples sample independently
    # the log-probability sums the real steps' only: padding adds nothing
    per_step = np.asarray(batched["trace"]["choose"]["log_prob"])
    np.testing.assert_allclose(batched["log_prob"], per_step[:, :4].sum(axis=1), rtol=1e-5)


def test_deterministic_machines_are_untouched():
    model = dm.compile(
        dm.Machine(dm.LSTM(8), dm.NeuralStack(4, capacity=8)), 2, 2, key=jax.random.PRNGKey(0)
    )
    assert not model.stochastic() and "baseline" not in model.params
    _, aux = model(jnp.ones((3, 2)), key=jax.random.PRNGKey(1))
    assert "log_prob" not in aux


def test_stochastic_device_needs_one_inner_step():
    with pytest.raises(ValueError, match="needs a halting policy with one inner step"):
        dm.Machine(dm.LSTM(8), Choose(), halting=dm.ACT())


def test_sample_keys_depend_only_on_seed_and_step():
    np.testing.assert_array_equal(sample_key(3, 7), sample_key(3, 7))
    assert not np.array_equal(sample_key(3, 7), sample_key(3, 8))
    assert not np.array_equal(sample_key(3, 7), sample_key(4, 7))


def _program(steps, **kw):
    return dm.Program(
        machine=dm.Machine(dm.LSTM(8), {"choose": Choose()}),
        task=dm.Copy(bits=2, min_length=1, max_length=3),
        optimizer=optax.adam(1e-2),
        batch_size=4,
        steps=steps,
        eval_every=100,
        eval_samples=4,
        log_every=1,
        **kw,
    )


def test_train_step_gradient_reaches_the_policy_and_baseline():
    program = _program(1, reinforce=Reinforce(entropy=0.01, normalise=True))
    model = dm.build(program)
    opt_state = program.optimizer.init(eqx.filter(model, eqx.is_array))
    batch = program.task.sample(np.random.default_rng(0), 4)
    step = make_train_step(program.task, program.optimizer, reinforce=program.reinforce)
    new, _, metrics = step(model, opt_state, batch, sample_key(0, 0))
    assert {"reinforce", "baseline", "entropy_bonus", "entropy"} <= set(metrics)
    assert float(metrics["refused"]) == 0
    assert not np.allclose(new.params["baseline"]["b"], model.params["baseline"]["b"])
    per_step = make_train_step(
        program.task, program.optimizer, reinforce=Reinforce(credit="to_go", normalise=True)
    )
    new2, _, m4 = per_step(model, opt_state, batch, sample_key(0, 0))
    assert np.isfinite(m4["reinforce"]) and float(m4["refused"]) == 0
    assert not np.allclose(new2.params["baseline"]["w"], model.params["baseline"]["w"])
    # the same key, the same step: sampling is a function of the key only
    again, _, m2 = step(model, opt_state, batch, sample_key(0, 0))
    np.testing.assert_array_equal(m2["reinforce"], metrics["reinforce"])
    # chunked (two chunks of two examples): the chunks take their examples' own keys
    chunked = make_train_step(program.task, program.optimizer, 2, program.reinforce)
    _, _, m3 = chunked(model, opt_state, batch, sample_key(0, 0))
    assert float(m3["refused"]) == 0 and np.isfinite(m3["reinforce"])


def test_resume_replays_the_same_samples(tmp_path):
    whole = dm.train(_program(4), tmp_path / "whole")
    dm.train(_program(2), tmp_path / "half")
    resumed = dm.train(_program(4), tmp_path / "half", resume=True)
    # a checkpoint is a JSON header line (with the time) and then the serialised leaves
    leaves = lambda run: (tmp_path / run / "checkpoint.eqx").read_bytes().split(b"\n", 1)[1]  # noqa: E731
    assert leaves("whole") == leaves("half")
    assert whole.step == resumed.step == 4


PROGRAM = """
import equinox as eqx, jax, jax.numpy as jnp, optax
import difmachine as dm
from difmachine.protocol import Field, Sampled
from difmachine.stochastic import categorical

class Choose(dm.AbstractStochasticDevice):
    n: int = eqx.field(static=True, default=3)
    def interface(self):
        return {"logits": Field((self.n,), "identity")}
    @property
    def read_size(self):
        return self.n
    def init_params(self, key):
        return {}
    def init_state(self, params, context=None):
        return jnp.zeros(())
    def sample_step(self, params, state, iface, key):
        c = categorical(iface["logits"], key)
        return Sampled(jax.nn.one_hot(c.action, self.n), state, {}, c.log_prob, c.entropy)

program = dm.Program(
    machine=dm.Machine(dm.LSTM(8), {"choose": Choose()}),
    task=dm.Copy(bits=2, min_length=1, max_length=3),
    optimizer=optax.adam(1e-2), batch_size=4, steps=3, eval_every=3, eval_samples=4, log_every=1,
    reinforce=dm.Reinforce(entropy=0.01),
)
"""


def test_cli_trains_and_evaluates_a_stochastic_machine(tmp_path):
    program = tmp_path / "choose.py"
    program.write_text(textwrap.dedent(PROGRAM))
    runner = CliRunner()
    out = tmp_path / "run"
    result = runner.invoke(app, ["run", str(program), "--out", str(out)])
    assert result.exit_code == 0, result.output
    lines = [json.loads(x) for x in (out / "metrics.jsonl").read_text().splitlines()]
    assert any("reinforce" in x for x in lines)
    for flag in ([], ["--sample"]):
        result = runner.invoke(app, ["eval", str(out), "--samples", "4", "--length", "2", *flag])
        assert result.exit_code == 0, result.output


def test_a_sweep_of_a_stochastic_machine_runs_its_seeds_as_processes(tmp_path, monkeypatch):
    """The vmapped sweep step draws no sampling keys: a sampling machine would silently train on
    its most likely actions, so each seed becomes a `difmachine run` (which draws them)."""
    import io

    from rich.console import Console

    import difmachine.sweep as sweep_mod

    calls = []
    monkeypatch.setattr(sweep_mod, "_run_processes", lambda *a, **k: calls.append(a[3]) or False)
    program = tmp_path / "choose.py"
    program.write_text(textwrap.dedent(PROGRAM))
    out = io.StringIO()
    result = sweep_mod.sweep(program, [0, 1], tmp_path / "sw", console=Console(file=out))
    assert result["mode"] == "processes" and len(calls) == 1
    assert "samples" in out.getvalue() and not (tmp_path / "sw" / "seed_0").exists()
