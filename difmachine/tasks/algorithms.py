"""Key-value algorithm tasks of the hierarchical attentive memory (Andrychowicz & Kurach 2016,
*Learning Efficient Algorithms with Hierarchical Attentive Memory*): binary search, merging and
sorting. Their fourth task with its own layout, adding two binary numbers, is
:class:`~difmachine.BinaryAddition` with ``answer_after=True``; reversal is
:class:`~difmachine.Reverse`.

Every task works on *pairs* ``(key, value)``: a key from ``keys`` symbols, a value from
``symbols`` symbols. A pair is one input step, two one-hot blocks side by side (the paper's
``x_i = key_i || value_i``). Input channels (``keys + symbols + 1``): the key block, the value
block, then the separator. Output classes (``symbols + 1``): the values, then the end class.

An episode has the symbol tasks' shape (:class:`~difmachine.AbstractSymbolTask`): the input
steps, which end with a separator; then blank inputs on which the machine emits the target
values one per step and then the end class. Those output steps are scored (``loss_mask``) with
the same loss and metrics (``errors``, ``coarse``, ``fine``, ``token_accuracy``), so
``difmachine eval --lengths`` and ``trace`` work as for ``Reverse``. ``length`` (``sample(
length=n)``, ``--lengths``) is the number of pairs ``n`` (per input sequence for
:class:`MergePairs`); training draws it uniformly from ``[min_length, max_length]`` per example and
pads a batch to the longest episode ``max_length`` can make, so a run compiles once.

- :class:`SearchPairs`: ``n`` pairs sorted by key, keys distinct, then the separator step carrying a
  query key (the key block set) drawn from the ``n`` keys; the output is the query's value
  (``n + 3`` steps).
- :class:`MergePairs`: two sequences of ``n`` pairs each, each sorted by key, each followed by a
  separator (the ``2 n`` keys distinct); the output is the ``2 n`` values in the order of
  their keys (``4 n + 3`` steps).
- :class:`SortPairs`: ``n`` pairs in random order (keys distinct), a separator; the output is the
  ``n`` values in the order of their keys (``2 n + 2`` steps).

Where the paper is silent or differs, decided here: keys and values are one-hot symbols (the paper's
are bit vectors; as we recall it, not yet checked against the paper: 5-bit keys and values, merge
and sort priorities from ``{1/300, ..., 300/300}``); keys are distinct in every task (the paper's
search asks for the first of equal keys), so each answer is unique; the output is the values alone,
in key order (emitting the keys too would let a machine sort the keys without carrying their
values); each generator is a pure function of the numpy generator it is given and valid by
construction. Keys must outnumber the pairs of the longest episode, so ``keys`` defaults to 128:
enough for ``MergePairs`` at 64 pairs per sequence (8 times 8).
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import numpy as np

from ..errors import DifmachineError
from .base import Batch, LevelCurriculum, check_range, draw_sizes, positive
from .symbols import _SymbolScoring


class LengthError(DifmachineError, ValueError):
    """A length the task cannot make (too few distinct keys): one line for the CLI, a
    ``ValueError`` for callers."""


class AbstractKeyValueTask(_SymbolScoring, LevelCurriculum):
    """A task over ``(key, value)`` pairs laid out as a symbol episode; see the module
    docstring. Subclasses say how many input and output steps ``n`` pairs take
    (:meth:`steps`), how many distinct keys they use (:meth:`keys_needed`) and make one example
    (:meth:`example`).

    ``adaptive = b > 0``: a curriculum over the number of pairs. Training starts with
    ``min_length`` pairs and allows one more (lengths drawn uniformly from ``min_length`` up to
    the level) whenever fewer than ``b`` of its sequences over a window of 200 steps were wrong,
    up to ``max_length``. The level is logged and kept in checkpoints; evaluation draws every
    length; batches keep their padded shape at every level, so the run still compiles once."""

    keys: int = eqx.field(static=True, default=128)
    symbols: int = eqx.field(static=True, default=8)
    min_length: int = eqx.field(static=True, default=4)
    max_length: int = eqx.field(static=True, default=8)
    adaptive: float = eqx.field(static=True, default=0.0)
    level: int | None = eqx.field(static=True, default=None, repr=False)  # set by training

    length_name: ClassVar[str] = "length"
    level_range: ClassVar[str] = "within {lo}..{hi} pairs"
    adaptive_hint: ClassVar[str] = ", e.g. 0.1"

    def __check_init__(self):
        name = type(self).__name__
        positive(name, "keys", self.keys)
        positive(name, "symbols", self.symbols)
        check_range(name, "length", self.min_length, self.max_length)
        self.check_keys(self.max_length, "max_length")
        self.check_curriculum()

    def curriculum_range(self) -> tuple[int, int]:
        return self.min_length, self.max_length

    @staticmethod
    @abc.abstractmethod
    def steps(length: int) -> tuple[int, int]:
        """``(input steps, output steps)`` of an episode of ``length`` pairs (the output steps
        without the end class)."""

    @staticmethod
    @abc.abstractmethod
    def keys_needed(length: int) -> int:
        """How many distinct keys an episode of ``length`` pairs draws."""

    @abc.abstractmethod
    def example(self, rng: np.random.Generator, length: int) -> tuple[np.ndarray, np.ndarray]:
        """One episode of ``length`` pairs: ``(inputs[input steps, input_size], target values
        [output steps])``."""

    def check_keys(self, length: int, what: str = "length") -> None:
        need = self.keys_needed(length)
        if need > self.keys:
            name = type(self).__name__
            raise LengthError(
                f"{name} {what} {length} needs {need} distinct keys but keys={self.keys}; raise "
                f"keys to at least {need} or use a shorter {what}"
            )

    @property
    def input_size(self) -> int:
        return self.keys + self.symbols + 1

    @property
    def output_size(self) -> int:
        return self.symbols + 1

    @property
    def separator(self) -> int:
        """The separator's input channel."""
        return self.keys + self.symbols

    def pairs(self, keys: np.ndarray, values: np.ndarray) -> np.ndarray:
        """``[n, input_size]``: pair ``i`` is key ``keys[i]`` and value ``values[i]`` one-hot."""
        rows = np.zeros((len(keys), self.input_size), np.float32)
        rows[np.arange(len(keys)), keys] = 1.0
        rows[np.arange(len(keys)), self.keys + values] = 1.0
        return rows

    def separator_step(self, query: int | None = None) -> np.ndarray:
        """``[1, input_size]``: the separator, carrying ``query`` in the key block if given."""
        row = np.zeros((1, self.input_size), np.float32)
        row[0, self.separator] = 1.0
        if query is not None:
            row[0, query] = 1.0
        return row

    def draw(self, rng: np.random.Generator, n: int) -> tuple[np.ndarray, np.ndarray]:
        """``n`` distinct keys in random order and ``n`` values (uniform)."""
        keys = rng.choice(self.keys, size=n, replace=False)
        return keys, rng.integers(0, self.symbols, size=n)

    def sample(self, rng, batch_size, length=None):
        name = type(self).__name__
        if length is not None:
            if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1:
                raise LengthError(
                    f"{name} sample(length=...) must be a positive integer (pairs), got {length!r}"
                )
            self.check_keys(int(length))
        hi = self.max_length if self.level is None else self.level  # the curriculum's level
        lengths, L_max = draw_sizes(rng, batch_size, self.min_length, hi, length)
        if length is None:
            L_max = self.max_length  # padded as at every level: one shape, one compile
        n_in, n_out = self.steps(L_max)
        T, S = n_in + n_out + 1, self.symbols
        inputs = np.zeros((batch_size, T, self.input_size), np.float32)
        targets = np.zeros((batch_size, T, S + 1), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b, L in enumerate(lengths):
            x, target = self.example(rng, int(L))
            li, lt = len(x), len(target)
            inputs[b, :li] = x
            targets[b, li + np.arange(lt), target] = 1.0
            targets[b, li + lt, S] = 1.0
            mask[b, : li + lt + 1] = 1.0
            loss_mask[b, li : li + lt + 1] = 1.0
        return Batch(inputs, targets, mask, loss_mask)

    def labels(self, batch: Batch, index: int) -> dict:
        """For traces: each real input step as ``key:value``, ``|`` (a separator; ``|key``
        with a query) or ``_`` (blank), and the target of each step (``_`` where unscored,
        ``$`` for the end class)."""
        n = int(batch.mask[index].sum())
        K, S = self.keys, self.symbols
        source = []
        for row in batch.inputs[index, :n]:
            key = str(int(np.argmax(row[:K]))) if row[:K].any() else ""
            if row[K + S]:
                source.append("|" + key)
            elif row[K : K + S].any():
                source.append(f"{key}:{int(np.argmax(row[K : K + S]))}")
            else:
                source.append("_")
        target = [
            ("$" if int(np.argmax(t)) == S else str(int(np.argmax(t)))) if scored else "_"
            for t, scored in zip(batch.targets[index, :n], batch.loss_mask[index, :n] > 0)
        ]
        return {"input": source, "target": target}


class SearchPairs(AbstractKeyValueTask):
    """Find a query key among ``n`` pairs sorted by key and output its value (the paper's
    binary-search task); see the module docstring."""

    @staticmethod
    def steps(length):
        return length + 1, 1

    @staticmethod
    def keys_needed(length):
        return length

    def example(self, rng, length):
        keys, values = self.draw(rng, length)
        order = np.argsort(keys)
        keys, values = keys[order], values[order]
        q = int(rng.integers(0, length))
        x = np.concatenate([self.pairs(keys, values), self.separator_step(int(keys[q]))])
        return x, values[q : q + 1]


class MergePairs(AbstractKeyValueTask):
    """Merge two sequences of ``n`` pairs, each sorted by key: output the ``2 n`` values in
    key order; see the module docstring."""

    @staticmethod
    def steps(length):
        return 2 * length + 2, 2 * length

    @staticmethod
    def keys_needed(length):
        return 2 * length

    def example(self, rng, length):
        keys, values = self.draw(rng, 2 * length)
        parts = []
        for part in (slice(0, length), slice(length, 2 * length)):
            k, v = keys[part], values[part]
            order = np.argsort(k)
            parts += [self.pairs(k[order], v[order]), self.separator_step()]
        return np.concatenate(parts), values[np.argsort(keys)]


class SortPairs(AbstractKeyValueTask):
    """Sort ``n`` pairs by key: output their values in key order; see the module docstring."""

    @staticmethod
    def steps(length):
        return length + 1, length

    @staticmethod
    def keys_needed(length):
        return length

    def example(self, rng, length):
        keys, values = self.draw(rng, length)
        x = np.concatenate([self.pairs(keys, values), self.separator_step()])
        return x, values[np.argsort(keys)]


__all__ = ["AbstractKeyValueTask", "LengthError", "MergePairs", "SearchPairs", "SortPairs"]
