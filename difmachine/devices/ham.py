"""Hierarchical Attentive Memory (Andrychowicz & Kurach 2016, "Learning efficient algorithms
with hierarchical attentive memory").

``n`` leaves (a power of 2) under a complete binary tree. Every inner node holds
``JOIN(left, right)``, a learned map of its two children, so the root summarises the whole
memory. An access descends ``log2 n`` levels: at node ``v`` it goes right with probability
``SEARCH(v, q) = sigmoid(MLP([v; q]))`` for the controller's query ``q``. The reached leaf is
read, then updated by ``WRITE`` and every node on its path is re-JOINed.

The tree is in heap order: the root is node 0, the children of node ``i`` are ``2i + 1``
(left) and ``2i + 2`` (right), leaf ``j`` is node ``n - 1 + j``. It is stored either densely,
one array ``nodes[2n - 1, width]``, or (hard mode with a ``capacity``) as an :class:`Overlay`:
the value every untouched node of a level has, plus the nodes written so far, so that neither
time nor memory grows with ``n`` beyond the ``log2 n`` path. The functions below are pure,
take either storage and are tested on their own.

Two modes:

- ``hard`` (the paper's HAM): the left/right choices are sampled (the most likely ones at
  evaluation), so an access reads ``log2 n`` nodes, one write touches ``log2 n + 1`` nodes
  (dynamic slices, never all leaves) and the choices are trained with REINFORCE
  (:mod:`difmachine.stochastic`).
- ``soft`` (DHAM, the paper's fully differentiable variant): the probability of reaching leaf
  ``j`` is the product of the branch probabilities along its path; the read is the expected
  leaf, every leaf is written in proportion to its probability and the whole tree is
  re-JOINed (linear in ``n``).

The paper embeds the input sequence into the leaves before the controller runs. By default
here the leaves start from one learned vector and the controller writes its inputs itself, like
an NTM; ``input_leaves=True`` is the paper's embedding: leaf ``t`` starts as ``INP(x_t) =
tanh(W x_t + b)`` for every real input step ``t`` (the whole episode, blank answer steps
included; the machine hands the device its input sequence as the context ``"inputs"``), the
other leaves from the learned vector, and the inner nodes are JOINed from them. A sequence then
needs at most ``leaves`` steps.

A further deviation: a sigmoid write gate ``g`` from the controller scales the update of the
reached leaf: ``leaf <- leaf + g (WRITE(leaf, value) - leaf)``.
"""

from __future__ import annotations

import dataclasses
from typing import NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from .._init import glorot, zeros
from ..protocol import (
    INPUTS,
    AbstractStochasticDevice,
    Field,
    Sampled,
    TraceField,
    check_counts,
    check_flag,
)
from ..stochastic import bernoulli

MODES = ("hard", "soft")


# -- tree indexing ------------------------------------------------------------------------------


def depth(leaves: int) -> int:
    """``log2(leaves)``: the number of left/right choices from the root to a leaf."""
    return leaves.bit_length() - 1


def leaf_node(leaves: int, j):
    """The heap index of leaf ``j``."""
    return leaves - 1 + j


def parent(i):
    return (i - 1) // 2


def sibling(i):
    """The other child of ``i``'s parent (``i > 0``): left children are odd."""
    return jnp.where(i % 2 == 1, i + 1, i - 1)


def path_nodes(leaves: int, j) -> jax.Array:
    """The heap indices from the root down to leaf ``j`` (``depth + 1`` of them)."""
    i = leaf_node(leaves, jnp.asarray(j))
    nodes = [i]
    for _ in range(depth(leaves)):
        i = parent(i)
        nodes.append(i)
    return jnp.stack(nodes[::-1])


# -- the learned maps ---------------------------------------------------------------------------


def _affine(x: jax.Array, W: jax.Array, b: jax.Array) -> jax.Array:
    y = x @ W
    return y + jnp.broadcast_to(b, y.shape)


def join(params, left: jax.Array, right: jax.Array) -> jax.Array:
    """``JOIN(l, r) = tanh(W [l; r] + b)`` (leading axes broadcast)."""
    return jnp.tanh(_affine(jnp.concatenate([left, right], axis=-1), params["W"], params["b"]))


def search_logit(params, node: jax.Array, query: jax.Array) -> jax.Array:
    """The logit of going right at ``node``: ``w2 . tanh(W1 [node; q] + b1) + b2``."""
    q = jnp.broadcast_to(query, (*node.shape[:-1], query.shape[-1]))
    hidden = jnp.tanh(_affine(jnp.concatenate([node, q], axis=-1), params["W1"], params["b1"]))
    return _affine(hidden, params["w2"], params["b2"])


