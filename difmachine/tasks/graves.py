"""The other algorithmic tasks of Graves et al. (2014): repeat copy, associative recall,
priority sort. Each pads its batches to the longest episode its ranges allow, so a training run
compiles once; ``sample(length=n)`` fixes the task's ``length_name`` parameter for evaluation."""

from __future__ import annotations

from typing import ClassVar

import equinox as eqx
import jax.numpy as jnp
import numpy as np

from .base import AbstractBitTask, Batch, check_range, draw_sizes, positive


def _empty(batch_size: int, T: int, n_in: int, n_out: int) -> Batch:
    return Batch(
        np.zeros((batch_size, T, n_in), np.float32),
        np.zeros((batch_size, T, n_out), np.float32),
        np.zeros((batch_size, T), np.float32),
        np.zeros((batch_size, T), np.float32),
    )


class RepeatCopy(AbstractBitTask):
    """Output a sequence ``N`` times, then an end marker (Graves et al. 2014, section 4.2).

    Inputs (``bits + 2`` channels): the ``L`` vectors, then one step carrying the delimiter on
    channel ``bits`` and the repeat count ``N / max_repeats`` on channel ``bits + 1``. Then the
    machine has ``L * N + 1`` blank steps: it must emit the sequence ``N`` times on the ``bits``
    data outputs and finally 1 on the extra end-marker output (channel ``bits``), which is 0 on
    every other scored step.

    ``length`` (of ``sample`` and ``difmachine eval --lengths``) means the number of repeats, or
    with ``vary="length"`` the sequence length, so generalisation in each is measured apart
    (the other drawn from its training range). Metrics: the bit metrics over every scored
    output, and apart ``data_bit_errors`` (the ``bits`` data outputs) and ``marker_errors``
    (the end-marker output: 1 at the end, 0 before it).
    """

    bits: int = eqx.field(static=True, default=8)
    min_length: int = eqx.field(static=True, default=1)
    max_length: int = eqx.field(static=True, default=10)
    min_repeats: int = eqx.field(static=True, default=1)
    max_repeats: int = eqx.field(static=True, default=10)
    vary: str = eqx.field(static=True, default="repeats")

    def __check_init__(self):
        positive("RepeatCopy", "bits", self.bits)
        check_range("RepeatCopy", "length", self.min_length, self.max_length)
        check_range("RepeatCopy", "repeats", self.min_repeats, self.max_repeats)
        if self.vary not in ("repeats", "length"):
            raise ValueError(f"RepeatCopy vary must be 'repeats' or 'length', got {self.vary!r}")

    @property
    def length_name(self) -> str:
        return self.vary

    def metrics(self, outputs, targets, loss_mask):
        wrong = ((outputs > 0) != (targets > 0.5)) * loss_mask[:, None]
        return {
            **super().metrics(outputs, targets, loss_mask),
            "data_bit_errors": jnp.sum(wrong[:, : self.bits]),
            "marker_errors": jnp.sum(wrong[:, self.bits]),
        }

    @property
    def input_size(self) -> int:
        return self.bits + 2

    @property
    def output_size(self) -> int:
        return self.bits + 1

    def sample(self, rng, batch_size, length=None):
        by_length = length if self.vary == "length" else None
        by_repeats = length if self.vary == "repeats" else None
        lengths, L_max = draw_sizes(rng, batch_size, self.min_length, self.max_length, by_length)
        repeats, R_max = draw_sizes(rng, batch_size, self.min_repeats, self.max_repeats, by_repeats)
        T = L_max + 1 + L_max * R_max + 1
        batch = _empty(batch_size, T, self.bits + 2, self.bits + 1)
        for b, (L, N) in enumerate(zip(lengths, repeats)):
            seq = rng.integers(0, 2, size=(L, self.bits)).astype(np.float32)
            batch.inputs[b, :L, : self.bits] = seq
            batch.inputs[b, L, self.bits] = 1.0
            batch.inputs[b, L, self.bits + 1] = N / self.max_repeats
            start, end = L + 1, L + 1 + L * N
            batch.targets[b, start:end, : self.bits] = np.tile(seq, (N, 1))
            batch.targets[b, end, self.bits] = 1.0
            batch.mask[b, : end + 1] = 1.0
            batch.loss_mask[b, start : end + 1] = 1.0
        return batch


