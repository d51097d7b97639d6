"""The Neural Programmer's operation selector (Neelakantan, Le & Sutskever 2015).

A program of ``T`` steps is induced from final answers alone: at every step the controller emits
a softmax ``alpha`` over a fixed set of typed operations and a softmax ``beta`` over the table's
columns; *every* operation is run and the outputs of the same type are mixed by their
probabilities, so the whole program is differentiable and needs no program supervision.

Operations are declared, not coded into the device: ``Op(name, inputs, output, fn)`` with a pure
jnp function ``fn`` of the named inputs (in order). The inputs an operation may read:

- ``"column"``: one column of the table, ``[rows]``. The operation is run on *every* column and
  its outputs are mixed by ``beta`` (the paper's ``sum_j beta_j op(table[:, j])``);
- ``"pivot"``: a number picked from the question by a pointer. Each operation with a pivot gets
  its own pointer field ``<name>_pivot`` (logits over the question's numbers, in order of
  appearance, softmaxed over the real ones); the operation is run with every candidate number and
  mixed by the pointer's distribution, so the choice of number gets a gradient although the
  comparison itself is hard (the paper's separate pivots for greater and lesser). With
  ``pivot="content"`` the field is instead a query scored against the question's encoder state
  at each number (``Table.positions``; the device then also reads the context ``"source"``, so
  it must sit in a Seq2Seq decoder): the number is picked by the words around it, as in the
  paper, rather than by its slot;
- ``"scalar-k"`` / ``"rows-k"``: the scalar / row-selector output of ``k`` steps ago (the
  "pipe"); before the first step scalars are 0 and row selectors select every real row;
- ``"mask"``: the table's row mask (1 = real row).

and the two output types: ``"scalar"`` (a number) and ``"rows"`` (a row selector ``[rows]`` in
[0, 1], 1 = selected). One step::

    scalar_t = sum_{op: scalar} alpha_op out_op
    rows_t   = mask * clip(sum_{op: rows} alpha_op out_op, 0, 1)

(a scalar operation leaves ``rows_t`` near 0 and vice versa, as in the paper). When ``alpha``,
``beta`` and the pointers are one-hot this is exactly the chosen operation's result.

``selection="hard"`` makes them one-hot: each choice is replaced by its argmax, so the machine
runs the discrete program the controller induced, as the paper's model does at test time. A
softly trained program whose mixtures are "almost" one-hot is often only approximately right
(a 0.9/0.1 mix of add and multiply is off by a tenth of the difference) and exactly right when
run hard; :func:`with_selection` switches a trained model. ``"straight"`` trains through the
hard program with the soft gradient (straight-through); on the tasks here it learns worse than
the soft mixture (bench/neural_programmer.py).

The table arrives as the device's context: a :class:`Table` ``(values[rows, columns],
mask[rows], numbers[N], numbers_mask[N])`` (a plain ``Context(values, mask)`` works when no
operation takes a pivot). The arithmetic version of the paper is a one-row table whose columns
are the operands (:data:`ARITHMETIC_OPS`).

The read handed back to the controller is ``scalar_t / scale``: with ``Machine(...,
readout=<this device>)`` that read *is* the machine's answer (the task multiplies it back by the
same ``scale``), and dividing keeps the controller's feedback input of order 1 when answers are
sums in the hundreds. ``feedback="history"`` hands back the paper's history input instead: the
operation and column distributions just used, with the scalar kept as the device's answer
(``answer_size`` 1), which the readout outputs and the controller never sees.

Trace: ``program`` (op probabilities, column probabilities and the picked pivots per step, drawn
as a readable program by the ``program`` renderer), ``op`` and ``column`` (heatmaps of the
choices), ``rows`` (the row selector) and ``scalar``.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..protocol import (
    AbstractDevice,
    Field,
    TraceField,
    check_counts,
    check_flag,
    check_non_negative,
)
from .attention import attend

OUTPUT_TYPES = ("scalar", "rows")
#: how :class:`OpSelector` uses its choices: the soft mixture, the argmax's one-hot, or the
#: one-hot forward with the soft gradient (straight-through)
SELECTIONS = ("soft", "hard", "straight")
#: how :class:`OpSelector` picks a comparison's number from the question: free logits emitted
#: by the controller over the number slots, or by content (the question's encoder state at each
#: number scored against a query the controller emits per operation, as the paper's pivot
#: scores those states against a learned vector per operation)
PIVOTS = ("pointer", "content")
#: what :class:`OpSelector` hands back to the controller: the step's scalar (over ``scale``), or
#: the operation and column it chose (the paper's history input; the scalar is then only the
#: machine's answer, ``answer_size`` 1)
FEEDBACKS = ("scalar", "history")


class Table(NamedTuple):
    """The operation selector's context: ``values[rows, columns]`` (numbers), ``mask[rows]`` (1 =
    real row), the question's numbers ``numbers[N]`` with ``numbers_mask[N]`` (pivots) and
    ``positions[N]``, where each number stands in the question (for pivots chosen by content)."""

    values: Any
    mask: Any
    numbers: Any = None
    numbers_mask: Any = None
    positions: Any = None


def _lag(kind: str) -> tuple[str, int] | None:
    """``"scalar-2"`` -> ``("scalar", 2)``; ``None`` for the other input kinds."""
    base, sep, k = kind.partition("-")
    if sep and base in OUTPUT_TYPES and k.isdigit() and int(k) >= 1:
        return base, int(k)
    return None


class Op:
    """A typed operation: ``fn(*inputs) -> output`` with ``inputs`` drawn from ``"column"``,
    ``"pivot"``, ``"scalar-k"``, ``"rows-k"`` (k >= 1 steps back) and ``"mask"``, and ``output``
    ``"scalar"`` (shape ``()``) or ``"rows"`` (shape ``[rows]``). ``fn`` must be a pure jnp
    function; define it at module level so the spec stays hashable and its repr stable.

    An immutable value (equal and hashable by its fields) rather than a NamedTuple, so that a
    spec prints each op as one line, ``Op(greater(column, pivot) -> rows)``.
    """

    __slots__ = ("name", "inputs", "output", "fn")

    def __init__(self, name: str, inputs: tuple[str, ...], output: str, fn: Callable):
        for attr, value in zip(self.__slots__, (name, tuple(inputs), output, fn)):
            object.__setattr__(self, attr, value)
        self.check()

    def __setattr__(self, name, value):
        raise AttributeError("Op is immutable")

    def _key(self):
        return (self.name, self.inputs, self.output, self.fn)

    def __eq__(self, other):
        return isinstance(other, Op) and self._key() == other._key()

    def __hash__(self):
        return hash(self._key())

    def check(self) -> None:
        if not self.name.isidentifier():
            raise ValueError(f"Op name must be an identifier, got {self.name!r}")
        if self.output not in OUTPUT_TYPES:
            raise ValueError(
                f"Op {self.name!r} output must be one of {OUTPUT_TYPES}, got {self.output!r}"
            )
        for kind in self.inputs:
            if kind not in ("column", "pivot", "mask") and _lag(kind) is None:
                raise ValueError(
                    f"Op {self.name!r} input {kind!r} must be column, pivot, mask, "
                    "scalar-k or rows-k (k >= 1)"
                )
        for kind in ("column", "pivot"):
            if self.inputs.count(kind) > 1:
                raise ValueError(f"Op {self.name!r} takes {kind!r} at most once")
        if not callable(self.fn):
            raise ValueError(f"Op {self.name!r} fn must be a function, got {self.fn!r}")

    def signature(self) -> str:
        """``"greater(column, pivot) -> rows"``."""
        return f"{self.name}({', '.join(self.inputs)}) -> {self.output}"

    def __repr__(self) -> str:  # short: specs (and traces' titles) print every op
        return f"Op({self.signature()})"


# -- the paper's table operations -------------------------------------------------------------


def op_sum(column, rows):
    """``sum_i rows_i column_i``: the sum of the selected rows' values."""
    return jnp.sum(rows * column)


