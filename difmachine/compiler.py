"""The machine spec and its compiler.

``compile(machine, input_size, output_size, key=...)`` turns a declarative :class:`Machine` into a
:class:`CompiledMachine`: one equinox module holding every parameter, mapping one example
``(inputs[T, in], mask[T])`` to ``(outputs[T, out], aux)``. It is jit-able, vmap-able over a batch
and differentiable end to end.

How one time step is wired (``r`` are the devices' reads from the previous step)::

    z_t   = W_x x_t + W_r r_{t-1}              # W_x x_t for all t is one matmul before the scan
    h_t   = controller(z_t, state)
    iface = activate(W_i h_t + b_i)             # one matmul for every field of every device
    r_t   = devices(iface)                      # each device gets its own named slices
    y_t   = W_o [h_t; r_t] + b_o                # one matmul over all t after the scan

Padding: where ``mask[t] == 0`` the carried state is left unchanged, so a padded sequence ends in
the same state as its unpadded self, and a batch of mixed lengths compiles once.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp

from ._init import glorot, zeros
from .errors import DifmachineError
from .halting import AbstractHalting, Fixed
from .protocol import AbstractController, AbstractDevice, Field, activate

HALTING = "halting"  # key of the halting policy's parameters and trace records


class Machine(eqx.Module):
    """A controller, any number of named devices and a halting policy.

    ``devices`` is a mapping ``{name: device}`` or a sequence of devices (named after their class,
    with an index when a class appears more than once).
    """

    controller: AbstractController
    devices: tuple[AbstractDevice, ...]
    names: tuple[str, ...] = eqx.field(static=True)
    halting: AbstractHalting

    def __init__(
        self,
        controller: AbstractController,
        devices: Mapping[str, AbstractDevice] | Sequence[AbstractDevice] | AbstractDevice = (),
        halting: AbstractHalting | None = None,
    ):
        if not isinstance(controller, AbstractController):
            raise TypeError(
                f"Machine controller must be a controller such as LSTM(100), got {controller!r}"
            )
        if isinstance(devices, AbstractDevice):
            devices = (devices,)
        if isinstance(devices, Mapping):
            names, devs = tuple(devices.keys()), tuple(devices.values())
        else:
            devs = tuple(devices)
            kinds = [type(d).__name__.lower() for d in devs]
            names = tuple(
                k if kinds.count(k) == 1 else f"{k}{kinds[:i].count(k)}"
                for i, k in enumerate(kinds)
            )
        for name, dev in zip(names, devs):
            if not isinstance(dev, AbstractDevice):
                raise TypeError(
                    f"Machine device {name!r} must be a device such as NTMMemory(...), got {dev!r}"
                )
        if len(set(names)) != len(names):
            raise ValueError(f"Machine device names must be distinct, got {names}")
        if HALTING in names:
            raise ValueError(
                f"Machine device name {HALTING!r} is reserved for the halting policy's trace"
            )
        self.controller = controller
        self.devices = devs
        self.names = names
        self.halting = Fixed(1) if halting is None else halting
        if not isinstance(self.halting, AbstractHalting):
            raise TypeError(f"Machine halting must be a policy such as Fixed(1), got {halting!r}")

    @property
    def read_size(self) -> int:
        return sum(d.read_size for d in self.devices)

    def layout(self) -> list[Slot]:
        """Every interface field of every device, with its slice of the interface vector."""
        slots, start = [], 0
        for name, dev in zip(self.names, self.devices):
            for field_name, field in dev.interface().items():
                slots.append(Slot(name, field_name, field, start, start + field.size))
                start += field.size
        return slots


class Slot(NamedTuple):
    device: str
    name: str
    field: Field
    start: int
    stop: int


def _count(tree: Any) -> int:
    return sum(x.size for x in jax.tree.leaves(tree) if hasattr(x, "size"))


class CompiledMachine(eqx.Module):
    """A compiled machine: all parameters plus the (static) spec that says how to use them."""

    machine: Machine
    input_size: int = eqx.field(static=True)
    output_size: int = eqx.field(static=True)
    remat: bool = eqx.field(static=True)
    params: dict

    # -- construction -------------------------------------------------------------------------

    @staticmethod
    def build(machine: Machine, input_size: int, output_size: int, *, key, remat: bool = False):
        for what, value in (("input_size", input_size), ("output_size", output_size)):
            if not isinstance(value, int) or value <= 0:
                raise ValueError(f"compile: {what} must be a positive integer, got {value!r}")
        ctrl = machine.controller
        H, G, R = ctrl.output_size, ctrl.input_width, machine.read_size
        n_iface = sum(s.field.size for s in machine.layout())
        k_ctrl, k_x, k_r, k_i, k_o, k_dev, k_halt = jax.random.split(key, 7)
        dev_keys = jax.random.split(k_dev, max(1, len(machine.devices)))
        params = {
            "controller": ctrl.init_params(k_ctrl),
            "devices": {
                name: dev.init_params(k)
                for name, dev, k in zip(machine.names, machine.devices, dev_keys)
            },
            HALTING: machine.halting.init_params(k_halt, H, G),
            "W_x": glorot(k_x, input_size, G),
            "W_r": glorot(k_r, R, G),
            "W_i": glorot(k_i, H, n_iface),
            "b_i": zeros(n_iface),
            "W_o": glorot(k_o, H + R, output_size),
            "b_o": zeros(output_size),
        }
        return CompiledMachine(machine, input_size, output_size, remat, params)

    # -- running ------------------------------------------------------------------------------

    def init_carry(self, context: Mapping[str, Any] | None = None):
        m, p = self.machine, self.params
        context = context or {}
        ctrl_state = m.controller.init_state(p["controller"])
        dev_states = {
            name: dev.init_state(p["devices"][name], context.get(name))
            for name, dev in zip(m.names, m.devices)
        }
        return ctrl_state, dev_states, zeros(m.read_size)

    def cell(self, carry, z):
        """One inner step: ``(carry, z) -> (carry, (h, reads, traces))``."""
        m, p = self.machine, self.params
        ctrl_state, dev_states, reads = carry
        h, ctrl_state = m.controller.step(p["controller"], ctrl_state, z + reads @ p["W_r"])
        flat = h @ p["W_i"] + p["b_i"]
        ifaces: dict[str, dict[str, jax.Array]] = {name: {} for name in m.names}
        for slot in m.layout():
            value = flat[slot.start : slot.stop].reshape(slot.field.shape)
            ifaces[slot.device][slot.name] = activate(slot.field.activation, value)
        new_states, all_reads, traces = {}, [], {}
        for name, dev in zip(m.names, m.devices):
            read, new_states[name], traces[name] = dev.step(
                p["devices"][name], dev_states[name], ifaces[name]
            )
            all_reads.append(read)
        reads = jnp.concatenate(all_reads) if all_reads else zeros(0)
        return (ctrl_state, new_states, reads), (h, reads, traces)

    def __call__(self, xs, mask=None, *, trace: bool = False, context=None):
        """Run one example. ``xs: [T, input_size]``, ``mask: [T]`` (1 = real step, 0 = padding).

        Returns ``(ys[T, output_size], aux)``; ``aux["trace"]`` holds the devices' stacked trace
        records when ``trace=True``, ``aux["losses"]`` the halting policy's auxiliary losses
        (summed over real steps), ``aux["stats"]`` the means over real steps of its scalar trace
        records (e.g. ACT's ponder) and ``aux["state"]`` the final carried state.
        """
        p = self.params
        T = xs.shape[0]
        steps = T * self.machine.halting.inner_steps
        for name, dev in zip(self.machine.names, self.machine.devices):
            try:
                dev.check_length(steps)  # shapes are static: this runs once, while tracing
            except ValueError as e:
                raise DifmachineError(f"device {name!r}: {e}") from None
        mask = jnp.ones((T,), jnp.float32) if mask is None else mask.astype(jnp.float32)
        zx = xs.astype(jnp.float32) @ p["W_x"]
        halting = self.machine.halting

        def body(carry, inputs):
            z, m = inputs
            new, (h, reads, traces), losses, halting_trace = halting.run(
                p[HALTING], self.cell, carry, z
            )
            carry = jax.tree.map(lambda a, b: jnp.where(m > 0, a, b), new, carry)
            losses = {k: v * m for k, v in losses.items()}
            stats = {k: v * m for k, v in halting_trace.items() if v.ndim == 0}
            if halting_trace:
                traces = {**traces, HALTING: halting_trace}
            return carry, (h, reads, traces if trace else {}, losses, stats)

        if self.remat:
            body = jax.checkpoint(body)
        final, (hs, rs, traces, losses, stats) = jax.lax.scan(
            body, self.init_carry(context), (zx, mask)
        )
        ys = jnp.concatenate([hs, rs], axis=-1) @ p["W_o"] + p["b_o"][None, :]
        aux = {
            "trace": traces,
            "losses": {k: jnp.sum(v) for k, v in losses.items()},
            "stats": {k: jnp.sum(v) / jnp.maximum(jnp.sum(mask), 1.0) for k, v in stats.items()},
            "state": final,
        }
        return ys, aux

    # -- summary ------------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        p = self.params
        counts = {"controller": _count(p["controller"]) + _count(p["W_x"]) + _count(p["W_r"])}
        for name in self.machine.names:
            counts[f"device {name}"] = _count(p["devices"][name])
        if jax.tree.leaves(p[HALTING]):
            counts["halting"] = _count(p[HALTING])
        counts["interface projection"] = _count(p["W_i"]) + _count(p["b_i"])
        counts["output projection"] = _count(p["W_o"]) + _count(p["b_o"])
        return counts


def compile(
    machine: Machine, input_size: int, output_size: int, *, key: jax.Array, remat: bool = False
) -> CompiledMachine:
    """Compile ``machine`` for inputs of width ``input_size`` and outputs of width ``output_size``.

    ``remat=True`` wraps the time step in ``jax.checkpoint``: the backward pass recomputes each
    step instead of storing its intermediates (less memory traffic at large batches).
    """
    if not isinstance(machine, Machine):
        raise TypeError(f"compile expects a Machine(...), got {type(machine).__name__}")
    return CompiledMachine.build(machine, input_size, output_size, key=key, remat=remat)


__all__ = ["Machine", "CompiledMachine", "Slot", "compile"]
