"""Sparse Access Memory (Rae, Hunt, Harley, Danihelka, Senior, Wayne, Graves & Lillicrap 2016).

A content-addressed memory whose reads and writes touch only a few slots per head and step, so
its cost in time (apart from one search for the nearest slots) and, above all, the memory that
backpropagation through time keeps, grow with ``k`` and not with the number of slots.
"""

from __future__ import annotations

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import addressing
from .._init import full
from ..addressing import EPS
from ..protocol import AbstractDevice, Field, TraceField, check_counts


def least_used(last_access: jax.Array, n: int = 1) -> jax.Array:
    """The ``n`` least recently used slots: the smallest ``last_access``, ties to the lowest index.

    ``lax.top_k`` returns equal values in index order, so of several never-used slots (all 0) the
    first is allocated first: a fresh memory is filled slot 0, 1, 2, ... like a tape. The search
    runs in float32 (exact for step counts below 2**24): XLA:CPU's top-k on integers is a full
    sort, ~100x slower at a million slots.
    """
    return jax.lax.top_k(-last_access.astype(jnp.float32), n)[1]


def top_k_slots(memory: jax.Array, keys: jax.Array, k: int) -> jax.Array:
    """Indices ``[heads, k]`` of the ``k`` slots most cosine-similar to each key (no gradient).

    This is the exact search: a ``[heads, width] @ [width, slots]`` product, the row norms and a
    partial sort (XLA:CPU's top-k custom call). With the least-used search it is the only part
    of a step whose cost grows with ``slots``, and it needs no backward pass.
    """
    memory, keys = jax.lax.stop_gradient(memory), jax.lax.stop_gradient(keys)
    dots = keys @ memory.T  # [heads, slots]
    norms = jnp.sqrt(jnp.sum(memory * memory, axis=-1) + EPS)
    # rounded to 12 mantissa bits (relative 2.4e-4) so that equal slots whose similarities differ
    # only by float rounding (which differs between jit, eager and vmap) tie, and ties go to the
    # lowest index: the choice is reproducible. The weights use the exact similarities.
    sims = jax.lax.reduce_precision(dots / norms[None, :], exponent_bits=8, mantissa_bits=12)
    return jax.lax.top_k(sims, k)[1]


def sparse_content_weights(rows: jax.Array, key: jax.Array, beta: jax.Array) -> jax.Array:
    """``w[j] = softmax_j(beta * cosine(rows[j], key))`` over the ``k`` gathered rows only:
    :func:`difmachine.addressing.content_weights` on the ``[k, width]`` memory of those rows
    (the other slots get weight 0), so with ``k = slots`` the two agree exactly."""
    return addressing.content_weights(rows, key, beta)


def sparse_write(
    memory: jax.Array, idx: jax.Array, keep: jax.Array, add: jax.Array
) -> tuple[jax.Array, jax.Array]:
    """``M'[i] = M[i] * prod_{j: idx[j]=i} keep[j] + sum_{j: idx[j]=i} add[j]`` for touched rows.

    ``idx: [m]`` may repeat a slot (two heads, or the LRU slot among the previous reads): the
    factors of one slot are combined first (an ``[m, m]`` comparison, m is small) and only the
    first occurrence of a slot carries the change. The update is a scatter-*add* of
    ``delta = rows * (keep - 1) + add``, linear in the memory, so its backward pass needs only
    ``idx`` and the ``[m, width]`` gathered rows, never a dense copy of the memory.
    Returns ``(new memory, same)`` where ``same[j, j'] = idx[j] == idx[j']``.
    """
    m = idx.shape[0]
    same = idx[:, None] == idx[None, :]
    keep_all = jnp.prod(jnp.where(same[:, :, None], keep[None, :, :], 1.0), axis=1)
    add_all = same.astype(add.dtype) @ add
    leader = jnp.argmax(same, axis=1) == jnp.arange(m)  # first occurrence of each slot
    rows = memory[idx]
    delta = jnp.where(leader[:, None], rows * (keep_all - 1.0) + add_all, 0.0)
    return memory.at[idx].add(delta), same


