"""Continuous stacks, queues and deques (Grefenstette et al. 2015; Joulin & Mikolov 2015).

Grefenstette, Hermann, Suleyman & Blunsom (2015), *Learning to Transduce with Unbounded Memory*:
:class:`NeuralStack`, :class:`NeuralQueue` and :class:`NeuralDeque` keep every pushed value in a
row of a value matrix ``V`` together with a *strength* ``s_i`` in ``[0, 1]``; pops remove strength
from one end, reads take a total strength of 1 from that end. With push/pop signals exactly 0 or 1
they behave exactly like a Python list, a FIFO queue and a ``collections.deque``.

Joulin & Mikolov (2015), *Inferring Algorithmic Patterns with Stack-Augmented Recurrent Nets*:
:class:`JoulinStack` keeps a fixed-depth array that is a convex combination of the pushed,
popped and unchanged arrays, weighted by a softmax over the actions.

All of them are single-example, fixed-size and pure, so they ``jit``, ``vmap`` and ``scan``.

The pure functions below (``*_pop``, ``*_read_weights``) hold the equations; every sum in them is
a prefix or suffix sum (``jnp.cumsum``), so a step costs ``O(capacity * width)``, never
``O(capacity^2)``.
"""

from __future__ import annotations

import math

import equinox as eqx
import jax
import jax.numpy as jnp

from .._init import full, zeros
from ..protocol import AbstractDevice, Field, TraceField

# -- pure functions: the equations ------------------------------------------------------------


def _sum_above(s: jax.Array) -> jax.Array:
    """``out[i] = sum_{j > i} s[j]`` (exclusive suffix sum, no cancellation)."""
    suffix = jnp.cumsum(s[::-1])[::-1]
    return jnp.concatenate([suffix[1:], jnp.zeros((1,), s.dtype)])


def _sum_below(s: jax.Array) -> jax.Array:
    """``out[i] = sum_{j < i} s[j]`` (exclusive prefix sum)."""
    return jnp.concatenate([jnp.zeros((1,), s.dtype), jnp.cumsum(s)[:-1]])


def pop_top(s: jax.Array, u: jax.Array) -> jax.Array:
    """Remove strength ``u`` from the top: ``s_i <- max(0, s_i - max(0, u - sum_{j>i} s_j))``."""
    return jnp.maximum(0.0, s - jnp.maximum(0.0, u - _sum_above(s)))


def pop_bottom(s: jax.Array, u: jax.Array) -> jax.Array:
    """Remove strength ``u`` from the bottom: ``s_i <- max(0, s_i - max(0, u - sum_{j<i} s_j))``."""
    return jnp.maximum(0.0, s - jnp.maximum(0.0, u - _sum_below(s)))


def top_read_weights(s: jax.Array) -> jax.Array:
    """Read weights from the top: ``w_i = min(s_i, max(0, 1 - sum_{j>i} s_j))``; ``sum_i w_i <= 1``."""
    return jnp.minimum(s, jnp.maximum(0.0, 1.0 - _sum_above(s)))


def bottom_read_weights(s: jax.Array) -> jax.Array:
    """Read weights from the bottom: ``w_i = min(s_i, max(0, 1 - sum_{j<i} s_j))``."""
    return jnp.minimum(s, jnp.maximum(0.0, 1.0 - _sum_below(s)))


def _push(values, strengths, slot, v, d):
    """``V[slot] = v``, ``s[slot] = d`` (the slot's old value and strength are replaced)."""
    return values.at[slot].set(v), strengths.at[slot].set(d)


def _is_positive_int(value) -> bool:
    return isinstance(value, int) and not isinstance(value, bool) and value > 0


# -- Grefenstette et al. 2015 -----------------------------------------------------------------


