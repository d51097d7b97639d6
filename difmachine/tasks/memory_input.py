"""A task whose input is handed to the machine whole, before the first step, and whose episode
is only the answer: the hierarchical attentive memory's setup (Andrychowicz & Kurach 2016),
where the input sequence is embedded into the memory's leaves and the controller, seeing
nothing but what it reads from the memory, must find the answer there.
"""

from __future__ import annotations

import equinox as eqx
import numpy as np

from ..errors import DifmachineError
from ..protocol import INPUTS
from .base import AbstractTask, Batch, Context


class MemoryInput(AbstractTask):
    """``task`` with its input phase moved into the context ``"inputs"``.

    ``task`` must lay out an episode as inputs first, then answer steps: from its first scored
    step (``loss_mask``) on, every input is blank (e.g. :class:`~difmachine.Reverse`, the HAM's
    key-value tasks, :class:`~difmachine.BinaryAddition` with ``answer_after=True``). Each example's
    steps before its first scored step become ``Batch.context["inputs"] = Context(xs[S,
    input_size], mask[S])`` (what ``HAMMemory(input_leaves=True)`` embeds into its leaves,
    instead of the machine's own input sequence); the episode keeps only the steps from the
    first scored one to the last real one, each example shifted to start at step 0, with blank
    inputs of the task's width. So the controller cannot read the input as it streams past and
    keep it in its own state: everything it learns about the input comes through the memory.

    Both keep the task's padded length (a run compiles once, whatever the mix of lengths in a
    batch), so a device holding one input step per slot needs as many slots as the task's
    longest episode has steps.

    ``cue`` (0): the last ``cue`` steps of the input phase are also the inputs of the first
    ``cue`` answer steps, e.g. ``cue=1`` gives the controller the query of a search
    (:class:`~difmachine.SearchPairs` puts it on the step before the answer); they stay in the
    context too.

    Loss, metrics, curriculum, ``length`` and evaluation are the task's.
    """

    task: AbstractTask
    cue: int = eqx.field(static=True, default=0)

    def __check_init__(self):
        if not isinstance(self.task, AbstractTask):
            raise DifmachineError(
                f"MemoryInput wraps a task, got {type(self.task).__name__}: MemoryInput(dm.Reverse(...))"
            )
        if not isinstance(self.cue, int) or self.cue < 0:
            raise DifmachineError(
                f"MemoryInput cue must be a whole number of input steps >= 0, got {self.cue!r}"
            )
        if self.task.generative:
            raise DifmachineError(
                f"MemoryInput needs a task scored against fixed targets; {type(self.task).__name__} "
                "is generative (its inputs are its own outputs fed back)"
            )
        if INPUTS in self.task.contexts:
            raise DifmachineError(
                f"MemoryInput: {type(self.task).__name__} already provides a context named "
                f"{INPUTS!r}"
            )

    @property
    def input_size(self) -> int:
        return self.task.input_size

    @property
    def output_size(self) -> int:
        return self.task.output_size

    @property
    def contexts(self) -> dict[str, int | None]:
        return {**self.task.contexts, INPUTS: self.task.input_size}

    @property
    def required_contexts(self) -> dict[str, str]:
        need = "add a device that reads the input phase, e.g. HAMMemory(input_leaves=True)"
        return {**self.task.required_contexts, INPUTS: need}

    @property
    def main_metric(self) -> str:  # type: ignore[override]
        return self.task.main_metric

    @property
    def length_name(self) -> str:  # type: ignore[override]
        return self.task.length_name

    @property
    def curriculum_window(self) -> int:  # type: ignore[override]
        return self.task.curriculum_window

    def sample(self, rng, batch_size, length=None) -> Batch:
        batch = self.task.sample(rng, batch_size, length)
        return split_answers(batch, type(self.task).__name__, self.cue)

    def loss(self, outputs, targets, loss_mask):
        return self.task.loss(outputs, targets, loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        return self.task.metrics(outputs, targets, loss_mask)

    def present(self, outputs):
        return self.task.present(outputs)

    def output_labels(self, predictions):
        return self.task.output_labels(predictions)

    def evaluation_batches(self, samples, batch_size, seed, length=None):
        inner = self.task.evaluation_batches(samples, batch_size, seed, length)
        if inner is None:
            return None
        name = type(self.task).__name__
        return ((split_answers(batch, name, self.cue), n) for batch, n in inner)

    def evaluation_source(self) -> AbstractTask:
        source = self.task.evaluation_source()
        return self if source is self.task else MemoryInput(source, self.cue)

    def evaluation_size(self):
        return self.task.evaluation_size()

    def curriculum_start(self):
        return self.task.curriculum_start()

    def at_level(self, level: int) -> AbstractTask:
        return MemoryInput(self.task.at_level(level), self.cue)

    def next_level(self, level: int, score: float) -> int:
        return self.task.next_level(level, score)


def split_answers(batch: Batch, name: str = "the task", cue: int = 0) -> Batch:
    """``batch`` with each example's steps before its first scored step moved into the context
    ``"inputs"`` and the rest shifted to start at step 0, the last ``cue`` of those steps also
    the first inputs (see :class:`MemoryInput`)."""
    scored = batch.loss_mask > 0
    real = batch.mask > 0
    B = batch.inputs.shape[0]
    if not scored.any(axis=1).all():
        raise DifmachineError(f"MemoryInput: an example of {name} has no scored step")
    starts = scored.argmax(axis=1)
    ends = real.shape[1] - real[:, ::-1].argmax(axis=1)  # one past the last real step
    S = T = real.shape[1]  # the task's padded length: fixed shapes, so training compiles once
    steps = np.arange(real.shape[1])[None, :]
    if np.any(batch.inputs[steps >= starts[:, None]] != 0):
        raise DifmachineError(
            f"MemoryInput needs a task whose inputs end before its first scored step; {name} "
            "has inputs on its answer steps (for the binary tasks, answer_after=True)"
        )
    xs = np.zeros((B, S, batch.inputs.shape[2]), batch.inputs.dtype)
    x_mask = np.zeros((B, S), batch.mask.dtype)
    targets = np.zeros((B, T, batch.targets.shape[2]), batch.targets.dtype)
    mask = np.zeros((B, T), batch.mask.dtype)
    loss_mask = np.zeros((B, T), batch.loss_mask.dtype)
    inputs = np.zeros((B, T, batch.inputs.shape[2]), batch.inputs.dtype)
    for b in range(B):
        s, e = starts[b], ends[b]
        xs[b, :s], x_mask[b, :s] = batch.inputs[b, :s], batch.mask[b, :s]
        targets[b, : e - s] = batch.targets[b, s:e]
        mask[b, : e - s] = batch.mask[b, s:e]
        loss_mask[b, : e - s] = batch.loss_mask[b, s:e]
        k = min(cue, s, e - s)  # the cue: the input phase's last k steps, as many as answers
        inputs[b, :k] = batch.inputs[b, s - k : s]
    context = {**(batch.context or {}), INPUTS: Context(xs, x_mask)}
    return Batch(inputs, targets, mask, loss_mask, context)


__all__ = ["MemoryInput", "split_answers"]
