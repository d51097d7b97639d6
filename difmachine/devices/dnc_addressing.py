"""Pure Differentiable Neural Computer addressing (Graves et al. 2016, Methods).

"Hybrid computing using a neural network with dynamic external memory", Nature 538. Every
function takes one unbatched example (batch with ``jax.vmap``) and states its equation. ``N`` is
the number of slots, ``W`` the slot width, ``R`` the number of read heads. The DNC has one write
head, as in the paper.

Memories are ``[W, N]`` (slots last, slot ``i`` is the column ``M[:, i]``), the layout
``NTMMemory`` uses for speed (``difmachine.addressing``). The link matrix ``L[i, j]`` is the
degree to which slot ``i`` was written to right after slot ``j``.

One step of the paper, in order:

1. retention ``psi`` from the free gates and the previous read weights (:func:`retention`);
2. usage from the previous usage, the previous write weights and ``psi`` (:func:`usage_update`);
3. allocation weighting from usage (:func:`allocation_weights`);
4. write weighting, gated between allocation and a content lookup in ``M_{t-1}``
   (:func:`write_weights`), then erase and add (``difmachine.addressing.write``);
5. link matrix and precedence (:func:`link_update`, :func:`precedence_update`);
6. read weighting from read modes over backward, content (in ``M_t``) and forward weightings
   (:func:`directional_weights`, :func:`read_weights`).
"""

from __future__ import annotations

import jax
import jax.numpy as jnp
from jax import lax

from .. import addressing
from .._types import Scalar, Weights

#: usages in the same bin of this width count as equal when sorting the free list, and are taken
#: in slot order: jit and eager round a usage differently in its last bit, which would otherwise
#: reorder near-equal usages and change the allocation (a power of two, so binning is exact).
TIE_BIN = 2.0**-10
#: usage is squeezed into ``[USAGE_EPS, 1]`` before allocating (as deepmind/dnc does), so the
#: product of the usages below a slot never reaches exactly 0 and its gradient stays informative.
USAGE_EPS = 1e-6


def content_weights(memory: jax.Array, key: jax.Array, strength: Scalar) -> Weights:
    """Content weighting ``C(M, k, beta)[i] = softmax_i(beta * D(k, M[i]))`` with ``D`` the
    cosine similarity (Methods, "Content-based addressing"); ``memory`` is ``[W, N]``.

    Finite, with finite gradients, for an all-zero memory or key (``addressing.EPS``)."""
    return addressing.content_weights(memory, key, strength, slots_last=True)


def retention(free_gates: jax.Array, prev_read_weights: jax.Array) -> Weights:
    """Memory retention ``psi_t = prod_i (1 - f_t^i w_{t-1}^{r,i})`` over the ``R`` read heads:
    ``free_gates`` is ``[R]`` in ``[0, 1]``, ``prev_read_weights`` is ``[R, N]``."""
    return jnp.prod(1.0 - free_gates[:, None] * prev_read_weights, axis=0)


def usage_update(prev_usage: Weights, prev_write_weights: Weights, psi: Weights) -> Weights:
    """Usage ``u_t = (u_{t-1} + w^w_{t-1} - u_{t-1} * w^w_{t-1}) * psi_t``: a slot becomes used
    when written, and is freed by a read head whose free gate is open. Stays in ``[0, 1]``."""
    return (prev_usage + prev_write_weights - prev_usage * prev_write_weights) * psi


def free_list(usage: Weights, tie_bin: float = TIE_BIN) -> jax.Array:
    """The free list ``phi_t``: slot indices sorted by ascending usage, ties broken by the lower
    slot index.

    A sort on the integer key pair ``(floor(u / tie_bin), index)``: usages closer than
    ``tie_bin`` (in the same bin) are taken in slot order, so the order is exact and the same
    under jit and eager (a float argsort flips near-equal usages whose last bits differ between
    the two). ``tie_bin=0`` sorts on ``(u, index)`` exactly."""
    index = jnp.arange(usage.shape[0], dtype=jnp.int32)
    key = jnp.floor(usage / tie_bin).astype(jnp.int32) if tie_bin > 0 else usage
    _, order = lax.sort((key, index), num_keys=2)
    return order