def write_leaf(params, leaf: jax.Array, value: jax.Array) -> jax.Array:
    """``WRITE(leaf, value) = tanh(W [leaf; value] + b)``."""
    v = jnp.broadcast_to(value, (*leaf.shape[:-1], value.shape[-1]))
    return jnp.tanh(_affine(jnp.concatenate([leaf, v], axis=-1), params["W"], params["b"]))


def init_tree(params, leaves: int) -> jax.Array:
    """``nodes[2n - 1, width]`` with every leaf ``params["leaf"]`` and every inner node the JOIN
    of its children: the levels are constant, so only ``depth`` JOINs are computed."""
    levels = initial_levels(params, leaves)
    width = levels.shape[-1]
    parts = [jnp.broadcast_to(v, (2**d, width)) for d, v in enumerate(levels)]
    return jnp.concatenate(parts, axis=0)


def rejoin_all(params, nodes: jax.Array, leaves: int) -> jax.Array:
    """Every inner node recomputed bottom-up from the leaves (linear in ``n``)."""
    level = nodes[leaves - 1 :]
    levels = [level]
    for _ in range(depth(leaves)):
        level = join(params, level[0::2], level[1::2])
        levels.append(level)
    return jnp.concatenate(levels[::-1], axis=0)


# -- storage --------------------------------------------------------------------------------------


class Overlay(NamedTuple):
    """A tree whose untouched nodes all hold their level's initial value: ``levels[depth]``
    (depth 0 is the root), and ``values[k]`` the value written to node ``ids[k]`` (the latest
    entry of a node wins; ``ids`` is -1 where unused, ``count`` entries are used). Reading a node
    scans the written entries only: ``O(entries)``, independent of the number of leaves."""

    levels: jax.Array
    ids: jax.Array
    values: jax.Array
    count: jax.Array


def node_depth(i):
    """The depth of heap node ``i`` (the root is 0): ``floor(log2(i + 1))``."""
    i = jnp.asarray(i, jnp.int32)
    return 31 - jax.lax.clz(i + 1)


def empty_overlay(levels: jax.Array, entries: int) -> Overlay:
    width = levels.shape[-1]
    return Overlay(
        levels,
        jnp.full((entries,), -1, jnp.int32),
        jnp.zeros((entries, width), levels.dtype),
        jnp.zeros((), jnp.int32),
    )


def get_node(tree, i) -> jax.Array:
    """Node ``i`` of a dense tree (an array) or an :class:`Overlay` (dynamic ``i``)."""
    if isinstance(tree, Overlay):
        entries = tree.ids.shape[0]
        last = jnp.max(jnp.where(tree.ids == i, jnp.arange(entries), -1))
        written = jax.lax.dynamic_index_in_dim(
            tree.values, jnp.maximum(last, 0), axis=0, keepdims=False
        )
        initial = jax.lax.dynamic_index_in_dim(tree.levels, node_depth(i), axis=0, keepdims=False)
        return jnp.where(last >= 0, written, initial)
    return jax.lax.dynamic_index_in_dim(tree, i, axis=0, keepdims=False)


def put_node(tree, i, value: jax.Array):
    """``tree`` with node ``i`` set to ``value``. An :class:`Overlay` appends an entry (a full
    overlay overwrites its last entry: :meth:`HAMMemory.check_length` prevents that)."""
    if isinstance(tree, Overlay):
        k = jnp.minimum(tree.count, tree.ids.shape[0] - 1)
        ids = jax.lax.dynamic_update_index_in_dim(tree.ids, jnp.asarray(i, jnp.int32), k, 0)
        values = jax.lax.dynamic_update_index_in_dim(tree.values, value, k, axis=0)
        return Overlay(tree.levels, ids, values, tree.count + 1)
    return jax.lax.dynamic_update_index_in_dim(tree, value, i, axis=0)


def initial_levels(params, leaves: int) -> jax.Array:
    """``[depth + 1, width]``: the value of every node of each depth in a fresh tree (depth 0 is
    the root), whose leaves are all ``params["leaf"]``."""
    level = params["leaf"]
    levels = [level]
    for _ in range(depth(leaves)):
        level = join(params["join"], level, level)
        levels.append(level)
    return jnp.stack(levels[::-1])


# -- hard access: O(log n) ------------------------------------------------------------------------