def op_count(rows):
    """``sum_i rows_i``: how many rows are selected."""
    return jnp.sum(rows)


def op_difference(earlier, later):
    """``earlier - later`` (the paper's ``scalar_{t-3} - scalar_{t-1}``)."""
    return earlier - later


def op_print(column, rows):
    """The selected cell's value (a lookup answer as a scalar): ``sum_i rows_i column_i /
    max(1, sum_i rows_i)``, the mean over the selected rows when several are selected."""
    return jnp.sum(rows * column) / jnp.maximum(jnp.sum(rows), 1.0)


def op_greater(column, pivot):
    """``[column_i > pivot]``: the rows whose value exceeds the pivot."""
    return (column > pivot).astype(jnp.float32)


def op_lesser(column, pivot):
    """``[column_i < pivot]``."""
    return (column < pivot).astype(jnp.float32)


def op_and(previous, earlier):
    """``min(rows_{t-1}, rows_{t-2})``."""
    return jnp.minimum(previous, earlier)


def op_or(previous, earlier):
    """``max(rows_{t-1}, rows_{t-2})``."""
    return jnp.maximum(previous, earlier)


def op_reset(mask):
    """Every real row."""
    return mask


TABLE_OPS: tuple[Op, ...] = (
    Op("sum", ("column", "rows-1"), "scalar", op_sum),
    Op("count", ("rows-1",), "scalar", op_count),
    Op("difference", ("scalar-3", "scalar-1"), "scalar", op_difference),
    Op("print", ("column", "rows-1"), "scalar", op_print),
    Op("greater", ("column", "pivot"), "rows", op_greater),
    Op("lesser", ("column", "pivot"), "rows", op_lesser),
    Op("and", ("rows-1", "rows-2"), "rows", op_and),
    Op("or", ("rows-1", "rows-2"), "rows", op_or),
    Op("reset", ("mask",), "rows", op_reset),
)

