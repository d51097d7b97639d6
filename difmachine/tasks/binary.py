"""Binary arithmetic in the Neural GPU's layout (Kaiser & Sutskever 2015), with copy, reverse and
duplication as sanity checks.

Every task maps an input sequence of ``n`` symbols to an output sequence of the same length
``n`` (the Neural GPU reads the whole input at once and writes every output position at the
end). Input symbols (one-hot channels): ``0``, ``1``, ``+``, ``*``; a blank is the all-zero
vector. Output classes: ``0``, ``1`` and blank (class 2).

- :class:`BinaryAddition`, :class:`BinaryMultiplication`: two ``k``-bit numbers, least
  significant bit first, separated by the operator: ``a_0 .. a_{k-1} + b_0 .. b_{k-1}``
  (``n = 2 k + 1``). The target is the result, least significant bit first, without its
  leading (most significant) zeros (``0`` for zero), then blanks up to ``n``: the layout of the
  paper's code (``badd``, ``bmul``).
- :class:`BinaryCopy`, :class:`BinaryReverse`: ``k`` random bits (``n = k``); the target is
  the same bits, or reversed.
- :class:`BinaryDuplicate`: ``k`` random bits then ``k`` blanks (``n = 2 k``); the target is the
  bits twice (the paper's ``dup``).

``length`` (``sample(length=k)``, ``difmachine eval --lengths``) is ``k``, the bits per
operand. Every real position is scored, blanks included (a model must also know where the
result ends); the loss is the softmax cross-entropy summed over them (``mean_loss = True``:
averaged over them, as Freivalds & Liepins's code does, so that every sequence weighs the same
whatever its length). Metrics per sequence:
``errors`` (1 unless every position is right: the per-sequence error, the **main metric**),
``symbol_errors`` (the fraction of positions wrong), plus ``coarse``, ``fine`` and
``token_accuracy`` as for the other symbol tasks.

Lengths in training: batches mix ``k`` in ``[min_bits, max_bits]`` (padded to the longest, so a
run compiles once). ``curriculum = a >= 0`` draws ``k`` with probability proportional to
``k^-a``: ``0`` is uniform, larger values favour short numbers. The paper's curriculum raises the
longest training length once the error at the current one is low; the task protocol has no
channel from training back to the sampler (a batch depends only on its seed and step, so a
resumed run replays exactly), so this is the stateless stand-in: many short examples to learn
the local rule from, some long ones to keep it honest.

``adaptive = b > 0`` is the paper's curriculum instead (its ``curriculum_bound``, 0.15): training
starts with numbers of at most ``min_bits + 1`` bits (the *level*) and, whenever the fraction of
wrong training sequences over a window of 200 steps falls below ``b``, the level grows by one
bit, up to ``max_bits``. At a level ``L``, ``k`` is uniform in ``[min_bits, L]``, and 60% of the
time the larger of two such draws (the paper's preference for the longest). The paper also draws
25% of its batches at any length; those are left out here, so that every training batch counts
towards the window's error rate. Training keeps the level in its checkpoints (a resumed run
continues at it) and logs it in ``metrics.jsonl`` (column ``level``); evaluation uses every
length.

``answer_after = True`` is the layout for machines that read one symbol per step (an LSTM, an
NTM): the ``n`` input symbols, then ``n`` blank steps in which the output is written and scored
(the input positions are not scored). The Neural GPU, which sees the whole input at once, takes
the plain layout.

``bucket = True`` draws one ``k`` per training batch (by the same curriculum) and pads the batch
only to ``size(k)``, as the paper's code does (its batches each hold one length; ``shorter = p``
draws fewer bits for a fraction ``p`` of a batch, padded, as Freivalds & Liepins's bins hold 5%
shorter examples); evaluation (``length=None``) then draws every example's ``k`` uniformly,
mixed in a batch. ``bins = (n_1, n_2, ...)`` (with ``bucket``) is Freivalds & Liepins's
batching instead: a batch draws one of these padded lengths uniformly, and each of its examples
draws its own sequence length uniformly above the previous bin, up to this one, and takes the
most bits that fit (at most ``max_bits``); ``shorter`` then draws from a smaller bin. Their code
uses ``(8, 12, 16, 20, 25, 28, 31, 36, 41)`` for operands of up to 20 bits: most examples are a
few columns shorter than their batch, so a machine that runs the batch's ``n`` steps
(``NeuralGPU(freeze=False)``) cannot count on its number of steps matching the input. Each length
compiles the train step once (``max_bits - min_bits + 1`` compiles, a few seconds each), and a
batch of short numbers then costs what it is: a Neural GPU step is quadratic in the length, so
at 1-20 bits with ``curriculum = 1`` a step costs on average about a sixth of a padded one.
"""