_row = get_node  # a node of either storage


def descend(params, nodes: jax.Array, query: jax.Array, leaves: int, key=None):
    """SEARCH from the root to a leaf, sampling each left/right choice with ``key`` (``None``:
    the more likely branch). Reads ``depth`` nodes by dynamic index.

    Returns ``(leaf j, actions[depth] (1 = right), p_right[depth], log_prob, entropy)``.
    """
    L = depth(leaves)
    keys = [None] * L if key is None else list(jax.random.split(key, L))
    i = jnp.zeros((), jnp.int32)
    actions, p_right, log_prob, entropy = [], [], 0.0, 0.0
    for level in range(L):
        logit = search_logit(params, _row(nodes, i), query)
        choice = bernoulli(logit, keys[level])
        i = 2 * i + 1 + choice.action
        actions.append(choice.action)
        p_right.append(jax.nn.sigmoid(logit))
        log_prob, entropy = log_prob + choice.log_prob, entropy + choice.entropy
    return i - (leaves - 1), jnp.stack(actions), jnp.stack(p_right), log_prob, entropy


def write_path(params, nodes: jax.Array, leaves: int, j, new_leaf: jax.Array) -> jax.Array:
    """``nodes`` with leaf ``j`` set to ``new_leaf`` and the nodes on its path re-JOINed; every
    other node is unchanged. Touches ``depth + 1`` rows (and reads their siblings)."""
    if isinstance(nodes, Overlay):
        return _write_path_overlay(params, nodes, leaves, j, new_leaf)
    i = leaf_node(leaves, j)
    value = new_leaf
    nodes = put_node(nodes, i, value)
    for _ in range(depth(leaves)):
        other = get_node(nodes, sibling(i))
        is_left = i % 2 == 1
        left = jnp.where(is_left, value, other)
        right = jnp.where(is_left, other, value)
        i = parent(i)
        value = join(params, left, right)
        nodes = put_node(nodes, i, value)
    return nodes


def get_nodes(tree: Overlay, ids: jax.Array) -> jax.Array:
    """Several nodes of an :class:`Overlay` at once (one ``[len(ids), entries]`` comparison and
    one gather): :func:`get_node` for each of ``ids``."""
    entries = tree.ids.shape[0]
    hits = tree.ids[None, :] == ids[:, None]
    last = jnp.max(jnp.where(hits, jnp.arange(entries)[None, :], -1), axis=1)
    written = jnp.take(tree.values, jnp.maximum(last, 0), axis=0)
    initial = jnp.take(tree.levels, node_depth(ids), axis=0)
    return jnp.where((last >= 0)[:, None], written, initial)


def _write_path_overlay(params, tree: Overlay, leaves: int, j, new_leaf):
    """:func:`write_path` on an :class:`Overlay`: the path's siblings are not on the path, so
    they are read all at once before the write, and the ``depth + 1`` new nodes are appended as
    one block."""
    L = depth(leaves)
    path = [leaf_node(leaves, jnp.asarray(j, jnp.int32))]
    for _ in range(L):
        path.append(parent(path[-1]))
    path = jnp.stack(path)  # leaf first, root last
    others = get_nodes(tree, sibling(path[:-1]))
    values, value = [new_leaf], new_leaf
    for level in range(L):
        is_left = path[level] % 2 == 1
        left = jnp.where(is_left, value, others[level])
        right = jnp.where(is_left, others[level], value)
        value = join(params, left, right)
        values.append(value)
    k = jnp.minimum(tree.count, tree.ids.shape[0] - (L + 1))
    ids = jax.lax.dynamic_update_slice(tree.ids, path, (k,))
    vals = jax.lax.dynamic_update_slice(tree.values, jnp.stack(values), (k, 0))
    return Overlay(tree.levels, ids, vals, tree.count + L + 1)


# -- soft access (DHAM): linear ------------------------------------------------------------------


def leaf_probabilities(params, nodes: jax.Array, query: jax.Array, leaves: int) -> jax.Array:
    """``P(leaf j) = prod`` of the branch probabilities on its path: the right-probability of
    every inner node at once, then level by level from the root. Sums to 1."""
    p_right = jax.nn.sigmoid(search_logit(params, nodes[: leaves - 1], query))
    probs = jnp.ones((1,), nodes.dtype)
    start = 0
    for d in range(depth(leaves)):
        p = p_right[start : start + 2**d]
        probs = jnp.stack([probs * (1.0 - p), probs * p], axis=-1).reshape(-1)
        start += 2**d
    return probs


