"""Optimiser pieces the papers found necessary, as optax transformations.

``gradient_noise(eta, gamma=0.55, seed=0)``: annealed Gaussian gradient noise (Neelakantan et al.
2015, "Adding gradient noise improves learning for very deep networks"): at update ``t = 0, 1,
...`` every gradient entry gets ``N(0, eta / (1 + t)^gamma)``. It is ``optax.add_noise`` (whose
counter starts at 1, so its ``eta / count^gamma`` is the same schedule) with the random key kept
as raw ``uint32`` data in the optimiser state: optax keeps a typed key there, which
``equinox.tree_serialise_leaves`` cannot write, so checkpoints would fail. Put it after clipping
and before the optimiser, as the paper did:
``optax.chain(optax.clip_by_global_norm(1.0), gradient_noise(1e-3), optax.adam(1e-3))``.

``clipped_adamax(learning_rate)``: AdaMax as Freivalds & Liepins 2017 train the improved Neural
GPU (their code, LUMII-Syslab/DNGPU, ``adamax.py``). Per entry, with ``v`` the running maximum::

    g  <- clip(g, -(1.2 v + 1e-4), 1.2 v + 1e-4)    a gradient may exceed its past maximum by 20%
    m  <- b1 m + (1 - b1) g
    v  <- max(b2(t) v, |g|)
    θ  <- θ - lr m / (v + 1e-8)                     no bias correction

``b2(t) = 1 - max(0.0005, 0.01 * 0.5^(t / 2000))``: the maximum forgets fast at first (0.99) and
slowly later (0.9995 from about step 9,000). The per-entry clip replaces a global norm clip; the
first step's gradients are clipped to ``±1e-4`` and ``v`` grows at most 20% a step, and without
bias correction the first updates are small: a warm-up of its own.

``plateau_cut(every=200, factor=0.7, min_scale=1/60)``: the same authors' learning-rate cut. Every
``every`` updates it takes the mean task loss since its last check; when that mean and the one
before it are both above the mean of the check before them (no progress in two checks), every
later update is scaled by ``factor`` more, down to ``min_scale`` (their floor, the rate / 60).
Chain it after the optimizer, ``optax.chain(clipped_adamax(lr), plateau_cut())``: the training
step gives an optimizer that takes extra arguments (``optax.GradientTransformationExtraArgs``,
which ``optax.chain`` makes) the batch's task loss as ``value``. ``optax.contrib.reduce_on_plateau``
is close but compares with the best mean so far, and starts that best at ``inf``, which the
training step's finite-state check would refuse.

``adaptive_weight(loss, rate, every=200, low=1e-20, high=1.0)``: the same authors' weight on
their saturation cost, which follows the task loss. The machine's auxiliary loss named ``loss``
(e.g. a ``NeuralGPU``'s ``"saturation"``, already times the machine's own weight ``w0``) enters
the training loss times a factor ``f`` (1 at the start); every ``every`` updates ``f`` becomes
``clip(rate * s * mean task loss / mean term, low, high)``, the means over those updates, the term
before ``f``, and ``s`` the scale of a :func:`plateau_cut` in the same optimizer (1 without one),
so ``rate * s`` is the current learning rate. The weighted term is then kept near that fraction
of the task loss: the authors' ``w = clip(lr * loss / raw saturation, 1e-20, 1e-3)`` with their
``1e-3`` as the machine's ``w0`` and ``high=1``. The training step finds the factor in the
optimizer's state, weighs the term with it, gives the optimizer the unweighted terms as
``losses`` and the cut's scale as ``lr_scale``, and logs ``weight/<loss>`` (``f``) beside the
weighted term (evaluation reports the term before ``f``); updates pass through unchanged.

``rate_noise(rate, factor=1e-4, seed=0)``: the same authors' gradient noise, proportional to the
current learning rate: every gradient entry gets ``factor * rate * s * z``, ``z`` a standard normal
truncated at ±2 (redrawn beyond, as TensorFlow's ``truncated_normal``) and ``s`` the scale of a
:func:`plateau_cut` in the same optimizer (1 without one; the training step passes it as
``lr_scale``). ``rate`` is a number or a schedule of the update count. Put it first:
``optax.chain(rate_noise(lr), clipped_adamax(lr), plateau_cut())``. Its state is the update count;
the noise of update ``t`` is drawn from ``fold_in(key(seed), t)``, so a resumed run adds the same.
"""

from __future__ import annotations

from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import optax

from .protocol import check_non_negative


def _check_rate(owner: str, name: str, rate, schedule: bool = True) -> None:
    """A learning rate: a positive number, or (``schedule``) a schedule of the update count."""
    if schedule and callable(rate):
        return
    if not isinstance(rate, (int, float)) or rate <= 0:
        what = "" if name == "learning_rate" else " (the learning rate)"
        raise ValueError(f"{owner} {name} must be positive{what}, got {rate!r}")


