"""Halting policies: how many inner steps the cell takes per input step."""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

Cell = Callable[[Any, jax.Array], tuple[Any, Any]]


class AbstractHalting(eqx.Module):
    """Runs the machine's cell one or more times for one input step.

    ``run(cell, carry, z) -> (carry, out, losses)`` where ``cell(carry, z) -> (carry, out)`` is one
    inner step and ``losses`` is a dict of scalar auxiliary losses for this input step.
    """

    @abc.abstractmethod
    def run(
        self, cell: Cell, carry: Any, z: jax.Array
    ) -> tuple[Any, Any, dict[str, jax.Array]]: ...


class Fixed(AbstractHalting):
    """Exactly ``n`` inner steps per input step, each seeing the same input; the output is the
    last inner step's. ``Fixed(1)`` is the plain recurrent machine."""

    n: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        if not isinstance(self.n, int) or self.n < 1:
            raise ValueError(f"Fixed(n) needs n >= 1 inner steps, got {self.n!r}")

    def run(self, cell, carry, z):
        if self.n == 1:
            carry, out = cell(carry, z)
            return carry, out, {}

        def inner(c, _):
            c, out = cell(c, z)
            return c, out

        carry, outs = jax.lax.scan(inner, carry, None, length=self.n)
        return carry, jax.tree.map(lambda o: o[-1], outs), {}


def zero_loss() -> jax.Array:
    return jnp.zeros((), jnp.float32)


__all__ = ["AbstractHalting", "Fixed"]
