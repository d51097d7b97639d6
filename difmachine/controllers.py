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
    """Long short-term memory with forget-gate bias 1 (the usual trick for early training).

    ``layers=n`` stacks ``n`` LSTMs of ``hidden`` units (Graves et al. 2014's "2 x 100"
    controller is ``LSTM(100, layers=2)``): the machine's input projection feeds the first,
    each layer's new output feeds the next, and the last one's is the controller's output. The
    state is ``(h, c)`` of the first layer, then the upper layers' ``(h, c)`` pairs; with one
    layer it is ``(h, c)`` and the parameters are those of the single LSTM, as before."""

    hidden: int = eqx.field(static=True)
    layers: int = eqx.field(static=True, default=1)

    def __check_init__(self):
        _check_positive("LSTM", self.hidden)
        _check_positive("LSTM", self.layers, "number of layers")

    @property
    def input_width(self) -> int:
        return 4 * self.hidden

    @property
    def output_size(self) -> int:
        return self.hidden

    def _bias(self):
        H = self.hidden
        return zeros(4 * H).at[H : 2 * H].set(1.0)  # gate order: input, forget, cell, output

    def init_params(self, key):
        H = self.hidden
        # the first layer draws from `key` itself: one layer is exactly the single LSTM, with
        # its initial values and checkpoints; upper layer i draws from fold_in(key, i)
        params = {"U": glorot(key, H, 4 * H), "b": self._bias()}
        if self.layers > 1:
            keys = [jax.random.split(jax.random.fold_in(key, i)) for i in range(1, self.layers)]
            params["upper"] = [
                {"W": glorot(k_w, H, 4 * H), "U": glorot(k_u, H, 4 * H), "b": self._bias()}
                for k_w, k_u in keys
            ]
        return params

    def init_state(self, params):
        cell = (zeros(self.hidden), zeros(self.hidden))
        return cell if self.layers == 1 else (*cell, tuple(cell for _ in range(self.layers - 1)))

    def linear_recurrence(self, state):
        return {"U": state[0]}

    @staticmethod
    def _cell(gates, c):
        i, f, g, o = jnp.split(gates, 4)
        c = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        return jax.nn.sigmoid(o) * jnp.tanh(c), c

    def step(self, params, state, z):
        h, c = self._cell(z + state[0] @ params["U"] + params["b"], state[1])
        if self.layers == 1:
            return h, (h, c)
        first, upper = (h, c), []
        for layer, (h_prev, c_prev) in zip(params["upper"], state[2]):
            h, c = self._cell(h @ layer["W"] + h_prev @ layer["U"] + layer["b"], c_prev)
            upper.append((h, c))
        return h, (*first, tuple(upper))


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
