"""Sequence-to-sequence token tasks: a source string in, a target string out, one character per
token. For :class:`~difmachine.Seq2Seq` machines (with or without attention).

Layout of a batch for a task with ``V`` characters:

- ``context = {"source": Context(values[B, S, V], mask[B, S])}``: the source, one-hot, padded to ``S``;
- ``inputs[B, T + 1, V + 2]``: the decoder's teacher-forced inputs: a start token (channel
  ``V + 1``), then the target's tokens; channel ``V`` is the end token, which a greedy decoder
  feeds back when it stops;
- ``targets[B, T + 1, V + 1]``: the target's tokens, then the end class ``V``;
- ``mask = loss_mask``: the target's tokens and its end.

Evaluation decodes greedily (``generative = True``): the decoder gets the start token, then its
own previous output, until it emits the end class. Metrics per sequence: ``exact`` (every
target token and the end right), ``token_accuracy`` and ``errors = 1 - exact`` (the main
metric). A position after the decoder stopped counts as wrong.
"""

from __future__ import annotations

import abc
import datetime
from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractTask, Batch, Context, check_range, positive
from .symbols import sequence_metrics, softmax_cross_entropy

END = "<end>"
START = "<start>"


class AbstractTokenTask(AbstractTask):
    """A source string -> target string task over the characters of :attr:`vocab`.

    Subclasses define :attr:`vocab`, :meth:`pair` (one random example) and :meth:`padded`
    (the padded source and target lengths for a batch).
    """

    generative: ClassVar[bool] = True
    main_metric: ClassVar[str] = "errors"
    length_name: ClassVar[str] = "length"

    @property
    @abc.abstractmethod
    def vocab(self) -> str:
        """The characters sources and targets are made of (one token each)."""

    @abc.abstractmethod
    def pair(self, rng: np.random.Generator, length: int | None) -> tuple[str, str]:
        """One ``(source, target)`` example; ``length`` fixes its size (``None``: training mix)."""

    @abc.abstractmethod
    def padded(self, length: int | None) -> tuple[int, int]:
        """``(source, target)`` lengths a batch is padded to (the target without its end)."""

    # -- sizes ------------------------------------------------------------------------------

    @property
    def contexts(self) -> dict[str, int]:
        return {"source": len(self.vocab)}

    @property
    def input_size(self) -> int:
        return len(self.vocab) + 2

    @property
    def output_size(self) -> int:
        return len(self.vocab) + 1

    @property
    def tokens(self) -> list[str]:
        """Names of the output classes (the characters, then the end token)."""
        return [*self.vocab, END]

    def ids(self, text: str) -> np.ndarray:
        index = {c: i for i, c in enumerate(self.vocab)}
        try:
            return np.array([index[c] for c in text], np.int64)
        except KeyError as e:
            raise ValueError(
                f"{type(self).__name__}: character {e} is not in the vocabulary"
            ) from None

    # -- batches ----------------------------------------------------------------------------

    def sample(self, rng, batch_size, length=None):
        if length is not None and (
            not isinstance(length, (int, np.integer)) or isinstance(length, bool) or length < 1
        ):
            raise ValueError(
                f"{type(self).__name__} sample(length=...) must be a positive integer, got {length!r}"
            )
        S, T = self.padded(length)
        pairs = []
        for _ in range(batch_size):
            src, tgt = self.pair(rng, length)
            s, t = self.ids(src), self.ids(tgt)
            if len(s) > S or len(t) > T:
                raise AssertionError(f"{type(self).__name__}.padded is too small for {src!r}")
            pairs.append((s, t))
        return self.token_batch(pairs, S, T)

    def token_batch(self, pairs: list[tuple[np.ndarray, np.ndarray]], S: int, T: int) -> Batch:
        """A batch of ``(source ids, target ids)`` pairs, sources padded to ``S`` tokens and
        targets to ``T`` (plus the end)."""
        batch_size, V = len(pairs), len(self.vocab)
        source = np.zeros((batch_size, S, V), np.float32)
        source_mask = np.zeros((batch_size, S), np.float32)
        inputs = np.zeros((batch_size, T + 1, V + 2), np.float32)
        targets = np.zeros((batch_size, T + 1, V + 1), np.float32)
        mask = np.zeros((batch_size, T + 1), np.float32)
        for b, (s, t) in enumerate(pairs):
            source[b, np.arange(len(s)), s] = 1.0
            source_mask[b, : len(s)] = 1.0
            inputs[b, 0, V + 1] = 1.0
            inputs[b, 1 + np.arange(len(t)), t] = 1.0
            targets[b, np.arange(len(t)), t] = 1.0
            targets[b, len(t), V] = 1.0
            mask[b, : len(t) + 1] = 1.0
        return Batch(inputs, targets, mask, mask.copy(), {"source": Context(source, source_mask)})

    # -- decoding and scoring ---------------------------------------------------------------

    def feedback(self, output):
        return jax.nn.one_hot(jnp.argmax(output), self.input_size, dtype=jnp.float32)

    def stop(self, output):
        return jnp.argmax(output) == len(self.vocab)

    def loss(self, outputs, targets, loss_mask):
        return softmax_cross_entropy(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        m = sequence_metrics(outputs, targets, loss_mask)
        return {"errors": m["errors"], "exact": m["coarse"], "token_accuracy": m["token_accuracy"]}

    def content_metrics(self, outputs, targets, loss_mask):
        """The tokens before the end token: ``exact`` (all right) and ``token_accuracy``."""
        content = loss_mask * (jnp.argmax(targets, axis=-1) != len(self.vocab))
        m = sequence_metrics(outputs, targets, content)
        return {"exact": m["coarse"], "token_accuracy": m["token_accuracy"]}

    def present(self, outputs):
        return jax.nn.softmax(outputs, axis=-1)

    def labels(self, batch: Batch, index: int) -> dict:
        """The example's source and target as token strings (for traces)."""
        source = batch.context["source"]
        src = source.values[index][source.mask[index] > 0].argmax(-1)
        tgt = batch.targets[index][batch.loss_mask[index] > 0].argmax(-1)
        names = self.tokens
        return {"source": [names[i] for i in src], "target": [names[i] for i in tgt]}

    def output_labels(self, predictions):
        return [self.tokens[i] for i in np.asarray(predictions).argmax(-1)]


def _letters(n: int) -> str:
    alphabet = "abcdefghijklmnopqrstuvwxyz"
    if not 1 <= n <= len(alphabet):
        raise ValueError(f"symbols must be between 1 and {len(alphabet)}, got {n}")
    return alphabet[:n]


class AbstractStringTask(AbstractTokenTask):
    """Strings of ``min_length..max_length`` letters from the first ``symbols`` letters."""

    symbols: int = eqx.field(static=True, default=10)
    min_length: int = eqx.field(static=True, default=4)
    max_length: int = eqx.field(static=True, default=12)

    def __check_init__(self):
        name = type(self).__name__
        positive(name, "symbols", self.symbols)
        _letters(self.symbols)
        check_range(name, "length", self.min_length, self.max_length)

    @property
    def vocab(self) -> str:
        return _letters(self.symbols)

    @abc.abstractmethod
    def transform(self, source: str) -> str: ...

    def pair(self, rng, length):
        n = (
            int(length)
            if length is not None
            else int(rng.integers(self.min_length, self.max_length + 1))
        )
        source = "".join(self.vocab[i] for i in rng.integers(0, self.symbols, size=n))
        return source, self.transform(source)

    def padded(self, length):
        n = self.max_length if length is None else int(length)
        return n, n


class ReverseString(AbstractStringTask):
    """``abcd -> dcba``."""

    def transform(self, source):
        return source[::-1]


class SortString(AbstractStringTask):
    """``dbca -> abcd`` (letters in alphabetical order, repeats kept)."""

    def transform(self, source):
        return "".join(sorted(source))


class Addition(AbstractTokenTask):
    """``"a+b" -> "a+b evaluated"`` in decimal characters, e.g. ``"57+8" -> "65"``.

    Each operand has ``1..max_digits`` digits (drawn independently, then a uniform number with
    that many digits); ``length`` fixes both operands to ``length`` digits.
    """

    min_digits: int = eqx.field(static=True, default=1)
    max_digits: int = eqx.field(static=True, default=3)

    length_name: ClassVar[str] = "digits"

    def __check_init__(self):
        check_range("Addition", "digits", self.min_digits, self.max_digits)

    @property
    def vocab(self) -> str:
        return "0123456789+"

    def _number(self, rng, digits: int) -> int:
        lo = 0 if digits == 1 else 10 ** (digits - 1)
        return int(rng.integers(lo, 10**digits))

    def pair(self, rng, length):
        if length is None:
            da, db = (int(d) for d in rng.integers(self.min_digits, self.max_digits + 1, size=2))
        else:
            da = db = int(length)
        a, b = self._number(rng, da), self._number(rng, db)
        return f"{a}+{b}", str(a + b)

    def padded(self, length):
        d = self.max_digits if length is None else int(length)
        return 2 * d + 1, d + 1


MONTHS = (
    "January February March April May June July August September October November December"
).split()

DATE_FORMATS = (
    "{d} {mon} {y}",  # 7 Mar 1994
    "{dd} {month} {y}",  # 07 March 1994
    "{month} {d}, {y}",  # March 7, 1994
    "{mon} {d} {y}",  # Mar 7 1994
    "{mm}/{dd}/{y}",  # 03/07/1994 (US order)
    "{d}.{m}.{y}",  # 7.3.1994
    "{y}/{mm}/{dd}",  # 1994/03/07
    "{weekday}, {d} {month} {y}",  # Monday, 7 March 1994
)


_WEEKDAYS = "Monday Tuesday Wednesday Thursday Friday Saturday Sunday".split()


def render_date(date: datetime.date, fmt: str) -> str:
    """``date`` written in ``fmt`` (one of :data:`DATE_FORMATS`), English names whatever the
    locale."""
    month = MONTHS[date.month - 1]
    return fmt.format(
        d=date.day,
        dd=f"{date.day:02d}",
        m=date.month,
        mm=f"{date.month:02d}",
        y=date.year,
        mon=month[:3],
        month=month,
        weekday=_WEEKDAYS[date.weekday()],
    )


class DateFormat(AbstractTokenTask):
    """Normalise a human-written date to ISO 8601: ``"March 7, 1994" -> "1994-03-07"``.

    Dates are uniform over ``first_year..last_year``; the source is written in one of
    :data:`DATE_FORMATS` (chosen uniformly). The alignment is monotone within each field but
    the fields move (the year comes first in the output and last in most inputs) and month
    names must be mapped to numbers. There is no length to vary: ``length`` must be ``None``.
    """

    first_year: int = eqx.field(static=True, default=1950)
    last_year: int = eqx.field(static=True, default=2049)

    length_name: ClassVar[str] = "length"

    def __check_init__(self):
        check_range("DateFormat", "year", self.first_year, self.last_year)

    @property
    def vocab(self) -> str:
        chars = set("0123456789-/., ")
        for name in MONTHS + _WEEKDAYS:
            chars.update(name)
        return "".join(sorted(chars))

    def pair(self, rng, length):
        if length is not None:
            raise ValueError("DateFormat has no length to vary; evaluate it without --lengths")
        first = datetime.date(self.first_year, 1, 1).toordinal()
        last = datetime.date(self.last_year, 12, 31).toordinal()
        date = datetime.date.fromordinal(int(rng.integers(first, last + 1)))
        fmt = DATE_FORMATS[int(rng.integers(len(DATE_FORMATS)))]
        return render_date(date, fmt), date.isoformat()

    def padded(self, length):
        if length is not None:
            raise ValueError("DateFormat has no length to vary; evaluate it without --lengths")
        return len("Wednesday, 30 September 1999"), 10


__all__ = [
    "AbstractTokenTask",
    "AbstractStringTask",
    "ReverseString",
    "SortString",
    "Addition",
    "DateFormat",
    "render_date",
    "DATE_FORMATS",
    "END",
    "START",
]
