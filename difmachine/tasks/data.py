"""Tasks built from your own data: bit-vector sequences and token pairs, from arrays or files.

- :class:`BitSequences`: each example is an input sequence of bit vectors and a target
  sequence of bit vectors (a copy-like task). The machine reads the input, one delimiter step,
  then answers with the target: inputs ``[B, T, in_bits + 1]`` (the last channel is the
  delimiter), targets ``[B, T, target_bits]`` scored on the answer steps only. Loss and
  metrics are those of every bit task (``bit_errors``, ``bit_accuracy``, ``perfect``).
- :class:`TokenPairs`: each example is a source token sequence and a target token sequence,
  laid out like the built-in sequence-to-sequence tasks (:mod:`difmachine.tasks.tokens`): the
  source is the ``"source"`` context, the target is decoded greedily at evaluation.

Files: JSON lines (``.jsonl``), tab-separated (``.tsv``) or numpy (``.npz``):

=========  ==================================================  ===============================
format     BitSequences                                        TokenPairs
=========  ==================================================  ===============================
``.jsonl`` ``{"input": [[0,1,1], ...], "target": [[1,0], ...]}`` ``{"source": "abc", "target": "cba"}``
``.tsv``   ``011 101<TAB>10 01`` (vectors separated by spaces)  ``abc<TAB>cba``
``.npz``   ``inputs[N, L, b]``, ``targets[N, L', b']`` and      ``source[N]``, ``target[N]`` (strings)
           optional ``input_lengths[N]``, ``target_lengths[N]``
=========  ==================================================  ===============================

Token strings are split into characters, or with ``sep=" "`` into words; a JSON list is a
token sequence as it is. The vocabulary (and so the machine's widths) comes from the data.

Training/validation split: ``validation=0.1`` holds out a fraction of the examples (shuffled
with ``seed``, the same split every time), or ``validation=FILE`` (or arrays) gives the
validation examples explicitly. Training batches are drawn from the training split; periodic
evaluation and ``difmachine eval`` score the validation split (in order, every example once,
at most ``samples`` of them); ``difmachine eval RUN --data FILE`` scores another file.

Relative file names are relative to the program file's directory (the directory of the
program that was trained, for a run directory), else to the current directory.

The task is a static spec: its fields are the resolved file names, the split, the widths or
vocabulary and a content hash (``digest``) of the data. The examples themselves live in a
cache in this module, keyed by that hash, and are read again from the files when needed.
"""

from __future__ import annotations

import contextlib
import hashlib
import json
import os
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import ClassVar

import equinox as eqx
import numpy as np

from ..errors import DifmachineError
from .base import AbstractBitTask, Batch
from .tokens import END, AbstractTokenTask


class DataError(DifmachineError):
    """A data file or array that cannot be used: the message names the file, the line and the fix."""


FORMATS = (".jsonl", ".tsv", ".npz")

# -- where relative file names are resolved ------------------------------------------------------

_base: list[Path] = []


@contextlib.contextmanager
def relative_to(directory: str | Path | None) -> Iterator[None]:
    """Resolve the relative data file names of tasks built inside this block against
    ``directory`` (the program loader uses the program file's directory)."""
    if directory is None:
        yield
        return
    _base.append(Path(directory))
    try:
        yield
    finally:
        _base.pop()


def _resolve(path: str | os.PathLike) -> Path:
    path = Path(path).expanduser()
    if not path.is_absolute() and _base:
        candidate = _base[-1] / path
        if candidate.exists() or not path.exists():
            path = candidate
    return path.resolve()


# -- parsed examples, cached by content hash -------------------------------------------------------

_CACHE: dict[tuple[str, str], list] = {}  # (kind, digest) -> examples
_LONGEST: dict[tuple, tuple[int, int]] = {}  # a task's padded lengths
_SPLITS: dict[tuple, dict[str, list]] = {}  # (kind, digest, fraction, seed) -> the two splits


def _digest_bytes(data: bytes) -> str:
    return hashlib.sha256(data).hexdigest()[:16]


