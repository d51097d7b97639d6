"""Pure Neural Turing Machine addressing (Graves, Wayne & Danihelka 2014, section 3.3).

Every function here takes one unbatched example; batch with ``jax.vmap``. The functions are
small, jit-able and differentiable, and each docstring states its equation. Devices compose them;
tests check them against plain numpy references.

Memories are ``[N, W]`` (slot ``i`` is the row ``M[i]``) as in the paper, or, with
``slots_last=True``, stored transposed as ``[W, N]`` (slot ``i`` is the column ``M[:, i]``). The
transposed layout puts the slot axis innermost, so the reductions over the memory (the key's dot
products, the slot norms, the read) run along contiguous memory: 1.26-1.33x for the whole NTM
training step at batch >= 16 on XLA:CPU (bench/FINDINGS.md). ``NTMMemory`` stores it that way.
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


def cosine_similarity(memory: Memory, key: Vector, *, slots_last: bool = False) -> Weights:
    """``K[i] = <M[i], k> / (sqrt(|M[i]|^2 + eps) sqrt(|k|^2 + eps))``, finite for zero rows/keys."""
    dots = key @ memory if slots_last else memory @ key
    mem_norm = jnp.sqrt(jnp.sum(memory * memory, axis=0 if slots_last else -1) + EPS)
    key_norm = jnp.sqrt(jnp.sum(key * key) + EPS)
    return dots / (mem_norm * key_norm)


def content_weights(
    memory: Memory, key: Vector, beta: Scalar, *, slots_last: bool = False
) -> Weights:
    """Content addressing: ``w[i] = softmax_i(beta * cosine(M[i], k))`` (equation 5)."""
    return jax.nn.softmax(beta * cosine_similarity(memory, key, slots_last=slots_last))


def interpolate(w_content: Weights, w_prev: Weights, gate: Scalar) -> Weights:
    """Interpolation gate: ``w = g * w_content + (1 - g) * w_prev`` (equation 7)."""
    return gate * w_content + (1.0 - gate) * w_prev


def shift(
    w: Weights, s: jax.Array, offsets: Sequence[int] = (-1, 0, 1), *, circular: bool = True
) -> Weights:
    """Convolution shift (equation 8), circular by default.

    ``s[j]`` is the probability of moving the focus by ``offsets[j]`` slots, so
    ``out[i] = sum_j s[j] * w[(i - offsets[j]) mod N]``. Convention: ``s`` one-hot on offset
    ``+1`` moves the focus from slot ``i`` to slot ``i + 1``, i.e. equals ``jnp.roll(w, 1)``.
    With ``circular=False`` nothing wraps around: ``w`` is zero outside ``0..N-1``, so weight
    moved past either end is lost (a sequence, unlike the NTM's memory, has ends).
    """
    offsets = tuple(int(o) for o in offsets)
    if s.shape[-1] != len(offsets):
        raise ValueError(f"shift distribution has {s.shape[-1]} entries for {len(offsets)} offsets")
    n = w.shape[-1]
    if circular:
        moved = [jnp.roll(w, o) for o in offsets]
    else:
        pad = max(abs(o) for o in offsets)
        padded = jnp.pad(w, (pad, pad))
        moved = [padded[pad - o : pad - o + n] for o in offsets]
    out = s[0] * moved[0]
    for j in range(1, len(offsets)):
        out = out + s[j] * moved[j]
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
    *,
    slots_last: bool = False,
) -> Weights:
    """The full addressing pipeline: content -> interpolate -> shift -> sharpen."""
    w = content_weights(memory, key, beta, slots_last=slots_last)
    w = interpolate(w, w_prev, gate)
    w = shift(w, shift_weights, offsets)
    return sharpen(w, gamma)


def read(memory: Memory, w: Weights, *, slots_last: bool = False) -> Vector:
    """Read vector ``r = sum_i w[i] M[i]`` (equation 2)."""
    return memory @ w if slots_last else w @ memory


def write(
    memory: Memory, w: Weights, erase: Vector, add: Vector, *, slots_last: bool = False
) -> Memory:
    """Erase then add (equations 3-4): ``M * (1 - w e^T) + w a^T``."""
    return write_many(memory, w[None], erase[None], add[None], slots_last=slots_last)


def write_many(
    memory: Memory, w: jax.Array, erase: jax.Array, add: jax.Array, *, slots_last: bool = False
) -> Memory:
    """Several write heads (``w: [H, N]``, ``erase, add: [H, W]``): all heads erase, then all add.

    ``M' = M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T``; with one head this is :func:`write`.
    Written as a loop of 2-D outer products over the (few, static) heads: the 3-D
    ``w[:, :, None] * erase[:, None, :]`` form made XLA:CPU's backward pass about 40% slower
    (bench/FINDINGS.md).
    """

    def outer(h, v):
        return jnp.outer(v[h], w[h]) if slots_last else jnp.outer(w[h], v[h])

    keep = 1.0 - outer(0, erase)
    added = outer(0, add)
    for h in range(1, w.shape[0]):
        keep = keep * (1.0 - outer(h, erase))
        added = added + outer(h, add)
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