def allocation_weights(usage: Weights, tie_bin: float = TIE_BIN) -> Weights:
    """Allocation weighting ``a_t[phi_t[j]] = (1 - u_t[phi_t[j]]) prod_{i<j} u_t[phi_t[i]]``
    with ``phi_t`` the :func:`free_list` (near-equal usages in slot order, see ``tie_bin``): the
    least used slot gets the most weight.

    Usage is first squeezed into ``[USAGE_EPS, 1]`` (``u <- eps + (1 - eps) u``). The result is
    non-negative with ``sum <= 1``; no gradient flows through the sort order itself."""
    usage = USAGE_EPS + (1.0 - USAGE_EPS) * usage
    order = free_list(usage, tie_bin)
    sorted_usage = usage[order]
    before = jnp.cumprod(jnp.concatenate([jnp.ones((1,), usage.dtype), sorted_usage[:-1]]))
    sorted_alloc = (1.0 - sorted_usage) * before
    return jnp.zeros_like(usage).at[order].set(sorted_alloc)


def write_weights(
    allocation: Weights, content: Weights, allocation_gate: Scalar, write_gate: Scalar
) -> Weights:
    """Write weighting ``w^w_t = g^w [g^a a_t + (1 - g^a) c^w_t]``: the allocation gate picks
    between a fresh slot and a content lookup, the write gate whether to write at all."""
    return write_gate * (allocation_gate * allocation + (1.0 - allocation_gate) * content)


def erase_and_add(
    memory: jax.Array, weights: Weights, erase: jax.Array, add: jax.Array
) -> jax.Array:
    """``M_t = M_{t-1} * (E - w^w e^T) + w^w v^T`` on a ``[W, N]`` memory (E all ones)."""
    return addressing.write(memory, weights, erase, add, slots_last=True)


def precedence_update(prev_precedence: Weights, weights: Weights) -> Weights:
    """Precedence ``p_t = (1 - sum_i w^w_t[i]) p_{t-1} + w^w_t``: how much each slot was the
    last one written to. ``sum p_t <= 1`` whenever ``sum p_{t-1} <= 1`` and ``sum w^w_t <= 1``."""
    return (1.0 - jnp.sum(weights)) * prev_precedence + weights


def link_update(prev_link: jax.Array, weights: Weights, prev_precedence: Weights) -> jax.Array:
    """Temporal link matrix ``L_t[i, j] = (1 - w[i] - w[j]) L_{t-1}[i, j] + w[i] p_{t-1}[j]``
    with ``L_t[i, i] = 0`` (``w = w^w_t``, ``p_{t-1}`` the previous precedence). Rows and columns
    keep ``sum <= 1``."""
    n = weights.shape[0]
    link = (1.0 - weights[:, None] - weights[None, :]) * prev_link
    link = link + weights[:, None] * prev_precedence[None, :]
    return link * (1.0 - jnp.eye(n, dtype=link.dtype))


def directional_weights(link: jax.Array, prev_read_weights: jax.Array) -> tuple:
    """Forward and backward weightings of each read head (``prev_read_weights`` is ``[R, N]``):
    ``f^i_t = L_t w^{r,i}_{t-1}`` (the slots written after those read) and
    ``b^i_t = L_t^T w^{r,i}_{t-1}`` (the slots written before). Returns ``(forward, backward)``."""
    forward = prev_read_weights @ link.T
    backward = prev_read_weights @ link
    return forward, backward


def read_weights(
    modes: jax.Array, backward: jax.Array, content: jax.Array, forward: jax.Array
) -> jax.Array:
    """Read weighting ``w^{r,i}_t = pi^i[1] b^i_t + pi^i[2] c^{r,i}_t + pi^i[3] f^i_t``:
    ``modes`` is ``[R, 3]`` (a distribution per head over backward, content, forward)."""
    return modes[:, 0:1] * backward + modes[:, 1:2] * content + modes[:, 2:3] * forward


# -- sparse links (Rae et al. 2016) ----------------------------------------------------------------


def sparse_link_init(slots: int, k: int) -> dict:
    """An empty K-sparse link matrix: ``out_idx, out_val [N, K]`` hold row ``i``'s entries
    ``L[i, out_idx[i, k]] = out_val[i, k]`` (the slots written before ``i``), ``in_idx, in_val``
    column ``j``'s entries ``L[in_idx[j, k], j] = in_val[j, k]`` (the slots written after ``j``).
    A zero value is an empty entry."""
    idx = jnp.zeros((slots, k), jnp.int32)
    val = jnp.zeros((slots, k), jnp.float32)
    return {"out_idx": idx, "out_val": val, "in_idx": idx, "in_val": val}