def gradient_noise(eta: float, gamma: float = 0.55, seed: int = 0) -> optax.GradientTransformation:
    """Annealed Gaussian gradient noise of variance ``eta / (1 + t)^gamma`` (see module doc)."""
    check_non_negative("gradient_noise", "eta", eta)
    check_non_negative("gradient_noise", "gamma", gamma)
    inner = optax.add_noise(eta, gamma, key=jax.random.key(seed))

    def init(params):
        state = inner.init(params)
        return state._replace(rng_key=jax.random.key_data(state.rng_key))

    def update(updates, state, params=None):
        typed = state._replace(rng_key=jax.random.wrap_key_data(state.rng_key))
        updates, new = inner.update(updates, typed, params)
        return updates, new._replace(rng_key=jax.random.key_data(new.rng_key))

    return optax.GradientTransformation(init, update)


def dngpu_beta2(count: jax.Array) -> jax.Array:
    """Freivalds & Liepins's AdaMax decay of the running maximum at update ``count``:
    ``1 - max(0.0005, 0.01 * 0.5^(count / 2000))``."""
    return 1.0 - jnp.maximum(0.0005, 0.01 * 0.5 ** (count / 2000.0))


class ClippedAdamaxState(NamedTuple):
    count: jax.Array  # int32 []: updates so far
    m: Any
    v: Any


def clipped_adamax(
    learning_rate: float | optax.Schedule,
    b1: float = 0.9,
    b2: float | optax.Schedule = dngpu_beta2,
    eps: float = 1e-8,
    clip: float = 1.2,
    clip_eps: float = 1e-4,
) -> optax.GradientTransformation:
    """Freivalds & Liepins's AdaMax with its per-entry gradient clip (see the module doc);
    ``learning_rate`` and ``b2`` are numbers or schedules of the update count."""
    _check_rate("clipped_adamax", "learning_rate", learning_rate)
    if not 0 <= b1 < 1:
        raise ValueError(f"clipped_adamax b1 must be in [0, 1), got {b1!r}")
    if not isinstance(clip, (int, float)) or clip < 1:
        raise ValueError(
            f"clipped_adamax clip must be a number >= 1 (1.2: 20% growth), got {clip!r}"
        )

    def init(params):
        zeros = jax.tree.map(lambda p: jnp.zeros(jnp.shape(p), jnp.result_type(p)), params)
        return ClippedAdamaxState(jnp.zeros((), jnp.int32), zeros, zeros)

    def update(grads, state, params=None):
        del params
        t = state.count.astype(jnp.float32)
        lr = learning_rate(state.count) if callable(learning_rate) else learning_rate
        beta2 = b2(t) if callable(b2) else b2

        def clipped(g, v):
            bound = clip * v + clip_eps
            return jnp.clip(g, -bound, bound)

        grads = jax.tree.map(clipped, grads, state.v)
        m = jax.tree.map(lambda g, m: b1 * m + (1.0 - b1) * g, grads, state.m)
        v = jax.tree.map(lambda g, v: jnp.maximum(beta2 * v, jnp.abs(g)), grads, state.v)
        updates = jax.tree.map(lambda g, m, v: (-lr * m / (v + eps)).astype(g.dtype), grads, m, v)
        return updates, ClippedAdamaxState(state.count + 1, m, v)

    return optax.GradientTransformation(init, update)


class PlateauCutState(NamedTuple):
    count: jax.Array  # int32 []: updates since the last check
    total: jax.Array  # float32 []: the sum of their losses
    previous: jax.Array  # float32 [2]: the mean losses of the last two checks, older first
    scale: jax.Array  # float32 []: the factor on every update


def plateau_cut(every: int = 200, factor: float = 0.7, min_scale: float = 1 / 60):
    """Freivalds & Liepins's cut of the learning rate on a plateau (see the module doc)."""
    if not isinstance(every, int) or every < 1:
        raise ValueError(f"plateau_cut every must be a whole number of updates >= 1, got {every!r}")
    if not 0 < factor < 1 or not 0 < min_scale <= 1:
        raise ValueError(
            f"plateau_cut factor and min_scale must be in (0, 1), got {factor!r}, {min_scale!r}"
        )

    def init(params):
        del params
        start = jnp.full((2,), 1e6, jnp.float32)  # the authors' start: no cut before 3 checks
        return PlateauCutState(jnp.zeros((), jnp.int32), jnp.zeros((), jnp.float32), start,
                               jnp.ones((), jnp.float32))  # fmt: skip

    def update(updates, state, params=None, *, value=None, **extra):
        del params, extra
        if value is None:
            raise TypeError(
                "plateau_cut needs the loss: chain it (optax.chain(optimizer, plateau_cut())) so "
                "the training step passes value="
            )
        count = state.count + 1
        total = state.total + jnp.asarray(value, jnp.float32)
        check = count >= every
        mean = total / count.astype(jnp.float32)
        older, last = state.previous[0], state.previous[1]
        cut = check & (older < jnp.minimum(last, mean))
        scale = jnp.where(cut, jnp.maximum(state.scale * factor, min_scale), state.scale)
        previous = jnp.where(check, jnp.stack([last, mean]), state.previous)
        new = PlateauCutState(
            jnp.where(check, 0, count), jnp.where(check, 0.0, total), previous, scale
        )
        return jax.tree.map(lambda u: (scale * u).astype(u.dtype), updates), new

    return optax.GradientTransformationExtraArgs(init, update)


