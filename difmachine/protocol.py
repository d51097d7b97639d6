"""The device and controller protocols every component of a machine implements.

A *spec* is an :class:`equinox.Module` with only static hyperparameters (no arrays). Parameters are
created by ``init_params(key)`` and passed back explicitly to the pure ``init_state`` / ``step``
functions, so a spec is hashable, printable and cheap to compare, and the compiled machine owns all
arrays in one pytree.

Device protocol (one unbatched example; batching is ``vmap``'s job, time is ``scan``'s):

- ``interface() -> {name: Field(shape, activation)}``: what the controller must emit each step.
- ``read_size``: the width of what the device hands back to the controller.
- ``init_params(key) -> params`` (``{}`` when the device has none).
- ``init_state(params, context=None) -> state``.
- ``step(params, state, iface) -> (read, new_state, trace)``; ``iface`` holds the *activated*
  values by field name; ``trace`` is a small dict of arrays worth looking at.
- ``trace_spec()`` (optional): how ``difmachine trace`` draws each trace field.
"""

from __future__ import annotations

import abc
from collections.abc import Callable
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

ACTIVATIONS = {
    "identity": lambda x: x,
    "tanh": jnp.tanh,
    "sigmoid": jax.nn.sigmoid,
    "softplus": jax.nn.softplus,
    "oneplus": lambda x: 1.0 + jax.nn.softplus(x),
    "softmax": lambda x: jax.nn.softmax(x, axis=-1),
}


class Field(NamedTuple):
    """One named slot of a device's interface: its shape and the activation applied to it."""

    shape: tuple[int, ...]
    activation: str

    @property
    def size(self) -> int:
        n = 1
        for d in self.shape:
            n *= d
        return n


class TraceField(NamedTuple):
    """How ``difmachine trace`` draws one trace field of a component.

    - ``kind``: a key of ``difmachine.trace.RENDERERS`` (``heatmap``, ``scalars``, ``options``,
      ``text``);
    - ``label``: the panel's title (``{head}`` is replaced by the head number);
    - ``axis``: what the rows are (``slot``, ``position``, ``inner step``...); the rows of a
      field whose axis is in the example's labels (e.g. ``source``, ``row``) are named after
      those labels;
    - ``options``: names of the rows (``options`` fields) or of a record's entries;
    - ``signed``: draw with a diverging palette;
    - ``describe``: for ``text`` fields, ``describe(data[T, ...], options) -> [line per step]``.
    """

    kind: str
    label: str
    axis: str = "slot"
    options: tuple[str, ...] = ()
    signed: bool = False
    describe: Callable[..., list[str]] | None = None


def activate(name: str, x: jax.Array) -> jax.Array:
    return ACTIVATIONS[name](x)


def check_counts(spec: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()):
    """Raise a one-line ``ValueError`` naming the spec and field unless the named fields are
    positive (or non-negative) integers."""
    owner = type(spec).__name__
    for names, least, kind in ((positive, 1, "positive"), (non_negative, 0, "non-negative")):
        for name in names:
            value = getattr(spec, name)
            if not isinstance(value, int) or isinstance(value, bool) or value < least:
                raise ValueError(f"{owner} {name} must be a {kind} integer, got {value!r}")


class AbstractDevice(eqx.Module):
    """A differentiable device: memory, stack, queue, attention, operation selector..."""

    @abc.abstractmethod
    def interface(self) -> dict[str, Field]: ...

    @property
    @abc.abstractmethod
    def read_size(self) -> int: ...

    @abc.abstractmethod
    def init_params(self, key: jax.Array) -> Any: ...

    @abc.abstractmethod
    def init_state(self, params: Any, context: Any = None) -> Any: ...

    @abc.abstractmethod
    def step(
        self, params: Any, state: Any, iface: dict[str, jax.Array]
    ) -> tuple[Any, Any, dict]: ...

    def check_length(self, steps: int) -> None:
        """Raise ``ValueError`` if the device cannot run ``steps`` cell steps (fixed-capacity
        buffers); the compiler calls it with the sequence length times the inner steps."""

    def trace_spec(self) -> dict[str, Any]:
        """How to draw each trace field: ``{field: TraceField(kind, label, ...)}``.

        Fields not listed are drawn by their rank (``[T, heads, K]`` as heatmaps, else lines).
        """
        return {}


class AbstractController(eqx.Module):
    """A controller network.

    The compiler owns the linear maps from the machine's inputs and the devices' reads into the
    controller, so it can hoist the input projection out of the time loop. A controller therefore
    sees ``z``, the summed pre-activation contribution of its inputs, of width ``input_width``,
    and adds its own recurrence: ``step(params, state, z) -> (h, state)`` with ``h`` of width
    ``output_size``.
    """

    @property
    @abc.abstractmethod
    def input_width(self) -> int: ...

    @property
    @abc.abstractmethod
    def output_size(self) -> int: ...

    @abc.abstractmethod
    def init_params(self, key: jax.Array) -> Any: ...

    @abc.abstractmethod
    def init_state(self, params: Any) -> Any: ...

    @abc.abstractmethod
    def step(self, params: Any, state: Any, z: jax.Array) -> tuple[jax.Array, Any]: ...

    def linear_recurrence(self, state: Any) -> dict[str, jax.Array]:
        """``{name: x}`` for each parameter ``U = params[name]`` that ``step`` uses only in a term
        ``x @ U`` added to ``z`` (so the cotangent of ``z`` is that of ``x @ U``), with ``x``
        taken from ``state``. The compiler then takes ``U``'s gradient as one matmul over all
        time steps after the backward pass instead of accumulating it step by step
        (``CompiledMachine.hoisted_gradients``). Default ``{}``: plain autodiff."""
        return {}


__all__ = [
    "ACTIVATIONS",
    "Field",
    "TraceField",
    "activate",
    "check_counts",
    "AbstractDevice",
    "AbstractController",
]
