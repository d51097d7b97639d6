"""Discrete actions: sampling with log-probabilities, and the REINFORCE estimator (ground floor).

A stochastic device (:class:`~difmachine.protocol.AbstractStochasticDevice`) samples its actions
with :func:`categorical` / :func:`bernoulli`, which return the action, its log-probability and
the distribution's entropy; with ``key=None`` they take the most likely action (evaluation).
The machine sums the log-probabilities of one example's actions over its devices and steps;
training then adds :func:`reinforce_terms` to the loss.

The estimator (Williams 1992). For an example whose actions ``a`` have probability
``p_theta(a)`` and whose reward is ``R(a)``, ``grad E[R] = E[(R - b) grad log p_theta(a)]`` for
any baseline ``b`` independent of ``a``; the surrogate loss
``-(stop_gradient(R - b)) * log p_theta(a)`` has that gradient (negated). The task loss itself is
also differentiated through the continuous parts as usual, so the total gradient is the pathwise
gradient plus the score-function term.
"""

from __future__ import annotations

from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .protocol import check_non_negative

SAMPLE_STREAM = 2  # separates the sampling keys from the parameters' key (PRNGKey(seed))
REWARDS = ("loss", "metric")
CREDITS = ("sequence", "to_go")


class Choice(NamedTuple):
    """A sampled (or most likely) action with its log-probability and the entropy of the
    distribution it came from."""

    action: jax.Array
    log_prob: jax.Array
    entropy: jax.Array


def categorical(logits: jax.Array, key: jax.Array | None = None) -> Choice:
    """One action of ``softmax(logits)`` (last axis; leading axes are independent choices, whose
    log-probabilities and entropies are summed). ``key=None``: the most likely action."""
    logp = jax.nn.log_softmax(logits, axis=-1)
    if key is None:
        action = jnp.argmax(logits, axis=-1)
    else:
        action = jax.random.categorical(key, logits, axis=-1)
    log_prob = jnp.take_along_axis(logp, action[..., None], axis=-1)[..., 0]
    entropy = -jnp.sum(jnp.exp(logp) * logp, axis=-1)
    return Choice(action, jnp.sum(log_prob), jnp.sum(entropy))


def bernoulli(logit: jax.Array, key: jax.Array | None = None) -> Choice:
    """``1`` with probability ``sigmoid(logit)``, else ``0`` (elementwise; log-probabilities and
    entropies summed). ``key=None``: the most likely outcome (``1`` iff ``logit > 0``)."""
    if key is None:
        action = logit > 0
    else:
        action = jax.random.bernoulli(key, jax.nn.sigmoid(logit))
    log_p1, log_p0 = jax.nn.log_sigmoid(logit), jax.nn.log_sigmoid(-logit)
    log_prob = jnp.where(action, log_p1, log_p0)
    p1 = jax.nn.sigmoid(logit)
    entropy = -(p1 * log_p1 + (1.0 - p1) * log_p0)
    return Choice(action.astype(jnp.int32), jnp.sum(log_prob), jnp.sum(entropy))


class Reinforce(eqx.Module):
    """How a program with stochastic devices is trained (``Program(reinforce=...)``).

    - ``reward``: the per-example reward, ``"loss"`` (the default): minus the example's task
      loss, dense and defined for every task; ``"metric"``: minus the task's main metric of the
      example (e.g. bit errors), what the papers reward.
    - ``baseline``: weight of the baseline's squared error ``(R - b)^2``; the baseline ``b`` is a
      small value head of the machine (a linear map of its mean controller output, which it
      does not train).
    - ``normalise``: divide the batch's advantages ``R - b`` by their standard deviation.
    - ``entropy``: weight of an entropy bonus (``- entropy * H``, the summed entropies of the
      example's choices), which keeps the policy from collapsing early.
    - ``credit``: ``"sequence"`` (the default) weighs every action of an example by the
      example's whole reward; ``"to_go"`` weighs the actions of step ``t`` by the reward still to
      come, ``sum_{s >= t} r_s`` with ``r_s`` minus step ``s``'s task loss, against a baseline of
      its own per step (a value head on ``h_t``): the variance reduction of Zaremba & Sutskever
      2015. Rewards earned before step ``t`` do not depend on its actions, so dropping them
      leaves the estimate unbiased and less noisy. It needs ``reward="loss"`` and a task whose
      loss is a sum over steps (every shipped task's is).
    """

    reward: str = eqx.field(static=True, default="loss")
    baseline: float = eqx.field(static=True, default=1.0)
    normalise: bool = eqx.field(static=True, default=False)
    entropy: float = eqx.field(static=True, default=0.0)
    credit: str = eqx.field(static=True, default="sequence")

    def __check_init__(self):
        if self.reward not in REWARDS:
            raise ValueError(
                f"Reinforce reward must be one of {', '.join(REWARDS)}, got {self.reward!r}"
            )
        if self.credit not in CREDITS:
            raise ValueError(
                f"Reinforce credit must be one of {', '.join(CREDITS)}, got {self.credit!r}"
            )
        if self.credit == "to_go" and self.reward != "loss":
            raise ValueError(
                "Reinforce credit='to_go' needs per-step rewards, which reward='loss' gives (a "
                "task's metric is per sequence); use reward='loss'"
            )
        for name in ("baseline", "entropy"):
            check_non_negative("Reinforce", name, getattr(self, name))