from __future__ import annotations

import abc
import dataclasses
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..protocol import check_flag, check_fraction, check_non_negative
from .base import Batch, LevelCurriculum, check_range
from .symbols import sequence_metrics, softmax_cross_entropy

ZERO, ONE, PLUS, TIMES = 0, 1, 2, 3  # input channels; blank = all zero
BLANK = 2  # output class
INPUT_NAMES = ("0", "1", "+", "*")
OUTPUT_NAMES = ("0", "1", "_")


def to_bits(value: int, bits: int | None = None) -> list[int]:
    """``value`` in binary, least significant bit first: exactly ``bits`` bits, or without
    leading zeros (``[0]`` for zero)."""
    if bits is not None:
        return [(value >> i) & 1 for i in range(bits)]
    out = []
    while value:
        out.append(value & 1)
        value >>= 1
    return out or [0]


def from_bits(bits) -> int:
    """The number whose bits, least significant first, are ``bits``."""
    return sum(int(b) << i for i, b in enumerate(bits))


class AbstractBinaryTask(LevelCurriculum):
    """Symbol-to-symbol tasks of equal input and output length; see the module docstring."""

    min_bits: int = eqx.field(static=True, default=1)
    max_bits: int = eqx.field(static=True, default=20)
    curriculum: float = eqx.field(static=True, default=0.0)
    bucket: bool = eqx.field(static=True, default=False)
    answer_after: bool = eqx.field(static=True, default=False)
    adaptive: float = eqx.field(static=True, default=0.0)
    level: int | None = eqx.field(static=True, default=None, repr=False)  # set by training
    shorter: float = eqx.field(static=True, default=0.0)
    bins: tuple[int, ...] = eqx.field(
        static=True, default=(), converter=lambda b: tuple(b) if isinstance(b, list) else b
    )
    mean_loss: bool = eqx.field(static=True, default=False)

    main_metric: ClassVar[str] = "errors"
    length_name: ClassVar[str] = "length"
    level_range: ClassVar[str] = "within {lo}..{hi} bits"
    adaptive_hint: ClassVar[str] = ", the paper's 0.15"

    def __check_init__(self):
        name = type(self).__name__
        check_range(name, "bits", self.min_bits, self.max_bits)
        check_non_negative(name, "curriculum", self.curriculum, " (0 = uniform)")
        self.check_curriculum()
        check_fraction(name, "shorter", self.shorter, "a fraction")
        if self.shorter and not self.bucket:
            raise ValueError(f"{name} shorter mixes shorter numbers into a bucket: use bucket=True")
        for flag in ("bucket", "answer_after", "mean_loss"):
            check_flag(name, flag, getattr(self, flag))
        if self.bins:
            self._check_bins(name)

    def _check_bins(self, name: str):
        bins = self.bins
        if not isinstance(bins, tuple) or not all(
            isinstance(b, (int, np.integer)) and not isinstance(b, bool) for b in bins
        ):
            raise ValueError(f"{name} bins must be whole sequence lengths, got {bins!r}")
        if list(bins) != sorted(set(bins)):
            raise ValueError(f"{name} bins must be increasing sequence lengths, got {bins!r}")
        if not self.bucket or self.curriculum or self.adaptive:
            raise ValueError(
                f"{name} bins replace the curriculum's draw of lengths: use them with "
                "bucket=True, curriculum=0 and adaptive=0"
            )
        if bins[0] < self.size(self.min_bits):
            raise ValueError(
                f"{name} bins must start at a length of at least {self.size(self.min_bits)} "
                f"(a sequence of min_bits={self.min_bits}), got {bins[0]}"
            )

    @staticmethod
    @abc.abstractmethod
    def size(bits: int) -> int:
        """The sequence length ``n`` for ``bits`` bits per operand."""

    @abc.abstractmethod
    def example(self, rng: np.random.Generator, bits: int) -> tuple[list[int], list[int]]:
        """One example: input symbols (``-1`` = blank) and output classes, both of length
        ``size(bits)``."""

    @property
    def input_size(self) -> int:
        return len(INPUT_NAMES)

    @property
    def output_size(self) -> int:
        return len(OUTPUT_NAMES)

    def bits_in(self, length: int) -> int:
        """The most bits per operand whose sequence fits in ``length`` (at least ``min_bits``,
        at most ``max_bits``)."""
        k = self.min_bits
        while k < self.max_bits and self.size(k + 1) <= length:
            k += 1
        return k

    def draw_bins(self, rng: np.random.Generator, batch_size: int) -> tuple[np.ndarray, int]:
        """Bits per operand for each example of a training batch, and the batch's padded length,
        by ``bins`` (see the module docstring)."""
        bins = self.bins
        i = int(rng.integers(len(bins)))
        if self.shorter and i > 0:
            own = np.where(rng.random(batch_size) < self.shorter, rng.integers(0, i, batch_size), i)
        else:
            own = np.full(batch_size, i)
        lo = np.asarray((0, *bins[:-1]))[own] + 1  # each example's length: above the bin below
        lengths = rng.integers(lo, np.asarray(bins)[own] + 1)
        return np.asarray([self.bits_in(int(length)) for length in lengths]), bins[i]

    def draw_bits(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Bits per operand for each example of a training batch (see ``curriculum``); with
        ``bucket`` one draw for the whole batch, of which a fraction ``shorter`` then draws
        fewer bits (uniform from ``min_bits``; the batch stays padded to its longest)."""
        ks = self._draw_bits(rng, batch_size)
        if self.shorter:
            short = rng.random(batch_size) < self.shorter
            ks = np.where(short, rng.integers(self.min_bits, ks + 1), ks)
        return ks

    def _draw_bits(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        size = 1 if self.bucket else batch_size
        if self.level is not None:  # the paper's mix at a curriculum level: favour the longest
            lo, hi = self.min_bits, self.level
            ks = rng.integers(lo, hi + 1, size=size)
            longer = rng.random(size) < 0.6
            ks = np.where(longer, np.maximum(ks, rng.integers(lo, hi + 1, size=size)), ks)
            return np.full(batch_size, ks[0]) if self.bucket else ks
        ks = np.arange(self.min_bits, self.max_bits + 1)
        p = ks.astype(np.float64) ** -float(self.curriculum)
        if self.bucket:
            return np.full(batch_size, rng.choice(ks, p=p / p.sum()))
        return rng.choice(ks, size=batch_size, p=p / p.sum())

    def sample(self, rng, batch_size, length=None):
        if length is not None:
            if not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1:
                raise ValueError(
                    f"{type(self).__name__} sample(length=...) must be a positive integer "
                    f"(bits per operand), got {length!r}"
                )
            ks = np.full(batch_size, int(length))
            n = self.size(int(length))
        elif self.bins:
            ks, n = self.draw_bins(rng, batch_size)
        else:
            ks = self.draw_bits(rng, batch_size)
            n = self.size(int(ks.max()) if self.bucket else self.max_bits)
        return self.encode([self.example(rng, int(k)) for k in ks], n)

    def encode(self, examples: list[tuple[list[int], list[int]]], n: int) -> Batch:
        """The batch of ``examples`` (each ``(input symbols, output classes)`` as
        :meth:`example` makes them; ``-1`` is a blank input) padded to ``n`` symbols."""
        n = 2 * n if self.answer_after else n
        batch_size = len(examples)
        inputs = np.zeros((batch_size, n, self.input_size), np.float32)
        targets = np.zeros((batch_size, n, self.output_size), np.float32)
        mask = np.zeros((batch_size, n), np.float32)
        loss_mask = np.zeros((batch_size, n), np.float32)
        for b, (symbols, classes) in enumerate(examples):
            L = len(symbols)
            first = 0
            if self.answer_after:  # read the whole input, then answer in as many steps
                symbols, classes, first = symbols + [-1] * L, [BLANK] * L + classes, L
                L = 2 * L
            idx = np.arange(L)
            symbols = np.asarray(symbols)
            real = symbols >= 0
            inputs[b, idx[real], symbols[real]] = 1.0
            targets[b, idx, np.asarray(classes)] = 1.0
            mask[b, :L] = 1.0
            loss_mask[b, first:L] = 1.0
        return Batch(inputs, targets, mask, loss_mask)

    def curriculum_start(self):
        return min(self.min_bits + 1, self.max_bits) if self.adaptive else None

    def curriculum_range(self):
        return self.min_bits, self.max_bits

    def evaluation_source(self):
        """With ``bucket``, the training mix is evaluated mixed (every example its own length,
        as without buckets: a few one-length batches would make a noisy score) and uniform over
        ``min_bits..max_bits`` (the curriculum's favouring of short numbers would flatter it)."""
        if not self.bucket:
            return self
        return dataclasses.replace(
            self, bucket=False, curriculum=0.0, level=None, shorter=0.0, bins=()
        )

    def loss(self, outputs, targets, loss_mask):
        total = softmax_cross_entropy(outputs, targets, loss_mask)
        return total / jnp.maximum(jnp.sum(loss_mask), 1.0) if self.mean_loss else total

    def metrics(self, outputs, targets, loss_mask):
        metrics = sequence_metrics(outputs, targets, loss_mask)
        return {**metrics, "symbol_errors": 1.0 - metrics["token_accuracy"]}

    def present(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)

    def labels(self, batch: Batch, index: int) -> dict:
        L = int(batch.mask[index].sum())
        x, t = batch.inputs[index, :L], batch.targets[index, :L]
        source = [INPUT_NAMES[int(np.argmax(v))] if v.any() else "_" for v in x]
        return {"input": source, "target": [OUTPUT_NAMES[int(np.argmax(v))] for v in t]}

    def output_labels(self, predictions):
        return [OUTPUT_NAMES[int(i)] for i in jnp.argmax(jnp.asarray(predictions), axis=-1)]


class _Arithmetic(AbstractBinaryTask):
    OPERATOR: ClassVar[int] = PLUS

    @staticmethod
    def size(bits):
        return 2 * bits + 1

    @staticmethod
    @abc.abstractmethod
    def apply(a: int, b: int) -> int: ...

    def example(self, rng, bits):
        a, b = (from_bits(x) for x in rng.integers(0, 2, size=(2, bits)))  # Python ints
        return self.operands(a, b, bits)

    def operands(self, a: int, b: int, bits: int) -> tuple[list[int], list[int]]:
        """The example of ``a`` and ``b`` as ``bits``-bit operands (``encode`` makes batches of
        them: ``bench/addition_probe.py`` builds its sums by hand)."""
        n = self.size(bits)
        symbols = to_bits(a, bits) + [self.OPERATOR] + to_bits(b, bits)
        result = to_bits(self.apply(a, b))
        return symbols, result + [BLANK] * (n - len(result))


class BinaryAddition(_Arithmetic):
    """``a + b`` of two ``k``-bit numbers (the paper's ``badd``); see the module docstring."""

    OPERATOR: ClassVar[int] = PLUS

    @staticmethod
    def apply(a, b):
        return a + b


class BinaryMultiplication(_Arithmetic):
    """``a * b`` of two ``k``-bit numbers (the paper's ``bmul``); see the module docstring."""

    OPERATOR: ClassVar[int] = TIMES

    @staticmethod
    def apply(a, b):
        return a * b


class BinaryCopy(AbstractBinaryTask):
    """``k`` random bits, copied (the paper's ``id``)."""

    @staticmethod
    def size(bits):
        return bits

    def example(self, rng, bits):
        x = [int(v) for v in rng.integers(0, 2, size=bits)]
        return x, list(x)


class BinaryReverse(AbstractBinaryTask):
    """``k`` random bits, reversed (the paper's ``rev``)."""

    @staticmethod
    def size(bits):
        return bits

    def example(self, rng, bits):
        x = [int(v) for v in rng.integers(0, 2, size=bits)]
        return x, x[::-1]


class BinaryDuplicate(AbstractBinaryTask):
    """``k`` random bits then ``k`` blanks, to be written out twice (the paper's ``dup``)."""

    @staticmethod
    def size(bits):
        return 2 * bits

    def example(self, rng, bits):
        x = [int(v) for v in rng.integers(0, 2, size=bits)]
        return x + [-1] * bits, x + x


__all__ = [
    "AbstractBinaryTask",
    "BinaryAddition",
    "BinaryMultiplication",
    "BinaryCopy",
    "BinaryReverse",
    "BinaryDuplicate",
    "to_bits",
    "from_bits",
]
