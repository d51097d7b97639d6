"""Symbol-sequence tasks: the transduction tasks of Grefenstette et al. (2015) and the a^n b^n
sequences of Joulin & Mikolov (2015).

Grefenstette, Hermann, Suleyman & Blunsom (2015), *Learning to Transduce with Unbounded Memory*,
section 4: sequence copying, sequence reversal and bigram flipping over a vocabulary of 128
symbols (:class:`SymbolCopy`, :class:`Reverse`, :class:`BigramFlip`). Joulin & Mikolov (2015),
*Inferring Algorithmic Patterns with Stack-Augmented Recurrent Nets*: predicting the next symbol
of a^n b^n (:class:`AnBn`).

Symbols are one-hot vectors, so the compiler's input projection of an input step *is* the symbol
embedding; outputs are logits over classes. Loss: softmax cross-entropy summed over the scored
steps. Decoding is greedy and without feedback: the prediction at a step is the argmax of that
step's logits, and the machine never sees its own earlier predictions (the input is blank while
it answers), so there is no teacher forcing to switch off at test time.

Metrics per sequence (Grefenstette et al.'s, averaged over sequences by the training loop):

- ``coarse``: 1 if every scored step (every target symbol and the end class) is right, else 0;
- ``fine``: the fraction of scored steps right before the first error (1 if none is wrong);
- ``token_accuracy``: the fraction of scored steps right;
- ``errors``: ``1 - coarse``, the **main metric**. The training loop's early stopping
  (``Program(target=...)``) stops once the evaluated main metric is ``<= target``, so it must be
  lower-is-better: ``target=0.01`` means "stop when 99% of fresh sequences are perfect".
"""

from __future__ import annotations

import abc
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractTask, Batch, check_range, draw_sizes, positive

# -- loss and metrics shared by every symbol task ---------------------------------------------


def softmax_cross_entropy(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array):
    """``-sum_t loss_mask[t] * sum_c targets[t, c] * log_softmax(logits[t])[c]`` (one-hot
    targets ``[T, classes]``, logits ``[T, classes]``, ``loss_mask[T]``)."""
    per = -jnp.sum(targets * jax.nn.log_softmax(logits, axis=-1), axis=-1)
    return jnp.sum(per * loss_mask)


def sequence_metrics(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array):
    """``coarse``, ``fine``, ``token_accuracy`` and ``errors`` of one sequence, with greedy
    (argmax) decoding at every scored step. A sequence with no scored step counts as perfect."""
    scored = loss_mask > 0
    right = jnp.argmax(logits, axis=-1) == jnp.argmax(targets, axis=-1)
    return scored_metrics(scored, right, scored & ~right)


def scored_metrics(scored: jax.Array, right: jax.Array, wrong: jax.Array):
    """The metrics of :func:`sequence_metrics` from per-step flags: which steps are scored,
    which are right, and which count as errors (``scored & ~right``, or more: e.g. an output
    written where none was due)."""
    n = jnp.maximum(jnp.sum(scored), 1).astype(jnp.float32)
    before_first_error = jnp.cumsum(wrong.astype(jnp.int32)) == 0
    coarse = (jnp.sum(wrong) == 0).astype(jnp.float32)
    return {
        "errors": 1.0 - coarse,
        "coarse": coarse,
        "fine": jnp.sum(scored & right & before_first_error) / n,
        "token_accuracy": jnp.sum(scored & right) / n,
    }


