"""Tasks whose input is on a tape (RL-NTM, Zaremba & Sutskever 2015): the machine does not see
the source one symbol per step, it must move a head over it (:class:`~difmachine.InputTape`).
"""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import numpy as np

from .base import Batch, Context, check_range, draw_sizes, positive
from .symbols import _check_length, _SymbolScoring

TRANSFORMS = ("copy", "reverse", "duplicate")


class TapeTransduce(_SymbolScoring):
    """Read a source of symbols ``0..symbols-1`` from the input tape and output its transform:
    ``copy`` (``abc -> abc``), ``reverse`` (``abc -> cba``) or ``duplicate`` (the source has
    every symbol twice, ``aabbcc -> abc``, the paper's "duplicated input").

    The tape (context ``"tape"``, one-hot over ``symbols + 1`` channels) holds the source and
    an end marker (channel ``symbols``). An episode with a source of ``L`` symbols (``2 L`` on
    the tape for ``duplicate``) takes ``2 L + 2`` steps: steps ``0..L`` let the head move with
    nothing scored; on steps ``L+1..2L`` the machine outputs the target, one symbol per step,
    and on step ``2L+1`` the end class (``symbols``). The machine's only direct input is a flag
    that is 1 on the answer steps. Scoring as the symbol tasks (``errors = 1 - coarse``).
    """

    transform: str = eqx.field(static=True, default="copy")
    symbols: int = eqx.field(static=True, default=8)
    min_length: int = eqx.field(static=True, default=2)
    max_length: int = eqx.field(static=True, default=8)

    length_name: ClassVar[str] = "length"

    def __check_init__(self):
        if self.transform not in TRANSFORMS:
            raise ValueError(
                f"TapeTransduce transform must be one of {', '.join(TRANSFORMS)}, "
                f"got {self.transform!r}"
            )
        positive("TapeTransduce", "symbols", self.symbols)
        check_range("TapeTransduce", "length", self.min_length, self.max_length)

    @property
    def input_size(self) -> int:
        return 1

    @property
    def output_size(self) -> int:
        return self.symbols + 1

    @property
    def contexts(self):
        return {"tape": self.symbols + 1}

    def sample(self, rng, batch_size, length=None):
        if length is not None:
            _check_length("TapeTransduce", length)
        lengths, L_max = draw_sizes(rng, batch_size, self.min_length, self.max_length, length)
        S, T = self.symbols, 2 * L_max + 2
        per = 2 if self.transform == "duplicate" else 1
        cells = per * L_max + 1
        tape = np.zeros((batch_size, cells, S + 1), np.float32)
        tape_mask = np.zeros((batch_size, cells), np.float32)
        inputs = np.zeros((batch_size, T, 1), np.float32)
        targets = np.zeros((batch_size, T, S + 1), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        for b, L in enumerate(lengths):
            source = rng.integers(0, S, size=L)
            target = source[::-1] if self.transform == "reverse" else source
            on_tape = np.repeat(source, per)
            tape[b, np.arange(per * L), on_tape] = 1.0
            tape[b, per * L, S] = 1.0
            tape_mask[b, : per * L + 1] = 1.0
            inputs[b, L + 1 : 2 * L + 2, 0] = 1.0
            targets[b, L + 1 + np.arange(L), target] = 1.0
            targets[b, 2 * L + 1, S] = 1.0
            mask[b, : 2 * L + 2] = 1.0
            loss_mask[b, L + 1 : 2 * L + 2] = 1.0
        context = {"tape": Context(tape, tape_mask)}
        return Batch(inputs, targets, mask, loss_mask, context)


__all__ = ["TapeTransduce"]