# -- the input in the leaves -------------------------------------------------------------------


def embed_inputs(params, leaves: int, inputs) -> jax.Array:
    """A dense tree whose leaf ``t`` is ``INP(x_t) = tanh(W x_t + b)`` for each real step ``t``
    of ``inputs`` (a ``Context(values[T, in], mask[T])``, ``T <= leaves``), the others the learned
    ``params["leaf"]``, and every inner node the JOIN of its children."""
    if inputs is None:
        raise ValueError(
            "HAMMemory input_leaves needs the input sequence as its context 'inputs' (a Machine "
            "provides it)"
        )
    xs, mask = inputs
    T, width = xs.shape[0], params["leaf"].shape[-1]
    if T > leaves:
        raise ValueError(f"HAMMemory input_leaves: {T} input steps do not fit {leaves} leaves")
    embedded = jnp.tanh(_affine(xs.astype(jnp.float32), params["input"]["W"], params["input"]["b"]))
    initial = jnp.broadcast_to(params["leaf"], (leaves, width))
    real = jnp.asarray(mask)[:, None] > 0
    leaf_values = initial.at[:T].set(jnp.where(real, embedded, initial[:T]))
    nodes = jnp.concatenate([jnp.zeros((leaves - 1, width), leaf_values.dtype), leaf_values])
    return rejoin_all(params["join"], nodes, leaves)


# -- the device -----------------------------------------------------------------------------------


def _describe_path(data, options):
    """One line per step: the choices from the root (L/R) and the leaf reached."""
    lines = []
    for row in data:
        bits = [int(round(float(b))) for b in row]
        leaf = 0
        for b in bits:
            leaf = 2 * leaf + b
        lines.append("".join("R" if b else "L" for b in bits) + f" -> leaf {leaf}")
    return lines


