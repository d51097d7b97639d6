"""The copy task of Graves et al. (2014)."""

from __future__ import annotations

import equinox as eqx
import numpy as np

from .base import AbstractBitTask, Batch, check_range, draw_sizes, positive


class Copy(AbstractBitTask):
    """Copy a sequence of random ``bits``-bit vectors after a delimiter.

    Input channels: ``bits`` data bits plus one delimiter channel. A sequence of length ``L``
    occupies steps ``0..L-1``, the delimiter step ``L``, then ``L`` blank steps during which the
    machine must output the sequence (the scored steps). Batches are padded to
    ``2 * max_length + 1`` steps so every batch has one shape; lengths are drawn uniformly from
    ``[min_length, max_length]`` per sequence.
    """

    bits: int = eqx.field(static=True, default=8)
    min_length: int = eqx.field(static=True, default=1)
    max_length: int = eqx.field(static=True, default=20)

    def __check_init__(self):
        positive("Copy", "bits", self.bits)
        check_range("Copy", "length", self.min_length, self.max_length)

    @property
    def input_size(self) -> int:
        return self.bits + 1

    @property
    def output_size(self) -> int:
        return self.bits

    def sample(self, rng, batch_size, length=None):
        lengths, L_max = draw_sizes(rng, batch_size, self.min_length, self.max_length, length)
        T = 2 * L_max + 1
        inputs = np.zeros((batch_size, T, self.bits + 1), np.float32)
        targets = np.zeros((batch_size, T, self.bits), np.float32)
        mask = np.zeros((batch_size, T), np.float32)
        loss_mask = np.zeros((batch_size, T), np.float32)
        data = rng.integers(0, 2, size=(batch_size, T, self.bits)).astype(np.float32)
        for b, L in enumerate(lengths):
            inputs[b, :L, : self.bits] = data[b, :L]
            inputs[b, L, self.bits] = 1.0
            targets[b, L + 1 : 2 * L + 1] = data[b, :L]
            mask[b, : 2 * L + 1] = 1.0
            loss_mask[b, L + 1 : 2 * L + 1] = 1.0
        return Batch(inputs, targets, mask, loss_mask)
