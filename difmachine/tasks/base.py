"""Tasks: generators of padded batches, with their loss and metrics."""

from __future__ import annotations

import abc
import dataclasses
import math
from collections.abc import Iterator
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..protocol import check_count, check_fraction


class Context(NamedTuple):
    """What a machine attends over: ``values[S, ...]`` (encoder inputs or states, or story
    sentences as word ids) with ``mask[S]`` marking the real positions (1) and padding (0)."""

    values: np.ndarray
    mask: np.ndarray


class Batch(NamedTuple):
    """A padded batch. ``inputs[B, T, in]``, ``targets[B, T, out]``; ``mask[B, T]`` marks real
    steps (the machine runs them), ``loss_mask[B, T]`` the steps that are scored. ``context``
    (``None``, or the task's named contexts ``{name: value with a leading batch axis}``, e.g.
    ``{"source": Context(...)}``) is what encoders and context-reading devices read: a source
    sentence, a story, a table; the names are the task's :attr:`AbstractTask.contexts`."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    loss_mask: np.ndarray
    context: dict | None = None


class AbstractTask(eqx.Module):
    """A task: ``sample`` makes batches on the host with numpy; ``loss`` and ``metrics`` are jax
    functions of one example's outputs (``vmap`` them for a batch)."""

    @property
    @abc.abstractmethod
    def input_size(self) -> int: ...

    @property
    @abc.abstractmethod
    def output_size(self) -> int: ...

    @abc.abstractmethod
    def sample(self, rng: np.random.Generator, batch_size: int, length: int | None = None) -> Batch:
        """A batch; ``length`` fixes every sequence's length (for evaluation beyond training)."""

    @abc.abstractmethod
    def loss(self, outputs: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> jax.Array: ...

    @abc.abstractmethod
    def metrics(self, outputs, targets, loss_mask) -> dict[str, jax.Array]: ...

    def evaluation_batches(
        self, samples: int, batch_size: int, seed: int, length: int | None = None
    ) -> Iterator[tuple[Batch, int]] | None:
        """The task's own evaluation data (a validation split) as ``(batch, examples)`` pairs,
        at most ``samples`` examples; ``None`` (the default): evaluation draws fresh batches
        from :meth:`sample`."""
        return None

    def evaluation_source(self) -> AbstractTask:
        """The task whose :meth:`sample` draws the fresh batches that evaluate the training mix
        (``length=None``): ``self`` (the default), or a variant whose mix scores more fairly."""
        return self

    def evaluation_size(self) -> int | None:
        """How many examples :meth:`evaluation_batches` has in all (``None``: fresh samples)."""
        return None

    def with_evaluation(self, data=None, *, split: str = "validation") -> AbstractTask:
        """This task evaluated on ``data`` (a file) or on one of its splits; only tasks built
        from data (``BitSequences``, ``TokenPairs``) have evaluation data to choose."""
        from ..errors import DifmachineError

        raise DifmachineError(
            f"{type(self).__name__} makes fresh examples and has no data to choose; --data and "
            "--split are for tasks built from data (BitSequences, TokenPairs)"
        )

    # -- an adaptive curriculum (optional): training moves up a level when it masters one --

    #: training steps whose mean main metric decides each curriculum move
    curriculum_window: ClassVar[int] = 200

    def curriculum_start(self) -> int | None:
        """The first level of the task's adaptive curriculum, or ``None`` (the default): the task
        has none, and every training batch comes from :meth:`sample`. With a level, training
        draws its batches from :meth:`at_level` and, after every :attr:`curriculum_window`
        steps, asks :meth:`next_level`; the level is saved in checkpoints, so a resumed run
        continues at it (evaluation, ``eval`` and ``trace`` always use the task itself)."""
        return None

    def at_level(self, level: int) -> AbstractTask:
        """The task whose :meth:`sample` draws the training batches at curriculum ``level``."""
        return self

    def next_level(self, level: int, score: float) -> int:
        """The level after a window of training steps whose mean main metric was ``score``."""
        return level

    def trace_example(self, rng: np.random.Generator, length: int | None = None) -> Batch:
        """A batch of one example for traces (a task with its own evaluation data shows one
        of those)."""
        return self.sample(rng, 1, length)

    def present(self, outputs: jax.Array) -> jax.Array:
        """Outputs as shown in traces (e.g. probabilities for logits)."""
        return outputs

    @property
    def contexts(self) -> dict[str, int | None]:
        """The named contexts every batch carries in ``Batch.context`` and the width of their
        vectors (``None`` when they are not vectors: word ids, a table): ``{"source": 12}``.
        A machine's devices read them by name (``AbstractDevice.context``)."""
        return {}

    @property
    def required_contexts(self) -> dict[str, str]:
        """Contexts the machine must read for the task's scoring to mean anything, each with
        what to do when none of its parts does: ``{"output": "add an OutputTape ..."}``."""
        return {}

    #: evaluate by greedy decoding that feeds each output back as the next input
    #: (:meth:`feedback`, :meth:`stop`) instead of teacher forcing
    generative: ClassVar[bool] = False

    def feedback(self, output: jax.Array) -> jax.Array:
        """The next input given one step's output (generative tasks)."""
        raise NotImplementedError

    def stop(self, output: jax.Array) -> jax.Array:
        """Whether one step's output ends the sequence (generative tasks)."""
        return jnp.zeros((), bool)

    def content_metrics(self, outputs, targets, loss_mask) -> dict[str, jax.Array] | None:
        """Metrics of a generative task's *content*, apart from where it stops: evaluation
        then also decodes for the target's whole length whatever the machine says about
        stopping (forced length) and reports these as ``forced_<name>``. ``None``: no such
        scoring."""
        return None

    def labels(self, batch: Batch, index: int) -> dict | None:
        """Strings of one example for traces, ``{name: [...]}`` (e.g. ``"source"``, ``"target"``).
        A trace field whose axis has the same name (an attention over ``"source"``) gets its rows
        named by these strings."""
        return None

    def output_labels(self, predictions: np.ndarray) -> list[str] | None:
        """The model's outputs ``[T, out]`` (as :meth:`present` gives them) as strings for
        traces, compared with ``labels()["target"]``; ``None`` for tasks without tokens."""
        return None

    #: the metric the progress bar and early stopping watch (lower is better)
    main_metric: ClassVar[str] = "loss"
    #: what ``sample(length=...)`` and ``difmachine eval --lengths`` vary ("length", "repeats", ...)
    length_name: ClassVar[str] = "length"


def masked_bce(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Binary cross-entropy with logits, summed over channels and scored steps."""
    per = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.sum(per * loss_mask[:, None])


class AbstractBitTask(AbstractTask):
    """Tasks whose targets are bit vectors: BCE loss on logits, thresholded bit metrics.

    Metrics per sequence: ``bit_errors`` (wrong bits on scored steps), ``bit_accuracy`` (fraction
    of scored bits right), ``perfect`` (1 if no bit is wrong) and ``cost_bits`` (the loss in bits:
    the cross-entropy per sequence of Graves et al. 2014's learning curves).
    """

    main_metric: ClassVar[str] = "bit_errors"

    def loss(self, outputs, targets, loss_mask):
        return masked_bce(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        wrong = jnp.sum(((outputs > 0) != (targets > 0.5)) * loss_mask[:, None])
        scored = jnp.maximum(jnp.sum(loss_mask) * targets.shape[-1], 1.0)
        return {
            "bit_errors": wrong,
            "bit_accuracy": 1.0 - wrong / scored,
            "perfect": (wrong == 0).astype(jnp.float32),
            "cost_bits": masked_bce(outputs, targets, loss_mask) / math.log(2.0),
        }

    def present(self, outputs):
        return jax.nn.sigmoid(outputs)


def draw_sizes(rng: np.random.Generator, batch_size: int, lo: int, hi: int, fixed: int | None):
    """Per-sequence sizes drawn uniformly from ``[lo, hi]``, or all ``fixed`` when given (for
    evaluation), and the largest size the batch must be padded for: ``(sizes, largest)``."""
    if fixed is None:
        return rng.integers(lo, hi + 1, size=batch_size), hi
    return np.full(batch_size, int(fixed)), int(fixed)


def check_range(task: str, name: str, lo: int, hi: int, minimum: int = 1) -> None:
    check_count(task, f"min_{name}", lo, minimum)
    check_count(task, f"max_{name}", hi, minimum)
    if lo > hi:
        raise ValueError(f"{task} needs {minimum} <= min_{name} <= max_{name}, got {lo}..{hi}")


def positive(task: str, name: str, value: int) -> None:
    check_count(task, name, value)


class LevelCurriculum(AbstractTask):
    """The adaptive curriculum of a task whose levels are the integers of
    :meth:`curriculum_range`: with ``adaptive = b > 0`` training starts at
    :meth:`curriculum_start` (the range's first level unless a task says otherwise) and moves up
    one level whenever a window's mean main metric is below ``b``, up to the range's last. The
    task keeps the level it samples at in its field ``level`` (``None``: not training under the
    curriculum) and says in :attr:`level_range` how its error messages name a range."""

    adaptive: eqx.AbstractVar[float]
    level: eqx.AbstractVar[int | None]

    #: the valid levels in words, ``{lo}`` and ``{hi}`` filled in (e.g. "within {lo}..{hi} hops")
    level_range: ClassVar[str]
    #: what the error for a bad ``adaptive`` adds after "0 = off" (e.g. ", e.g. 0.1")
    adaptive_hint: ClassVar[str] = ""

    @abc.abstractmethod
    def curriculum_range(self) -> tuple[int, int]:
        """The lowest and the highest level."""

    def check_curriculum(self) -> None:
        """Validate ``adaptive`` and ``level`` (call from ``__check_init__``)."""
        name = type(self).__name__
        check_adaptive(name, self.adaptive, self.adaptive_hint)
        lo, hi = self.curriculum_range()
        level = self.level
        if level is not None and not (isinstance(level, int) and lo <= level <= hi):
            words = self.level_range.format(lo=lo, hi=hi)
            raise ValueError(f"{name} level must be {words}, got {level!r}")

    def curriculum_start(self) -> int | None:
        return self.curriculum_range()[0] if self.adaptive else None

    def at_level(self, level: int) -> AbstractTask:
        return dataclasses.replace(self, level=int(level))

    def next_level(self, level: int, score: float) -> int:
        return level + 1 if score < self.adaptive and level < self.curriculum_range()[1] else level


def check_adaptive(task: str, value, hint: str = "") -> None:
    """An adaptive curriculum's threshold: an error rate in ``[0, 1)``, 0 for none."""
    check_fraction(task, "adaptive", value, "an error rate", f" (0 = off{hint})")
