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

Weight gradients of the in-loop matmuls (``W_r``, ``W_i``, ``b_i`` and a controller's linear
recurrence such as the LSTM's ``U``) are, for training, not accumulated step by step inside the
backward scan: zero *probes* are added to ``z_t`` and to the interface pre-activation, their
cotangents ``g_t`` come back from the backward pass, and each weight gradient is one matmul
``sum_t x_t^T g_t`` afterwards (:meth:`CompiledMachine.hoisted_gradients`).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from functools import partial
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

    ``readout``: by default the output is a learned linear map of ``[h; reads]``; naming a device
    here makes the output that device's read itself (no output projection), for machines whose
    answer must come from a device, e.g. the neural programmer's selected operation's result.
    """

    controller: AbstractController
    devices: tuple[AbstractDevice, ...]
    names: tuple[str, ...] = eqx.field(static=True)
    halting: AbstractHalting
    # repr=False keeps the fingerprints (and so the checkpoints) of existing programs unchanged
    readout: str | None = eqx.field(static=True, default=None, repr=False)

    def __init__(
        self,
        controller: AbstractController,
        devices: Mapping[str, AbstractDevice] | Sequence[AbstractDevice] | AbstractDevice = (),
        halting: AbstractHalting | None = None,
        readout: str | None = None,
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
        if readout is not None and readout not in names:
            raise ValueError(f"Machine readout {readout!r} must name one of its devices {names}")
        self.readout = readout

    @property
    def read_size(self) -> int:
        return sum(d.read_size for d in self.devices)

    def read_slice(self, name: str) -> slice:
        """Where device ``name``'s read sits in the concatenated reads."""
        start = 0
        for n, dev in zip(self.names, self.devices):
            if n == name:
                return slice(start, start + dev.read_size)
            start += dev.read_size
        raise KeyError(name)

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


def keep_padding(m: jax.Array, new: Any, old: Any) -> Any:
    """``new`` where the step is real (``m > 0``), else ``old``: padding leaves a state as it was."""

    def keep(a, b):
        if jnp.issubdtype(a.dtype, jnp.inexact) and jnp.ndim(m) == 0:
            return _select((m > 0).astype(a.dtype), a, b)
        return jnp.where(m > 0, a, b)

    return jax.tree.map(keep, new, old)


@jax.custom_vjp
def _select(m, new, old):
    return jnp.where(m > 0, new, old)


def _select_fwd(m, new, old):
    return _select(m, new, old), m


def _select_bwd(m, g):
    # jnp.where's own VJP keeps the condition broadcast to the state's shape, i.e. a dense
    # bool copy of every state (a whole memory) per time step; the scalar mask is enough
    real = m > 0
    return jnp.zeros_like(m), jnp.where(real, g, 0.0), jnp.where(real, 0.0, g)


_select.defvjp(_select_fwd, _select_bwd)


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
        if machine.readout is not None:
            part = machine.read_slice(machine.readout)
            if part.stop - part.start != output_size:
                raise ValueError(
                    f"compile: readout device {machine.readout!r} reads {part.stop - part.start} "
                    f"values but the task's output_size is {output_size}; they must be equal"
                )
            del params["W_o"], params["b_o"]
        return CompiledMachine(machine, input_size, output_size, remat, params)

    # -- running ------------------------------------------------------------------------------

    def init_carry(self, context: Any = None, controller_state: Any = None):
        """The carried state before the first step.

        ``context`` goes to the devices' ``init_state``: a mapping ``{device name: context}``
        routes per device; anything else (e.g. a :class:`~difmachine.tasks.Context`) is given
        to every device (devices without a use for it ignore it). ``controller_state`` replaces
        the controller's initial state (a sequence-to-sequence decoder starts from the encoder's
        summary).
        """
        m, p = self.machine, self.params
        if isinstance(context, Mapping) and set(context) <= set(m.names):
            per_device = dict(context)
        else:
            per_device = {name: context for name in m.names}
        if controller_state is None:
            controller_state = m.controller.init_state(p["controller"])
        dev_states = {
            name: dev.init_state(p["devices"][name], per_device.get(name))
            for name, dev in zip(m.names, m.devices)
        }
        return controller_state, dev_states, zeros(m.read_size)

    def cell(self, carry, z, probe=None):
        """One inner step: ``(carry, z) -> (carry, (h, reads, traces))``.

        With ``probe`` (``{"z": [G], "iface": [n_iface]}``, zeros) the probes are added to the
        controller's input and the interface pre-activation, and the in-loop weights are cut
        from the gradient: :meth:`hoisted_gradients` puts their gradients back."""
        m, p = self.machine, self.params
        ctrl_state, dev_states, reads = carry
        W_r, W_i, b_i, ctrl_p = p["W_r"], p["W_i"], p["b_i"], p["controller"]
        if probe is not None:
            W_r, W_i, b_i = (jax.lax.stop_gradient(w) for w in (W_r, W_i, b_i))
            cut = m.controller.linear_recurrence(ctrl_state)
            if cut:
                ctrl_p = {k: jax.lax.stop_gradient(v) if k in cut else v for k, v in ctrl_p.items()}
            z = z + probe["z"]
        h, ctrl_state = m.controller.step(ctrl_p, ctrl_state, z + reads @ W_r)
        flat = h @ W_i + b_i
        if probe is not None:
            flat = flat + probe["iface"]
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

    def _check_length(self, T: int) -> None:
        steps = T * self.machine.halting.inner_steps
        for name, dev in zip(self.machine.names, self.machine.devices):
            try:
                dev.check_length(steps)  # shapes are static: this runs once, while tracing
            except ValueError as e:
                raise DifmachineError(f"device {name!r}: {e}") from None

    def _input_step(self, carry, z, m, trace: bool, probe=None):
        """One input step (all its inner steps); padding (``m == 0``) keeps ``carry``.

        With ``probe`` (see :meth:`cell`) the outputs end with the step's *taps*: the inputs of
        the in-loop matmuls, ``reads_{t-1}`` (for ``W_r``), ``h_t`` (for ``W_i``) and the
        controller's linear-recurrence inputs."""
        cell = self.cell if probe is None else partial(self.cell, probe=probe)
        new, (h, reads, traces), losses, halting_trace = self.machine.halting.run(
            self.params[HALTING], cell, carry, z
        )
        taps = None
        if probe is not None:
            ctrl_state, _, prev_reads = carry
            recurrence = self.machine.controller.linear_recurrence(ctrl_state)
            taps = {"W_r": prev_reads, "W_i": h, "controller": recurrence}
        carry = keep_padding(m, new, carry)
        losses = {k: v * m for k, v in losses.items()}
        stats = {k: v * m for k, v in halting_trace.items() if v.ndim == 0}
        if halting_trace:
            traces = {**traces, HALTING: halting_trace}
        return carry, (h, reads, traces if trace else {}, losses, stats, taps)

    def _readout(self, h, reads):
        if self.machine.readout is not None:
            return reads[..., self.machine.read_slice(self.machine.readout)]
        y = jnp.concatenate([h, reads], axis=-1) @ self.params["W_o"]
        return y + jnp.expand_dims(self.params["b_o"], tuple(range(y.ndim - 1)))

    def _aux(self, final, traces, losses, stats, mask):
        k = self.machine.halting.trace_steps
        if k > 1:  # [T, k, ...] device records -> [T * k, ...]: every inner step in time order
            traces = {
                name: (
                    rec
                    if name == HALTING
                    else jax.tree.map(lambda a: a.reshape(-1, *a.shape[2:]), rec)
                )
                for name, rec in traces.items()
            }
        return {
            "trace": traces,
            "losses": {k: jnp.sum(v) for k, v in losses.items()},
            "stats": {k: jnp.sum(v) / jnp.maximum(jnp.sum(mask), 1.0) for k, v in stats.items()},
            "state": final,
        }

    def __call__(
        self,
        xs,
        mask=None,
        *,
        trace: bool = False,
        context=None,
        controller_state=None,
        probes=None,
    ):
        """Run one example. ``xs: [T, input_size]``, ``mask: [T]`` (1 = real step, 0 = padding).

        Returns ``(ys[T, output_size], aux)``; ``aux["trace"]`` holds the devices' stacked trace
        records when ``trace=True``, ``aux["losses"]`` the halting policy's auxiliary losses
        (summed over real steps), ``aux["stats"]`` the means over real steps of its scalar trace
        records (e.g. ACT's ponder) and ``aux["state"]`` the final carried state. ``context``
        and ``controller_state``: see :meth:`init_carry`. ``probes``: zeros from
        :meth:`probes`, for training with :meth:`hoisted_gradients`; ``aux["taps"]`` then holds
        the stacked inputs of the in-loop matmuls.
        """
        T = xs.shape[0]
        self._check_length(T)
        if probes is not None and self.probes(T) is None:
            raise ValueError(
                "probes need a machine whose cell runs once per input step (Fixed(1) halting)"
            )
        mask = jnp.ones((T,), jnp.float32) if mask is None else mask.astype(jnp.float32)
        zx = xs.astype(jnp.float32) @ self.params["W_x"]

        def body(carry, inputs):
            z, m, probe = inputs
            return self._input_step(carry, z, m, trace, probe)

        if self.remat:
            body = jax.checkpoint(body)
        carry = self.init_carry(context, controller_state)
        final, (hs, rs, traces, losses, stats, taps) = jax.lax.scan(body, carry, (zx, mask, probes))
        aux = self._aux(final, traces, losses, stats, mask)
        if probes is not None:
            aux["taps"] = taps
        return self._readout(hs, rs), aux

    def generate(
        self,
        first: jax.Array,
        steps: int,
        feedback,
        stop=None,
        *,
        trace: bool = False,
        context=None,
        controller_state=None,
    ):
        """Decode ``steps`` steps autoregressively: the input of step 0 is ``first[input_size]``,
        the input of step t + 1 is ``feedback(y_t)``. Once ``stop(y_t)`` is true (e.g. the end
        token was emitted) the machine is frozen: later steps leave the state unchanged, as
        padding does, and are marked 0 in ``aux["produced"]``.

        Returns ``(ys[steps, output_size], aux)`` like :meth:`__call__`. With ``feedback``
        giving back the teacher's inputs this equals the teacher-forced ``__call__``.
        """
        self._check_length(steps)
        stop = stop or (lambda y: jnp.zeros((), bool))
        W_x = self.params["W_x"]

        def body(state, _):
            carry, x, running = state
            m = running.astype(jnp.float32)
            carry, (h, reads, traces, losses, stats, _) = self._input_step(carry, x @ W_x, m, trace)
            y = self._readout(h, reads)
            running = running & ~stop(y)
            outputs = (y, m, traces, losses, stats)
            return (carry, feedback(y).astype(jnp.float32), running), outputs

        if self.remat:
            body = jax.checkpoint(body)
        init = (
            self.init_carry(context, controller_state),
            first.astype(jnp.float32),
            jnp.asarray(True),
        )
        (final, _, _), (ys, produced, traces, losses, stats) = jax.lax.scan(
            body, init, None, length=steps
        )
        aux = self._aux(final, traces, losses, stats, produced)
        return ys, {**aux, "produced": produced}

    # -- hoisted weight gradients -------------------------------------------------------------

    def probes(self, steps: int, batch: int | None = None) -> dict | None:
        """Zero probes for ``__call__(..., probes=...)`` on one example of ``steps`` input
        steps (with ``batch``, a leading batch axis for ``vmap``), or ``None`` when the
        machine's cell runs more than once per input step (its weight gradients are then left
        to plain autodiff)."""
        halting = self.machine.halting
        if not (isinstance(halting, Fixed) and halting.n == 1):
            return None
        lead = (steps,) if batch is None else (batch, steps)
        G, n_iface = self.params["W_r"].shape[1], self.params["b_i"].shape[0]
        return {
            "z": jnp.zeros((*lead, G), jnp.float32),
            "iface": jnp.zeros((*lead, n_iface), jnp.float32),
        }

    def hoisted_gradients(self, grads: CompiledMachine, taps, cotangents) -> CompiledMachine:
        """``grads`` (the gradient of a loss through ``__call__(..., probes=...)``, which has no
        contribution from the in-loop weights) plus those weights' gradients, each
        ``sum x^T g`` over every example and step: ``x`` the stacked ``taps`` and ``g`` the
        cotangents of the probes (leading axes ``[..., T]``, e.g. ``[B, T]`` for a batch)."""

        def outer(x, g):
            return jnp.einsum("...i,...j->ij", x, g)

        p = grads.params
        g_z, g_iface = cotangents["z"], cotangents["iface"]
        params = {
            **p,
            "W_r": p["W_r"] + outer(taps["W_r"], g_z),
            "W_i": p["W_i"] + outer(taps["W_i"], g_iface),
            "b_i": p["b_i"] + jnp.sum(g_iface, axis=tuple(range(g_iface.ndim - 1))),
            "controller": {
                **p["controller"],
                **{k: p["controller"][k] + outer(x, g_z) for k, x in taps["controller"].items()},
            },
        }
        return eqx.tree_at(lambda g: g.params, grads, params)

    # -- summary ------------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        p = self.params
        counts = {"controller": _count(p["controller"]) + _count(p["W_x"]) + _count(p["W_r"])}
        for name in self.machine.names:
            counts[f"device {name}"] = _count(p["devices"][name])
        if jax.tree.leaves(p[HALTING]):
            counts["halting"] = _count(p[HALTING])
        counts["interface projection"] = _count(p["W_i"]) + _count(p["b_i"])
        if "W_o" in p:
            counts["output projection"] = _count(p["W_o"]) + _count(p["b_o"])
        return counts


def compile(
    machine,
    input_size: int,
    output_size: int,
    *,
    key: jax.Array,
    remat: bool = False,
    context_size: int | None = None,
):
    """Compile ``machine`` for inputs of width ``input_size`` and outputs of width ``output_size``.

    ``machine`` is a :class:`Machine` or a :class:`~difmachine.Seq2Seq` (which also needs
    ``context_size``, the width of its source tokens). ``remat=True`` wraps the time step in
    ``jax.checkpoint``: the backward pass recomputes each step instead of storing its
    intermediates (less memory traffic at large batches).
    """
    from .seq2seq import CompiledSeq2Seq, Seq2Seq

    if isinstance(machine, Seq2Seq):
        return CompiledSeq2Seq.build(
            machine, input_size, output_size, key=key, context_size=context_size, remat=remat
        )
    if not isinstance(machine, Machine):
        raise TypeError(
            f"compile expects a Machine(...) or Seq2Seq(...), got {type(machine).__name__}"
        )
    return CompiledMachine.build(machine, input_size, output_size, key=key, remat=remat)


__all__ = ["Machine", "CompiledMachine", "Slot", "compile"]
