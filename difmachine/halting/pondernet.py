"""PonderNet (Banino, Balaguer & Blundell 2021, "PonderNet: Learning to Ponder").

At every input step the cell runs ``max_steps`` inner steps (a masked ``lax.scan``, so the
machine compiles once). After inner step ``n`` a halting unit gives the conditional probability
of halting there, ``lambda_n = sigmoid(w . h_n + b)``, with ``lambda_N = 1`` at the last step
``N = max_steps`` so that the walk always halts. The probability of halting exactly at ``n`` is

    p_n = lambda_n * prod_{j<n} (1 - lambda_j)                       (eq. 2)

Unlike ACT the steps are not averaged: the policy *shapes the loss*. Training takes the task's
loss in expectation over the halting step, every inner step's output scored on its own (eq. 6),

    L = sum_n p_n L_task(y_n) + beta * KL(p || p_G(lambda_p))

where ``p_G`` is the geometric prior ``p_G(n) = lambda_p (1 - lambda_p)^(n-1)`` truncated to
``N`` steps and renormalised; ``lambda_p`` sets the expected number of steps ``1 / lambda_p``
the prior favours, ``beta`` its weight. Evaluation (and the outputs training reports metrics on)
halts at the mode of ``p``: the output, the carried state and the devices' trace records are the
most likely step's. The statistic ``steps`` is the expected number of steps ``sum_n n p_n``.
"""

from __future__ import annotations

import math
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._init import glorot
from ..protocol import AbstractHalting, Halted, TraceField, check_counts, check_non_negative


def halting_distribution(logits: jax.Array) -> tuple[jax.Array, jax.Array]:
    """``(p[N], log p[N])`` from halting logits ``a[N]`` (``lambda_n = sigmoid(a_n)``) with the
    last step forced to halt (``lambda_N = 1``): ``p_n = lambda_n prod_{j<n} (1 - lambda_j)``.
    Computed in log space, so ``p`` sums to 1 and ``log p`` stays finite for any logits."""
    N = logits.shape[0]
    log_halt = jax.nn.log_sigmoid(logits).at[N - 1].set(0.0)
    log_go_on = jax.nn.log_sigmoid(-logits)
    before = jnp.concatenate([jnp.zeros((1,), logits.dtype), jnp.cumsum(log_go_on[:-1])])
    log_p = log_halt + before
    return jnp.exp(log_p), log_p


def geometric_prior(prior: float, steps: int) -> tuple[jax.Array, jax.Array]:
    """``(p_G[N], log p_G[N])``: the geometric distribution ``lambda_p (1 - lambda_p)^(n-1)``
    over ``n = 1..N``, truncated to ``N = steps`` and renormalised to sum to 1. The log is
    computed in log space, so it stays finite where ``p_G`` underflows (a large ``lambda_p``
    over many steps), which keeps ``KL(p || p_G)`` finite."""
    n = jnp.arange(steps, dtype=jnp.float32)
    log_g = math.log(prior) + n * math.log1p(-prior)
    log_g = log_g - jax.nn.logsumexp(log_g)
    return jnp.exp(log_g), log_g


class PonderNet(AbstractHalting):
    """PonderNet halting (see the module docstring).

    - ``max_steps``: inner steps per input step (the paper's ``N``, 20 for parity);
    - ``prior``: ``lambda_p`` of the geometric prior (expected ``1 / lambda_p`` steps);
    - ``beta``: the weight of ``KL(p || p_G)``;
    - ``halting_bias``: the halting unit's initial bias; ``None`` starts it at
      ``logit(prior)``, so the untrained walk already halts like the prior.
    """

    statistics: ClassVar[tuple[str, ...]] = ("steps",)

    max_steps: int = eqx.field(static=True, default=20)
    prior: float = eqx.field(static=True, default=0.2)
    beta: float = eqx.field(static=True, default=0.01)
    halting_bias: float | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_counts(self, positive=("max_steps",))
        if not 0.0 < self.prior < 1.0:
            raise ValueError(f"PonderNet prior (lambda_p) must be in (0, 1), got {self.prior}")
        check_non_negative("PonderNet", "beta", self.beta)

    @property
    def inner_steps(self) -> int:
        return self.max_steps

    def init_params(self, key, hidden, input_width):
        bias = self.halting_bias
        if bias is None:
            bias = math.log(self.prior / (1.0 - self.prior))
        return {"w": glorot(key, hidden, 1)[:, 0], "b": jnp.asarray(bias, jnp.float32)}

    def run(self, params, cell, carry, z):
        def inner(c, _):
            c, out = cell(c, z)
            return c, (c, out, out.h @ params["w"] + params["b"])

        _, (carries, outs, logits) = jax.lax.scan(inner, carry, None, length=self.max_steps)
        p, log_p = halting_distribution(logits)
        _, log_prior = geometric_prior(self.prior, self.max_steps)
        kl = jnp.sum(p * (log_p - log_prior))
        mode = jnp.argmax(p)
        pick = lambda tree: jax.tree.map(lambda x: x[mode], tree)
        steps = jnp.sum(p * jnp.arange(1, self.max_steps + 1, dtype=jnp.float32))
        return Halted(
            pick(carries),
            pick(outs),
            losses={"kl": self.beta * kl},
            stats={"steps": steps},
            trace={"p": p, "steps": steps},
            inner=(outs._replace(traces={}), p),
        )

    def trace_spec(self):
        return {
            "p": TraceField("heatmap", "halting distribution p_n", axis="inner step"),
            "steps": TraceField("scalars", "expected steps"),
        }


__all__ = ["PonderNet", "halting_distribution", "geometric_prior"]
