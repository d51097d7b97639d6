"""Adaptive Computation Time (Graves 2016)."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp

from .._init import full, glorot
from ..protocol import AbstractHalting, Halted, TraceField, check_counts, check_non_negative


def act_weights(h: jax.Array, epsilon: float) -> tuple[jax.Array, jax.Array, jax.Array]:
    """ACT halting arithmetic (Graves 2016, equations 6-11) for halting units ``h[M]``.

    ``N = min{n : sum_{k<=n} h_k >= 1 - epsilon}`` (1-based; ``N = M`` if the sum never gets
    there), remainder ``R = 1 - sum_{k<N} h_k``, and weights ``p_n = h_n`` for ``n < N``,
    ``p_N = R``, ``p_n = 0`` after. Returns ``(p[M], N, R)``; ``p`` sums to 1, ``R`` is in
    ``(0, 1]`` and carries gradient to every ``h_k`` with ``k < N`` (``N`` itself has none).
    """
    M = h.shape[0]
    cumulative = jnp.cumsum(h)
    crossed = cumulative >= 1.0 - epsilon
    index = jnp.where(jnp.any(crossed), jnp.argmax(crossed), M - 1)  # 0-based halting step
    before = cumulative - h  # sum_{k<n} h_k
    remainder = 1.0 - before[index]
    steps = jnp.arange(M)
    p = jnp.where(steps < index, h, jnp.where(steps == index, remainder, 0.0))
    return p, (index + 1).astype(jnp.float32), remainder


class ACT(AbstractHalting):
    """Adaptive Computation Time (Graves 2016) around the cell of any machine.

    At each input step the cell runs ``max_ponder`` inner steps in a ``lax.scan`` (so the machine
    compiles once and every example in a batch halts on its own); the first sees the input with
    a binary flag set, the others with it cleared. A sigmoid halting unit reads the controller
    output of each inner step; :func:`act_weights` turns the halting values into weights
    ``p_n``, and steps after the halting step get weight exactly 0. The step's output, the
    controller state, the device reads and the device states are the ``p``-weighted means over
    inner steps. Device states are combined like the controller state because a convex
    combination keeps every convex invariant (distributions stay distributions, strengths stay
    in [0, 1], memories stay bounded) and makes the carried state differentiable with respect to
    halting, as in the paper. Each inner step starts from the previous inner step's (unweighted)
    state; nothing is updated in place.

    Ponder cost ``N + R`` per input step, times ``time_penalty``, is the auxiliary loss
    ``"ponder_cost"`` (its gradient flows only through ``R``); the raw ``N + R`` is the trace
    record and statistic ``"ponder"``, reported by training and evaluation as the metric ``ponder``.

    ``halting_bias`` initialises the halting unit's bias. The paper used +1; later
    re-implementations found that it often collapses to halting after 1-2 steps for every input
    (the ponder cost keeps pushing h_1 up before the task has taught the network anything), while
    a negative bias starts with long pondering (sigmoid(-3) = 0.047, about 20 steps) that the time
    penalty then trims. Hence the default -3.
    """

    statistics: ClassVar[tuple[str, ...]] = ("ponder",)

    max_ponder: int = eqx.field(static=True, default=20)
    epsilon: float = eqx.field(static=True, default=0.01)
    time_penalty: float = eqx.field(static=True, default=1e-3)
    halting_bias: float = eqx.field(static=True, default=-3.0)

    def __check_init__(self):
        check_counts(self, positive=("max_ponder",))
        if not 0.0 < self.epsilon < 1.0:
            raise ValueError(f"ACT epsilon must be in (0, 1), got {self.epsilon}")
        check_non_negative("ACT", "time_penalty", self.time_penalty)

    def init_params(self, key, hidden, input_width):
        k_w, k_flag = jax.random.split(key)
        return {
            "w": glorot(k_w, hidden, 1)[:, 0],
            "b": full((), self.halting_bias),
            "flag": glorot(k_flag, 1, input_width)[0],
        }

    @property
    def inner_steps(self) -> int:
        return self.max_ponder

    def halting_unit(self, params, h: jax.Array) -> jax.Array:
        return jax.nn.sigmoid(h @ params["w"] + params["b"])

    def run(self, params, cell, carry, z):
        def inner(c, first):
            c, out = cell(c, z + first * params["flag"])
            return c, (c, out, self.halting_unit(params, out.h))

        flags = jnp.zeros((self.max_ponder,), jnp.float32).at[0].set(1.0)
        _, (carries, outs, h) = jax.lax.scan(inner, carry, flags)
        p, n_steps, remainder = act_weights(h, self.epsilon)
        mean = lambda tree: jax.tree.map(
            lambda x: jnp.tensordot(p, x, axes=1).astype(x.dtype), tree
        )
        ponder = n_steps + remainder
        return Halted(
            mean(carries),
            mean(outs),
            losses={"ponder_cost": self.time_penalty * ponder},
            stats={"ponder": ponder},
            trace={"ponder": ponder, "p": p},
        )

    def trace_spec(self):
        return {
            "p": TraceField("heatmap", "halting weights p_n", axis="inner step"),
            "ponder": TraceField("scalars", "ponder N + R"),
        }
