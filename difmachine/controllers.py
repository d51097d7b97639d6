"""Controllers: LSTM, GRU, RNN (tanh) and MLP (feed-forward).

Each receives ``z``, the pre-activation contribution of its inputs computed by the compiler
(``z = W_x x_t + W_r r_{t-1}``, with ``W_x x`` hoisted out of the time loop), and adds its own
recurrent term and bias.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._init import glorot, zeros
from .protocol import ACTIVATIONS, AbstractController, check_count


def _check_positive(name: str, value: int, what: str = "hidden size") -> None:
    check_count(name, what, value)


class LSTM(AbstractController):
    """Long short-term memory with forget-gate bias 1 (the usual trick for early training)."""

    hidden: int = eqx.field(static=True)

    def __check_init__(self):
        _check_positive("LSTM", self.hidden)

    @property
    def input_width(self) -> int:
        return 4 * self.hidden

    @property
    def output_size(self) -> int:
        return self.hidden

    def init_params(self, key):
        H = self.hidden
        bias = zeros(4 * H).at[H : 2 * H].set(1.0)  # gate order: input, forget, cell, output
        return {"U": glorot(key, H, 4 * H), "b": bias}

    def init_state(self, params):
        return (zeros(self.hidden), zeros(self.hidden))

    def linear_recurrence(self, state):
        return {"U": state[0]}

    def step(self, params, state, z):
        h, c = state
        gates = z + h @ params["U"] + params["b"]
        i, f, g, o = jnp.split(gates, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h = jax.nn.sigmoid(o) * jnp.tanh(c)
        return h, (h, c)


class GRU(AbstractController):
    """Gated recurrent unit (Cho et al. 2014): ``h' = (1 - u) * c + u * h``."""

    hidden: int = eqx.field(static=True)

    def __check_init__(self):
        _check_positive("GRU", self.hidden)

    @property
    def input_width(self) -> int:
        return 3 * self.hidden

    @property
    def output_size(self) -> int:
        return self.hidden

    def init_params(self, key):
        H = self.hidden
        return {"U": glorot(key, H, 3 * H), "b": zeros(3 * H)}

    def init_state(self, params):
        return zeros(self.hidden)

    def step(self, params, state, z):
        h = state
        H = self.hidden
        uh = h @ params["U"] + params["b"]
        r = jax.nn.sigmoid(z[:H] + uh[:H])
        u = jax.nn.sigmoid(z[H : 2 * H] + uh[H : 2 * H])
        c = jnp.tanh(z[2 * H :] + r * uh[2 * H :])
        h = (1.0 - u) * c + u * h
        return h, h


class RNN(AbstractController):
    """Elman network: ``h' = f(z + U h + b)`` with ``f = tanh`` by default; ``activation``
    names any of :data:`difmachine.protocol.ACTIVATIONS` (``"identity"`` makes the linear
    recurrence of a layer-wise memory network, ``u' = H u + o``)."""

    hidden: int = eqx.field(static=True)
    activation: str = eqx.field(static=True, default="tanh")

    def __check_init__(self):
        _check_positive("RNN", self.hidden)
        if self.activation not in ACTIVATIONS or self.activation == "softmax":
            names = ", ".join(k for k in ACTIVATIONS if k != "softmax")
            raise ValueError(f"RNN activation must be one of {names}, got {self.activation!r}")

    @property
    def input_width(self) -> int:
        return self.hidden

    @property
    def output_size(self) -> int:
        return self.hidden

    def init_params(self, key):
        return {"U": glorot(key, self.hidden, self.hidden), "b": zeros(self.hidden)}

    def init_state(self, params):
        return zeros(self.hidden)

    def linear_recurrence(self, state):
        return {"U": state}

    def step(self, params, state, z):
        h = ACTIVATIONS[self.activation](z + state @ params["U"] + params["b"])
        return h, h


class MLP(AbstractController):
    """Feed-forward controller (no state of its own; memory only through the devices).

    ``hidden`` is a tuple of layer widths; the first layer's weights belong to the compiler.
    """

    hidden: tuple[int, ...] = eqx.field(
        static=True, converter=lambda h: (h,) if isinstance(h, int) else tuple(h)
    )

    def __check_init__(self):
        if not self.hidden:
            raise ValueError(
                "MLP needs at least one hidden layer, e.g. MLP(100) or MLP((100, 100))"
            )
        for width in self.hidden:
            _check_positive("MLP", width, "layer width")

    @property
    def input_width(self) -> int:
        return self.hidden[0]

    @property
    def output_size(self) -> int:
        return self.hidden[-1]

    def init_params(self, key):
        keys = jax.random.split(key, len(self.hidden))
        layers = [
            {"W": glorot(k, a, b), "b": zeros(b)}
            for k, a, b in zip(keys[1:], self.hidden[:-1], self.hidden[1:])
        ]
        return {"b0": zeros(self.hidden[0]), "layers": layers}

    def init_state(self, params):
        return ()

    def step(self, params, state, z):
        h = jnp.tanh(z + params["b0"])
        for layer in params["layers"]:
            h = jnp.tanh(h @ layer["W"] + layer["b"])
        return h, state


CONTROLLERS: dict[str, Any] = {"LSTM": LSTM, "GRU": GRU, "RNN": RNN, "MLP": MLP}

__all__ = ["LSTM", "GRU", "RNN", "MLP"]
