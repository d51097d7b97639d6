"""The protocols every part of a machine implements: devices, controllers, halting policies and
machine kinds, plus the trace vocabulary (ground floor: imports nothing of difmachine but errors).

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
- a device that takes discrete actions subclasses :class:`AbstractStochasticDevice` and
  implements ``sample_step(params, state, iface, key) -> Sampled`` instead of ``step``.
- ``context()`` (optional): the name of the context the device reads at ``init_state``
  (``"source"``, ``"story"``, ``"table"``...), or ``None``; a tuple of names for a device that
  reads several (it gets a tuple of contexts, in that order, and ``bind_context`` a tuple of
  widths). A task provides named contexts (``AbstractTask.contexts``); a machine kind may
  provide more (a Seq2Seq hands its decoder the encoder's states as ``"source"``; a
  :class:`~difmachine.Machine` hands any device that asks for ``"inputs"``, :data:`INPUTS`, its
  own whole input sequence). :meth:`AbstractMachine.check_contexts` checks once, when a program
  is built, that every device gets the context it names.

Halting contract: a policy runs the machine's one-step ``cell(carry, z) -> (carry,
CellOutput)`` for one input step and returns a :class:`Halted`; see :class:`AbstractHalting`.

Machine kinds: an :class:`AbstractMachine` spec compiles itself into an
:class:`AbstractCompiledMachine`; everything above (programs, training, evaluation, traces, the
CLI) works through these two interfaces and names no kind.
"""

from __future__ import annotations

import abc
import math
from collections.abc import Callable, Mapping
from typing import Any, ClassVar, NamedTuple

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


def check_count(owner: str, name: str, value: Any, least: int = 1, optional: bool = False) -> None:
    """The one validator of counts and sizes: raise a one-line ``ValueError`` naming ``owner``
    and ``name`` unless ``value`` is an integer ``>= least`` (``True`` is not a count), or
    ``None`` when ``optional``."""
    if optional and value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or value < least:
        kind = {1: "a positive integer", 0: "a non-negative integer"}.get(
            least, f"an integer >= {least}"
        )
        raise ValueError(
            f"{owner} {name} must be {kind}{' or None' if optional else ''}, got {value!r}"
        )


