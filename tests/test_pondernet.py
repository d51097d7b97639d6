"""PonderNet: the halting distribution, the prior, the loss it shapes, and a program that trains."""

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm
from difmachine.halting import geometric_prior, halting_distribution
from difmachine.testing import check_machine
from difmachine.training import loss_and_metrics

logits = st.lists(st.floats(-30, 30, allow_nan=False), min_size=1, max_size=12)


def reference_p(a: np.ndarray) -> np.ndarray:
    """Banino et al. eq. 2 in plain numpy: p_n = lambda_n prod_{j<n} (1 - lambda_j), lambda_N = 1."""
    lam = 1.0 / (1.0 + np.exp(-a.astype(np.float64)))
    lam[-1] = 1.0
    p, go_on = np.zeros_like(lam), 1.0
    for n, halt in enumerate(lam):
        p[n] = halt * go_on
        go_on *= 1.0 - halt
    return p


@given(logits)
def test_halting_distribution_matches_the_paper_sums_to_one_and_stays_finite(a):
    a = np.asarray(a, np.float32)
    p, log_p = jax.jit(halting_distribution)(jnp.asarray(a))
    np.testing.assert_allclose(p, reference_p(a), atol=1e-6)
    assert abs(float(jnp.sum(p)) - 1.0) < 1e-5 and float(jnp.min(p)) >= 0.0
    assert np.all(np.isfinite(log_p))
    grads = jax.grad(
        lambda x: halting_distribution(x)[0] @ jnp.arange(x.shape[0], dtype=jnp.float32)
    )(jnp.asarray(a))
    assert np.all(np.isfinite(grads))


@given(st.floats(0.01, 0.99), st.integers(1, 30))
def test_geometric_prior_is_the_truncated_renormalised_geometric(prior, steps):
    g, log_g = (np.asarray(x, np.float64) for x in geometric_prior(prior, steps))
    want = prior * (1 - prior) ** np.arange(steps)
    np.testing.assert_allclose(g, want / want.sum(), rtol=1e-5, atol=1e-30)
    np.testing.assert_allclose(
        log_g, np.log(want / want.sum()), rtol=1e-4
    )  # finite where g underflows


def test_pondernet_machine_passes_the_kit_and_reports_expected_steps():
    machine = dm.Machine(dm.RNN(8), halting=dm.PonderNet(max_steps=4))
    model = check_machine(machine, 3, 1, length=3, batch=2)
    ys, aux = model(jnp.ones((3, 3)), trace=True)
    p = aux["trace"]["halting"]["p"]
    assert p.shape == (3, 4) and np.allclose(p.sum(-1), 1.0, atol=1e-5)
    assert 1.0 <= float(aux["stats"]["steps"]) <= 4.0
    assert set(aux["losses"]) == {"kl"} and float(aux["losses"]["kl"]) >= 0.0
    assert model.statistics() == ("steps",)


def test_the_loss_is_the_task_loss_in_expectation_over_the_halting_step_plus_kl():
    """Training's loss equals sum_n p_n L(y_n) + beta KL, computed here by hand from every inner
    step's output; the outputs metrics see are the mode's."""
    task = dm.Parity(bits=6)
    halting = dm.PonderNet(max_steps=5, beta=0.3)
    model = dm.compile(dm.Machine(dm.RNN(8), halting=halting), 6, 1, key=jax.random.PRNGKey(1))
    batch = task.sample(np.random.default_rng(0), 4)
    total, metrics = loss_and_metrics(model, task, batch)

    def by_hand(x, t, m):
        ys, aux = model(x, m)
        outputs, p = aux["inner"]  # [T, N, 1], [T, N]
        expected = sum(task.loss(outputs[:, n], t, m * p[:, n]) for n in range(5))
        mode_out = outputs[:, int(jnp.argmax(p[0]))]
        np.testing.assert_allclose(ys, mode_out, rtol=1e-5, atol=1e-6)
        return expected, aux["losses"]["kl"]

    parts = [by_hand(batch.inputs[b], batch.targets[b], batch.mask[b]) for b in range(4)]
    expected = np.mean([float(e) for e, _ in parts])
    kl = np.mean([float(k) for _, k in parts])
    np.testing.assert_allclose(float(metrics["loss"]), expected, rtol=1e-5)
    np.testing.assert_allclose(float(total), expected + kl, rtol=1e-5)
    assert "steps" in metrics and "kl" in metrics


def test_pondernet_parity_learns_a_little_in_a_few_steps(tmp_path):
    """The program file trains: 150 steps of 8-bit parity lower the error below chance."""
    program = dm.load_program("programs/pondernet_parity.py", {"bits": "4", "steps": "150"})
    program = program.replace(batch_size=64, eval_every=150, eval_samples=256)
    from rich.console import Console

    from difmachine.training import train

    result = train(program, tmp_path / "run", console=Console(quiet=True))
    assert result.metrics["eval_error"] < 0.4, result.metrics
    assert 1.0 <= result.metrics["steps"] <= 20.0