class _AbstractContinuousStructure(AbstractDevice):
    """What the Grefenstette structures share: validation, capacity check, no parameters.

    The step counter ``t`` is traced, so overflowing the buffers cannot be an error inside the
    compiled step: writes past the end are clamped to the last slot (replacing what was there,
    so the structure degrades rather than fails). Call :meth:`check_length` with the number of
    steps the device will see (time steps times inner steps per time step: ``n`` for
    ``Fixed(n)``, ``max_ponder`` for ``ACT``) to turn overflow into a clear error up front.
    """

    width: eqx.AbstractVar[int]
    capacity: eqx.AbstractVar[int]

    def __check_init__(self):
        name = type(self).__name__
        for field in ("width", "capacity"):
            value = getattr(self, field)
            if not _is_positive_int(value):
                raise ValueError(f"{name} {field} must be a positive integer, got {value!r}")

    def check_length(self, steps: int) -> None:
        """Raise ``ValueError`` if ``steps`` steps would overflow the buffers (one slot per step)."""
        if self.capacity < steps:
            raise ValueError(
                f"{type(self).__name__} capacity {self.capacity} is smaller than the {steps} "
                f"steps it will see; set capacity >= {steps}"
            )

    def init_params(self, key):
        return {}


def _single_ended_fields(width: int) -> dict[str, Field]:
    return {
        "value": Field((width,), "tanh"),
        "push": Field((), "sigmoid"),
        "pop": Field((), "sigmoid"),
    }


def _single_ended_state(capacity: int, width: int) -> dict[str, jax.Array]:
    return {
        "values": zeros(capacity, width),
        "strengths": zeros(capacity),
        "t": jnp.zeros((), jnp.int32),
    }


def _single_ended_trace_spec():
    return {
        "strengths": TraceField("heatmap", "strengths s", axis="position"),
        "read_weights": TraceField("heatmap", "read weights", axis="position"),
        "push": TraceField("scalars", "push d"),
        "pop": TraceField("scalars", "pop u"),
    }


def _single_ended_step(capacity, state, iface, pop, read_weights):
    values, s, t = state["values"], state["strengths"], state["t"]
    u, d, v = iface["pop"], iface["push"], iface["value"]
    s = pop(s, u)
    values, s = _push(values, s, jnp.minimum(t, capacity - 1), v, d)
    w = read_weights(s)
    new_state = {"values": values, "strengths": s, "t": jnp.minimum(t + 1, capacity)}
    trace = {
        "strengths": s[None],
        "read_weights": w[None],
        "push": d[None],
        "pop": u[None],
    }
    return w @ values, new_state, trace


class _AbstractSingleEnded(_AbstractContinuousStructure):
    """A stack or a queue: one ``value``/``push``/``pop`` interface; subclasses say which end
    pops and reads (``_pop``, ``_read_weights``)."""

    width: eqx.AbstractVar[int]
    capacity: eqx.AbstractVar[int]

    def interface(self) -> dict[str, Field]:
        return _single_ended_fields(self.width)

    @property
    def read_size(self) -> int:
        return self.width

    def init_state(self, params, context=None):
        return _single_ended_state(self.capacity, self.width)

    def trace_spec(self):
        return _single_ended_trace_spec()

    def step(self, params, state, iface):
        return _single_ended_step(self.capacity, state, iface, self._pop, self._read_weights)


class NeuralStack(_AbstractSingleEnded):
    """A continuous stack of ``width``-vectors (Grefenstette et al. 2015), ``capacity`` slots.

    State: values ``V[capacity, width]``, strengths ``s[capacity]`` and the step counter ``t``
    (int32). Interface: ``value`` ``(width,)`` tanh, ``push`` ``()`` sigmoid, ``pop`` ``()``
    sigmoid. Each step, with pop ``u``, push ``d`` and value ``v``, in this order:

    1. pop:  ``s_i <- max(0, s_i - max(0, u - sum_{j>i} s_j))``  (the top is the highest slot);
    2. push: ``V_t <- v``, ``s_t <- d``;
    3. read: ``r = sum_i min(s_i, max(0, 1 - sum_{j>i} s_j)) V_i``  (``read_size = width``).

    Slots at and above ``t`` have strength 0 until written, so the sums can run over the whole
    buffer. An empty stack reads zeros. Every step uses one slot, pushed or not, so ``capacity``
    must be at least the number of steps the device sees (see :meth:`check_length`); past it,
    writes are clamped to the last slot.
    """

    width: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    _pop = staticmethod(pop_top)
    _read_weights = staticmethod(top_read_weights)