# -- the simplified arithmetic version: a one-row table whose columns are the operands ----------

#: ``|b|`` below this is treated as this (sign kept) by :func:`safe_divide`
DIVIDE_EPS = 1e-3


def safe_divide(a, b):
    """``a / b`` with ``|b|`` kept at least :data:`DIVIDE_EPS` (finite values and gradients)."""
    sign = jnp.where(b < 0, -1.0, 1.0)
    return a / (sign * jnp.maximum(jnp.abs(b), DIVIDE_EPS))


def op_load(column):
    """The chosen operand (the row-0 value of the chosen column)."""
    return column[0]


def op_add(previous, column):
    return previous + column[0]


def op_subtract(previous, column):
    return previous - column[0]


def op_multiply(previous, column):
    return previous * column[0]


def op_divide(previous, column):
    return safe_divide(previous, column[0])


ARITHMETIC_OPS: tuple[Op, ...] = (
    Op("load", ("column",), "scalar", op_load),
    Op("add", ("scalar-1", "column"), "scalar", op_add),
    Op("subtract", ("scalar-1", "column"), "scalar", op_subtract),
    Op("multiply", ("scalar-1", "column"), "scalar", op_multiply),
    Op("divide", ("scalar-1", "column"), "scalar", op_divide),
)


class OpSelector(AbstractDevice):
    """Soft selection of typed operations over a table (see the module docstring).

    - ``ops``: the operations (:data:`TABLE_OPS`, :data:`ARITHMETIC_OPS` or your own :class:`Op`\\ s).
    - ``columns``: the table's column names (their number is the column softmax's width).
    - ``numbers``: how many numbers the question may hold (pointer slots), for ops with a pivot.
    - ``scale``: the read is the step's scalar output divided by ``scale``.
    - ``selection``: how the choices (operation, column, pivots) are used, see
      :data:`SELECTIONS`: ``"soft"`` (the paper's mixture, the default), ``"hard"`` (each
      softmax replaced by the one-hot of its argmax: the discrete program, for evaluation; no
      gradient reaches the choices) or ``"straight"`` (straight-through: the forward pass runs
      the discrete program, gradients flow as if soft). :func:`with_selection` switches a
      trained model's selectors, e.g. to evaluate a softly trained program discretely.
    - ``pivot``: ``"pointer"`` (logits over the number slots) or ``"content"`` (a query against
      the question's encoder states at the numbers), see :data:`PIVOTS`.
    - ``feedback``: ``"scalar"`` (the step's scalar) or ``"history"`` (the choices), see
      :data:`FEEDBACKS`.
    - ``entropy``: an exploration bonus, ``entropy * H`` of the operation and column choices
      per example added to what training maximises (:func:`entropy_bonus`; 0: off), for the
      first ``entropy_steps`` training steps (0: throughout). Without it a program whose steps
      only pay off together (difference: sum, reset, sum, difference) is never found: the last
      step settles on an answer of 0 before the sums can differentiate, and its saturated
      softmax then takes no gradient.
    """

    ops: tuple[Op, ...] = eqx.field(static=True, default=TABLE_OPS)
    columns: tuple[str, ...] = eqx.field(static=True, default=("A",))
    numbers: int = eqx.field(static=True, default=2)
    scale: float = eqx.field(static=True, default=1.0)
    # the selection builds no parameter, so a softly trained checkpoint loads with
    # selection="hard" for evaluation (a program's identity is its parameter tree)
    selection: str = eqx.field(static=True, default="soft")
    pivot: str = eqx.field(static=True, default="pointer")
    feedback: str = eqx.field(static=True, default="scalar")
    entropy: float = eqx.field(static=True, default=0.0)
    entropy_steps: int = eqx.field(static=True, default=0)
    # the form: whether the entropy bonus is on (it is until entropy_steps, see at_step)
    exploring: bool = eqx.field(static=True, default=True)
    # the width of the question's encoder states (pivot="content"), bound when compiled
    source_size: int | None = eqx.field(static=True, default=None)

    def __check_init__(self):
        if not isinstance(self.ops, tuple) or not self.ops:
            raise ValueError("OpSelector ops must be a non-empty tuple of Op(...)")
        for op in self.ops:
            if not isinstance(op, Op):
                raise ValueError(f"OpSelector ops must be Op(...) values, got {op!r}")
            op.check()
        names = [op.name for op in self.ops]
        if len(set(names)) != len(names):
            raise ValueError(f"OpSelector op names must be distinct, got {names}")
        if not isinstance(self.columns, tuple) or not self.columns:
            raise ValueError(
                f"OpSelector columns must be a non-empty tuple of names, got {self.columns!r}"
            )
        check_counts(self, positive=("numbers",), non_negative=("entropy_steps",))
        if not isinstance(self.scale, (int, float)) or not self.scale > 0:
            raise ValueError(f"OpSelector scale must be a positive number, got {self.scale!r}")
        for name, allowed in (
            ("selection", SELECTIONS),
            ("pivot", PIVOTS),
            ("feedback", FEEDBACKS),
        ):
            if getattr(self, name) not in allowed:
                raise ValueError(
                    f"OpSelector {name} must be one of {allowed}, got {getattr(self, name)!r}"
                )
        check_non_negative("OpSelector", "entropy", self.entropy, " (0: off)")
        check_flag("OpSelector", "exploring", self.exploring)

    # -- layout ---------------------------------------------------------------------------------

    def history(self, kind: str) -> int:
        """How many past outputs of ``kind`` (scalar or rows) the ops read (at least 1)."""
        lags = [lag[1] for op in self.ops for k in op.inputs if (lag := _lag(k)) and lag[0] == kind]
        return max([1, *lags])

    @property
    def uses_columns(self) -> bool:
        return any("column" in op.inputs for op in self.ops)

    @property
    def uses_rows(self) -> bool:
        return any(op.output == "rows" for op in self.ops)

    @property
    def pivot_ops(self) -> tuple[str, ...]:
        return tuple(op.name for op in self.ops if "pivot" in op.inputs)

    def interface(self):
        fields = {"op": Field((len(self.ops),), "softmax")}
        if self.uses_columns:
            fields["column"] = Field((len(self.columns),), "softmax")
        for name in self.pivot_ops:  # masked softmax over the question's numbers, in step()
            if self.pivot == "pointer":  # a logit per number slot
                fields[f"{name}_pivot"] = Field((self.numbers,), "identity")
            else:  # a query scored against the encoder state at each number
                fields[f"{name}_pivot"] = Field((self._source_size(),), "identity")
        return fields

    def _source_size(self) -> int:
        if self.source_size is None:
            raise ValueError(
                "OpSelector(pivot='content') scores the question's encoder states: use it in "
                "the decoder of a Seq2Seq (or pivot='pointer')"
            )
        return self.source_size

    @property
    def read_size(self) -> int:
        if self.feedback == "history":  # [scalar / scale, op choice, column choice]
            return 1 + len(self.ops) + (len(self.columns) if self.uses_columns else 0)
        return 1

    @property
    def answer_size(self) -> int:
        return 1 if self.feedback == "history" else 0

    def init_params(self, key):
        return {}

    def at_step(self, step: int) -> OpSelector:
        if not self.entropy_steps:  # the bonus (if any) throughout
            return self
        exploring = step < self.entropy_steps
        return (
            self if exploring == self.exploring else dataclasses.replace(self, exploring=exploring)
        )

    def context(self) -> str | tuple[str, str]:
        return ("table", "source") if self.pivot == "content" else "table"

    def bind_context(self, width):
        if self.pivot == "pointer" or width[1] is None:
            return self
        return dataclasses.replace(self, source_size=width[1])

    def init_state(self, params, context=None):
        source = None
        if self.pivot == "content":
            context, source = (None, None) if context is None else context
        if context is None:
            raise ValueError(
                "OpSelector needs a table: run the machine with context=Table(values, mask, ...)"
            )
        values = jnp.asarray(context[0], jnp.float32)
        mask = jnp.asarray(context[1], jnp.float32)
        if values.ndim != 2 or values.shape[1] != len(self.columns):
            raise ValueError(
                f"OpSelector table must be [rows, {len(self.columns)}] for columns "
                f"{self.columns}, got shape {values.shape}"
            )
        if mask.shape != values.shape[:1]:
            raise ValueError(f"OpSelector row mask must be [{values.shape[0]}], got {mask.shape}")
        numbers = getattr(context, "numbers", None)
        numbers_mask = getattr(context, "numbers_mask", None)
        if numbers is None:
            if self.pivot_ops:
                raise ValueError(
                    f"OpSelector ops {self.pivot_ops} take a pivot: the context must be a "
                    "Table(values, mask, numbers, numbers_mask)"
                )
            numbers = jnp.zeros((self.numbers,), jnp.float32)
            numbers_mask = jnp.zeros((self.numbers,), jnp.float32)
        numbers = jnp.asarray(numbers, jnp.float32)
        numbers_mask = (
            jnp.ones_like(numbers)
            if numbers_mask is None
            else jnp.asarray(numbers_mask, jnp.float32)
        )
        if numbers.shape != (self.numbers,) or numbers_mask.shape != (self.numbers,):
            raise ValueError(
                f"OpSelector question numbers must be [{self.numbers}] (numbers={self.numbers}), "
                f"got {numbers.shape}"
            )
        state = {
            "table": values,
            "mask": mask,
            "numbers": numbers,
            "numbers_mask": numbers_mask,
            "scalars": jnp.zeros((self.history("scalar"),), jnp.float32),
            "rows": jnp.broadcast_to(mask, (self.history("rows"), mask.shape[0])),
        }
        if self.pivot == "content" and self.pivot_ops:
            state["number_keys"] = self.number_keys(context, source)
        return state

    def number_keys(self, table, source):
        """``[N, E]``: the question's encoder state at each number (``table.positions``), what
        a content pivot scores."""
        positions = getattr(table, "positions", None)
        if source is None or positions is None:
            raise ValueError(
                "OpSelector(pivot='content') needs the question's encoder states (the context "
                "'source' of a Seq2Seq decoder) and Table(..., positions=) of its numbers"
            )
        states = jnp.asarray(source[0], jnp.float32)
        positions = jnp.asarray(positions, jnp.int32)
        if positions.shape != (self.numbers,):
            raise ValueError(
                f"OpSelector number positions must be [{self.numbers}], got {positions.shape}"
            )
        return states[jnp.clip(positions, 0, states.shape[0] - 1)]

    # -- one step -------------------------------------------------------------------------------

    def run_op(self, op: Op, state, beta, pivot_weights):
        """One operation's output, mixed over columns (by ``beta``) and over the question's
        numbers (by its pointer) when it takes them."""

        def value(kind, column, pivot):
            if kind == "column":
                return column
            if kind == "pivot":
                return pivot
            if kind == "mask":
                return state["mask"]
            base, k = _lag(kind)
            return state["scalars" if base == "scalar" else "rows"][k - 1]

        def call(column, pivot):
            return op.fn(*(value(kind, column, pivot) for kind in op.inputs))

        if "pivot" in op.inputs:
            over_pivots = jax.vmap(call, in_axes=(None, 0))
            weights = pivot_weights[op.name]
            inner = lambda column: jnp.tensordot(weights, over_pivots(column, state["numbers"]), 1)
        else:
            inner = lambda column: call(column, None)
        if "column" in op.inputs:
            outs = jax.vmap(inner, in_axes=1)(state["table"])  # [columns, ...]
            return jnp.tensordot(beta, outs, 1)
        return inner(None)

    def select(self, p):
        """A choice distribution ``p[K]`` as used by the step under :attr:`selection`."""
        return select(p, self.selection)

    def step(self, params, state, iface):
        soft_alpha = iface["op"]
        soft_beta = iface.get("column")
        if self.pivot == "content":  # the paper's p = softmax(U g): number states . query
            scores = {
                name: state["number_keys"] @ iface[f"{name}_pivot"] for name in self.pivot_ops
            }
        else:
            scores = {name: iface[f"{name}_pivot"] for name in self.pivot_ops}
        soft_pivots = {name: attend(scores[name], state["numbers_mask"]) for name in self.pivot_ops}
        if self.entropy and self.exploring:  # keep the choices open while exploring
            soft_alpha = entropy_bonus(soft_alpha, self.entropy)
            if soft_beta is not None:
                soft_beta = entropy_bonus(soft_beta, self.entropy)
        alpha = self.select(soft_alpha)
        beta = None if soft_beta is None else self.select(soft_beta)
        # a question without numbers: every weight is 0, and stays 0 (the pivot is 0)
        pivot_weights = {name: self.select(w) * (jnp.sum(w) > 0) for name, w in soft_pivots.items()}
        R = state["mask"].shape[0]
        scalar = jnp.zeros((), jnp.float32)
        rows = jnp.zeros((R,), jnp.float32)
        for k, op in enumerate(self.ops):
            out = jnp.asarray(self.run_op(op, state, beta, pivot_weights), jnp.float32)
            if op.output == "scalar":
                scalar = scalar + alpha[k] * out.reshape(())
            else:
                rows = rows + alpha[k] * jnp.broadcast_to(out, (R,))
        rows = state["mask"] * jnp.clip(rows, 0.0, 1.0)
        new = {
            **state,
            "scalars": jnp.concatenate([scalar[None], state["scalars"][:-1]]),
            "rows": jnp.concatenate([rows[None], state["rows"][:-1]]),
        }
        none = jnp.zeros((0,), jnp.float32)
        pivots = [pivot_weights[n] @ state["numbers"] for n in self.pivot_ops]
        program = jnp.concatenate(  # the probabilities, with the pivots and output actually used
            [
                soft_alpha,
                none if soft_beta is None else soft_beta,
                jnp.stack(pivots) if pivots else none,
                scalar[None],
            ]
        )
        trace = {"program": program, "op": soft_alpha, "scalar": scalar}
        if soft_beta is not None:
            trace["column"] = soft_beta
        if self.uses_rows:
            trace["rows"] = rows
        read = (scalar / self.scale)[None]
        if self.feedback == "history":  # the choices made, which the controller sees
            read = jnp.concatenate([read, alpha, none if beta is None else beta])
        return read, new, trace

    def program_options(self) -> tuple[str, ...]:
        """Names of the entries of the ``program`` trace record (see :func:`describe_program`)."""
        cols = self.columns if self.uses_columns else ()
        return (
            *(f"op {op.signature()}" for op in self.ops),
            *(f"column {c}" for c in cols),
            *(f"pivot {n}" for n in self.pivot_ops),
            "output",
        )

    def trace_spec(self):
        spec = {
            "program": TraceField(
                "text",
                "induced program",
                options=self.program_options(),
                describe=describe_program,
            ),
            "op": TraceField("options", "operation", options=tuple(op.name for op in self.ops)),
        }
        if self.uses_columns:
            spec["column"] = TraceField("options", "column", options=self.columns)
        if self.uses_rows:  # axis "row": traces label it with the task's labels["row"]
            spec["rows"] = TraceField("heatmap", "row selector", axis="row")
        spec["scalar"] = TraceField("scalars", "scalar output")
        return spec


