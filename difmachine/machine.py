"""The recurrent machine kind: a controller, named devices and a halting policy.

``Machine(...).compile(input_size, output_size, key=...)`` (or ``difmachine.compile``) turns the
declarative :class:`Machine` into a :class:`CompiledMachine`: one equinox module holding every
parameter, mapping one example ``(inputs[T, in], mask[T])`` to ``(outputs[T, out], aux)``. It is
jit-able, vmap-able over a batch and differentiable end to end.

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

import dataclasses
from collections.abc import Mapping, Sequence
from functools import partial
from typing import Any, NamedTuple

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np

from ._init import glorot, zeros
from .errors import CompileError, DifmachineError
from .halting.fixed import Fixed
from .protocol import (
    HALTING,
    INPUTS,
    SAMPLED,
    AbstractCompiledMachine,
    AbstractController,
    AbstractDevice,
    AbstractHalting,
    AbstractMachine,
    CellOutput,
    Component,
    Field,
    activate,
    check_count,
    context_names,
    is_stochastic,
)
from .tasks.base import Context


class Machine(AbstractMachine):
    """A controller, any number of named devices and a halting policy.

    ``devices`` is a mapping ``{name: device}`` or a sequence of devices (named after their class,
    with an index when a class appears more than once).

    ``readout``: by default the output is a learned linear map of ``[h; reads]``; naming a device
    here makes the output that device's read itself (no output projection), for machines whose
    answer must come from a device, e.g. the neural programmer's selected operation's result.

    A device that reads a context (``device.context()``, e.g. ``"source"``) gets the entry of that
    name from the contexts the machine is run with; :meth:`check_contexts` checks once, when a
    program is built, that the task provides each of them. The machine provides one context
    itself: ``"inputs"`` (``protocol.INPUTS``) is the example's whole input sequence,
    ``Context(xs[T, input_size], mask[T])``, for a device that initialises its state from it
    (e.g. ``HAMMemory(input_leaves=True)`` embeds it into its leaves), unless the task provides
    a context of that name itself (:class:`~difmachine.MemoryInput`: the input phase, handed over
    whole, while the episode is only the answer steps); it is not available to
    :meth:`CompiledMachine.generate`, whose inputs are made step by step.
    """

    controller: AbstractController
    devices: tuple[AbstractDevice, ...]
    names: tuple[str, ...] = eqx.field(static=True)
    halting: AbstractHalting
    readout: str | None = eqx.field(static=True, default=None)

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
        if not isinstance(devices, (Mapping, Sequence)):
            raise TypeError(
                "Machine devices must be a device, a list of devices or a {name: device} mapping "
                f"such as NTMMemory(...), got {devices!r}"
            )
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
        for reserved in (HALTING, SAMPLED):
            if reserved in names:
                raise ValueError(
                    f"Machine device name {reserved!r} is reserved (the machine's own records)"
                )
        self.controller = controller
        self.devices = devs
        self.names = names
        self.halting = Fixed(1) if halting is None else halting
        if not isinstance(self.halting, AbstractHalting):
            raise TypeError(f"Machine halting must be a policy such as Fixed(1), got {halting!r}")
        for name, dev in zip(names, devs):
            if is_stochastic(dev) and self.halting.inner_steps != 1:
                raise ValueError(
                    f"Machine device {name!r} samples discrete actions, which needs a halting "
                    f"policy with one inner step such as Fixed(1), got {self.halting!r}"
                )
        if readout is not None and readout not in names:
            raise ValueError(f"Machine readout {readout!r} must name one of its devices {names}")
        self.readout = readout

    @property
    def read_size(self) -> int:
        return sum(d.read_size for d in self.devices)

    @property
    def stochastic(self) -> bool:
        """Whether a device samples discrete actions (``protocol.is_stochastic``)."""
        return any(is_stochastic(d) for d in self.devices)

    def read_slice(self, name: str) -> slice:
        """Where device ``name``'s read sits in the concatenated reads."""
        start = 0
        for n, dev in zip(self.names, self.devices):
            if n == name:
                return slice(start, start + dev.read_size)
            start += dev.read_size
        raise KeyError(name)

    def readout_slice(self) -> slice:
        """Where the readout device's output sits in the reads: its answer
        (``AbstractDevice.answer_size``) or, without one, its whole read."""
        part = self.read_slice(self.readout)
        answer = self.devices[self.names.index(self.readout)].answer_size
        return slice(part.start, part.start + answer) if answer else part

    def feedback_mask(self) -> np.ndarray | None:
        """``[read_size]``: 1 where the controller sees the reads, 0 on devices' answers
        (``AbstractDevice.answer_size``); ``None`` when it sees everything."""
        mask = np.concatenate(
            [np.arange(d.read_size) >= d.answer_size for d in self.devices] or [np.ones(0)]
        )
        return None if mask.all() else mask.astype(np.float32)

    # -- the machine-kind protocol --------------------------------------------------------------

    def compile(self, input_size, output_size, *, key, remat=False, contexts=None):
        # the machine's own input sequence, unless the task hands it one named "inputs"
        machine = self.bind_contexts({INPUTS: input_size, **(contexts or {})})
        return CompiledMachine.build(machine, input_size, output_size, key=key, remat=remat)

    def contexts_read(self) -> frozenset[str]:
        return frozenset(n for d in self.devices for n in context_names(d))

    def check_contexts(self, provided: Mapping[str, int | None]) -> None:
        provided = {**provided, INPUTS: None}  # the machine's own inputs
        for name, dev in zip(self.names, self.devices):
            for wanted in context_names(dev):
                if wanted not in provided:
                    have = ", ".join(sorted(provided)) or "none"
                    raise ValueError(
                        f"device {name!r} ({type(dev).__name__}) reads the context {wanted!r}, "
                        f"which nothing provides (the task's contexts: {have})"
                    )

    def prefers_remat(self) -> bool:
        return all(dev.prefers_remat() for dev in self.devices)

    def bind_contexts(self, widths: Mapping[str, int | None]) -> Machine:
        """This machine with each context-reading device bound to the width of its context
        (``AbstractDevice.bind_context``), where ``widths`` names it; a device reading several
        contexts gets the tuple of their widths (``None`` for those ``widths`` does not name)
        when ``widths`` names any of them."""

        def bound(dev):
            wanted = dev.context()
            if isinstance(wanted, str):
                return dev.bind_context(widths[wanted]) if wanted in widths else dev
            names = context_names(dev)
            if not any(n in widths for n in names):
                return dev
            return dev.bind_context(tuple(widths.get(n) for n in names))

        devices = {name: bound(dev) for name, dev in zip(self.names, self.devices)}
        return Machine(self.controller, devices, self.halting, readout=self.readout)

    def at_step(self, step: int) -> Machine:
        """This machine with each device in its form after ``step`` training steps
        (``AbstractDevice.at_step``); the same object when no device changes."""
        devices = tuple(dev.at_step(step) for dev in self.devices)
        if all(new is old for new, old in zip(devices, self.devices)):
            return self
        named = dict(zip(self.names, devices))
        return Machine(self.controller, named, self.halting, readout=self.readout)

    def route(self, context: Any) -> dict[str, Any]:
        """``{device name: its context}``: a device that reads a context gets the entry named
        after it from ``context`` (a mapping of named contexts); a context that is not a mapping
        goes to every device that reads one; other devices get ``None``. A device reading
        several contexts gets the tuple of their entries."""

        def entry(wanted):
            return context.get(wanted) if isinstance(context, Mapping) else context

        routed = {}
        for name, dev in zip(self.names, self.devices):
            wanted = dev.context()
            if wanted is None:
                routed[name] = None
            elif isinstance(wanted, str):
                routed[name] = entry(wanted)
            else:
                routed[name] = tuple(entry(w) for w in wanted)
        return routed

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


