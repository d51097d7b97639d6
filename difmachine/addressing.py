"""Pure Neural Turing Machine addressing (Graves, Wayne & Danihelka 2014, section 3.3).

Every function here takes one unbatched example; batch with ``jax.vmap``. The functions are
small, jit-able and differentiable, and each docstring states its equation. Devices compose them;
tests check them against plain numpy references.
"""

from __future__ import annotations

from collections.abc import Sequence

import jax
import jax.numpy as jnp

from ._types import Memory, Scalar, Vector, Weights

#: Added under square roots and to weights before powers, so that all-zero memories, keys and
#: weights give finite values *and* finite gradients.
EPS = 1e-8
#: Floor added to weights before sharpening, so ``w ** gamma`` has a finite gradient in gamma at
#: ``w = 0`` (where ``d/dgamma w**gamma = w**gamma log w`` would be ``0 * -inf``).
SHARPEN_FLOOR = 1e-12


def cosine_similarity(memory: Memory, key: Vector) -> Weights:
    """``K[i] = <M[i], k> / (sqrt(|M[i]|^2 + eps) sqrt(|k|^2 + eps))``, finite for zero rows/keys."""
    dots = memory @ key
    mem_norm = jnp.sqrt(jnp.sum(memory * memory, axis=-1) + EPS)
    key_norm = jnp.sqrt(jnp.sum(key * key) + EPS)
    return dots / (mem_norm * key_norm)


def content_weights(memory: Memory, key: Vector, beta: Scalar) -> Weights:
    """Content addressing: ``w[i] = softmax_i(beta * cosine(M[i], k))`` (equation 5)."""
    return jax.nn.softmax(beta * cosine_similarity(memory, key))


def interpolate(w_content: Weights, w_prev: Weights, gate: Scalar) -> Weights:
    """Interpolation gate: ``w = g * w_content + (1 - g) * w_prev`` (equation 7)."""
    return gate * w_content + (1.0 - gate) * w_prev


def shift(w: Weights, s: jax.Array, offsets: Sequence[int] = (-1, 0, 1)) -> Weights:
    """Circular convolution shift (equation 8).

    ``s[j]`` is the probability of moving the focus by ``offsets[j]`` slots, so
    ``out[i] = sum_j s[j] * w[(i - offsets[j]) mod N]``. Convention: ``s`` one-hot on offset
    ``+1`` moves the focus from slot ``i`` to slot ``i + 1``, i.e. equals ``jnp.roll(w, 1)``.
    """
    offsets = tuple(int(o) for o in offsets)
    if s.shape[-1] != len(offsets):
        raise ValueError(f"shift distribution has {s.shape[-1]} entries for {len(offsets)} offsets")
    out = s[0] * jnp.roll(w, offsets[0])
    for j in range(1, len(offsets)):
        out = out + s[j] * jnp.roll(w, offsets[j])
    return out


def sharpen(w: Weights, gamma: Scalar) -> Weights:
    """Sharpening (equation 9): ``w[i] ** gamma / sum_j w[j] ** gamma`` with ``gamma >= 1``.

    A floor of ``SHARPEN_FLOOR`` is added to ``w`` first, so zero weights keep finite gradients.
    """
    powered = jnp.exp(gamma * jnp.log(w + SHARPEN_FLOOR))
    return powered / jnp.sum(powered)


def address(
    memory: Memory,
    key: Vector,
    beta: Scalar,
    gate: Scalar,
    shift_weights: jax.Array,
    gamma: Scalar,
    w_prev: Weights,
    offsets: Sequence[int] = (-1, 0, 1),
) -> Weights:
    """The full addressing pipeline: content -> interpolate -> shift -> sharpen."""
    w = content_weights(memory, key, beta)
    w = interpolate(w, w_prev, gate)
    w = shift(w, shift_weights, offsets)
    return sharpen(w, gamma)


def read(memory: Memory, w: Weights) -> Vector:
    """Read vector ``r = sum_i w[i] M[i]`` (equation 2)."""
    return w @ memory


def write(memory: Memory, w: Weights, erase: Vector, add: Vector) -> Memory:
    """Erase then add (equations 3-4): ``M * (1 - w e^T) + w a^T``."""
    return memory * (1.0 - jnp.outer(w, erase)) + jnp.outer(w, add)


def write_many(memory: Memory, w: jax.Array, erase: jax.Array, add: jax.Array) -> Memory:
    """Several write heads (``w: [H, N]``, ``erase, add: [H, W]``): all heads erase, then all add.

    ``M' = M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T``; with one head this is :func:`write`.
    Written as a loop of 2-D outer products over the (few, static) heads: the 3-D
    ``w[:, :, None] * erase[:, None, :]`` form made XLA:CPU's backward pass about 40% slower
    (bench/FINDINGS.md).
    """
    keep = 1.0 - jnp.outer(w[0], erase[0])
    added = jnp.outer(w[0], add[0])
    for h in range(1, w.shape[0]):
        keep = keep * (1.0 - jnp.outer(w[h], erase[h]))
        added = added + jnp.outer(w[h], add[h])
    return memory * keep + added


__all__ = [
    "cosine_similarity",
    "content_weights",
    "interpolate",
    "shift",
    "sharpen",
    "address",
    "read",
    "write",
    "write_many",
]