def _merge(old_idx, old_val, new_idx, new_val):
    """One row of a sparse table: add the ``new`` entries (distinct indices) to the ``old`` ones
    (distinct indices among the non-empty), summing entries with the same index, and keep the K
    largest."""
    live = jnp.where(old_val > 0, old_idx, -1)
    same = live[:, None] == new_idx[None, :]  # [K old, K new]
    old_val = old_val + jnp.sum(jnp.where(same, new_val[None, :], 0.0), axis=1)
    new_val = jnp.where(jnp.any(same, axis=0), 0.0, new_val)
    idx = jnp.concatenate([old_idx, new_idx])
    val, keep = lax.top_k(jnp.concatenate([old_val, new_val]), old_idx.shape[0])
    return idx[keep], val


def sparse_link_update(links: dict, weights: Weights, prev_precedence: Weights) -> dict:
    """The link update of :func:`link_update` on a K-sparse link matrix (Rae et al. 2016,
    "Scaling memory-augmented neural networks with sparse reads and writes", the SDNC).

    Every stored entry decays by ``(1 - w[i] - w[j])`` (``O(N K)``); the new entries
    ``w[i] p_{t-1}[j]`` are added only for the K largest write weights ``i`` and the K largest
    precedences ``j`` (``i != j``); each row and column keeps its K largest entries. A step is
    ``O(N K + N log K + K^3)`` instead of ``O(N^2)``. With ``K = N`` it equals the dense
    update. Rows and columns still sum to at most 1 (truncation only removes mass)."""
    k = links["out_idx"].shape[1]
    out_val = links["out_val"] * (1.0 - weights[:, None] - weights[links["out_idx"]])
    in_val = links["in_val"] * (1.0 - weights[links["in_idx"]] - weights[:, None])
    w_val, w_idx = lax.top_k(weights, k)
    p_val, p_idx = lax.top_k(prev_precedence, k)
    w_idx, p_idx = w_idx.astype(jnp.int32), p_idx.astype(jnp.int32)
    new = w_val[:, None] * p_val[None, :] * (w_idx[:, None] != p_idx[None, :])  # [K rows, K cols]
    rows_idx, rows_val = jax.vmap(_merge)(
        links["out_idx"][w_idx], out_val[w_idx], jnp.broadcast_to(p_idx, (k, k)), new
    )
    cols_idx, cols_val = jax.vmap(_merge)(
        links["in_idx"][p_idx], in_val[p_idx], jnp.broadcast_to(w_idx, (k, k)), new.T
    )
    return {
        "out_idx": links["out_idx"].at[w_idx].set(rows_idx),
        "out_val": out_val.at[w_idx].set(rows_val),
        "in_idx": links["in_idx"].at[p_idx].set(cols_idx),
        "in_val": in_val.at[p_idx].set(cols_val),
    }


def sparse_directional_weights(links: dict, prev_read_weights: jax.Array) -> tuple:
    """:func:`directional_weights` on a K-sparse link matrix, ``O(R N K)``: forward
    ``f[i] = sum_k out_val[i, k] w[out_idx[i, k]]``, backward
    ``b[j] = sum_k in_val[j, k] w[in_idx[j, k]]``. Returns ``(forward, backward)``."""
    forward = jnp.sum(links["out_val"][None] * prev_read_weights[:, links["out_idx"]], axis=-1)
    backward = jnp.sum(links["in_val"][None] * prev_read_weights[:, links["in_idx"]], axis=-1)
    return forward, backward


def sparse_link_dense(links: dict) -> jax.Array:
    """The ``[N, N]`` matrix of the row table (for tests and traces)."""
    n = links["out_idx"].shape[0]
    rows = jnp.broadcast_to(jnp.arange(n)[:, None], links["out_idx"].shape)
    return (
        jnp.zeros((n, n), links["out_val"].dtype).at[rows, links["out_idx"]].add(links["out_val"])
    )


def read(memory: jax.Array, weights: jax.Array) -> jax.Array:
    """Read vectors ``r^i_t = M_t^T w^{r,i}_t``: ``[R, W]`` from a ``[W, N]`` memory."""
    return weights @ memory.T


__all__ = [
    "TIE_BIN",
    "USAGE_EPS",
    "content_weights",
    "retention",
    "usage_update",
    "free_list",
    "allocation_weights",
    "write_weights",
    "erase_and_add",
    "precedence_update",
    "link_update",
    "directional_weights",
    "read_weights",
    "read",
    "sparse_link_init",
    "sparse_link_update",
    "sparse_directional_weights",
    "sparse_link_dense",
]
