"""Question answering tasks for the Neural Programmer (Neelakantan et al. 2015), generated here.

Both tasks have numeric answers, scored on the last of ``steps`` program steps with the Huber
loss (robust to the huge errors of an untrained mixture of operations), in the answer's natural
units: the machine's output is the :class:`~difmachine.OpSelector`'s read, ``answer / scale``,
which :meth:`present` and the loss multiply back by the same ``scale`` (give the device
``scale=task.scale``). An answer is right when ``|prediction - answer| <= atol + rtol |answer|``;
metrics ``accuracy``, ``errors = 1 - accuracy`` (the main metric) and ``abs_error``.

:class:`Arithmetic` (the paper's simplified version): ``n`` operands ``x1..xn`` and a question
``((x_p1 op1 x_p2) op2 x_p3) ...``, with the step's one-hot at every step. ``question="whole"``
gives the whole question as one vector (the one-hot positions ``p``, then the one-hot
operations) at every step; ``question="clause"`` gives step ``t`` its clause only (the one-hot
position ``p_t`` and, after the first step, operation ``op_t``), the question read in order as
an RNN over its words would. The operands are the context ``"table"``, a one-row table with one
column per operand. ``steps = operands``: load the first operand, then one operation each.
``length`` (``eval --lengths``) is the operands' number of digits (1 in training).

:class:`TableQA` (the paper's synthetic table task): a table of ``columns`` numeric columns ``A, B,
...`` and ``min_rows..max_rows`` rows of distinct integers in ``[0, max_value)`` per column, and a
template question over it (see :data:`TEMPLATES`), e.g. ``sum of B where A greater than 30 and
lesser than 70``. The question's words (numbers as one ``<num>`` token) are the source an encoder
reads; the table and the question's numbers are the context ``"table"`` that the operation selector
reads. The decoder's input at each of its ``steps`` steps is the step's one-hot. ``length`` is the
number of rows.
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from ..devices.programmer import Table
from ..protocol import check_non_negative
from .base import AbstractTask, Batch, Context, check_range, positive

# -- scoring ----------------------------------------------------------------------------------


def huber(error: jnp.ndarray, delta: float) -> jnp.ndarray:
    """``e^2 / 2`` for ``|e| <= delta``, else ``delta (|e| - delta / 2)``."""
    a = jnp.abs(error)
    return jnp.where(a <= delta, 0.5 * error**2, delta * (a - 0.5 * delta))


class AbstractAnswerTask(AbstractTask):
    """A task with one numeric answer per example, scored on its last step (see module doc)."""

    main_metric: ClassVar[str] = "errors"

    scale: eqx.AbstractVar[float]
    delta: eqx.AbstractVar[float]
    atol: eqx.AbstractVar[float]
    rtol: eqx.AbstractVar[float]

    def _check_scoring(self):
        name = type(self).__name__
        for what in ("scale", "delta"):
            value = getattr(self, what)
            if not isinstance(value, (int, float)) or not value > 0:
                raise ValueError(f"{name} {what} must be a positive number, got {value!r}")
        for what in ("atol", "rtol"):
            check_non_negative(name, what, getattr(self, what))

    @property
    def output_size(self) -> int:
        return 1

    def present(self, outputs):
        return outputs * self.scale

    def loss(self, outputs, targets, loss_mask):
        error = outputs[:, 0] * self.scale - targets[:, 0]
        return jnp.sum(huber(error, self.delta) * loss_mask) / self.delta

    def metrics(self, outputs, targets, loss_mask):
        error = jnp.abs(outputs[:, 0] * self.scale - targets[:, 0])
        ok = error <= self.atol + self.rtol * jnp.abs(targets[:, 0])
        scored = loss_mask > 0
        right = jnp.all(ok | ~scored).astype(jnp.float32)
        return {
            "errors": 1.0 - right,
            "accuracy": right,
            "abs_error": jnp.sum(error * loss_mask) / jnp.maximum(jnp.sum(loss_mask), 1.0),
        }


def _answer_batch(answers: np.ndarray, steps: int):
    """Targets ``[B, steps, 1]`` with the answer on the last step, and the masks."""
    B = len(answers)
    targets = np.zeros((B, steps, 1), np.float32)
    targets[:, -1, 0] = answers
    mask = np.ones((B, steps), np.float32)
    loss_mask = np.zeros((B, steps), np.float32)
    loss_mask[:, -1] = 1.0
    return targets, mask, loss_mask


def _check_length(task: str, length) -> None:
    if length is not None and (
        not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1
    ):
        raise ValueError(f"{task} sample(length=...) must be a positive integer, got {length!r}")


# -- arithmetic ---------------------------------------------------------------------------------

ARITHMETIC = {
    "add": ("+", np.add),
    "subtract": ("-", np.subtract),
    "multiply": ("*", np.multiply),
    "divide": ("/", np.divide),
}


def evaluate_expression(operands, order, ops) -> float:
    """``((x[order0] op0 x[order1]) op1 x[order2]) ...`` in float64."""
    value = float(operands[order[0]])
    for name, i in zip(ops, order[1:]):
        value = float(ARITHMETIC[name][1](value, float(operands[i])))
    return value


class Arithmetic(AbstractAnswerTask):
    """The simplified arithmetic version (see the module docstring)."""

    operands: int = eqx.field(static=True, default=3)
    digits: int = eqx.field(static=True, default=1)
    ops: tuple[str, ...] = eqx.field(static=True, default=tuple(ARITHMETIC))
    scale: float = eqx.field(static=True, default=100.0)
    delta: float = eqx.field(static=True, default=1.0)
    atol: float = eqx.field(static=True, default=0.01)
    rtol: float = eqx.field(static=True, default=0.001)
    question: str = eqx.field(static=True, default="whole")

    length_name: ClassVar[str] = "digits"

    def __check_init__(self):
        if not isinstance(self.operands, int) or self.operands < 2:
            raise ValueError(f"Arithmetic operands must be an integer >= 2, got {self.operands!r}")
        positive("Arithmetic", "digits", self.digits)
        if self.question not in ("whole", "clause"):
            raise ValueError(
                f"Arithmetic question must be 'whole' or 'clause', got {self.question!r}"
            )
        if not self.ops or any(op not in ARITHMETIC for op in self.ops):
            raise ValueError(
                f"Arithmetic ops must be a non-empty subset of {tuple(ARITHMETIC)}, got {self.ops!r}"
            )
        self._check_scoring()

    @property
    def steps(self) -> int:
        return self.operands

    @property
    def columns(self) -> tuple[str, ...]:
        """The operands' names, the device's column names."""
        return tuple(f"x{i + 1}" for i in range(self.operands))

    @property
    def input_size(self) -> int:
        n, K = self.operands, len(self.ops)
        if self.question == "clause":
            return n + K + self.steps
        return n * n + (n - 1) * K + self.steps

    def encode(self, order, ops) -> np.ndarray:
        """The question's inputs ``[steps, input_size]`` (with the step's one-hot, the last
        ``steps`` entries): the whole question at every step, or step ``t``'s clause only."""
        n, K, T = self.operands, len(self.ops), self.steps
        q = np.zeros((T, self.input_size), np.float32)
        codes = [self.ops.index(o) for o in ops]
        if self.question == "clause":  # step t: operand order[t] and (t > 0) operation t - 1
            q[np.arange(T), np.asarray(order)] = 1.0
            q[np.arange(1, T), n + np.asarray(codes, int)] = 1.0
        else:
            q[:, np.arange(n) * n + np.asarray(order)] = 1.0
            q[:, n * n + np.arange(n - 1) * K + codes] = 1.0
        q[np.arange(T), self.input_size - T + np.arange(T)] = 1.0  # which step it is
        return q

    def decode(self, inputs: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
        """``(order, op codes)`` of one example's inputs ``[steps, input_size]``."""
        n, K = self.operands, len(self.ops)
        if self.question == "clause":
            return inputs[:, :n].argmax(-1), inputs[1:, n : n + K].argmax(-1)
        q = inputs[0]
        return q[: n * n].reshape(n, n).argmax(-1), q[n * n : n * n + (n - 1) * K].reshape(
            n - 1, K
        ).argmax(-1)

    def example(self, rng: np.random.Generator, digits: int):
        """``(operands, order, ops, answer)`` of one random expression."""
        lo, hi = 10 ** (digits - 1), 10**digits
        operands = rng.integers(lo, hi, size=self.operands)
        order = rng.permutation(self.operands)
        ops = [self.ops[i] for i in rng.integers(len(self.ops), size=self.operands - 1)]
        return operands, order, ops, evaluate_expression(operands, order, ops)

    @property
    def contexts(self) -> dict[str, None]:
        return {"table": None}

    def sample(self, rng, batch_size, length=None):
        _check_length("Arithmetic", length)
        digits = self.digits if length is None else int(length)
        n, T = self.operands, self.steps
        inputs = np.zeros((batch_size, T, self.input_size), np.float32)
        table = np.zeros((batch_size, 1, n), np.float32)
        answers = np.zeros(batch_size)
        for b in range(batch_size):
            operands, order, ops, answers[b] = self.example(rng, digits)
            inputs[b] = self.encode(order, ops)
            table[b, 0] = operands
        targets, mask, loss_mask = _answer_batch(answers, T)
        context = {"table": Context(table, np.ones((batch_size, 1), np.float32))}
        return Batch(inputs, targets, mask, loss_mask, context)

    def kind(self, batch: Batch, index: int) -> str:
        """The example's operations, e.g. ``"multiply add"`` (to break accuracy down)."""
        return " ".join(self.ops[i] for i in self.decode(np.asarray(batch.inputs[index]))[1])

    def labels(self, batch: Batch, index: int) -> dict:
        """The expression with its operands' values, and the answer (for traces)."""
        n = self.operands
        order, ops = self.decode(np.asarray(batch.inputs[index]))
        x = batch.context["table"].values[index, 0]
        words = ["(" * (n - 2) + f"x{order[0] + 1}={x[order[0]]:g}"]
        for k, (op, i) in enumerate(zip(ops, order[1:])):
            close = ")" if 0 < k + 1 < n - 1 else ""
            words += [ARITHMETIC[self.ops[op]][0], f"x{i + 1}={x[i]:g}{close}"]
        return {"question": words, "target": [f"{batch.targets[index, -1, 0]:.4g}"]}


# -- table question answering ------------------------------------------------------------------

COLUMN_NAMES = "ABCDE"
NUM = "<num>"
#: question templates: X, Y, Z stand for distinct columns (all the same one for a one-column
#: table), n < m for numbers; ``multi`` templates need two columns
TEMPLATES = {
    "sum": "sum of Y",
    "count_greater": "count rows where X greater than n",
    "count_lesser": "count rows where X lesser than n",
    "sum_greater": "sum of Y where X greater than n",
    "sum_lesser": "sum of Y where X lesser than n",
    "sum_between": "sum of Y where X greater than n and lesser than m",
    "sum_between_swapped": "sum of Y where X lesser than m and greater than n",
    "count_outside": "count rows where X lesser than n or greater than m",
    "print_greater": "print Y where X greater than n",
    "difference": "difference between sum of Y and sum of Z",
}
MULTI = ("difference",)
WORDS = "sum of where count rows greater lesser than and or print difference between".split()
VOCAB = ("<pad>", *WORDS, *COLUMN_NAMES, NUM)
QUESTION_LENGTH = max(len(t.split()) for t in TEMPLATES.values())


def answer_question(words: list[str], table: np.ndarray, names: str, numbers: list[float]):
    """The answer of a template question (the generator's own semantics; the tests check it
    against an independent interpreter). ``words`` has the column letters and ``n``/``m``."""
    col = {c: table[:, names.index(c)] for c in names[: table.shape[1]]}
    text = " ".join(words)
    n, m = (numbers + [0.0, 0.0])[:2]
    if text.startswith("difference"):
        return col[words[4]].sum() - col[words[8]].sum()
    rows = np.ones(table.shape[0], bool)
    if "where" in words:
        x = col[words[words.index("where") + 1]]
        if "and" in words:  # between: n < x < m, in either order of the two conditions
            rows = (x > min(n, m)) & (x < max(n, m))
        elif "or" in words:
            rows = (x < n) | (x > m)
        elif "greater" in words:
            rows = x > n
        else:
            rows = x < n
    if words[0] == "count":
        return float(rows.sum())
    y = col[words[2] if words[0] == "sum" else words[1]]
    if words[0] == "print":
        return float(y[rows].mean())
    return float(y[rows].sum())


class TableQA(AbstractAnswerTask):
    """Synthetic table question answering (see the module docstring)."""

    columns: int = eqx.field(static=True, default=3)
    min_rows: int = eqx.field(static=True, default=4)
    max_rows: int = eqx.field(static=True, default=8)
    max_value: int = eqx.field(static=True, default=100)
    templates: tuple[str, ...] | None = eqx.field(static=True, default=None)
    steps: int = eqx.field(static=True, default=4)
    scale: float = eqx.field(static=True, default=100.0)
    delta: float = eqx.field(static=True, default=10.0)
    atol: float = eqx.field(static=True, default=0.5)
    rtol: float = eqx.field(static=True, default=0.0)

    length_name: ClassVar[str] = "rows"

    def __check_init__(self):
        if not isinstance(self.columns, int) or not 1 <= self.columns <= len(COLUMN_NAMES):
            raise ValueError(
                f"TableQA columns must be between 1 and {len(COLUMN_NAMES)}, got {self.columns!r}"
            )
        check_range("TableQA", "rows", self.min_rows, self.max_rows, minimum=2)
        if not isinstance(self.max_value, int) or self.max_value < self.max_rows + 2:
            raise ValueError(
                f"TableQA max_value must be an integer >= max_rows + 2 (distinct values per "
                f"column), got {self.max_value!r}"
            )
        unknown = [t for t in self.templates or () if t not in TEMPLATES]
        if unknown or self.templates == ():
            raise ValueError(
                f"TableQA templates must be a non-empty subset of {tuple(TEMPLATES)}, got "
                f"{self.templates!r}"
            )
        if self.columns == 1 and self.templates and set(self.templates) <= set(MULTI):
            raise ValueError(f"TableQA templates {self.templates} need at least two columns")
        if not isinstance(self.steps, int) or self.steps < 4:
            raise ValueError(
                f"TableQA steps must be an integer >= 4 (the longest program), got {self.steps!r}"
            )
        self._check_scoring()

    @property
    def names(self) -> tuple[str, ...]:
        """The column names, the device's ``columns``."""
        return tuple(COLUMN_NAMES[: self.columns])

    @property
    def kinds(self) -> tuple[str, ...]:
        """The templates in use: all of them (or the given ones) that fit the table."""
        kinds = self.templates or tuple(TEMPLATES)
        return tuple(k for k in kinds if self.columns > 1 or k not in MULTI)

    @property
    def input_size(self) -> int:
        return self.steps

    @property
    def contexts(self) -> dict[str, int | None]:
        return {"source": len(VOCAB), "table": None}

    def example(self, rng: np.random.Generator, rows: int):
        """``(table[rows, columns], words, numbers, answer)`` of one random question."""
        C = self.columns
        table = np.stack(
            [rng.choice(self.max_value, size=rows, replace=False) for _ in range(C)], axis=1
        ).astype(np.float64)
        kind = self.kinds[rng.integers(len(self.kinds))]
        letters = [self.names[i] for i in rng.permutation(C)] if C > 1 else ["A"] * 3
        letters += letters[:1] * 3
        x, y, z = letters[0], letters[1 % C], letters[2 % C]
        if kind == "difference":
            y, z = letters[0], letters[1]
        n, m = np.sort(rng.choice(self.max_value, size=2, replace=False)).astype(float)
        if kind == "print_greater":  # exactly one row qualifies: the one with the largest x
            n = float(np.sort(table[:, self.names.index(x)])[-2])
        words = [{"X": x, "Y": y, "Z": z}.get(w, w) for w in TEMPLATES[kind].split()]
        numbers = [{"n": n, "m": m}[w] for w in words if w in ("n", "m")]
        answer = answer_question(words, table, "".join(self.names), [n, m])
        return table, words, numbers, answer

    def sample(self, rng, batch_size, length=None):
        _check_length("TableQA", length)
        if length is not None and length < 2:
            raise ValueError(f"TableQA needs tables of at least 2 rows, got {length}")
        R = self.max_rows if length is None else int(length)
        Q, V, C, T = QUESTION_LENGTH, len(VOCAB), self.columns, self.steps
        source = np.zeros((batch_size, Q, V), np.float32)
        source_mask = np.zeros((batch_size, Q), np.float32)
        values = np.zeros((batch_size, R, C), np.float32)
        rows_mask = np.zeros((batch_size, R), np.float32)
        numbers = np.zeros((batch_size, 2), np.float32)
        numbers_mask = np.zeros((batch_size, 2), np.float32)
        positions = np.zeros((batch_size, 2), np.int32)
        answers = np.zeros(batch_size)
        for b in range(batch_size):
            r = R if length is not None else int(rng.integers(self.min_rows, R + 1))
            table, words, nums, answers[b] = self.example(rng, r)
            ids = [VOCAB.index(NUM if w in ("n", "m") else w) for w in words]
            source[b, np.arange(len(ids)), ids] = 1.0
            source_mask[b, : len(ids)] = 1.0
            values[b, :r] = table
            rows_mask[b, :r] = 1.0
            numbers[b, : len(nums)] = nums
            numbers_mask[b, : len(nums)] = 1.0
            where = [i for i, w in enumerate(words) if w in ("n", "m")]
            positions[b, : len(where)] = where
        targets, mask, loss_mask = _answer_batch(answers, T)
        inputs = np.broadcast_to(np.eye(T, dtype=np.float32), (batch_size, T, T)).copy()
        context = {
            "source": Context(source, source_mask),
            "table": Table(values, rows_mask, numbers, numbers_mask, positions),
        }
        return Batch(inputs, targets, mask, loss_mask, context)

    def question_words(self, batch: Batch, index: int) -> list[str]:
        """The question as words, with its numbers written out."""
        src = batch.context["source"]
        ids = src.values[index][src.mask[index] > 0].argmax(-1)
        nums = iter(batch.context["table"].numbers[index])
        return [f"{next(nums):g}" if VOCAB[i] == NUM else VOCAB[i] for i in ids]

    def kind(self, batch: Batch, index: int) -> str:
        """The example's template, a key of :data:`TEMPLATES` (to break accuracy down)."""
        words = self.question_words(batch, index)
        shape = ["X" if w in COLUMN_NAMES else w for w in words]
        for name, template in TEMPLATES.items():
            pattern = [w if w in WORDS else "X" if w in "XYZ" else None for w in template.split()]
            if len(pattern) == len(shape) and all(
                p == w or (p is None and w not in WORDS and w != "X")
                for p, w in zip(pattern, shape)
            ):
                return name
        raise ValueError(f"not a template question: {' '.join(words)}")

    def labels(self, batch: Batch, index: int) -> dict:
        """The table's rows (they label the row selector's trace), the question (the source:
        it labels an attention's trace) and the answer."""
        table = batch.context["table"]
        rows = [
            " ".join(f"{c}={v:g}" for c, v in zip(self.names, row))
            for row, m in zip(table.values[index], table.mask[index])
            if m > 0
        ]
        return {
            "row": rows,
            "source": self.question_words(batch, index),
            "target": [f"{batch.targets[index, -1, 0]:.4g}"],
        }


__all__ = [
    "Arithmetic",
    "TableQA",
    "TEMPLATES",
    "VOCAB",
    "answer_question",
    "evaluate_expression",
    "huber",
]
