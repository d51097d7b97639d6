"""Parameter initialisers (float32 everywhere: a weakly typed or float64 leaf would recompile)."""

from __future__ import annotations

import math

import jax
import jax.numpy as jnp

DTYPE = jnp.float32


def glorot(key: jax.Array, fan_in: int, fan_out: int) -> jax.Array:
    """A ``[fan_in, fan_out]`` matrix, uniform with Glorot's limit ``sqrt(6 / (in + out))``."""
    limit = math.sqrt(6.0 / max(1, fan_in + fan_out))
    return jax.random.uniform(key, (fan_in, fan_out), DTYPE, -limit, limit)


def zeros(*shape: int) -> jax.Array:
    return jnp.zeros(shape, DTYPE)


def full(shape: tuple[int, ...], value: float) -> jax.Array:
    return jnp.full(shape, value, DTYPE)
