"""Tapes with discrete heads, the interfaces of the RL-NTM (Zaremba & Sutskever 2015,
"Reinforcement learning neural Turing machines").

Each head moves by one of ``moves`` (default ``-1, 0, +1``) per step, sampled from the
controller's logits (the most likely move at evaluation) and trained with REINFORCE
(:mod:`difmachine.stochastic`). A step touches one cell: its cost does not grow with the tape.

- :class:`InputTape`: read-only; the tape is the context ``"tape"`` of the task (one vector per
  cell, e.g. one-hot symbols and an end marker). The controller's first input holds the first
  cell; then each step the head moves and reads the cell under it (zeros beyond the written
  cells): as in the paper, the controller sees the cell under the head, then chooses the move.
- :class:`MemoryTape`: ``cells x width`` read-write cells: the head writes the cell under it
  (``cell <- cell + g (value - cell)``, a sigmoid gate ``g``), moves, then reads the new cell.
- :class:`OutputTape`: the paper's output tape: each step the controller proposes a prediction
  and decides (a sampled binary action) whether to write it; a write fills the next cell. It is
  the machine's ``readout``, and a task with an output tape scores the ``k``-th write against
  its ``k``-th target (``TapeTransduce(output_tape=True)``).

Head positions are clipped to the tape.
"""

from __future__ import annotations

import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp

from .._init import zeros
from ..protocol import AbstractStochasticDevice, Field, Sampled, TraceField, check_counts
from ..stochastic import bernoulli, categorical

MOVES = (-1, 0, 1)


def _check_moves(owner: str, moves) -> None:
    if (
        not isinstance(moves, tuple)
        or not moves
        or not all(isinstance(m, int) and not isinstance(m, bool) for m in moves)
        or len(set(moves)) != len(moves)
    ):
        raise ValueError(f"{owner} moves must be a tuple of distinct integers, got {moves!r}")


def move_head(position, logits, moves: tuple[int, ...], size, key=None):
    """``(new position, Choice)``: a move of ``moves`` drawn from ``softmax(logits)`` (the most
    likely with ``key=None``), the position clipped to ``[0, size - 1]``."""
    choice = categorical(logits, key)
    step = jnp.asarray(moves, jnp.int32)[choice.action]
    return jnp.clip(position + step, 0, size - 1), choice


def _move_trace(moves):
    return {
        "move": TraceField("options", "head move", options=tuple(f"{m:+d}" for m in moves)),
        "position": TraceField("scalars", "head position"),
    }


class InputTape(AbstractStochasticDevice):
    """A read-only input tape (the task's context ``"tape"``) with a discrete head.

    ``width``: the tape's vector width (filled in from the task's context). Interface:
    ``move`` (logits over ``moves``). Read: the cell under the head after the move; before the
    first step, the first cell (:meth:`first_read`).
    """

    width: int | None = eqx.field(static=True, default=None)
    moves: tuple[int, ...] = eqx.field(static=True, default=MOVES)

    def __check_init__(self):
        if self.width is not None:
            check_counts(self, positive=("width",))
        _check_moves("InputTape", self.moves)

    def context(self) -> str:
        return "tape"

    def bind_context(self, width):
        if width is None or self.width == width:
            return self
        if self.width is not None:
            raise ValueError(
                f"InputTape has width {self.width} but the task's tape is {width} wide; "
                "leave width unset"
            )
        return dataclasses.replace(self, width=width)

    def interface(self):
        return {"move": Field((len(self.moves),), "identity")}

    @property
    def read_size(self) -> int:
        if self.width is None:
            raise ValueError("InputTape needs width=... (a program sets it from its task's tape)")
        return self.width

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        if context is None:
            raise ValueError("InputTape reads the context 'tape', which its task must provide")
        values = jnp.asarray(context.values, jnp.float32)
        values = values * jnp.asarray(context.mask, jnp.float32)[:, None]
        return {"tape": values, "position": jnp.zeros((), jnp.int32)}

    def first_read(self, params, state):
        return state["tape"][0]  # the cell under the head before it first moves

    def trace_spec(self):
        return _move_trace(self.moves)

    def sample_step(self, params, state, iface, key):
        tape = state["tape"]
        position, choice = move_head(
            state["position"], iface["move"], self.moves, tape.shape[0], key
        )
        read = jax.lax.dynamic_index_in_dim(tape, position, axis=0, keepdims=False)
        trace = {"move": jax.nn.one_hot(choice.action, len(self.moves)), "position": position}
        new = {"tape": tape, "position": position}
        return Sampled(read, new, trace, choice.log_prob, choice.entropy)