def _examples_digest(kind: str, examples: list) -> str:
    h = hashlib.sha256(kind.encode())
    for a, b in examples:
        for x in (a, b):
            if isinstance(x, np.ndarray):
                h.update(repr(x.shape).encode())
                h.update(np.ascontiguousarray(x, np.float32).tobytes())
            else:
                h.update(json.dumps(list(x)).encode())
            h.update(b"\0")
    return h.hexdigest()[:16]


def _fail(where: str, message: str):
    raise DataError(f"{where}: {message}")


def _read_file(path: Path, kind: str, sep: str | None) -> tuple[list, str]:
    """``(examples, digest)`` of a data file; a one-line :class:`DataError` for a problem."""
    if path.suffix not in FORMATS:
        _fail(str(path), f"unknown data format {path.suffix!r}; use one of {', '.join(FORMATS)}")
    try:
        raw = path.read_bytes()
    except FileNotFoundError:
        _fail(
            str(path),
            "no such data file; check the name (a program's relative names start at its directory)",
        )
    except IsADirectoryError:
        _fail(str(path), "is a directory; give a data file (.jsonl, .tsv or .npz)")
    except OSError as e:
        _fail(str(path), f"cannot read it ({e.strerror})")
    digest = _digest_bytes(raw + (sep or "").encode() + kind.encode())
    cached = _CACHE.get((kind, digest))
    if cached is not None:
        return cached, digest
    if path.suffix == ".npz":
        examples = _read_npz(path, kind, sep)
    else:
        try:
            text = raw.decode("utf-8")
        except UnicodeDecodeError:
            _fail(str(path), "is not UTF-8 text")
        reader = _jsonl_row if path.suffix == ".jsonl" else _tsv_row
        examples, wheres = [], []
        for n, line in enumerate(text.splitlines(), 1):
            if not line.strip():
                continue
            wheres.append(f"{path}, line {n}")
            examples.append(reader(line, kind, sep, wheres[-1]))
        _check_widths(kind, examples, wheres)
    if not examples:
        _fail(str(path), "holds no examples")
    _CACHE[(kind, digest)] = examples
    return examples, digest


def _check_widths(kind: str, examples: list, wheres: list[str]) -> None:
    """Every input vector of one source has one width, and every target vector too."""
    if kind != "bits" or not examples:
        return
    first = examples[0]
    for (x, y), where in zip(examples, wheres):
        for name, a, b in (("input", x, first[0]), ("target", y, first[1])):
            if a.shape[1] != b.shape[1]:
                _fail(
                    where,
                    f"{name} vectors have {a.shape[1]} bits, but {wheres[0].split(', ')[-1]}'s "
                    f"have {b.shape[1]}; every {name} vector must have one width",
                )


# -- rows -------------------------------------------------------------------------------------------


def _bits(value, where: str, name: str) -> np.ndarray:
    """A sequence of bit vectors ``[L, width]`` from nested lists or an array."""
    try:
        array = np.asarray(value, dtype=np.float32)
    except (TypeError, ValueError):
        _fail(where, f"{name} must be a list of bit vectors (lists of 0/1 of one width)")
    if array.ndim != 2:
        _fail(
            where,
            f"{name} must be a list of bit vectors [length, width], got an array of shape "
            f"{array.shape}",
        )
    if array.shape[0] < 1 or array.shape[1] < 1:
        _fail(where, f"{name} is empty; every sequence needs at least one vector of one bit")
    if not np.all(np.isfinite(array)):
        _fail(where, f"{name} holds a non-finite number")
    if name == "target" and np.any((array < 0) | (array > 1)):
        _fail(where, "target bits must be between 0 and 1")
    return array