class AssociativeRecall(AbstractBitTask):
    """Given items and a query item, output the item that followed it (section 4.3).

    Inputs (``bits + 2`` channels): each item is a step with the item delimiter (channel
    ``bits``) followed by ``item_length`` random vectors; then the query delimiter (channel
    ``bits + 1``), the query (a copy of one item other than the last), and the query delimiter
    again. Then ``item_length`` blank steps in which the item after the query must be output.
    ``length`` means the number of items.
    """

    bits: int = eqx.field(static=True, default=6)
    item_length: int = eqx.field(static=True, default=3)
    min_items: int = eqx.field(static=True, default=2)
    max_items: int = eqx.field(static=True, default=6)

    length_name: ClassVar[str] = "items"

    def __check_init__(self):
        positive("AssociativeRecall", "bits", self.bits)
        positive("AssociativeRecall", "item_length", self.item_length)
        check_range("AssociativeRecall", "items", self.min_items, self.max_items, minimum=2)

    @property
    def input_size(self) -> int:
        return self.bits + 2

    @property
    def output_size(self) -> int:
        return self.bits

    def _steps(self, items: int) -> int:
        k = self.item_length
        return items * (k + 1) + 1 + k + 1 + k

    def sample(self, rng, batch_size, length=None):
        if length is not None and length < 2:
            raise ValueError(f"AssociativeRecall needs at least 2 items, got {length}")
        counts, n_max = draw_sizes(rng, batch_size, self.min_items, self.max_items, length)
        T = self._steps(n_max)
        k, bits = self.item_length, self.bits
        batch = _empty(batch_size, T, bits + 2, bits)
        for b, n in enumerate(counts):
            items = rng.integers(0, 2, size=(n, k, bits)).astype(np.float32)
            for i in range(n):
                t = i * (k + 1)
                batch.inputs[b, t, bits] = 1.0
                batch.inputs[b, t + 1 : t + 1 + k, :bits] = items[i]
            q = int(rng.integers(0, n - 1))
            t = n * (k + 1)
            batch.inputs[b, t, bits + 1] = 1.0
            batch.inputs[b, t + 1 : t + 1 + k, :bits] = items[q]
            batch.inputs[b, t + 1 + k, bits + 1] = 1.0
            out = t + 2 + k
            batch.targets[b, out : out + k] = items[q + 1]
            batch.mask[b, : out + k] = 1.0
            batch.loss_mask[b, out : out + k] = 1.0
        return batch


class PrioritySort(AbstractBitTask):
    """Output the ``outputs`` highest-priority vectors, highest first (section 4.5).

    Inputs (``bits + 2`` channels): ``n`` random vectors, each with a priority drawn uniformly
    from [-1, 1] on channel ``bits``; then a delimiter step (channel ``bits + 1``); then
    ``min(outputs, n)`` blank steps for the sorted output. ``length`` means ``n``, the number of
    inputs.
    """

    bits: int = eqx.field(static=True, default=8)
    min_inputs: int = eqx.field(static=True, default=20)
    max_inputs: int = eqx.field(static=True, default=20)
    outputs: int = eqx.field(static=True, default=16)

    length_name: ClassVar[str] = "inputs"

    def __check_init__(self):
        positive("PrioritySort", "bits", self.bits)
        positive("PrioritySort", "outputs", self.outputs)
        check_range("PrioritySort", "inputs", self.min_inputs, self.max_inputs)

    @property
    def input_size(self) -> int:
        return self.bits + 2

    @property
    def output_size(self) -> int:
        return self.bits

    def sample(self, rng, batch_size, length=None):
        counts, n_max = draw_sizes(rng, batch_size, self.min_inputs, self.max_inputs, length)
        T = n_max + 1 + min(self.outputs, n_max)
        bits = self.bits
        batch = _empty(batch_size, T, bits + 2, bits)
        for b, n in enumerate(counts):
            vectors = rng.integers(0, 2, size=(n, bits)).astype(np.float32)
            priority = rng.uniform(-1.0, 1.0, size=n).astype(np.float32)
            batch.inputs[b, :n, :bits] = vectors
            batch.inputs[b, :n, bits] = priority
            batch.inputs[b, n, bits + 1] = 1.0
            m = min(self.outputs, n)
            order = np.argsort(-priority, kind="stable")[:m]
            batch.targets[b, n + 1 : n + 1 + m] = vectors[order]
            batch.mask[b, : n + 1 + m] = 1.0
            batch.loss_mask[b, n + 1 : n + 1 + m] = 1.0
        return batch