@partial(jax.custom_vjp, nondiff_argnums=(1,))
def entropy_bonus(p, weight: float):
    """``p`` (a distribution) unchanged; in the backward pass the gradient of ``-weight *
    H(p)`` is added, ``weight * (log p + 1)``, as if the loss had that term: training then
    favours open choices. Written as a gradient hook so a device can apply it without a loss
    of its own; ``weight`` counts per example (the batch's loss is a mean, the hook is not)."""
    return p


def _entropy_bonus_fwd(p, weight):
    return p, p


def _entropy_bonus_bwd(weight, p, g):
    return (g + weight * (jnp.log(jnp.maximum(p, 1e-12)) + 1.0),)


entropy_bonus.defvjp(_entropy_bonus_fwd, _entropy_bonus_bwd)


def select(p, selection: str = "soft"):
    """``p`` itself (``"soft"``), the one-hot of its argmax (``"hard"``), or that one-hot with
    ``p``'s gradient (``"straight"``, straight-through: ``p + stop_gradient(onehot - p)``)."""
    if selection == "soft":
        return p
    hard = jax.nn.one_hot(jnp.argmax(p, axis=-1), p.shape[-1], dtype=p.dtype)
    if selection == "hard":
        return hard
    if selection == "straight":
        return p + jax.lax.stop_gradient(hard - p)
    raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")