class HAMMemory(AbstractStochasticDevice):
    """Hierarchical attentive memory: ``leaves`` leaves of ``width`` under a binary tree.

    Interface per step: ``query`` (``query`` wide, tanh), ``value`` (``width``, tanh), ``write``
    (a sigmoid gate). Read: the reached leaf (``hard``) or the expected leaf (``soft``), before
    this step's write. ``hidden``: the SEARCH MLP's width. ``capacity`` (hard mode only): store
    only the written nodes, at most ``capacity`` accesses per sequence (``capacity * (log2 n +
    1)`` entries), so that nothing grows with ``leaves`` but the path; ``None`` stores the
    whole tree (``2 * leaves - 1`` nodes). ``input_leaves``: embed the machine's input sequence
    into the leaves before the first step, one step per leaf (the paper's setup; the embedding's
    input width ``input_size`` is bound when the machine is compiled). See the module
    docstring.
    """

    leaves: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    query: int | None = eqx.field(static=True, default=None)
    hidden: int = eqx.field(static=True, default=32)
    mode: str = eqx.field(static=True, default="hard")
    capacity: int | None = eqx.field(static=True, default=None)
    input_leaves: bool = eqx.field(static=True, default=False)
    input_size: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        check_counts(self, positive=("leaves", "width", "hidden"))
        if self.query is not None:
            check_counts(self, positive=("query",))
        if self.capacity is not None:
            check_counts(self, positive=("capacity",))
        if self.leaves < 2 or self.leaves & (self.leaves - 1):
            raise ValueError(f"HAMMemory leaves must be a power of 2 >= 2, got {self.leaves}")
        if self.mode not in MODES:
            raise ValueError(f"HAMMemory mode must be 'hard' or 'soft', got {self.mode!r}")
        if self.capacity is not None and self.mode == "soft":
            raise ValueError(
                "HAMMemory capacity (sparse storage) needs mode='hard': the soft mode writes "
                "every leaf; drop capacity"
            )
        check_flag("HAMMemory", "input_leaves", self.input_leaves)
        if self.input_leaves and self.capacity is not None:
            raise ValueError(
                "HAMMemory input_leaves fills every leaf, which sparse storage (capacity) cannot "
                "hold; drop capacity"
            )
        if self.input_size is not None:
            check_counts(self, positive=("input_size",))

    def context(self):
        return INPUTS if self.input_leaves else None

    def bind_context(self, width):
        if not self.input_leaves or width is None or width == self.input_size:
            return self
        return dataclasses.replace(self, input_size=width)

    def check_length(self, steps: int) -> None:
        if self.input_leaves and steps > self.leaves:
            need = 1 << (steps - 1).bit_length()
            raise ValueError(
                f"HAMMemory input_leaves embeds one input step per leaf but the sequence takes "
                f"{steps} steps and there are {self.leaves} leaves; raise leaves to {need}"
            )
        if self.capacity is not None and steps > self.capacity:
            raise ValueError(
                f"HAMMemory capacity {self.capacity} holds {self.capacity} accesses but the "
                f"sequence takes {steps} steps; raise capacity to at least {steps}"
            )

    @property
    def query_size(self) -> int:
        return self.width if self.query is None else self.query

    def interface(self):
        return {
            "query": Field((self.query_size,), "tanh"),
            "value": Field((self.width,), "tanh"),
            "write": Field((1,), "sigmoid"),
        }

    @property
    def read_size(self) -> int:
        return self.width

    def samples(self) -> bool:
        return self.mode == "hard"

    def prefers_remat(self) -> bool:
        # hard: the backward pass keeps only the path's rows; jax.checkpoint would save the
        # whole tree at every step
        return self.mode == "soft"

    def init_params(self, key):
        d, q, h = self.width, self.query_size, self.hidden
        k_leaf, k_join, k_s1, k_s2, k_write = jax.random.split(key, 5)
        params = {
            "leaf": 0.1 * jax.random.normal(k_leaf, (d,), jnp.float32),
            "join": {"W": glorot(k_join, 2 * d, d), "b": zeros(d)},
            "search": {
                "W1": glorot(k_s1, d + q, h),
                "b1": zeros(h),
                "w2": 0.1 * jax.random.normal(k_s2, (h,), jnp.float32),
                "b2": jnp.zeros((), jnp.float32),
            },
            "write": {"W": glorot(k_write, 2 * d, d), "b": zeros(d)},
        }
        if self.input_leaves:  # a key of its own: the other parameters are drawn as without
            if self.input_size is None:
                raise ValueError(
                    "HAMMemory input_leaves needs its input width: compile it in a Machine (which "
                    "binds it) or give input_size=..."
                )
            k_input = jax.random.fold_in(key, 5)
            params["input"] = {"W": glorot(k_input, self.input_size, d), "b": zeros(d)}
        return params

    def init_state(self, params, context=None):
        if self.input_leaves:
            return embed_inputs(params, self.leaves, context)
        if self.capacity is not None:
            entries = self.capacity * (depth(self.leaves) + 1)
            return empty_overlay(initial_levels(params, self.leaves), entries)
        return init_tree(params, self.leaves)

    def trace_spec(self):
        if self.mode == "hard":
            return {
                "path": TraceField("text", "path down the tree", describe=_describe_path),
                "p_right": TraceField("heatmap", "P(right) along the path", axis="level"),
                "write": TraceField("scalars", "write gate"),
            }
        return {
            "leaf_probs": TraceField("heatmap", "leaf probabilities", axis="leaf"),
            "write": TraceField("scalars", "write gate"),
        }

    def sample_step(self, params, nodes, iface, key):
        q, value, gate = iface["query"], iface["value"], iface["write"][0]
        n = self.leaves
        if self.mode == "soft":
            probs = leaf_probabilities(params["search"], nodes, q, n)
            leaves = nodes[n - 1 :]
            read = probs @ leaves
            updated = write_leaf(params["write"], leaves, value)
            leaves = leaves + ((gate * probs)[:, None] * (updated - leaves))
            nodes = rejoin_all(params["join"], nodes.at[n - 1 :].set(leaves), n)
            zero = jnp.zeros((), jnp.float32)
            return Sampled(read, nodes, {"leaf_probs": probs, "write": gate}, zero, zero)
        j, actions, p_right, log_prob, entropy = descend(params["search"], nodes, q, n, key)
        leaf = _row(nodes, leaf_node(n, j))
        new_leaf = leaf + gate * (write_leaf(params["write"], leaf, value) - leaf)
        nodes = write_path(params["join"], nodes, n, j, new_leaf)
        trace = {"path": actions, "p_right": p_right, "leaf": j, "write": gate}
        return Sampled(leaf, nodes, trace, log_prob, entropy)


__all__ = [
    "HAMMemory",
    "depth",
    "descend",
    "embed_inputs",
    "init_tree",
    "join",
    "leaf_probabilities",
    "path_nodes",
    "rejoin_all",
    "search_logit",
    "write_leaf",
    "write_path",
    "Overlay",
    "get_node",
    "get_nodes",
    "put_node",
]