class Step(NamedTuple):
    """What one input step hands to the time loop (stacked over time by ``lax.scan``)."""

    h: jax.Array
    reads: jax.Array
    traces: dict
    losses: dict
    stats: dict
    taps: Any
    inner: Any
    sampled: Any = None  # (log_prob, entropy) of a stochastic machine's step, masked


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


class CompiledMachine(AbstractCompiledMachine):
    """A compiled machine: all parameters plus the (static) spec that says how to use them."""

    machine: Machine
    input_size: int = eqx.field(static=True)
    output_size: int = eqx.field(static=True)
    remat: bool = eqx.field(static=True)
    params: dict

    @property
    def spec(self) -> Machine:
        return self.machine

    # -- construction -------------------------------------------------------------------------

    @staticmethod
    def build(machine: Machine, input_size: int, output_size: int, *, key, remat: bool = False):
        for what, value in (("input_size", input_size), ("output_size", output_size)):
            check_count("compile:", what, value)
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
            part = machine.readout_slice()
            if part.stop - part.start != output_size:
                raise CompileError(
                    f"compile: readout device {machine.readout!r} reads {part.stop - part.start} "
                    f"values but the task's output_size is {output_size}; make them equal (the device's "
                    "read width) or leave readout out for a learned output map"
                )
            del params["W_o"], params["b_o"]
        if machine.stochastic:  # REINFORCE's baseline: a value head on the mean of h
            params["baseline"] = {"w": zeros(H), "b": zeros(1)}
        return CompiledMachine(machine, input_size, output_size, remat, params)

    # -- running ------------------------------------------------------------------------------

    def init_carry(self, context: Any = None, controller_state: Any = None, inputs=None):
        """The carried state before the first step.

        ``context``: the named contexts (``{"source": Context(...)}``), routed to the devices by
        :meth:`Machine.route`. ``controller_state`` replaces the controller's initial state (a
        sequence-to-sequence decoder starts from the encoder's summary). ``inputs``: the
        example's ``Context(xs, mask)``, for the devices that read the context ``"inputs"``.
        """
        m, p = self.machine, self.params
        per_device = m.route(context)
        own = isinstance(context, Mapping) and INPUTS in context  # the task's, e.g. MemoryInput
        for name, dev in zip(m.names, m.devices):
            if own or INPUTS not in context_names(dev):
                continue
            if isinstance(dev.context(), str):
                per_device[name] = inputs
            else:
                pairs = zip(dev.context(), per_device[name])
                per_device[name] = tuple(inputs if n == INPUTS else c for n, c in pairs)
        if controller_state is None:
            controller_state = m.controller.init_state(p["controller"])
        dev_states = {
            name: dev.init_state(p["devices"][name], per_device.get(name))
            for name, dev in zip(m.names, m.devices)
        }
        reads = [
            dev.first_read(p["devices"][name], dev_states[name])
            for name, dev in zip(m.names, m.devices)
        ]
        reads = jnp.concatenate(reads) if reads else zeros(0)
        return controller_state, dev_states, self._feedback(reads)

    def _feedback(self, reads):
        """``reads`` as the controller sees them (devices' answers zeroed, see
        :meth:`Machine.feedback_mask`)."""
        mask = self.machine.feedback_mask()
        return reads if mask is None else reads * mask

    def cell(self, carry, z, probe=None, key=None):
        """One inner step: ``(carry, z) -> (carry, CellOutput(h, reads, traces))``.

        Stochastic devices sample with ``key`` folded with their index (``None``: they take
        their most likely actions); the output then carries the step's summed ``log_prob`` and
        ``entropy``.

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
        log_prob = entropy = None
        for i, (name, dev) in enumerate(zip(m.names, m.devices)):
            if is_stochastic(dev):
                k = None if key is None else jax.random.fold_in(key, i)
                out = dev.sample_step(p["devices"][name], dev_states[name], ifaces[name], k)
                read, new_states[name], traces[name] = out.read, out.state, out.trace
                log_prob = out.log_prob if log_prob is None else log_prob + out.log_prob
                entropy = out.entropy if entropy is None else entropy + out.entropy
            else:
                read, new_states[name], traces[name] = dev.step(
                    p["devices"][name], dev_states[name], ifaces[name]
                )
            all_reads.append(read)
        reads = jnp.concatenate(all_reads) if all_reads else zeros(0)
        if log_prob is not None:
            traces[SAMPLED] = {"log_prob": log_prob, "entropy": entropy}
        return (ctrl_state, new_states, self._feedback(reads)), CellOutput(h, reads, traces)

    def _check_length(self, T: int) -> None:
        steps = T * self.machine.halting.inner_steps
        for name, dev in zip(self.machine.names, self.machine.devices):
            try:
                dev.check_length(steps)  # shapes are static: this runs once, while tracing
            except ValueError as e:
                raise DifmachineError(f"device {name!r}: {e}") from None

    def _input_step(self, carry, z, m, trace: bool, probe=None, key=None):
        """One input step (all its inner steps); padding (``m == 0``) keeps ``carry``.

        Returns ``(carry, Step)``. With ``probe`` (see :meth:`cell`) the step's *taps* are the
        inputs of the in-loop matmuls, ``reads_{t-1}`` (for ``W_r``), ``h_t`` (for ``W_i``) and
        the controller's linear-recurrence inputs."""
        cell = (
            self.cell if probe is None and key is None else partial(self.cell, probe=probe, key=key)
        )
        halted = self.machine.halting.run(self.params[HALTING], cell, carry, z)
        out = halted.output
        taps = None
        if probe is not None:
            ctrl_state, _, prev_reads = carry
            recurrence = self.machine.controller.linear_recurrence(ctrl_state)
            taps = {"W_r": prev_reads, "W_i": out.h, "controller": recurrence}
        traces, sampled = out.traces, None
        if SAMPLED in traces:  # a stochastic machine's step: (log_prob, entropy) of real steps
            traces = {k: v for k, v in traces.items() if k != SAMPLED}
            sampled = (out.traces[SAMPLED]["log_prob"] * m, out.traces[SAMPLED]["entropy"] * m)
        if halted.trace:
            traces = {**traces, HALTING: halted.trace}
        inner = None
        if halted.inner is not None:  # every inner step's output, for the policy's task loss
            outputs, weights = halted.inner
            inner = (self._readout(outputs.h, outputs.reads), weights)
        step = Step(
            out.h,
            out.reads,
            traces if trace else {},
            {k: v * m for k, v in halted.losses.items()},
            {k: v * m for k, v in halted.stats.items()},
            taps,
            inner,
            sampled,
        )
        return keep_padding(m, halted.carry, carry), step

    def _readout(self, h, reads):
        if self.machine.readout is not None:
            return reads[..., self.machine.readout_slice()]
        y = jnp.concatenate([h, reads], axis=-1) @ self.params["W_o"]
        return y + jnp.expand_dims(self.params["b_o"], tuple(range(y.ndim - 1)))

    def _aux(self, final, steps: Step, mask):
        traces, losses, stats = steps.traces, steps.losses, steps.stats
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
        aux = {
            "trace": traces,
            "losses": {k: jnp.sum(v) for k, v in losses.items()},
            "stats": {k: jnp.sum(v) / jnp.maximum(jnp.sum(mask), 1.0) for k, v in stats.items()},
            "state": final,
        }
        if steps.inner is not None:
            aux["inner"] = steps.inner  # ([T, N, out] outputs, [T, N] weights)
        if steps.sampled is not None:  # a stochastic machine: what REINFORCE needs
            aux["log_prob"], aux["entropy"] = (jnp.sum(v) for v in steps.sampled)
            w = mask / jnp.maximum(jnp.sum(mask), 1.0)
            h = jax.lax.stop_gradient(steps.h)
            value_w, value_b = self.params["baseline"]["w"], self.params["baseline"]["b"][0]
            aux["baseline"] = (w @ h) @ value_w + value_b
            # per step, for Reinforce(credit="to_go"): each step's log-prob and a baseline on h_t
            aux["step_log_prob"] = steps.sampled[0]
            aux["step_baseline"] = h @ value_w + value_b
        return aux

    def __call__(
        self,
        xs,
        mask=None,
        *,
        trace: bool = False,
        context=None,
        controller_state=None,
        probes=None,
        key=None,
    ):
        """Run one example. ``xs: [T, input_size]``, ``mask: [T]`` (1 = real step, 0 = padding).

        Returns ``(ys[T, output_size], aux)``; ``aux["trace"]`` holds the devices' stacked trace
        records when ``trace=True``, ``aux["losses"]`` the halting policy's auxiliary losses
        (summed over real steps), ``aux["stats"]`` the means over real steps of its scalar trace
        records (e.g. ACT's ponder) and ``aux["state"]`` the final carried state. ``context``
        (named contexts) and ``controller_state``: see :meth:`init_carry`. ``probes``: zeros from
        :meth:`probes`, for training with :meth:`hoisted_gradients`; ``aux["taps"]`` then holds
        the stacked inputs of the in-loop matmuls. ``key``: for a machine with stochastic
        devices, this example's PRNG key (each step gets ``split(key, T)[t]``); ``None`` takes
        the most likely actions. ``aux`` then also holds ``log_prob``, ``entropy`` (summed over
        real steps) and the REINFORCE ``baseline``.
        """
        T = xs.shape[0]
        self._check_length(T)
        if probes is not None and self.probes(T) is None:
            raise ValueError(
                "probes need a machine whose cell runs once per input step (a halting policy "
                "that is hoistable, such as Fixed(1))"
            )
        mask = jnp.ones((T,), jnp.float32) if mask is None else mask.astype(jnp.float32)
        zx = xs.astype(jnp.float32) @ self.params["W_x"]

        keys = None if key is None or not self.machine.stochastic else jax.random.split(key, T)

        def body(carry, inputs):
            z, m, probe, k = inputs
            return self._input_step(carry, z, m, trace, probe, k)

        if self.remat:
            body = jax.checkpoint(body)
        carry = self.init_carry(context, controller_state, inputs=Context(xs, mask))
        final, steps = jax.lax.scan(body, carry, (zx, mask, probes, keys))
        aux = self._aux(final, steps, mask)
        if probes is not None:
            aux["taps"] = steps.taps
        return self._readout(steps.h, steps.reads), aux

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
        key=None,
    ):
        """Decode ``steps`` steps autoregressively: the input of step 0 is ``first[input_size]``,
        the input of step t + 1 is ``feedback(y_t)``. Once ``stop(y_t)`` is true (e.g. the end
        token was emitted) the machine is frozen: later steps leave the state unchanged, as
        padding does, and are marked 0 in ``aux["produced"]``.

        Returns ``(ys[steps, output_size], aux)`` like :meth:`__call__`. With ``feedback``
        giving back the teacher's inputs this equals the teacher-forced ``__call__``.
        ``key``: see :meth:`__call__`.
        """
        self._check_length(steps)
        for name, dev in zip(self.machine.names, self.machine.devices):
            if INPUTS in context_names(dev):
                raise DifmachineError(
                    f"device {name!r} ({type(dev).__name__}) reads the whole input sequence, "
                    "which generative decoding makes step by step; use a task that is not "
                    "generative"
                )
        stop = stop or (lambda y: jnp.zeros((), bool))
        W_x = self.params["W_x"]

        keys = None if key is None or not self.machine.stochastic else jax.random.split(key, steps)

        def body(state, k):
            carry, x, running = state
            m = running.astype(jnp.float32)
            carry, step = self._input_step(carry, x @ W_x, m, trace, key=k)
            y = self._readout(step.h, step.reads)
            running = running & ~stop(y)
            return (carry, feedback(y).astype(jnp.float32), running), (
                y,
                m,
                step._replace(taps=None),
            )

        if self.remat:
            body = jax.checkpoint(body)
        init = (
            self.init_carry(context, controller_state),
            first.astype(jnp.float32),
            jnp.asarray(True),
        )
        (final, _, _), (ys, produced, stepped) = jax.lax.scan(body, init, keys, length=steps)
        aux = self._aux(final, stepped, produced)
        return ys, {**aux, "produced": produced}

    # -- hoisted weight gradients -------------------------------------------------------------

    def probes(self, steps: int, batch: int | None = None) -> dict | None:
        """Zero probes for ``__call__(..., probes=...)`` on one example of ``steps`` input
        steps (with ``batch``, a leading batch axis for ``vmap``), or ``None`` when the
        machine's cell runs more than once per input step (its weight gradients are then left
        to plain autodiff)."""
        if not self.machine.halting.hoistable:
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

    # -- the compiled-machine protocol -----------------------------------------------------------

    def components(self) -> list[Component]:
        m = self.machine
        k = m.halting.trace_steps
        parts = [Component(name, dev, k) for name, dev in zip(m.names, m.devices)]
        return [*parts, Component(HALTING, m.halting, 1)]

    def statistics(self):
        return self.machine.halting.statistics

    def stochastic(self) -> bool:
        return self.machine.stochastic

    def at_step(self, step: int) -> CompiledMachine:
        machine = self.machine.at_step(step)
        return self if machine is self.machine else dataclasses.replace(self, machine=machine)

    def task_loss(self, task, ys, aux, targets, loss_mask):
        if "inner" in aux:  # the halting policy shapes the loss
            outputs, weights = aux["inner"]
            return self.machine.halting.task_loss(task.loss, outputs, weights, targets, loss_mask)
        return task.loss(ys, targets, loss_mask)

    def summary(self):
        m = self.machine
        title = f"{m.controller!r}, halting {m.halting!r}: interface (controller output -> devices)"
        rows = [
            [s.device, s.name, str(s.field.shape), s.field.activation, f"[{s.start}:{s.stop}]"]
            for s in m.layout()
        ]
        return [(title, ["device", "field", "shape", "activation", "slice"], rows)]

    # -- summary ------------------------------------------------------------------------------

    def param_counts(self) -> dict[str, int]:
        p = self.params
        counts = {"controller": _count(p["controller"]) + _count(p["W_x"]) + _count(p["W_r"])}
        for name in self.machine.names:
            counts[f"device {name}"] = _count(p["devices"][name])
        if jax.tree.leaves(p[HALTING]):
            counts["halting"] = _count(p[HALTING])
        if "baseline" in p:
            counts["baseline"] = _count(p["baseline"])
        counts["interface projection"] = _count(p["W_i"]) + _count(p["b_i"])
        if "W_o" in p:
            counts["output projection"] = _count(p["W_o"]) + _count(p["b_o"])
        return counts


__all__ = ["Machine", "CompiledMachine", "Slot", "Step", "keep_padding"]