def _tokens(value, where: str, name: str, sep: str | None) -> tuple[str, ...]:
    if isinstance(value, str):
        tokens = tuple(value.split(sep) if sep is not None else value)
        tokens = tuple(t for t in tokens if t != "") if sep is not None else tokens
    elif isinstance(value, (list, tuple)) and all(isinstance(t, str) for t in value):
        tokens = tuple(value)
    else:
        _fail(where, f"{name} must be a string or a list of token strings, got {value!r}"[:200])
    if not tokens:
        _fail(where, f"{name} is empty; every example needs at least one token")
    if END in tokens:
        _fail(where, f"{name} uses the reserved token {END!r}")
    return tokens


def _jsonl_row(line: str, kind: str, sep, where: str):
    try:
        row = json.loads(line)
    except ValueError as e:
        _fail(where, f"not valid JSON ({e.msg}); each line must be one JSON object")
    keys = ("input", "target") if kind == "bits" else ("source", "target")
    if not isinstance(row, dict) or any(k not in row for k in keys):
        _fail(where, f"each line must be a JSON object with keys {keys[0]!r} and {keys[1]!r}")
    if kind == "bits":
        return _bits(row["input"], where, "input"), _bits(row["target"], where, "target")
    return _tokens(row["source"], where, "source", sep), _tokens(
        row["target"], where, "target", sep
    )


def _tsv_bits(text: str, where: str, name: str) -> np.ndarray:
    vectors = text.split()
    if any(set(v) - {"0", "1"} for v in vectors):
        _fail(where, f"{name} must be bit vectors of 0 and 1 separated by spaces, got {text!r}")
    if len({len(v) for v in vectors}) > 1:
        _fail(where, f"{name} vectors have different widths: {text!r}")
    return _bits([[float(c) for c in v] for v in vectors], where, name)


def _tsv_row(line: str, kind: str, sep, where: str):
    parts = line.rstrip("\r\n").split("\t")
    if len(parts) != 2:
        _fail(where, f"expected 2 tab-separated columns (source and target), got {len(parts)}")
    if kind == "bits":
        return _tsv_bits(parts[0], where, "input"), _tsv_bits(parts[1], where, "target")
    return _tokens(parts[0], where, "source", sep), _tokens(parts[1], where, "target", sep)


def _read_npz(path: Path, kind: str, sep) -> list:
    try:
        with np.load(path, allow_pickle=False) as f:
            arrays = {k: f[k] for k in f.files}
    except ValueError as e:
        _fail(str(path), f"cannot read it as .npz without pickles ({e})")
    except Exception as e:  # noqa: BLE001 - a corrupt archive, in one line
        _fail(str(path), f"not a readable .npz file ({type(e).__name__})")
    keys = ("inputs", "targets") if kind == "bits" else ("source", "target")
    missing = [k for k in keys if k not in arrays]
    if missing:
        _fail(
            str(path),
            f"needs arrays {keys[0]!r} and {keys[1]!r} (it has {', '.join(arrays) or 'none'})",
        )
    a, b = arrays[keys[0]], arrays[keys[1]]
    if len(a) != len(b):
        _fail(str(path), f"{keys[0]} has {len(a)} rows but {keys[1]} has {len(b)}")
    examples = []
    if kind == "bits":
        la = arrays.get("input_lengths")
        lb = arrays.get("target_lengths")
        for i in range(len(a)):
            where = f"{path}, row {i}"
            x, y = a[i], b[i]
            if la is not None:
                x = x[: int(la[i])]
            if lb is not None:
                y = y[: int(lb[i])]
            examples.append((_bits(x, where, "input"), _bits(y, where, "target")))
        _check_widths(kind, examples, [f"{path}, row {i}" for i in range(len(examples))])
        return examples
    for i in range(len(a)):
        where = f"{path}, row {i}"
        examples.append(
            (_tokens(str(a[i]), where, "source", sep), _tokens(str(b[i]), where, "target", sep))
        )
    return examples


# -- sources: a file or in-memory examples ---------------------------------------------------------


class _Parsed(list):
    """Examples already parsed (a task rebuilt from its in-memory examples)."""