def check_fraction(owner: str, name: str, value: Any, what: str = "a number", hint: str = ""):
    """The validator of fractions: raise a one-line ``ValueError`` naming ``owner`` and ``name``
    unless ``value`` is a number in ``[0, 1)`` (``True`` is not one); ``what`` names the kind
    of number and ``hint`` follows the range in the message."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < 1:
        raise ValueError(f"{owner} {name} must be {what} in [0, 1){hint}, got {value!r}")


def check_non_negative(owner: str, name: str, value: Any, hint: str = "") -> None:
    """The validator of weights, penalties and tolerances: raise a one-line ``ValueError``
    naming ``owner`` and ``name`` unless ``value`` is a finite number ``>= 0`` (``True`` is not
    one); ``hint`` follows the bound in the message."""
    if not isinstance(value, (int, float)) or isinstance(value, bool) or not 0 <= value < math.inf:
        raise ValueError(f"{owner} {name} must be a number >= 0{hint}, got {value!r}")


def check_flag(owner: str, name: str, value: Any) -> None:
    """The validator of switches: raise a one-line ``ValueError`` naming ``owner`` and ``name``
    unless ``value`` is ``True`` or ``False``."""
    if not isinstance(value, bool):
        raise ValueError(f"{owner} {name} must be true or false, got {value!r}")


def check_counts(spec: Any, positive: tuple[str, ...] = (), non_negative: tuple[str, ...] = ()):
    """:func:`check_count` for several fields of ``spec`` (named after its class)."""
    owner = type(spec).__name__
    for names, least in ((positive, 1), (non_negative, 0)):
        for name in names:
            check_count(owner, name, getattr(spec, name), least)


class AbstractDevice(eqx.Module):
    """A differentiable device: memory, stack, queue, attention, operation selector..."""

    @abc.abstractmethod
    def interface(self) -> dict[str, Field]: ...

    @property
    @abc.abstractmethod
    def read_size(self) -> int: ...

    @property
    def answer_size(self) -> int:
        """How many leading entries of the read are the device's *answer* rather than feedback:
        a machine whose ``readout`` is this device outputs exactly them, and the controller does
        not see them (it reads the rest). Default 0: no separate answer; as a readout the whole
        read is the output, and the controller sees it too. (``OpSelector(feedback="history")``:
        the answer is the step's scalar, the controller sees only which operation and column it
        chose, as in the paper.)"""
        return 0

    @abc.abstractmethod
    def init_params(self, key: jax.Array) -> Any: ...

    @abc.abstractmethod
    def init_state(self, params: Any, context: Any = None) -> Any: ...

    @abc.abstractmethod
    def step(
        self, params: Any, state: Any, iface: dict[str, jax.Array]
    ) -> tuple[Any, Any, dict]: ...

    def first_read(self, params: Any, state: Any) -> jax.Array:
        """What the controller reads from this device before its first step: ``[read_size]``.
        Default zeros; a device whose initial state already holds something to read (an input
        tape's first cell under its head) returns it."""
        return jnp.zeros((self.read_size,), jnp.float32)

    def check_length(self, steps: int) -> None:
        """Raise ``ValueError`` if the device cannot run ``steps`` cell steps (fixed-capacity
        buffers); the compiler calls it with the sequence length times the inner steps."""

    def trace_spec(self) -> dict[str, TraceField]:
        """How to draw each trace field: ``{field: TraceField(kind, label, ...)}``.

        Fields not listed are drawn by their rank (``[T, heads, K]`` as heatmaps, else lines).
        """
        return {}

    def context(self) -> str | tuple[str, ...] | None:
        """The name of the context ``init_state`` reads (``"source"``, ``"story"``,
        ``"table"``...), or ``None`` when the device needs none. A tuple of names reads several:
        ``init_state`` then gets a tuple of contexts and ``bind_context`` a tuple of widths, in
        the same order (``OpSelector(pivot="content")`` reads its table and the encoder's
        states of the question)."""
        return None

    def prefers_remat(self) -> bool:
        """Whether recomputing each time step in the backward pass (``jax.checkpoint``) suits
        this device. ``False`` for a device whose backward pass keeps far less than its state
        (a sparse memory: ``jax.checkpoint`` would save the whole memory every step)."""
        return True

    def bind_context(self, width: int | None) -> AbstractDevice:
        """This device for a context whose vectors are ``width`` wide (``None``: unknown), as the
        machine kind learns when it is compiled; raise ``ValueError`` if it cannot take it. A
        device reading several contexts gets a tuple of widths. Default: the device as it is."""
        return self

    def at_step(self, step: int) -> AbstractDevice:
        """This device after ``step`` training steps. A device whose computation
        changes during training (``Attention(linear_start=n)``: no softmax for the first ``n``
        steps) returns its form after ``step`` training steps, with the same parameters: the
        form the next step trains and an evaluation at ``step`` uses. Training asks after every
        step (the train step compiles again when the form changes); ``eval`` and ``trace`` ask
        with the checkpoint's step. Default: the device itself, at every step."""
        return self


def context_names(device: AbstractDevice) -> tuple[str, ...]:
    """The names of the contexts ``device`` reads (``context()`` as a tuple; ``()`` for none)."""
    wanted = device.context()
    if wanted is None:
        return ()
    return (wanted,) if isinstance(wanted, str) else tuple(wanted)


class Sampled(NamedTuple):
    """What a stochastic device's step returns: the usual ``(read, state, trace)`` plus the
    summed log-probability of the discrete actions it took and their distributions' entropy
    (scalars)."""

    read: jax.Array
    state: Any
    trace: dict
    log_prob: jax.Array
    entropy: jax.Array


class AbstractStochasticDevice(AbstractDevice):
    """A device that takes discrete actions (a hard tree descent, a tape head's move...).

    ``sample_step(params, state, iface, key) -> Sampled``: with a PRNG ``key`` it samples its
    actions, with ``key=None`` it takes the most likely ones (evaluation); either way it returns
    the log-probability of the actions taken. The machine gives each example and step its own
    key (derived from the run's seed and step, so resuming replays the same samples), sums the
    log-probabilities and training adds a REINFORCE term (:mod:`difmachine.stochastic`).
    ``step`` is the most-likely-action step, so every check of the plain device protocol
    applies. ``samples()`` may say ``False`` for a configuration that takes no discrete action
    (e.g. a soft mode): the device is then run as a plain device.
    """

    @abc.abstractmethod
    def sample_step(
        self, params: Any, state: Any, iface: dict[str, jax.Array], key: jax.Array | None
    ) -> Sampled: ...

    def step(self, params, state, iface):
        out = self.sample_step(params, state, iface, None)
        return out.read, out.state, out.trace

    def samples(self) -> bool:
        """Whether this device takes discrete actions (then the machine threads keys to it)."""
        return True


def is_stochastic(device: AbstractDevice) -> bool:
    """Whether ``device`` samples discrete actions."""
    return isinstance(device, AbstractStochasticDevice) and device.samples()


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


# -- halting ----------------------------------------------------------------------------------

HALTING = "halting"  # the halting policy's name among a machine's components (params, traces)
SAMPLED = "sampled"  # the cell's record of its stochastic devices' log_prob and entropy
INPUTS = "inputs"  # the context a recurrent Machine provides itself: its whole input sequence


class CellOutput(NamedTuple):
    """What one inner step of a machine's cell produces: the controller output ``h``, the
    devices' concatenated reads and their trace records ``{device: {field: array}}``. A machine
    with stochastic devices adds ``traces[SAMPLED] = {"log_prob": ..., "entropy": ...}``, the
    step's summed log-probability and entropy of its discrete actions."""

    h: jax.Array
    reads: jax.Array
    traces: dict


class Halted(NamedTuple):
    """What a halting policy returns for one input step.

    - ``carry``: the state carried to the next input step;
    - ``output``: the step's :class:`CellOutput` (what the readout turns into the step's output);
    - ``losses``: scalar auxiliary losses of this step (added to the task's loss);
    - ``stats``: scalar statistics of this step (reported by training and evaluation as metrics,
      averaged over real steps; the names are the policy's ``statistics``);
    - ``trace``: the policy's own trace records (drawn with its ``trace_spec``);
    - ``inner``: for a policy that shapes the loss, ``(outputs, weights)``: the
      :class:`CellOutput` of every inner step stacked ``[N, ...]`` and the weight ``[N]`` each
      inner step's output gets in the task loss (:meth:`AbstractHalting.task_loss`).
    """

    carry: Any
    output: CellOutput
    losses: dict = {}
    stats: dict = {}
    trace: dict = {}
    inner: tuple | None = None


Cell = Callable[[Any, jax.Array], tuple[Any, CellOutput]]


class AbstractHalting(eqx.Module):
    """How many inner steps a machine's cell takes per input step, and what comes out.

    ``run(params, cell, carry, z) -> Halted`` gets the cell ``(carry, z) -> (carry,
    CellOutput)`` and the input contribution ``z`` of one input step. Policies may own
    parameters (``init_params(key, hidden, input_width)``, stored under ``params["halting"]``).
    """

    #: names of the scalar statistics ``run`` reports in ``Halted.stats``
    statistics: ClassVar[tuple[str, ...]] = ()

    def init_params(self, key: jax.Array, hidden: int, input_width: int) -> Any:
        return {}

    @abc.abstractmethod
    def run(self, params: Any, cell: Cell, carry: Any, z: jax.Array) -> Halted: ...

    def trace_spec(self) -> dict[str, TraceField]:
        return {}

    @property
    def inner_steps(self) -> int:
        """The most cell steps one input step can take."""
        return 1

    @property
    def trace_steps(self) -> int:
        """Device trace records per input step: 1, or ``k`` when the devices' traces in
        ``Halted.output`` are stacked over ``k`` inner steps (laid out in time by the machine)."""
        return 1

    @property
    def hoistable(self) -> bool:
        """Whether the cell runs exactly once per input step, so that the machine may take its
        in-loop weight gradients after the backward scan (one matmul each) instead of through
        autodiff of the loop. Default ``False``: plain autodiff, always correct."""
        return False

    def task_loss(
        self,
        loss: Callable[[jax.Array, jax.Array, jax.Array], jax.Array],
        outputs: jax.Array,
        weights: jax.Array,
        targets: jax.Array,
        loss_mask: jax.Array,
    ) -> jax.Array:
        """The task loss of one example when ``run`` returns ``Halted.inner``: ``outputs[T, N,
        out]`` are every inner step's outputs, ``weights[T, N]`` their weights. Default: the
        expectation ``sum_n loss(outputs[:, n], targets, loss_mask * weights[:, n])``, which is
        ``sum_t sum_n w_tn loss_t(y_tn)`` for every task loss that sums per-step terms times
        ``loss_mask`` (all of difmachine's do)."""
        per_step = jax.vmap(lambda y, w: loss(y, targets, loss_mask * w), in_axes=(1, 1))
        return jnp.sum(per_step(outputs, weights))


# -- machine kinds ------------------------------------------------------------------------------


class Component(NamedTuple):
    """A named part of a compiled machine whose trace records ``difmachine trace`` draws:
    ``spec`` has a ``trace_spec()``, ``per_step`` records per input step."""

    name: str
    spec: Any
    per_step: int = 1


class AbstractCompiledMachine(eqx.Module):
    """A compiled machine: every parameter plus the static spec that says how to use them.

    Calling convention (one unbatched example; ``vmap`` batches): ``model(xs[T, in], mask[T],
    *, trace=False, context=None) -> (ys[T, out], aux)`` with ``aux["trace"]`` the components'
    stacked trace records (``{component: {field: [T * per_step, ...]}}``), ``aux["losses"]``
    scalar auxiliary losses, ``aux["stats"]`` scalar statistics. ``context`` is a mapping of
    named contexts (``{"source": Context(...)}``). ``generate`` decodes feeding each output
    back.

    Every kind also has ``spec`` (its :class:`AbstractMachine`), ``input_size`` and
    ``output_size`` (fields or properties).
    """

    @abc.abstractmethod
    def __call__(self, xs, mask=None, *, trace: bool = False, context=None, probes=None): ...

    @abc.abstractmethod
    def generate(self, first, steps: int, feedback, stop=None, *, trace=False, context=None): ...

    @abc.abstractmethod
    def param_counts(self) -> dict[str, int]: ...

    def components(self) -> list[Component]:
        """The parts whose trace records are drawn, in drawing order."""
        return []

    def stochastic(self) -> bool:
        """Whether the machine samples discrete actions: then ``__call__`` (and ``generate``)
        take a per-example PRNG ``key`` (``None``: the most likely actions) and ``aux`` holds the
        example's summed ``log_prob``, ``entropy`` and a ``baseline`` for REINFORCE."""
        return False

    def statistics(self) -> tuple[str, ...]:
        """Names of the scalar statistics in ``aux["stats"]`` (a halting policy's), which
        training shows beside the loss."""
        return ()

    def summary(self) -> list[tuple[str, list[str], list[list[str]]]]:
        """Tables for ``difmachine show``: ``(title, columns, rows)`` (besides parameter
        counts)."""
        return []

    def probes(self, steps: int, batch: int | None = None) -> Any:
        """Optional capability: zero probes for hoisted weight gradients (see
        :meth:`hoisted_gradients`), or ``None`` when the machine takes plain autodiff."""
        return None

    def hoisted_gradients(self, grads, taps, cotangents):
        """Optional capability: ``grads`` (through ``__call__(..., probes=...)``) plus the
        in-loop weights' gradients from the ``taps`` in ``aux["taps"]`` and the probes'
        cotangents. Only called when :meth:`probes` returns probes."""
        raise NotImplementedError

    def task_loss(self, task: Any, ys: jax.Array, aux: dict, targets, loss_mask) -> jax.Array:
        """The task's loss of one example (a halting policy may shape it)."""
        return task.loss(ys, targets, loss_mask)

    def at_step(self, step: int) -> AbstractCompiledMachine:
        """This machine after ``step`` training steps (see
        :meth:`AbstractDevice.at_step`); the same object when nothing changes. Default: itself."""
        return self


class AbstractMachine(eqx.Module):
    """A machine spec (static hyperparameters and component specs, no arrays)."""

    @abc.abstractmethod
    def compile(
        self,
        input_size: int,
        output_size: int,
        *,
        key: jax.Array,
        remat: bool = False,
        contexts: Mapping[str, int | None] | None = None,
    ) -> AbstractCompiledMachine:
        """Parameters for inputs of width ``input_size`` and outputs of width ``output_size``;
        ``contexts`` are the widths of the named contexts the task provides."""

    def check_contexts(self, provided: Mapping[str, int | None]) -> None:
        """Raise ``ValueError`` (one line) unless every part that reads a context gets it from
        ``provided`` (the task's contexts) or from the machine itself."""

    def contexts_read(self) -> frozenset[str]:
        """The names of the task's contexts some part of this machine reads (a program checks
        that it reads the ones its task requires). Default: none."""
        return frozenset()

    def prefers_remat(self) -> bool:
        """Whether recomputing each time step in the backward pass suits this machine (a
        program's ``remat=None`` asks this). Default ``True``."""
        return True


__all__ = [
    "ACTIVATIONS",
    "HALTING",
    "SAMPLED",
    "CellOutput",
    "Halted",
    "Cell",
    "AbstractHalting",
    "Component",
    "AbstractCompiledMachine",
    "AbstractMachine",
    "check_count",
    "Field",
    "TraceField",
    "activate",
    "check_counts",
    "context_names",
    "AbstractDevice",
    "AbstractStochasticDevice",
    "AbstractController",
    "Sampled",
    "is_stochastic",
]