class MemoryTape(AbstractStochasticDevice):
    """``cells`` read-write cells of ``width`` with a discrete head (RL-NTM's memory tape).

    Interface: ``move`` (logits over ``moves``), ``value`` (tanh) and ``write`` (a sigmoid
    gate). Each step writes the cell under the head, moves, and reads the new cell.
    """

    cells: int = eqx.field(static=True)
    width: int = eqx.field(static=True)
    moves: tuple[int, ...] = eqx.field(static=True, default=MOVES)

    def __check_init__(self):
        check_counts(self, positive=("cells", "width"))
        _check_moves("MemoryTape", self.moves)

    def interface(self):
        return {
            "move": Field((len(self.moves),), "identity"),
            "value": Field((self.width,), "tanh"),
            "write": Field((1,), "sigmoid"),
        }

    @property
    def read_size(self) -> int:
        return self.width

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        return {"tape": zeros(self.cells, self.width), "position": jnp.zeros((), jnp.int32)}

    def trace_spec(self):
        return {**_move_trace(self.moves), "write": TraceField("scalars", "write gate")}

    def sample_step(self, params, state, iface, key):
        tape, position = state["tape"], state["position"]
        cell = jax.lax.dynamic_index_in_dim(tape, position, axis=0, keepdims=False)
        gate = iface["write"][0]
        tape = jax.lax.dynamic_update_index_in_dim(
            tape, cell + gate * (iface["value"] - cell), position, axis=0
        )
        position, choice = move_head(position, iface["move"], self.moves, self.cells, key)
        read = jax.lax.dynamic_index_in_dim(tape, position, axis=0, keepdims=False)
        trace = {
            "move": jax.nn.one_hot(choice.action, len(self.moves)),
            "position": position,
            "write": gate,
        }
        new = {"tape": tape, "position": position}
        return Sampled(read, new, trace, choice.log_prob, choice.entropy)


class OutputTape(AbstractStochasticDevice):
    """The RL-NTM's output tape: a prediction over ``classes`` each step, written or not.

    Interface: ``symbol`` (logits over ``classes``) and ``write`` (a logit: write with
    probability ``sigmoid(write)``, sampled; at evaluation, write iff ``write > 0``). Read:
    ``[symbol; 1 if this step wrote else 0]`` (``classes + 1`` values). Make the device the
    machine's readout (``Machine(..., readout="output")``), so that its read is the machine's
    output, which a task with an output tape scores cell by cell: the ``k``-th write fills cell
    ``k``.

    The paper's constraints keep every episode to exactly its number of outputs: the context
    ``"output"`` gives the cells to fill (its ``mask``) and the episode's real steps
    (``values[t, 0]``); once every cell is written the device may not write, and when the steps
    left equal the cells left it must. A forced action has log-probability 0 (it is no choice).
    """

    classes: int = eqx.field(static=True)

    def __check_init__(self):
        check_counts(self, positive=("classes",))

    def context(self) -> str:
        return "output"

    def bind_context(self, width):
        if width not in (None, 1):
            raise ValueError(
                f"OutputTape reads a context 'output' of width 1 (the episode's steps), got {width}"
            )
        return self

    def interface(self):
        return {"symbol": Field((self.classes,), "identity"), "write": Field((1,), "identity")}

    @property
    def read_size(self) -> int:
        return self.classes + 1

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        if context is None:
            raise ValueError(
                "OutputTape reads the context 'output' (cells to fill, the episode's steps), "
                "which its task must provide (e.g. TapeTransduce(output_tape=True))"
            )
        cells = jnp.sum(jnp.asarray(context.mask, jnp.float32)).astype(jnp.int32)
        steps = jnp.sum(jnp.asarray(context.values, jnp.float32)[:, 0]).astype(jnp.int32)
        zero = jnp.zeros((), jnp.int32)
        return {"position": zero, "step": zero, "cells": cells, "steps": steps}

    def trace_spec(self):
        return {
            "write": TraceField("scalars", "output written"),
            "position": TraceField("scalars", "output cells written"),
        }

    def sample_step(self, params, state, iface, key):
        choice = bernoulli(iface["write"], key)
        left = state["cells"] - state["position"]
        cannot = left <= 0
        must = ~cannot & (state["steps"] - state["step"] <= left)
        free = ~(cannot | must)
        write = jnp.where(cannot, 0, jnp.where(must, 1, choice.action[0])).astype(jnp.int32)
        read = jnp.concatenate([iface["symbol"], write.astype(jnp.float32)[None]])
        new = {**state, "position": state["position"] + write, "step": state["step"] + 1}
        trace = {"write": write.astype(jnp.float32), "position": new["position"]}
        zero = jnp.zeros((), jnp.float32)
        return Sampled(
            read,
            new,
            trace,
            jnp.where(free, choice.log_prob, zero),
            jnp.where(free, choice.entropy, zero),
        )


__all__ = ["InputTape", "MemoryTape", "OutputTape", "move_head"]