def _source(data, kind: str, sep: str | None, what: str) -> tuple[str, str, list]:
    """``(name, digest, examples)`` of a file name or of in-memory examples."""
    if isinstance(data, _Parsed):
        examples = list(data)
        digest = _examples_digest(kind, examples)
        _CACHE[(kind, digest)] = examples
        return f"<arrays {digest}>", digest, examples
    if isinstance(data, (str, os.PathLike)):
        path = _resolve(data)
        examples, digest = _read_file(path, kind, sep)
        return str(path), digest, examples
    if kind == "bits":
        if not (isinstance(data, (tuple, list)) and len(data) == 2):
            raise DataError(
                f"{what} must be a data file name or a pair (inputs, targets) of arrays"
            )
        inputs, targets = data
        if len(inputs) != len(targets):
            raise DataError(f"{what}: {len(inputs)} inputs but {len(targets)} targets")
        examples = [
            (_bits(x, f"{what}, example {i}", "input"), _bits(y, f"{what}, example {i}", "target"))
            for i, (x, y) in enumerate(zip(inputs, targets))
        ]
    else:
        try:
            pairs = list(data)
        except TypeError:
            raise DataError(
                f"{what} must be a data file name or a list of (source, target) pairs"
            ) from None
        examples = []
        for i, pair in enumerate(pairs):
            where = f"{what}, example {i}"
            if not (isinstance(pair, (tuple, list)) and len(pair) == 2):
                _fail(where, "each example must be a pair (source, target)")
            examples.append(
                (_tokens(pair[0], where, "source", sep), _tokens(pair[1], where, "target", sep))
            )
    if not examples:
        raise DataError(f"{what} holds no examples")
    _check_widths(kind, examples, [f"{what}, example {i}" for i in range(len(examples))])
    digest = _examples_digest(kind, examples)
    _CACHE[(kind, digest)] = examples
    return f"<arrays {digest}>", digest, examples


def _split(n: int, fraction: float, seed: int) -> tuple[np.ndarray, np.ndarray]:
    """``(train, validation)`` indices: a seeded shuffle, the first ``round(fraction * n)``
    examples of it held out."""
    order = np.random.default_rng([seed, 0x5917]).permutation(n)
    k = int(round(fraction * n))
    return np.sort(order[k:]), order[:k]


# -- the tasks -------------------------------------------------------------------------------------