class AdaptiveWeightState(eqx.Module):
    loss: str = eqx.field(static=True)  # the auxiliary loss it weighs (static: in the treedef)
    count: jax.Array  # int32 []: updates since the last check
    total_loss: jax.Array  # float32 []: the sum of their task losses
    total_term: jax.Array  # float32 []: the sum of their unweighted terms
    factor: jax.Array  # float32 []: the factor on the term


def adaptive_weight(
    loss: str, rate: float, every: int = 200, low: float = 1e-20, high: float = 1.0
) -> optax.GradientTransformationExtraArgs:
    """Freivalds & Liepins's weight on an auxiliary loss that follows the task loss (see the
    module doc)."""
    if not isinstance(loss, str) or not loss:
        raise ValueError(f"adaptive_weight loss must name an auxiliary loss, got {loss!r}")
    _check_rate("adaptive_weight", "rate", rate, schedule=False)
    if not isinstance(every, int) or every < 1:
        raise ValueError(
            f"adaptive_weight every must be a whole number of updates >= 1, got {every!r}"
        )
    if not 0 < low <= high:
        raise ValueError(f"adaptive_weight needs 0 < low <= high, got {low!r}, {high!r}")

    def init(params):
        del params
        zero = jnp.zeros((), jnp.float32)
        return AdaptiveWeightState(
            loss, jnp.zeros((), jnp.int32), zero, zero, jnp.ones((), jnp.float32)
        )

    def update(updates, state, params=None, *, value=None, losses=None, lr_scale=1.0, **extra):
        del params, extra
        if value is None or losses is None or loss not in losses:
            raise TypeError(
                f"adaptive_weight({loss!r}) needs the task loss and the machine's {loss!r} term: "
                "chain it (optax.chain(optimizer, adaptive_weight(...))) and train a machine "
                f"whose aux losses include {loss!r}"
            )
        count = state.count + 1
        total_loss = state.total_loss + jnp.asarray(value, jnp.float32)
        total_term = state.total_term + jnp.asarray(losses[loss], jnp.float32)
        check = count >= every
        target = rate * jnp.asarray(lr_scale, jnp.float32) * total_loss / (total_term + 1e-30)
        factor = jnp.where(check, jnp.clip(target, low, high), state.factor)
        new = AdaptiveWeightState(
            loss,
            jnp.where(check, 0, count),
            jnp.where(check, 0.0, total_loss),
            jnp.where(check, 0.0, total_term),
            factor.astype(jnp.float32),
        )
        return updates, new

    return optax.GradientTransformationExtraArgs(init, update)


class RateNoiseState(NamedTuple):
    count: jax.Array  # int32 []: updates so far


def rate_noise(
    rate: float | optax.Schedule, factor: float = 1e-4, seed: int = 0
) -> optax.GradientTransformationExtraArgs:
    """Freivalds & Liepins's gradient noise, ``factor`` times the learning rate (see the module
    doc)."""
    _check_rate("rate_noise", "rate", rate)
    check_non_negative("rate_noise", "factor", factor)

    def init(params):
        del params
        return RateNoiseState(jnp.zeros((), jnp.int32))

    def update(updates, state, params=None, *, lr_scale=1.0, **extra):
        del params, extra
        lr = rate(state.count) if callable(rate) else rate
        size = factor * lr * jnp.asarray(lr_scale, jnp.float32)
        leaves, treedef = jax.tree.flatten(updates)
        keys = jax.random.split(jax.random.fold_in(jax.random.key(seed), state.count), len(leaves))
        noisy = [
            (g + size * jax.random.truncated_normal(k, -2.0, 2.0, jnp.shape(g))).astype(g.dtype)
            for g, k in zip(leaves, keys, strict=True)
        ]
        return jax.tree.unflatten(treedef, noisy), RateNoiseState(state.count + 1)

    return optax.GradientTransformationExtraArgs(init, update)


def states_of(opt_state, kind: type) -> list:
    """The states of type ``kind`` inside an optimizer's state (e.g. in an ``optax.chain``)."""
    found = lambda x: isinstance(x, kind)
    return [x for x in jax.tree.leaves(opt_state, is_leaf=found) if found(x)]


def loss_weights(opt_state) -> dict[str, jax.Array]:
    """The factors of the :func:`adaptive_weight` transformations in an optimizer's state."""
    return {s.loss: s.factor for s in states_of(opt_state, AdaptiveWeightState)}


def learning_rate_scale(opt_state) -> jax.Array | None:
    """The scale of the :func:`plateau_cut` in an optimizer's state (``None``: there is none)."""
    cuts = states_of(opt_state, PlateauCutState)
    return cuts[0].scale if cuts else None


__all__ = [
    "gradient_noise",
    "clipped_adamax",
    "dngpu_beta2",
    "plateau_cut",
    "adaptive_weight",
    "rate_noise",
    "loss_weights",
    "learning_rate_scale",
    "states_of",
]