class SparseMemory(AbstractDevice):
    """Sparse Access Memory: ``slots x width``, reads and writes that touch ``k`` slots per head.

    Each step (Rae et al. 2016, section 3):

    - **write** (first, as in :class:`NTMMemory`). Write head ``h`` interpolates between the
      previous step's read locations and the least recently used slot,
      ``w_W = alpha * (gamma * w_R(t-1) + (1 - gamma) * I_U)`` (``w_R(t-1)`` averaged over read
      heads; head ``h`` takes the ``h``-th least used slot), with ``alpha, gamma`` sigmoid gates
      from the controller. The least used slots are erased to 0, then the touched rows are
      erased and added to as in the NTM: ``M * prod_h (1 - w_h e_h^T) + sum_h w_h a_h^T``,
      computed on the ``write_heads * (read_heads * k + 1)`` touched rows only (scatter).
    - **read**: read head ``r`` finds the ``k`` slots most cosine-similar to its key and reads
      ``sum_j w_j M[i_j]`` with ``w = softmax(beta * cosine)`` over those ``k`` slots only.
    - **usage**: every slot whose read or (summed) write weight exceeds ``delta`` is stamped
      with the current step; the least recently used slot is the smallest stamp (ties: lowest
      index, so a fresh memory fills slot 0, 1, 2, ...).

    **Backward memory.** The carried state holds the dense memory, but the memory enters the
    differentiable computation only linearly, through gathers (``M[idx]``) and scatter-adds
    (``M.at[idx].add(delta)``); the top-k search and the usage run under ``stop_gradient``. So
    backpropagation through time keeps per step only the indices and the gathered ``k x width``
    rows (plus the small interface values): training memory grows with ``k x T``, not
    ``slots x T``. The usage stamps (``int32[slots]``) are not differentiable and are not kept.
    This holds for ``Program(remat=False)``: ``jax.checkpoint`` on the time step
    (``remat=True``) saves the step's *inputs*, i.e. the whole memory, at every step, so
    sparse programs should set ``remat=False`` (``bench/memory_scaling.py`` measures both).

    **Larger memories.** The exact search (:func:`top_k_slots`) and the least-used search
    (:func:`least_used`) read every slot each step, which bounds the forward time at
    ``O(slots x width)`` per step (no backward cost). SAM replaces the first with an approximate
    nearest-neighbour index over the rows (a k-d tree or LSH forest, built once and updated
    for the few rows each write touches, outside the gradient) giving candidate slots in
    ``O(log slots)``, and keeps the usage in a priority queue; here only ``top_k_slots`` and
    ``least_used`` would change (the index becomes part of the state), the gathers, scatters
    and the gradient stay as they are. Without it a million slots cost about 16 ms per step
    and example on this CPU (forward), nearly all of it the two searches.

    Traces: ``read_weights`` / ``write_weights`` are the usual dense ``[heads, slots]``
    weightings (scattered from the ``k`` values; they cost ``slots`` values per step, which
    the compiler only keeps when a machine is run with ``trace=True``), plus ``lru`` (the slot
    allocated to each write head) and the gates.
    """

    slots: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    k: int = eqx.field(static=True, default=4)
    read_heads: int = eqx.field(static=True, default=1)
    write_heads: int = eqx.field(static=True, default=1)
    delta: float = eqx.field(static=True, default=0.005)
    init_value: float = eqx.field(static=True, default=1e-6)

    def __check_init__(self):
        check_counts(self, ("slots", "width"), ("read_heads", "write_heads"))
        if self.read_heads + self.write_heads == 0:
            raise ValueError(
                "SparseMemory needs at least one head: set read_heads or write_heads >= 1"
            )
        if not isinstance(self.k, int) or not 1 <= self.k <= self.slots:
            raise ValueError(
                f"SparseMemory k must be an integer in 1..slots={self.slots}, got {self.k!r}"
            )
        if self.write_heads > self.slots:
            raise ValueError(
                f"SparseMemory write_heads={self.write_heads} needs as many slots (one least "
                f"used slot each), got slots={self.slots}"
            )
        if not 0.0 <= self.delta < 1.0:
            raise ValueError(f"SparseMemory delta must be in [0, 1), got {self.delta!r}")

    # -- protocol -----------------------------------------------------------------------------

    def interface(self) -> dict[str, Field]:
        fields = {}
        if self.write_heads:
            H, W = self.write_heads, self.width
            fields["write_alpha"] = Field((H,), "sigmoid")
            if self.read_heads:
                fields["write_gamma"] = Field((H,), "sigmoid")
            fields["erase"] = Field((H, W), "sigmoid")
            fields["add"] = Field((H, W), "tanh")
        if self.read_heads:
            fields["read_key"] = Field((self.read_heads, self.width), "tanh")
            fields["read_beta"] = Field((self.read_heads,), "softplus")
        return fields

    @property
    def read_size(self) -> int:
        return self.read_heads * self.width

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        R, k = self.read_heads, self.k
        return {
            "memory": full((self.slots, self.width), self.init_value),
            "last_access": jnp.zeros((self.slots,), jnp.int32),
            "time": jnp.zeros((), jnp.int32),
            # previous reads, sparse: slots 0..k-1 with all weight on slot 0
            "read_index": jnp.broadcast_to(jnp.arange(k, dtype=jnp.int32), (R, k)),
            "read_w": jnp.zeros((R, k), jnp.float32).at[:, 0].set(1.0),
        }

    def prefers_remat(self) -> bool:
        """``jax.checkpoint`` on the time step would save the whole memory at every step; the
        sparse backward pass keeps only the touched rows, so a program's default is no remat."""
        return False

    def trace_spec(self):
        return {
            "write_weights": TraceField("heatmap", "write head {head} weighting"),
            "read_weights": TraceField("heatmap", "read head {head} weighting"),
            "lru": TraceField("scalars", "least used slot"),
            "write_alpha": TraceField("scalars", "write gate α"),
            "write_gamma": TraceField("scalars", "prev. read vs LRU γ"),
            "erase": TraceField("scalars", "mean erase"),
            "read_beta": TraceField("scalars", "read key strength β"),
        }

    def _dense(self, idx, w):
        """``[heads, k]`` sparse weights as dense ``[heads, slots]`` rows (traces only)."""
        scatter = lambda i, v: jnp.zeros((self.slots,), w.dtype).at[i].add(v)
        return jax.vmap(scatter)(idx, w)

    def _write(self, memory, last_access, read_index, read_w, iface, t):
        H, R, k = self.write_heads, self.read_heads, self.k
        lru = least_used(last_access, H)  # [H]
        alpha = iface["write_alpha"]
        if R:
            gamma = iface["write_gamma"]
            prev_idx = read_index.reshape(R * k)
            prev_w = read_w.reshape(R * k) / R
            # head h touches the previous read slots and its own least used slot
            idx = jnp.concatenate([jnp.tile(prev_idx, H), lru])
            w_prev = (alpha * gamma)[:, None] * prev_w[None, :]  # [H, R k]
            w_lru = alpha * (1.0 - gamma)
            w = jnp.concatenate([w_prev.reshape(H * R * k), w_lru])
            head = jnp.concatenate([jnp.repeat(jnp.arange(H), R * k), jnp.arange(H)])
            erase_entry = jnp.concatenate([jnp.ones((H * R * k,), bool), jnp.zeros((H,), bool)])
        else:
            gamma = jnp.zeros_like(alpha)
            idx, w, head = lru, alpha, jnp.arange(H)
            erase_entry = jnp.zeros((H,), bool)
        erase, add = iface["erase"][head], iface["add"][head]  # [m, W]
        # head h erases slot i by 1 - w_h[i] e_h with w_h[i] its total weight there (two read
        # heads may share a slot): the first entry of each (slot, head) pair carries the factor.
        # The least used slots are wiped (keep 0) whatever else touches them.
        same_slot = idx[:, None] == idx[None, :]
        same_head = same_slot & (head[:, None] == head[None, :])
        w_head = same_head.astype(w.dtype) @ w
        first = jnp.argmax(same_head, axis=1) == jnp.arange(idx.shape[0])
        keep = jnp.where(first[:, None], 1.0 - w_head[:, None] * erase, 1.0)
        keep = jnp.where(erase_entry[:, None], keep, 0.0)
        memory, same = sparse_write(memory, idx, keep, w[:, None] * add)
        w_slot = same.astype(w.dtype) @ w  # total write weight of each entry's slot
        stamp = jnp.where(jax.lax.stop_gradient(w_slot) > self.delta, t, 0)
        last_access = last_access.at[idx].max(stamp)
        trace = {
            "write_weights": self._dense(
                jnp.broadcast_to(idx, (H, idx.shape[0])),
                jnp.where(head[None, :] == jnp.arange(H)[:, None], w[None, :], 0.0),
            ),
            "lru": lru,
            "write_alpha": alpha,
            "erase": jnp.mean(iface["erase"], axis=-1),
        }
        if R:
            trace["write_gamma"] = gamma
        return memory, last_access, trace

    def _read(self, memory, last_access, iface, t):
        keys, beta = iface["read_key"], iface["read_beta"]
        idx = top_k_slots(memory, keys, self.k)  # [R, k], no gradient
        rows = memory[idx]  # [R, k, W]: the only rows the backward pass sees
        w = jax.vmap(sparse_content_weights)(rows, keys, beta)  # [R, k]
        reads = jnp.einsum("rk,rkw->rw", w, rows).reshape(-1)
        flat = idx.reshape(-1)
        stamp = jnp.where(jax.lax.stop_gradient(w.reshape(-1)) > self.delta, t, 0)
        last_access = last_access.at[flat].max(stamp)
        trace = {"read_weights": self._dense(idx, w), "read_beta": beta}
        return reads, idx, w, last_access, trace

    def step(self, params, state, iface):
        memory, last_access = state["memory"], state["last_access"]
        read_index, read_w = state["read_index"], state["read_w"]
        t = state["time"] + 1
        trace = {}
        if self.write_heads:
            memory, last_access, wtrace = self._write(
                memory, last_access, read_index, read_w, iface, t
            )
            trace.update(wtrace)
        if self.read_heads:
            reads, read_index, read_w, last_access, rtrace = self._read(
                memory, last_access, iface, t
            )
            trace.update(rtrace)
        else:
            reads = jnp.zeros((0,), jnp.float32)
        new_state = {
            "memory": memory,
            "last_access": last_access,
            "time": t,
            "read_index": read_index,
            "read_w": read_w,
        }
        return reads, new_state, trace


__all__ = ["SparseMemory", "least_used", "top_k_slots", "sparse_content_weights", "sparse_write"]