class _DataTask:
    """What both data tasks share: the split and the cached examples (mixin)."""

    data: str
    validation: float | str
    seed: int
    digest: str
    evaluate_on: str
    kind: ClassVar[str]

    def _init_data(self, data, validation, seed, sep, evaluate_on):
        name = type(self).__name__
        if not isinstance(seed, int) or isinstance(seed, bool) or seed < 0:
            raise DataError(f"{name} seed must be a non-negative integer, got {seed!r}")
        if evaluate_on not in ("validation", "train"):
            raise DataError(
                f"{name} evaluate_on must be 'validation' or 'train', got {evaluate_on!r}"
            )
        source, digest, examples = _source(data, self.kind, sep, f"{name} data")
        if isinstance(validation, (int, float)) and not isinstance(validation, bool):
            if not 0 < validation < 1:
                raise DataError(
                    f"{name} validation must be a fraction in (0, 1) such as 0.1, or a file, "
                    f"got {validation!r}"
                )
            train, held = _split(len(examples), float(validation), seed)
            if len(held) == 0:
                raise DataError(
                    f"{name}: the validation split of {len(examples)} examples at "
                    f"{validation} is empty; use more data, a larger fraction or a validation file"
                )
            if len(train) == 0:
                raise DataError(
                    f"{name}: the training split of {len(examples)} examples is empty at "
                    f"validation={validation}; use a smaller fraction"
                )
            val_name, val_digest = float(validation), digest
        else:
            val_name, val_digest, _ = _source(validation, self.kind, sep, f"{name} validation")
        object.__setattr__(self, "data", source)
        object.__setattr__(self, "validation", val_name)
        object.__setattr__(self, "seed", seed)
        object.__setattr__(self, "digest", f"{digest}/{val_digest}")
        object.__setattr__(self, "evaluate_on", evaluate_on)

    # the examples, from the cache (or the files again)
    def _examples(self, which: str) -> list:
        data_digest, val_digest = self.digest.split("/")
        if not isinstance(self.validation, float):
            return self._load(
                self.data if which == "train" else self.validation,
                (data_digest if which == "train" else val_digest),
            )
        key = (self.kind, data_digest, self.validation, self.seed)
        if key not in _SPLITS:
            examples = self._load(self.data, data_digest)
            train, held = _split(len(examples), self.validation, self.seed)
            _SPLITS[key] = {
                "train": [examples[i] for i in train],
                "validation": [examples[i] for i in held],
            }
        return _SPLITS[key][which]

    def _load(self, name: str, digest: str) -> list:
        cached = _CACHE.get((self.kind, digest))
        if cached is not None:
            return cached
        if name.startswith("<arrays"):
            raise DataError(
                f"{type(self).__name__}: its in-memory examples are gone (built in another "
                "process); build the task again from the arrays"
            )
        examples, now = _read_file(Path(name), self.kind, getattr(self, "sep", None))
        if now != digest:
            raise DataError(f"{name} changed since this task was built; build the task again")
        return examples

    def _base(self):
        """What the task was built from: its file name, or its parsed in-memory examples."""
        if self.data.startswith("<arrays"):
            return _Parsed(self._load(self.data, self.digest.split("/")[0]))
        return self.data

    def _validation_source(self):
        if isinstance(self.validation, float) or not self.validation.startswith("<arrays"):
            return self.validation
        return _Parsed(self._load(self.validation, self.digest.split("/")[1]))

    def with_evaluation(self, data=None, *, split: str = "validation"):
        """The same task (same widths or vocabulary) evaluated on ``data`` (a file, arrays or
        pairs: evaluation only) or on its own ``split`` (``"validation"`` or ``"train"``)."""
        if split not in ("validation", "train"):
            raise DataError(f"--split must be 'validation' or 'train', got {split!r}")
        if data is None:
            return self._rebuild(self._validation_source(), split)
        return self._rebuild(data, "validation")

    def evaluation_size(self) -> int:
        return len(self._examples(self.evaluate_on))

    def split_sizes(self) -> dict[str, int]:
        """How many examples each split holds: ``{"train": n, "validation": m}``."""
        return {w: len(self._examples(w)) for w in ("train", "validation")}

    def _pick(self, rng, batch_size, length, which: str) -> list:
        examples = self._examples(which)
        if length is not None:
            examples = self._of_length(examples, length, which)
        return [examples[i] for i in rng.integers(0, len(examples), size=batch_size)]

    def _of_length(self, examples, length, which) -> list:
        chosen = [e for e in examples if len(e[0]) == length]
        if not chosen:
            have = sorted({len(e[0]) for e in examples})
            raise DataError(
                f"no {which} example of {type(self).__name__} has length {length} "
                f"(lengths present: {', '.join(map(str, have))})"
            )
        return chosen

    def sample(self, rng, batch_size, length=None):
        """``batch_size`` training examples drawn uniformly (with replacement); ``length``
        keeps those whose input has that length."""
        return self._batch(self._pick(rng, batch_size, length, "train"), "train")

    def evaluation_batches(self, samples, batch_size, seed, length=None):
        """The validation split (or the training split with ``evaluate_on="train"``) in order,
        its first ``samples`` examples, as ``(batch, count)`` pairs; padded like training."""
        which = self.evaluate_on
        examples = self._examples(which)
        if length is not None:
            examples = self._of_length(examples, length, which)
        examples = examples[:samples]
        for i in range(0, len(examples), batch_size):
            chunk = examples[i : i + batch_size]
            yield self._batch(chunk, which), len(chunk)

    def trace_example(self, rng, length=None):
        """One validation example for traces."""
        return self._batch(self._pick(rng, 1, length, self.evaluate_on), self.evaluate_on)

    def _longest(self) -> tuple[int, int]:
        """The longest input and target over both splits (batches are padded to these, so
        every batch has one shape)."""
        key = (self.kind, self.digest, self.validation, self.seed)
        if key not in _LONGEST:
            _LONGEST[key] = self._measure()
        return _LONGEST[key]

    def _measure(self) -> tuple[int, int]:
        lengths = [(len(a), len(b)) for w in ("train", "validation") for a, b in self._examples(w)]
        return max(a for a, _ in lengths), max(b for _, b in lengths)