class NeuralQueue(_AbstractSingleEnded):
    """A continuous first-in-first-out queue (Grefenstette et al. 2015), ``capacity`` slots.

    Same state, interface and push as :class:`NeuralStack`, but pops and reads take from the
    bottom (the oldest slots), so the sums run over ``j < i``:

    1. pop:  ``s_i <- max(0, s_i - max(0, u - sum_{j<i} s_j))``;
    2. push: ``V_t <- v``, ``s_t <- d``;
    3. read: ``r = sum_i min(s_i, max(0, 1 - sum_{j<i} s_j)) V_i``  (``read_size = width``).

    An empty queue reads zeros; ``capacity`` must be at least the number of steps (see
    :meth:`check_length`).
    """

    width: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    _pop = staticmethod(pop_bottom)
    _read_weights = staticmethod(bottom_read_weights)


class NeuralDeque(_AbstractContinuousStructure):
    """A continuous double-ended queue (Grefenstette et al. 2015), ``capacity`` slots per end.

    State: values ``V[2 capacity, width]``, strengths ``s[2 capacity]``, step counter ``t``.
    Slot 0 is the bottom, slot ``2 capacity - 1`` the top; at step ``t`` a top push writes slot
    ``capacity + t`` (growing upward from the middle) and a bottom push writes slot
    ``capacity - 1 - t`` (growing downward), so slot order is always bottom-to-top order.

    Interface: ``value_top``, ``value_bottom`` ``(width,)`` tanh; ``push_top``, ``push_bottom``,
    ``pop_top``, ``pop_bottom`` ``()`` sigmoid. Each step, in this order:

    1. pop top:     ``s_i <- max(0, s_i - max(0, u_top - sum_{j>i} s_j))``;
    2. pop bottom:  ``s_i <- max(0, s_i - max(0, u_bottom - sum_{j<i} s_j))`` (on 1.'s result);
    3. push top:    ``V_{capacity+t} <- v_top``, ``s_{capacity+t} <- d_top``;
    4. push bottom: ``V_{capacity-1-t} <- v_bottom``, ``s_{capacity-1-t} <- d_bottom``;
    5. read both ends: ``r_top = sum_i min(s_i, max(0, 1 - sum_{j>i} s_j)) V_i`` and
       ``r_bottom = sum_i min(s_i, max(0, 1 - sum_{j<i} s_j)) V_i``.

    The read is ``[r_top; r_bottom]`` (``read_size = 2 width``); an empty deque reads zeros.
    ``capacity`` must be at least the number of steps (see :meth:`check_length`); past it,
    writes are clamped to the outermost slot of each end.
    """

    width: int = eqx.field(static=True)
    capacity: int = eqx.field(static=True)

    def interface(self) -> dict[str, Field]:
        return {
            "value_top": Field((self.width,), "tanh"),
            "value_bottom": Field((self.width,), "tanh"),
            "push_top": Field((), "sigmoid"),
            "push_bottom": Field((), "sigmoid"),
            "pop_top": Field((), "sigmoid"),
            "pop_bottom": Field((), "sigmoid"),
        }

    @property
    def read_size(self) -> int:
        return 2 * self.width

    def init_state(self, params, context=None):
        return _single_ended_state(2 * self.capacity, self.width)

    def trace_spec(self):
        return {
            "strengths": TraceField("heatmap", "strengths s (bottom = 0)", axis="position"),
            "read_weights_top": TraceField("heatmap", "top read weights", axis="position"),
            "read_weights_bottom": TraceField("heatmap", "bottom read weights", axis="position"),
            "push_top": TraceField("scalars", "push top"),
            "push_bottom": TraceField("scalars", "push bottom"),
            "pop_top": TraceField("scalars", "pop top"),
            "pop_bottom": TraceField("scalars", "pop bottom"),
        }

    def step(self, params, state, iface):
        C = self.capacity
        values, s, t = state["values"], state["strengths"], state["t"]
        s = pop_top(s, iface["pop_top"])
        s = pop_bottom(s, iface["pop_bottom"])
        top_slot = jnp.minimum(C + t, 2 * C - 1)
        bottom_slot = jnp.maximum(C - 1 - t, 0)
        values, s = _push(values, s, top_slot, iface["value_top"], iface["push_top"])
        values, s = _push(values, s, bottom_slot, iface["value_bottom"], iface["push_bottom"])
        w_top, w_bottom = top_read_weights(s), bottom_read_weights(s)
        read = jnp.concatenate([w_top @ values, w_bottom @ values])
        new_state = {"values": values, "strengths": s, "t": jnp.minimum(t + 1, C)}
        trace = {
            "strengths": s[None],
            "read_weights_top": w_top[None],
            "read_weights_bottom": w_bottom[None],
            **{k: iface[k][None] for k in ("push_top", "push_bottom", "pop_top", "pop_bottom")},
        }
        return read, new_state, trace


