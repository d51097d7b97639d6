"""Tasks whose input is on a tape (RL-NTM, Zaremba & Sutskever 2015): the machine does not see
the source one symbol per step, it must move a head over it (:class:`~difmachine.InputTape`).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ..protocol import check_flag
from .base import Batch, Context, LevelCurriculum, check_range, positive
from .symbols import _check_length, _SymbolScoring, scored_metrics

TRANSFORMS = ("copy", "reverse", "duplicate", "forward_reverse", "repeat_copy")


class TapeTransduce(_SymbolScoring, LevelCurriculum):
    """Read a source of symbols ``0..symbols-1`` from the input tape and output its transform,
    the RL-NTM paper's five tasks:

    - ``copy``: ``abc -> abc``;
    - ``reverse``: ``abc -> cba``;
    - ``duplicate`` (the paper's DuplicatedInput): the tape holds every symbol twice,
      ``aabbcc -> abc``;
    - ``forward_reverse``: ``abc -> cba`` as ``reverse``, but the paper lets the input head
      only move forward, so a solution must keep the source in memory: give the machine
      ``InputTape(moves=(0, 1))`` (``programs/rlntm_copy.py`` does for this transform);
    - ``repeat_copy``: the tape starts with a repeat count ``m`` (``min_repeats..max_repeats``,
      the paper's 2 or 3) in its own channel, ``m abc -> abcabc...`` (the source ``m`` times).

    The tape (context ``"tape"``, one-hot) has ``symbols + 1`` channels, the source symbols and
    an end marker (channel ``symbols``), plus, for ``repeat_copy``, ``max_repeats`` count
    channels (count ``m`` is channel ``symbols + m``). It holds the count (``repeat_copy``),
    the source and the end marker. Output classes: the symbols and the end class ``symbols``.

    Two output layouts:

    - fixed steps (``output_tape=False``): an episode with a source of ``L`` symbols takes
      ``L + 1`` steps with nothing scored (``L + 2`` for ``repeat_copy``, which has a count),
      then outputs the target one symbol per step, then the end class on one more step. For
      ``repeat_copy`` the copies are separated by ``L`` unscored steps (time to rewind a head):
      ``2 m L + 3`` steps in all, ``2 L + 2`` for the other transforms. The machine's only
      direct input is a flag that is 1 on the scored steps.
    - the paper's output tape (``output_tape=True``): the machine decides when to write
      (:class:`~difmachine.OutputTape`, the machine's ``readout``). Its outputs are ``symbols
      + 2`` wide: the class logits and a last channel that is 1 on the steps that wrote.
      ``targets[p]`` and ``loss_mask[p]`` are those of output-tape cell ``p`` (the target and
      the end class), and the ``k``-th write is scored against cell ``k``: a cell never written
      or a write beyond the target is wrong (and costs ``log(classes)`` in the loss). An episode
      has as many steps as a pass over the tape, every output and every rewind take, plus one
      (``tape cells + outputs + (m - 1) L + 1``). The context ``"output"`` tells the device
      what it needs to keep to the episode (the paper's constraints): its ``mask`` marks the
      cells to fill, its ``values[t, 0]`` the episode's real steps. The direct input is 1 on
      every real step.

    Scoring as the symbol tasks (``errors = 1 - coarse``, per sequence).

    **Curriculum.** ``adaptive = b > 0`` is the paper's curriculum over complexity. Difficulty
    ``k`` (``0, 1, ...``) is length ``min_length + k``; for ``repeat_copy`` the difficulties
    are ``(repeats, length)`` pairs, every length at ``min_repeats`` first, then every length
    at the next count, as the paper's code orders them. Training starts at level 0 and moves up
    one difficulty whenever the fraction of wrong training sequences over a window of 200 steps
    falls below ``b``. At level ``D`` each example's difficulty is, as in the paper's code:
    ``D + e`` with ``e`` geometric (``P(e) = 2^-(e+1)``), capped at the hardest; with
    probability 10% instead uniform over all difficulties, else with probability 25% uniform
    up to ``D + e``. Unlike the paper (which counts only the examples at ``D + e`` towards the
    error rate, decayed by 0.8 per step, checked after a refractory period of 100 steps),
    every training example counts towards the window. Training keeps the level in its
    checkpoints and logs it (column ``level``); evaluation uses every difficulty uniformly.
    """

    transform: str = eqx.field(static=True, default="copy")
    symbols: int = eqx.field(static=True, default=8)
    min_length: int = eqx.field(static=True, default=2)
    max_length: int = eqx.field(static=True, default=8)
    min_repeats: int = eqx.field(static=True, default=2)
    max_repeats: int = eqx.field(static=True, default=3)
    output_tape: bool = eqx.field(static=True, default=False)
    adaptive: float = eqx.field(static=True, default=0.0)
    level: int | None = eqx.field(static=True, default=None, repr=False)  # set by training

    length_name: ClassVar[str] = "length"
    level_range: ClassVar[str] = "a difficulty {lo}..{hi}"

    def __check_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"TapeTransduce transform must be one of {', '.join(TRANSFORMS)}, "
                f"got {self.transform!r}"
            )
        positive("TapeTransduce", "symbols", self.symbols)
        check_range("TapeTransduce", "length", self.min_length, self.max_length)
        check_range("TapeTransduce", "repeats", self.min_repeats, self.max_repeats)
        check_flag("TapeTransduce", "output_tape", self.output_tape)
        self.check_curriculum()

    # -- layout ---------------------------------------------------------------------------------

    @property
    def _repeats(self) -> bool:
        return self.transform == "repeat_copy"

    @property
    def input_size(self) -> int:
        return 1

    @property
    def classes(self) -> int:
        """Output classes: the symbols and the end class."""
        return self.symbols + 1

    @property
    def output_size(self) -> int:
        return self.classes + 1 if self.output_tape else self.classes

    @property
    def tape_width(self) -> int:
        return self.symbols + 1 + (self.max_repeats if self._repeats else 0)

    @property
    def contexts(self):
        if self.output_tape:
            return {"tape": self.tape_width, "output": 1}
        return {"tape": self.tape_width}

    @property
    def required_contexts(self):
        if not self.output_tape:
            return {}
        fix = (
            f"add an output tape, devices={{..., 'output': OutputTape(classes={self.classes})}} "
            "with readout='output', or set output_tape=False"
        )
        return {"output": fix}

    def example(self, rng: np.random.Generator, length: int, repeats: int = 1):
        """One example: the tape's channels cell by cell, the target symbols (without the end
        class) and the rewind gap between copies."""
        source = rng.integers(0, self.symbols, size=length)
        end = [self.symbols]
        if self.transform == "duplicate":
            return list(np.repeat(source, 2)) + end, list(source), 0
        if self.transform in ("reverse", "forward_reverse"):
            return list(source) + end, list(source[::-1]), 0
        if self._repeats:
            return [self.symbols + repeats, *source, *end], list(source) * repeats, length
        return list(source) + end, list(source), 0

    def tape_cells(self, length: int) -> int:
        """The written cells of a tape for a source of ``length``."""
        return {"duplicate": 2 * length + 1, "repeat_copy": length + 2}.get(
            self.transform, length + 1
        )

    def steps(self, length: int, repeats: int = 1) -> int:
        """An episode's steps for a source of ``length`` (see the class docstring)."""
        m = repeats if self._repeats else 1
        outputs, rewinds = m * length + 1, (m - 1) * length
        if self.output_tape:
            return self.tape_cells(length) + outputs + rewinds + 1
        return self._reading(length) + outputs + rewinds

    def _reading(self, length: int) -> int:
        """Fixed steps: the unscored steps before the first output."""
        return length + 2 if self._repeats else length + 1

    # -- the curriculum -------------------------------------------------------------------------

    def difficulties(self) -> list[tuple[int, int]]:
        """``(repeats, length)`` of every curriculum level, easiest first (``repeats`` is 1
        except for ``repeat_copy``)."""
        lengths = range(self.min_length, self.max_length + 1)
        if not self._repeats:
            return [(1, n) for n in lengths]
        return [(m, n) for m in range(self.min_repeats, self.max_repeats + 1) for n in lengths]

    def draw_levels(self, rng: np.random.Generator, batch_size: int) -> np.ndarray:
        """Each example's difficulty at the curriculum ``level``: the paper's mix."""
        last = len(self.difficulties()) - 1
        top = np.minimum(self.level + rng.geometric(0.5, size=batch_size) - 1, last)
        anywhere = rng.random(batch_size) < 0.1
        easier = rng.random(batch_size) < 0.25
        below = (rng.random(batch_size) * (top + 1)).astype(np.int64)
        uniform = rng.integers(0, last + 1, size=batch_size)
        return np.where(anywhere, uniform, np.where(easier, below, top))

    def curriculum_range(self):
        return 0, len(self.difficulties()) - 1

    # -- batches --------------------------------------------------------------------------------

    def sample(self, rng, batch_size, length=None):
        if length is not None:
            _check_length("TapeTransduce", length)
        if length is None and self.level is not None:
            table = np.asarray(self.difficulties())
            ms, lengths = table[self.draw_levels(rng, batch_size)].T
        else:
            lengths = (
                rng.integers(self.min_length, self.max_length + 1, size=batch_size)
                if length is None
                else np.full(batch_size, int(length))
            )
            ms = np.ones(batch_size, np.int64)
            if self._repeats:
                ms = rng.integers(self.min_repeats, self.max_repeats + 1, size=batch_size)
        L_max = self.max_length if length is None else int(length)
        m_max = self.max_repeats if self._repeats else 1
        S, T = self.symbols, self.steps(L_max, m_max)
        cells = self.tape_cells(L_max)
        tape = np.zeros((batch_size, cells, self.tape_width), np.float32)
        tape_mask = np.zeros((batch_size, cells), np.float32)
        inputs = np.zeros((batch_size, T, 1), np.float32)
        targets = np.zeros((batch_size, T, self.output_size), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b, (L, m) in enumerate(zip(lengths, ms)):
            L, m = int(L), int(m)
            on_tape, target, gap = self.example(rng, L, m)
            tape[b, np.arange(len(on_tape)), on_tape] = 1.0
            tape_mask[b, : len(on_tape)] = 1.0
            n = self.steps(L, m)
            mask[b, :n] = 1.0
            classes = [*target, S]
            if self.output_tape:  # row p: output-tape cell p
                inputs[b, :n, 0] = 1.0
                targets[b, np.arange(len(classes)), classes] = 1.0
                loss_mask[b, : len(classes)] = 1.0
                continue
            # fixed steps: after reading, each copy of L symbols, gaps between copies, the end
            first = self._reading(L)
            per_copy = len(target) // m
            at = [first + c * (per_copy + gap) + i for c in range(m) for i in range(per_copy)]
            at.append(first + m * per_copy + (m - 1) * gap)
            at = np.asarray(at)
            inputs[b, at, 0] = 1.0
            targets[b, at, classes] = 1.0
            loss_mask[b, at] = 1.0
        context = {"tape": Context(tape, tape_mask)}
        if self.output_tape:
            context["output"] = Context(mask[..., None].copy(), loss_mask.copy())
        return Batch(inputs, targets, mask, loss_mask, context)

    # -- scoring ------------------------------------------------------------------------------

    def loss(self, outputs, targets, loss_mask):
        if not self.output_tape:
            return super().loss(outputs, targets, loss_mask)
        written, logits, scored, _ = _output_cells(outputs, targets, loss_mask)
        C = self.classes
        ce = -jnp.sum(targets[:, :C] * jax.nn.log_softmax(logits, axis=-1), axis=-1)
        astray = (scored & ~written) | (written & ~scored)  # missing or surplus writes
        return jnp.sum(jnp.where(written & scored, ce, 0.0)) + jnp.log(C) * jnp.sum(astray)

    def metrics(self, outputs, targets, loss_mask):
        if not self.output_tape:
            return super().metrics(outputs, targets, loss_mask)
        written, _, scored, right = _output_cells(outputs, targets, loss_mask)
        return scored_metrics(scored, right, (scored & ~right) | (written & ~scored))

    def present(self, outputs):
        if not self.output_tape:
            return super().present(outputs)
        C = self.classes
        return jnp.concatenate([jax.nn.softmax(outputs[..., :C], axis=-1), outputs[..., C:]], -1)

    def labels(self, batch: Batch, index: int) -> dict | None:
        """With the output tape, the target as symbols (``$`` the end), for traces."""
        if not self.output_tape:
            return None
        names = [str(i) for i in range(self.symbols)] + ["$"]
        scored = batch.loss_mask[index] > 0
        target = np.argmax(batch.targets[index][scored][:, : self.classes], axis=-1)
        return {"target": [names[int(i)] for i in target]}

    def output_labels(self, predictions):
        """With the output tape, the symbols written, in order."""
        if not self.output_tape:
            return None
        names = [str(i) for i in range(self.symbols)] + ["$"]
        predictions = np.asarray(predictions)
        predictions = predictions[predictions[:, self.classes] > 0.5]
        return [names[int(i)] for i in np.argmax(predictions[:, : self.classes], axis=-1)]


def _output_cells(outputs, targets, loss_mask):
    """Output-tape scoring of one example: ``outputs[T, classes + 1]`` (logits, then 1 on the
    steps that wrote), ``targets[P, classes + 1]`` and ``loss_mask[P]`` per output cell. The
    ``k``-th write lands in cell ``k``. Returns per cell: ``written``, the ``logits`` written
    there (zeros if none), ``scored`` and ``right`` (written, scored and its argmax right)."""
    C = outputs.shape[-1] - 1
    write = outputs[:, C] > 0.5
    cell = jnp.cumsum(write) - 1
    P = targets.shape[0]
    lands = write[:, None] & (cell[:, None] == jnp.arange(P)[None, :])  # [T steps, P cells]
    lands = lands.astype(outputs.dtype)
    written = jnp.sum(lands, axis=0) > 0
    logits = lands.T @ outputs[:, :C]
    scored = loss_mask > 0
    right = written & (jnp.argmax(logits, -1) == jnp.argmax(targets[:, :C], -1))
    return written, logits, scored, right


__all__ = ["TapeTransduce"]