class BitSequences(_DataTask, AbstractBitTask):
    """Bit-vector sequences from your data: read the input, then write the target.

    ``BitSequences("data.jsonl", validation=0.1, seed=0)`` or
    ``BitSequences.from_arrays(inputs, targets, validation=(val_inputs, val_targets))``
    (arrays ``[N, L, bits]`` or lists of ``[L_i, bits]`` arrays). Each example runs
    ``len(input) + 1 + len(target)`` steps: the input, a delimiter step (the extra input
    channel), then the answer steps, which are scored. See :mod:`difmachine.tasks.data`.
    """

    data: str = eqx.field(static=True)
    validation: float | str = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    digest: str = eqx.field(static=True)
    input_bits: int = eqx.field(static=True)
    target_bits: int = eqx.field(static=True)
    evaluate_on: str = eqx.field(static=True)

    kind: ClassVar[str] = "bits"

    def __init__(
        self,
        data,
        *,
        validation=0.1,
        seed: int = 0,
        input_bits: int | None = None,
        target_bits: int | None = None,
        evaluate_on: str = "validation",
    ):
        self._init_data(data, validation, seed, None, evaluate_on)
        train, held = self._examples("train")[0], self._examples("validation")[0]
        widths = {"input": train[0].shape[1], "target": train[1].shape[1]}
        for name, given in (("input", input_bits), ("target", target_bits)):
            for data, example in (("data", train), ("evaluation data", held)):
                width = example[0 if name == "input" else 1].shape[1]
                if given is not None and given != width:
                    raise DataError(
                        f"BitSequences: the {data}'s {name} vectors have {width} bits, but the "
                        f"machine was trained on {given}; give data of the training widths"
                    )
        for name, width in (("input", held[0].shape[1]), ("target", held[1].shape[1])):
            if width != widths[name]:
                raise DataError(
                    f"BitSequences: the validation data's {name} vectors have {width} bits, "
                    f"the training data's {widths[name]}; every {name} vector must have one width"
                )
        self.input_bits = widths["input"]
        self.target_bits = widths["target"]

    @classmethod
    def from_arrays(cls, inputs, targets, **options) -> BitSequences:
        """From arrays ``[N, L, bits]`` (or lists of ``[L_i, bits]``); ``validation`` may be a
        fraction or a pair ``(inputs, targets)``."""
        return cls((inputs, targets), **options)

    def _rebuild(self, validation, evaluate_on) -> BitSequences:
        return BitSequences(
            self._base(),
            validation=validation,
            seed=self.seed,
            input_bits=self.input_bits,
            target_bits=self.target_bits,
            evaluate_on=evaluate_on,
        )

    @property
    def input_size(self) -> int:
        return self.input_bits + 1

    @property
    def output_size(self) -> int:
        return self.target_bits

    def _batch(self, examples, which) -> Batch:
        longest_in, longest_out = self._longest()
        T = longest_in + 1 + longest_out
        B = len(examples)
        inputs = np.zeros((B, T, self.input_bits + 1), np.float32)
        targets = np.zeros((B, T, self.target_bits), np.float32)
        mask = np.zeros((B, T), np.float32)
        loss_mask = np.zeros((B, T), np.float32)
        for b, (x, y) in enumerate(examples):
            L, M = len(x), len(y)
            inputs[b, :L, : self.input_bits] = x
            inputs[b, L, self.input_bits] = 1.0
            targets[b, L + 1 : L + 1 + M] = y
            mask[b, : L + 1 + M] = 1.0
            loss_mask[b, L + 1 : L + 1 + M] = 1.0
        return Batch(inputs, targets, mask, loss_mask)