def with_selection(model, selection: str):
    """``model`` (a compiled machine, a spec, any pytree) with every :class:`OpSelector`'s
    ``selection`` set to ``selection``: e.g. ``with_selection(model, "hard")`` evaluates a
    softly trained program as the discrete program it induced. Parameters are shared."""
    if selection not in SELECTIONS:
        raise ValueError(f"selection must be one of {SELECTIONS}, got {selection!r}")
    is_selector = lambda x: isinstance(x, OpSelector)
    return jax.tree.map(
        lambda x: dataclasses.replace(x, selection=selection) if is_selector(x) else x,
        model,
        is_leaf=is_selector,
    )


def describe_program(record: np.ndarray, options: tuple[str, ...]) -> list[str]:
    """Readable lines, one per step, from a ``program`` trace record ``[T, entries]`` whose
    entries are named by ``options`` (``"op NAME(INPUTS)"``, ``"column NAME"``, ``"pivot OP"``,
    ``"output"``): ``"step 1: greater(col A, 30) p=0.97"`` with the most likely operation, its
    probability, the most likely column (with its probability when below 0.95) and the pivot,
    followed by ``-> value`` for steps whose chosen operation is scalar-valued.
    """
    record = np.asarray(record, dtype=np.float64)
    ops = [(i, o[3:]) for i, o in enumerate(options) if o.startswith("op ")]
    cols = [(i, o[7:]) for i, o in enumerate(options) if o.startswith("column ")]
    pivots = {o[6:]: i for i, o in enumerate(options) if o.startswith("pivot ")}
    output = options.index("output") if "output" in options else None
    lines = []
    for t, row in enumerate(record):
        k = max(range(len(ops)), key=lambda j: row[ops[j][0]])
        p = row[ops[k][0]]
        head, _, kind_out = ops[k][1].partition(" -> ")
        name, _, args = head.partition("(")
        words = []
        for kind in filter(None, (a.strip() for a in args.rstrip(")").split(","))):
            if kind == "column" and cols:
                j = max(range(len(cols)), key=lambda c: row[cols[c][0]])
                col_p = row[cols[j][0]]
                words.append(f"col {cols[j][1]}" + (f" ({col_p:.2f})" if col_p < 0.95 else ""))
            elif kind == "pivot" and name in pivots:
                words.append(f"{row[pivots[name]]:.4g}")
            elif kind == "mask":
                continue
            else:
                base, _, lag = kind.partition("-")
                words.append(f"{'s' if base == 'scalar' else 'rows'}[{max(0, t + 1 - int(lag))}]")
        line = f"step {t + 1}: {name}({', '.join(words)}) p={p:.2f}"
        if output is not None and kind_out != "rows":
            line += f"  -> {row[output]:.4g}"
        lines.append(line)
    return lines


__all__ = [
    "OpSelector",
    "Op",
    "Table",
    "TABLE_OPS",
    "ARITHMETIC_OPS",
    "safe_divide",
    "describe_program",
    "select",
    "entropy_bonus",
    "with_selection",
    "SELECTIONS",
]