class _SymbolScoring(AbstractTask):
    """Softmax loss, the sequence metrics above and probabilities for traces."""

    main_metric: ClassVar[str] = "errors"

    def loss(self, outputs, targets, loss_mask):
        return softmax_cross_entropy(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        return sequence_metrics(outputs, targets, loss_mask)

    def present(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)


def _check_length(task: str, length) -> None:
    if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1:
        raise ValueError(f"{task} sample(length=...) must be a positive integer, got {length!r}")


# -- Grefenstette et al. 2015 -----------------------------------------------------------------


class AbstractSymbolTask(_SymbolScoring):
    """Transduce a source sequence of symbols ``0..symbols-1`` into a target sequence.

    Input channels (``symbols + 2``, one-hot): the symbols, then the separator (channel
    ``symbols``), then the end marker (channel ``symbols + 1``). Output classes (``symbols + 1``):
    the symbols, then the end class (``symbols``).

    An episode with a source of length ``L`` (drawn uniformly from ``[min_length, max_length]``
    per sequence) takes ``2 L + 2`` steps:

    - steps ``0..L-1``: the source, one symbol per step;
    - step ``L``: the separator;
    - steps ``L+1..2L``: blank inputs; the machine must output the target, one symbol per step;
    - step ``2L+1``: blank input; the machine must output the end class.

    Steps ``L+1..2L+1`` are scored (``loss_mask``); all ``2L+2`` are real (``mask``). The
    end-marker input channel is part of the vocabulary (it is what a decoder fed with its own
    outputs would see after the end class) but these tasks never set it: decoding is greedy and
    without feedback (see the module docstring). Training batches are padded to
    ``2 max_length + 2`` steps, so a run compiles once; ``sample(length=L)`` fixes every source
    length and pads to ``2 L + 2``. Subclasses define :meth:`transduce`.

    The default vocabulary is the paper's 128 symbols; the shipped programs use fewer so they
    train in minutes on a CPU.
    """

    symbols: int = eqx.field(static=True, default=128)
    min_length: int = eqx.field(static=True, default=8)
    max_length: int = eqx.field(static=True, default=16)

    length_name: ClassVar[str] = "length"

    def __check_init__(self):
        name = type(self).__name__
        positive(name, "symbols", self.symbols)
        check_range(name, "length", self.min_length, self.max_length)

    @abc.abstractmethod
    def transduce(self, source: np.ndarray) -> np.ndarray:
        """The target symbols for ``source`` (a 1-D integer array), same length."""

    @property
    def input_size(self) -> int:
        return self.symbols + 2

    @property
    def output_size(self) -> int:
        return self.symbols + 1

    def sample(self, rng, batch_size, length=None):
        if length is not None:
            _check_length(type(self).__name__, length)
        lengths, L_max = draw_sizes(rng, batch_size, self.min_length, self.max_length, length)
        T, S = 2 * L_max + 2, self.symbols
        inputs = np.zeros((batch_size, T, S + 2), np.float32)
        targets = np.zeros((batch_size, T, S + 1), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b, L in enumerate(lengths):
            source = rng.integers(0, S, size=L)
            target = np.asarray(self.transduce(source))
            inputs[b, np.arange(L), source] = 1.0
            inputs[b, L, S] = 1.0
            targets[b, L + 1 + np.arange(L), target] = 1.0
            targets[b, 2 * L + 1, S] = 1.0
            mask[b, : 2 * L + 2] = 1.0
            loss_mask[b, L + 1 : 2 * L + 2] = 1.0
        return Batch(inputs, targets, mask, loss_mask)


class SymbolCopy(AbstractSymbolTask):
    """Output the source unchanged: ``abcd -> abcd`` (Grefenstette et al. 2015's sequence
    copying; named so it does not clash with the bit-vector :class:`~difmachine.Copy`)."""

    def transduce(self, source):
        return source.copy()


class Reverse(AbstractSymbolTask):
    """Output the source reversed: ``abcd -> dcba`` (Grefenstette et al. 2015)."""

    def transduce(self, source):
        return source[::-1].copy()


class BigramFlip(AbstractSymbolTask):
    """Swap each consecutive pair: ``abcde -> badce`` (Grefenstette et al. 2015); an odd-length
    source keeps its last symbol in place."""

    def transduce(self, source):
        out = source.copy()
        even = len(source) - len(source) % 2
        out[0:even:2], out[1:even:2] = source[1:even:2], source[0:even:2]
        return out


# -- Joulin & Mikolov 2015 --------------------------------------------------------------------


class AnBn(_SymbolScoring):
    """Predict the next symbol of ``a^n b^n`` followed by an end symbol (Joulin & Mikolov 2015).

    Vocabulary ``{a, b, end}`` = classes ``0, 1, 2`` for both the one-hot inputs and the output
    logits. An episode with ``n`` (uniform in ``[min_n, max_n]``) takes ``2 n + 1`` steps: the
    inputs are ``n`` a's, ``n`` b's and the end symbol, one per step; the target at each step is
    the next input symbol. Only the deterministic predictions are scored: at the steps whose
    input is a ``b`` (steps ``n..2n-1``), the next symbol is ``b`` except after the last ``b``,
    where it is ``end``. The a's and the first ``b`` cannot be predicted (``n`` is unknown until
    the first ``b`` arrives), and nothing follows the end, so those steps are not scored and
    their targets are zero. ``length`` means ``n``; batches are padded to ``2 max_n + 1`` steps.

    Joulin & Mikolov trained on ``n`` up to 20 and tested generalization to larger ``n``.
    Metrics as for the transduction tasks (``coarse``: every deterministic prediction right).
    """

    max_n: int = eqx.field(static=True, default=20)
    min_n: int = eqx.field(static=True, default=1)

    length_name: ClassVar[str] = "n"

    A: ClassVar[int] = 0
    B: ClassVar[int] = 1
    END: ClassVar[int] = 2

    def __check_init__(self):
        check_range("AnBn", "n", self.min_n, self.max_n)

    @property
    def input_size(self) -> int:
        return 3

    @property
    def output_size(self) -> int:
        return 3

    def sample(self, rng, batch_size, length=None):
        if length is not None:
            _check_length("AnBn", length)
        ns, n_max = draw_sizes(rng, batch_size, self.min_n, self.max_n, length)
        T = 2 * n_max + 1
        inputs = np.zeros((batch_size, T, 3), np.float32)
        targets = np.zeros((batch_size, T, 3), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b, n in enumerate(ns):
            inputs[b, :n, self.A] = 1.0
            inputs[b, n : 2 * n, self.B] = 1.0
            inputs[b, 2 * n, self.END] = 1.0
            targets[b, n : 2 * n - 1, self.B] = 1.0
            targets[b, 2 * n - 1, self.END] = 1.0
            mask[b, : 2 * n + 1] = 1.0
            loss_mask[b, n : 2 * n] = 1.0
        return Batch(inputs, targets, mask, loss_mask)


__all__ = [
    "AbstractSymbolTask",
    "SymbolCopy",
    "Reverse",
    "BigramFlip",
    "AnBn",
    "softmax_cross_entropy",
    "sequence_metrics",
]