# -- Joulin & Mikolov 2015 --------------------------------------------------------------------

_JOULIN_ACTIONS = ("push", "pop", "noop")


class JoulinStack(AbstractDevice):
    """``stacks`` stacks of fixed ``depth`` holding ``width``-vectors (Joulin & Mikolov 2015).

    State: ``S[stacks, depth, width]`` (index 0 is the top), initially all ``empty_value``.
    Interface: ``action`` ``(stacks, len(actions))`` softmax and ``value`` ``(stacks, width)``
    sigmoid (as in the paper). For each stack, with action probabilities ``a`` and value ``v``::

        S <- a_push [v; S[:-1]] + a_pop [S[1:]; empty_value] + a_noop S

    (terms for actions not in ``actions`` are absent; the paper's stacks have no ``noop``). A
    push drops the bottom entry; a pop fills the bottom with ``empty_value``. The read, taken
    after the update, is the top ``read_top`` entries of every stack, flattened
    (``read_size = stacks * read_top * width``). The paper feeds the top 2 entries back.
    """

    depth: int = eqx.field(static=True)
    width: int = eqx.field(static=True, default=1)
    stacks: int = eqx.field(static=True, default=1)
    actions: tuple[str, ...] = eqx.field(static=True, default=_JOULIN_ACTIONS, converter=tuple)
    read_top: int = eqx.field(static=True, default=2)
    empty_value: float = eqx.field(static=True, default=-1.0)

    def __check_init__(self):
        for name in ("depth", "width", "stacks", "read_top"):
            value = getattr(self, name)
            if not _is_positive_int(value):
                raise ValueError(f"JoulinStack {name} must be a positive integer, got {value!r}")
        if self.read_top > self.depth:
            raise ValueError(
                f"JoulinStack read_top={self.read_top} must be <= depth={self.depth}: "
                "reduce read_top or increase depth"
            )
        if not self.actions:
            raise ValueError(
                f"JoulinStack actions must be a non-empty subset of {_JOULIN_ACTIONS}, got ()"
            )
        unknown = [a for a in self.actions if a not in _JOULIN_ACTIONS]
        if unknown:
            raise ValueError(
                f"JoulinStack actions must be chosen from {_JOULIN_ACTIONS}, got unknown {unknown}"
            )
        if len(set(self.actions)) != len(self.actions):
            raise ValueError(f"JoulinStack actions must not repeat, got {self.actions}")
        if not isinstance(self.empty_value, (int, float)) or not math.isfinite(self.empty_value):
            raise ValueError(
                f"JoulinStack empty_value must be a finite number, got {self.empty_value!r}"
            )

    def interface(self) -> dict[str, Field]:
        return {
            "action": Field((self.stacks, len(self.actions)), "softmax"),
            "value": Field((self.stacks, self.width), "sigmoid"),
        }

    @property
    def read_size(self) -> int:
        return self.stacks * self.read_top * self.width

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        return {"stack": full((self.stacks, self.depth, self.width), float(self.empty_value))}

    def trace_spec(self):
        axis = "depth" if self.width == 1 else "depth x width entry"
        return {
            "contents": TraceField("heatmap", "stack {head} contents", axis=axis, signed=True),
            "action": TraceField("options", "stack {head} actions", options=self.actions),
        }

    def step(self, params, state, iface):
        S, a, v = state["stack"], iface["action"], iface["value"]
        empty = full((self.stacks, 1, self.width), float(self.empty_value))
        candidates = {
            "push": jnp.concatenate([v[:, None, :], S[:, :-1, :]], axis=1),
            "pop": jnp.concatenate([S[:, 1:, :], empty], axis=1),
            "noop": S,
        }
        new = sum(a[:, k, None, None] * candidates[name] for k, name in enumerate(self.actions))
        read = new[:, : self.read_top, :].reshape(-1)
        trace = {"contents": new.reshape(self.stacks, -1), "action": a}
        return read, {"stack": new}, trace


__all__ = [
    "NeuralStack",
    "NeuralQueue",
    "NeuralDeque",
    "JoulinStack",
    "pop_top",
    "pop_bottom",
    "top_read_weights",
    "bottom_read_weights",
]
