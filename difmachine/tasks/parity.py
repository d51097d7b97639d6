"""The parity task of Graves (2016), section 3.1."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from .base import AbstractTask, Batch, draw_sizes, positive


class Parity(AbstractTask):
    """Is the number of +1 entries odd? One input step.

    The input is a vector of ``bits`` entries; a random number ``1..bits`` of them (at random
    positions) are set to +1 or -1 with equal probability, the rest are 0. The target is 1 when
    the count of +1 entries is odd. ``length`` means the number of non-zero entries (the
    difficulty). Loss: binary cross-entropy; metric ``error``: the fraction classified wrongly.

    ``max_nonzeros`` limits the non-zero entries of *training* vectors (default: all ``bits``);
    evaluating at ``length`` beyond it is the extrapolation test of PonderNet (Banino et al.
    2021, section 3.1: trained on 1..48 of 96 entries, evaluated on 49..96).
    """

    bits: int = eqx.field(static=True, default=16)
    max_nonzeros: int | None = eqx.field(static=True, default=None)

    main_metric: ClassVar[str] = "error"
    length_name: ClassVar[str] = "nonzeros"

    def __check_init__(self):
        positive("Parity", "bits", self.bits)
        if self.max_nonzeros is not None:
            positive("Parity", "max_nonzeros", self.max_nonzeros)
            if self.max_nonzeros > self.bits:
                raise ValueError(
                    f"Parity max_nonzeros ({self.max_nonzeros}) cannot exceed bits ({self.bits})"
                )

    @property
    def input_size(self) -> int:
        return self.bits

    @property
    def output_size(self) -> int:
        return 1

    def sample(self, rng, batch_size, length=None):
        if length is not None and not 1 <= length <= self.bits:
            raise ValueError(
                f"Parity with {self.bits} bits takes 1..{self.bits} non-zero entries, got {length}"
            )
        most = self.bits if self.max_nonzeros is None else self.max_nonzeros
        counts, _ = draw_sizes(rng, batch_size, 1, most, length)
        inputs = np.zeros((batch_size, 1, self.bits), np.float32)
        targets = np.zeros((batch_size, 1, 1), np.float32)
        for b, n in enumerate(counts):
            where = rng.permutation(self.bits)[:n]
            signs = rng.choice(np.array([-1.0, 1.0], np.float32), size=n)
            inputs[b, 0, where] = signs
            targets[b, 0, 0] = float(np.sum(signs > 0) % 2)
        ones = np.ones((batch_size, 1), np.float32)
        return Batch(inputs, targets, ones, ones.copy())

    def loss(self, outputs, targets, loss_mask):
        x, y = outputs[:, 0], targets[:, 0]
        per = jnp.maximum(x, 0) - x * y + jnp.log1p(jnp.exp(-jnp.abs(x)))
        return jnp.sum(per * loss_mask)

    def metrics(self, outputs, targets, loss_mask):
        wrong = ((outputs[:, 0] > 0) != (targets[:, 0] > 0.5)) * loss_mask
        return {"error": jnp.sum(wrong) / jnp.maximum(jnp.sum(loss_mask), 1.0)}

    def present(self, outputs):
        return jax.nn.sigmoid(outputs)
