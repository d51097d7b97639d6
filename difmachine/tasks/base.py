"""Tasks: generators of padded batches, with their loss and metrics."""

from __future__ import annotations

import abc
from typing import ClassVar, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np


class Batch(NamedTuple):
    """A padded batch. ``inputs[B, T, in]``, ``targets[B, T, out]``; ``mask[B, T]`` marks real
    steps (the machine runs them), ``loss_mask[B, T]`` the steps that are scored."""

    inputs: np.ndarray
    targets: np.ndarray
    mask: np.ndarray
    loss_mask: np.ndarray


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

    def present(self, outputs: jax.Array) -> jax.Array:
        """Outputs as shown in traces (e.g. probabilities for logits)."""
        return outputs

    #: the metric the progress bar and early stopping watch, and whether lower is better
    main_metric: ClassVar[str] = "loss"


def masked_bce(logits: jax.Array, targets: jax.Array, loss_mask: jax.Array) -> jax.Array:
    """Binary cross-entropy with logits, summed over channels and scored steps."""
    per = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    return jnp.sum(per * loss_mask[:, None])
