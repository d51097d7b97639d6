"""Optimiser pieces the papers found necessary, as optax transformations.

``gradient_noise(eta, gamma=0.55, seed=0)``: annealed Gaussian gradient noise (Neelakantan et al.
2015, "Adding gradient noise improves learning for very deep networks"): at update ``t = 0, 1,
...`` every gradient entry gets ``N(0, eta / (1 + t)^gamma)``. It is ``optax.add_noise`` (whose
counter starts at 1, so its ``eta / count^gamma`` is the same schedule) with the random key kept
as raw ``uint32`` data in the optimiser state: optax keeps a typed key there, which
``equinox.tree_serialise_leaves`` cannot write, so checkpoints would fail. Put it after clipping
and before the optimiser, as the paper did:
``optax.chain(optax.clip_by_global_norm(1.0), gradient_noise(1e-3), optax.adam(1e-3))``.
"""

from __future__ import annotations

import jax
import optax


def gradient_noise(eta: float, gamma: float = 0.55, seed: int = 0) -> optax.GradientTransformation:
    """Annealed Gaussian gradient noise of variance ``eta / (1 + t)^gamma`` (see module doc)."""
    if not isinstance(eta, (int, float)) or eta < 0:
        raise ValueError(f"gradient_noise eta must be a non-negative number, got {eta!r}")
    if not isinstance(gamma, (int, float)) or gamma < 0:
        raise ValueError(f"gradient_noise gamma must be a non-negative number, got {gamma!r}")
    inner = optax.add_noise(eta, gamma, key=jax.random.key(seed))

    def init(params):
        state = inner.init(params)
        return state._replace(rng_key=jax.random.key_data(state.rng_key))

    def update(updates, state, params=None):
        typed = state._replace(rng_key=jax.random.wrap_key_data(state.rng_key))
        updates, new = inner.update(updates, typed, params)
        return updates, new._replace(rng_key=jax.random.key_data(new.rng_key))

    return optax.GradientTransformation(init, update)


__all__ = ["gradient_noise"]