class TokenPairs(_DataTask, AbstractTokenTask):
    """Source token sequence -> target token sequence from your data.

    ``TokenPairs("pairs.tsv", validation=0.1, sep=None)`` or
    ``TokenPairs.from_pairs([("abc", "cba"), ...])``. Strings split into characters
    (``sep=None``) or on ``sep`` (``" "``: words); JSON lists are token lists. The vocabulary
    is every token of both splits, sorted. Laid out and scored like the built-in
    sequence-to-sequence tasks (for :class:`~difmachine.Seq2Seq` machines); see
    :mod:`difmachine.tasks.data`.
    """

    data: str = eqx.field(static=True)
    validation: float | str = eqx.field(static=True)
    seed: int = eqx.field(static=True)
    digest: str = eqx.field(static=True)
    sep: str | None = eqx.field(static=True)
    vocabulary: tuple[str, ...] = eqx.field(static=True)
    evaluate_on: str = eqx.field(static=True)

    kind: ClassVar[str] = "tokens"

    def __init__(
        self,
        data,
        *,
        validation=0.1,
        seed: int = 0,
        sep: str | None = None,
        vocab: Sequence[str] | None = None,
        evaluate_on: str = "validation",
    ):
        if sep is not None and (not isinstance(sep, str) or sep == ""):
            raise DataError(f"TokenPairs sep must be None (characters) or a string, got {sep!r}")
        self.sep = sep
        self._init_data(data, validation, seed, sep, evaluate_on)
        seen = sorted(
            {t for w in ("train", "validation") for a, b in self._examples(w) for t in (*a, *b)}
        )
        if vocab is not None:
            vocab = tuple(vocab)
            for which in ("train", "validation"):
                for n, (a, b) in enumerate(self._examples(which)):
                    unknown = [t for t in (*a, *b) if t not in vocab]
                    if unknown:
                        raise DataError(
                            f"TokenPairs: {which} example {n} has token {unknown[0]!r}, which "
                            "the machine's vocabulary (its training data) does not have"
                        )
        self.vocabulary = tuple(seen) if vocab is None else vocab

    @classmethod
    def from_pairs(cls, pairs, **options) -> TokenPairs:
        """From ``[(source, target), ...]`` (strings or token lists); ``validation`` may be a
        fraction or another list of pairs."""
        return cls(list(pairs), **options)

    @classmethod
    def from_arrays(cls, sources, targets, **options) -> TokenPairs:
        """From two equally long sequences of sources and targets."""
        if len(sources) != len(targets):
            raise DataError(f"TokenPairs: {len(sources)} sources but {len(targets)} targets")
        return cls(
            [(str(s) if isinstance(s, np.str_) else s, t) for s, t in zip(sources, targets)],
            **options,
        )

    def _rebuild(self, validation, evaluate_on) -> TokenPairs:
        return TokenPairs(
            self._base(),
            validation=validation,
            seed=self.seed,
            sep=self.sep,
            vocab=self.vocabulary,
            evaluate_on=evaluate_on,
        )

    @property
    def vocab(self) -> tuple[str, ...]:
        return self.vocabulary

    def ids(self, tokens) -> np.ndarray:
        index = {t: i for i, t in enumerate(self.vocabulary)}
        return np.array([index[t] for t in tokens], np.int64)

    def pair(self, rng, length):  # the examples come from the data, see sample
        raise NotImplementedError

    def padded(self, length):
        return self._longest()

    def _batch(self, examples, which) -> Batch:
        S, T = self._longest()
        return self.token_batch([(self.ids(a), self.ids(b)) for a, b in examples], S, T)


def is_data_task(task) -> bool:
    return isinstance(task, _DataTask)


__all__ = ["BitSequences", "TokenPairs", "DataError", "relative_to", "is_data_task"]