def reinforce_terms(
    settings: Reinforce,
    rewards: jax.Array,
    log_probs: jax.Array,
    baselines: jax.Array,
    entropies: jax.Array,
) -> dict[str, jax.Array]:
    """The scalar loss terms REINFORCE adds for a batch (``[B]`` per-example arrays):

    - ``reinforce``: ``-mean((R - b) * log p)`` with ``R - b`` held constant (its gradient is
      minus the score-function estimate of ``grad E[R]``);
    - ``baseline``: ``settings.baseline * mean((R - b)^2)`` (trains only ``b``);
    - ``entropy_bonus``: ``-settings.entropy * mean(H)`` (only when ``settings.entropy > 0``).

    It is :func:`reward_to_go_terms` with one step per example: the reward to go of the only
    step is the example's reward.
    """
    r, logp, b = (a[:, None] for a in (rewards, log_probs, baselines))
    return reward_to_go_terms(settings, r, logp, b, jnp.ones_like(r), entropies)


def reward_to_go_terms(
    settings: Reinforce,
    step_rewards: jax.Array,
    step_log_probs: jax.Array,
    step_baselines: jax.Array,
    mask: jax.Array,
    entropies: jax.Array,
) -> dict[str, jax.Array]:
    """:func:`reinforce_terms` with per-step credit (``Reinforce(credit="to_go")``), from
    ``[B, T]`` arrays: each step's reward, the summed log-probability of its actions, its
    baseline, and ``mask`` (1 on real steps); ``entropies[B]`` as there.

    - ``reinforce``: ``-sum_t (G_t - b_t) log p_t`` averaged over the batch, with the return to
      go ``G_t = sum_{s >= t} r_s`` and ``G_t - b_t`` held constant (normalised by its standard
      deviation over the batch's real steps with ``settings.normalise``);
    - ``baseline``: ``settings.baseline`` times the mean of ``(G_t - b_t)^2`` over real steps;
    - ``entropy_bonus`` as in :func:`reinforce_terms`.
    """
    mask = mask.astype(step_rewards.dtype)
    rewards = jax.lax.stop_gradient(step_rewards * mask)
    to_go = jnp.flip(jnp.cumsum(jnp.flip(rewards, -1), axis=-1), -1)
    steps = jnp.maximum(jnp.sum(mask), 1.0)
    advantage = (to_go - jax.lax.stop_gradient(step_baselines)) * mask
    if settings.normalise:
        mean = jnp.sum(advantage) / steps
        std = jnp.sqrt(jnp.sum(((advantage - mean) * mask) ** 2) / steps)
        advantage = advantage / (std + 1e-6)
    B = step_rewards.shape[0]
    terms = {
        "reinforce": -jnp.sum(advantage * step_log_probs * mask) / B,
        "baseline": settings.baseline * jnp.sum(((to_go - step_baselines) * mask) ** 2) / steps,
    }
    if settings.entropy > 0:
        terms["entropy_bonus"] = -settings.entropy * jnp.mean(entropies)
    return terms


def sample_key(seed: int, step: int, stream: int = SAMPLE_STREAM) -> jax.Array:
    """The sampling key of training step ``step``: a function of (seed, step) only, so a resumed
    run samples exactly what the uninterrupted run would have."""
    return jax.random.fold_in(jax.random.fold_in(jax.random.PRNGKey(seed), stream), step)


__all__ = [
    "Choice",
    "Reinforce",
    "bernoulli",
    "categorical",
    "reinforce_terms",
    "reward_to_go_terms",
    "sample_key",
]
