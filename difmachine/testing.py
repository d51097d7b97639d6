"""Reusable hypothesis-backed checks, so a new device, controller or machine is proven in one line::

    def test_my_device():
        difmachine.testing.check_device(MyDevice(...))

The checks carry their own hypothesis settings (no deadline, ``max_examples`` examples, 10 by
default), so they behave the same in any project. Each check first checks the spec
(:func:`~difmachine.specs.check_spec`: every hyperparameter static), runs the component once
under ``jax.jit`` with the spec passed as an argument and compares that run with an eager one
(``jax.disable_jit``); then hypothesis draws the inputs (values and lengths, so a failure shrinks
to a small input) and the parameters' seed, and each example asserts: vmap == a Python loop,
finite outputs and gradients, state structure/shapes/dtypes stable across steps, and any
``invariants(final_state, reads[T, ...], traces[T, ...])`` the caller supplies (e.g.
"weightings sum to 1"). The functions are jit-compiled once per input shape and shared by all
examples.

A failure is an :class:`PropertyFailed` (an ``AssertionError``) whose message names the
component, the property that broke and the failing leaf, e.g. ``MyMemory: property 'vmap ==
loop' broke: leaf ['state']['memory'] of batch item 1 differs at (2, 0): ...``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from hypothesis.extra import numpy as hnp

from .compiler import compile
from .machine import CompiledMachine
from .protocol import AbstractController, AbstractDevice, activate
from .specs import check_spec

seeds = st.integers(min_value=0, max_value=2**31 - 1)

MAX_EXAMPLES = 10  # the checks' default number of hypothesis examples


class PropertyFailed(AssertionError):
    """A checked component broke a property; the message names it and the failing leaf."""


def kit_settings(max_examples: int | None = None) -> settings:
    """The checks' hypothesis settings: no deadline (the first example compiles), the
    ``too_slow`` and large-input health checks off, ``max_examples`` examples."""
    return settings(
        max_examples=MAX_EXAMPLES if max_examples is None else max_examples,
        deadline=None,
        suppress_health_check=[
            HealthCheck.too_slow,
            HealthCheck.large_base_example,
            HealthCheck.data_too_large,
        ],
    )


def values(shape: tuple[int, ...], bound: float = 3.0) -> st.SearchStrategy[np.ndarray]:
    """float32 arrays of ``shape`` with every entry drawn in ``[-bound, bound]`` (shrinks to 0)."""
    elements = st.floats(-bound, bound, width=32, allow_subnormal=False)
    return hnp.arrays(np.float32, shape, elements=elements, fill=st.nothing())


# -- assertions that name the failing leaf ----------------------------------------------------


def _mismatch(x: np.ndarray, y: np.ndarray, rtol: float, atol: float) -> str | None:
    if x.shape != y.shape:
        return f"shapes {x.shape} vs {y.shape}"
    if x.dtype != y.dtype:
        return f"dtypes {x.dtype} vs {y.dtype}"
    if not (np.issubdtype(x.dtype, np.inexact) or np.issubdtype(x.dtype, np.integer)):
        bad = x != y
    else:
        xf, yf = x.astype(np.float64), y.astype(np.float64)
        bad = ~np.isclose(xf, yf, rtol=rtol, atol=atol, equal_nan=True)
    if not np.any(bad):
        return None
    where = tuple(int(i) for i in np.argwhere(bad)[0]) if bad.ndim else ()
    return (
        f"differs at {where}: {x[where].item()!r} vs {y[where].item()!r} "
        f"({int(np.sum(bad))} of {bad.size} entries beyond rtol={rtol}, atol={atol})"
    )


def assert_trees_close(a, b, rtol=1e-4, atol=1e-5, what="trees"):
    """Assert two pytrees have one structure and close leaves; a failure names the first
    differing leaf (``jax.tree_util.keystr``), the index and both values."""
    la, ta = jax.tree_util.tree_flatten_with_path(a)
    lb, tb = jax.tree_util.tree_flatten_with_path(b)
    if ta != tb:
        raise AssertionError(f"{what}: tree structures differ: {ta} vs {tb}")
    for (path, x), (_, y) in zip(la, lb):
        problem = _mismatch(np.asarray(x), np.asarray(y), rtol, atol)
        if problem is not None:
            raise AssertionError(f"{what}: leaf {jax.tree_util.keystr(path) or '(root)'} {problem}")


def assert_finite(tree, what="values"):
    """Assert every leaf is finite; a failure names the leaf and its first bad index."""
    for path, leaf in jax.tree_util.tree_flatten_with_path(tree)[0]:
        x = np.asarray(leaf)
        if np.issubdtype(x.dtype, np.inexact) and not np.all(np.isfinite(x)):
            where = tuple(int(i) for i in np.argwhere(~np.isfinite(x))[0]) if x.ndim else ()
            raise AssertionError(
                f"{what}: leaf {jax.tree_util.keystr(path) or '(root)'} is {x[where].item()!r} at {where}"
            )


@contextlib.contextmanager
def _property(owner: str, name: str, *, any_error: bool = False) -> Iterator[None]:
    """Turn an ``AssertionError`` (or, with ``any_error``, any exception) in the block into a
    :class:`PropertyFailed` naming ``owner`` and the property ``name``."""
    try:
        yield
    except PropertyFailed:
        raise
    except AssertionError as e:
        raise PropertyFailed(f"{owner}: property {name!r} broke: {e}") from None
    except Exception as e:
        if not any_error:
            raise
        first = str(e).strip().splitlines()[0] if str(e).strip() else ""
        raise PropertyFailed(
            f"{owner}: property {name!r} broke: {type(e).__name__}: {first} (a tracer error here "
            "usually means a hyperparameter that is not `eqx.field(static=True)`)"
        ) from e


def _signature(tree):
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def _item(tree, b: int):
    return jax.tree.map(lambda x: x[b], tree)


def random_interface(device: AbstractDevice, key: jax.Array, steps: int) -> dict[str, jax.Array]:
    """Pre-activation interface values for ``steps`` steps (standard normal, times 2)."""
    fields = device.interface()
    keys = jax.random.split(key, max(1, len(fields)))
    return {
        name: 2.0 * jax.random.normal(k, (steps, *field.shape), jnp.float32)
        for k, (name, field) in zip(keys, fields.items())
    }


# -- devices ----------------------------------------------------------------------------------


def check_device(
    device: AbstractDevice,
    *,
    context: Any = None,
    steps: int = 4,
    batch: int = 3,
    invariants: Callable[[Any, jax.Array, dict], None] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
    max_examples: int | None = None,
) -> None:
    """Check the device protocol and the numerical hygiene of ``device`` (see module docstring).

    Hypothesis draws the pre-activation interface values of ``batch`` runs of ``steps`` steps;
    ``context`` goes to ``init_state``; ``invariants(final_state, reads, traces)`` asserts what must
    hold after every run."""
    if not isinstance(device, AbstractDevice):
        raise TypeError(f"check_device expects a device (an AbstractDevice), got {device!r}")
    check_spec(device)
    owner = type(device).__name__
    fields = device.interface()

    def run(device, params, raw, steps):  # the spec is an argument: jit sees its leaves
        def body(state, raw_t):
            iface = {n: activate(fields[n].activation, raw_t[n]) for n in fields}
            read, state, trace = device.step(params, state, iface)
            return state, (read, trace)

        init = device.init_state(params, context)
        final, (reads, traces) = jax.lax.scan(body, init, raw, length=steps)
        return {"state": final, "reads": reads, "trace": traces}

    def objective(params, raw, device, steps):
        out = run(device, params, raw, steps)
        state_sum = sum(
            jnp.sum(x)
            for x in jax.tree.leaves(out["state"])
            if jnp.issubdtype(x.dtype, jnp.floating)
        )
        return jnp.sum(out["reads"] ** 2) + state_sum

    jit_run = jax.jit(run, static_argnums=3)
    vmap_run = jax.jit(jax.vmap(run, in_axes=(None, None, 0, None)), static_argnums=3)
    grad_fn = jax.jit(jax.grad(objective, argnums=(0, 1)), static_argnums=3)

    k_params, k_raw = jax.random.split(jax.random.PRNGKey(0))
    params = device.init_params(k_params)
    raw = random_interface(device, k_raw, steps)
    with _property(owner, "runs under jax.jit with the spec as an argument", any_error=True):
        out = jit_run(device, params, raw, steps)
    with _property(owner, "jit == eager"):
        with jax.disable_jit():
            eager = run(device, params, raw, steps)
        assert_trees_close(eager, out, rtol, atol, "jit vs eager")

    # one length: every distinct shape costs compiles, and the compiles dominate a check
    interfaces = st.fixed_dictionaries(
        {n: values((batch, steps, *f.shape)) for n, f in fields.items()}
    )

    @kit_settings(max_examples)
    @given(seed=seeds, raws=interfaces)
    def prop(seed, raws):
        T = steps
        params = device.init_params(jax.random.PRNGKey(seed))
        init = device.init_state(params, context)
        batched = vmap_run(device, params, raws, T)
        for b in range(batch):
            one = jit_run(device, params, _item(raws, b), T)
            with _property(owner, "reads have shape [read_size] and dtype float32"):
                shape, dtype = one["reads"].shape, one["reads"].dtype
                assert shape == (T, device.read_size), (
                    f"reads of {T} steps have shape {shape}, expected {(T, device.read_size)}"
                )
                assert dtype == jnp.float32, f"reads are {dtype}"
            with _property(owner, "state keeps its structure, shapes and dtypes"):
                assert _signature(one["state"]) == _signature(init), (
                    f"{_signature(one['state'])} after {T} steps, {_signature(init)} at the start"
                )
            with _property(owner, "outputs are finite"):
                assert_finite(one, f"batch item {b}")
            with _property(owner, "vmap == loop"):
                assert_trees_close(_item(batched, b), one, rtol, atol, f"batch item {b}")
            if invariants is not None:
                with _property(owner, "invariants"):
                    invariants(one["state"], one["reads"], one["trace"])
        with _property(owner, "gradients are finite"):
            g_params, g_raw = grad_fn(params, _item(raws, 0), device, T)
            assert_finite({"params": g_params, "interface": g_raw}, "gradient")

    prop()


# -- controllers ------------------------------------------------------------------------------


def check_controller(
    controller: AbstractController,
    *,
    steps: int = 4,
    batch: int = 3,
    max_examples: int | None = None,
) -> None:
    """Same checks for a controller driven by hypothesis-drawn ``z`` inputs. A controller that
    declares a :meth:`~difmachine.protocol.AbstractController.linear_recurrence` must also keep
    its promise: each declared ``U``'s gradient equals ``sum_t x_t^T dL/dz_t``."""
    if not isinstance(controller, AbstractController):
        raise TypeError(
            f"check_controller expects a controller (an AbstractController), got {controller!r}"
        )
    check_spec(controller)
    owner = type(controller).__name__

    def run(controller, params, zs):
        def body(state, z):
            h, state = controller.step(params, state, z)
            return state, h

        final, hs = jax.lax.scan(body, controller.init_state(params), zs)
        return {"state": final, "outputs": hs}

    def recurrence_loss(params, zs, controller):  # also returns the recurrence inputs x_t
        def body(state, z):
            x = controller.linear_recurrence(state)
            h, state = controller.step(params, state, z)
            return state, (h, x)

        _, (hs, xs) = jax.lax.scan(body, controller.init_state(params), zs)
        return jnp.sum(jnp.sin(hs)), xs

    def objective(params, zs, controller):
        return jnp.sum(run(controller, params, zs)["outputs"] ** 2)

    jit_run = jax.jit(run)
    vmap_run = jax.jit(jax.vmap(run, in_axes=(None, None, 0)))
    grad_fn = jax.jit(jax.grad(objective, argnums=(0, 1)))
    recurrence_grads = jax.jit(jax.grad(recurrence_loss, argnums=(0, 1), has_aux=True))

    k_params, k_z = jax.random.split(jax.random.PRNGKey(0))
    params = controller.init_params(k_params)
    zs = jax.random.normal(k_z, (steps, controller.input_width), jnp.float32)
    with _property(owner, "runs under jax.jit with the spec as an argument", any_error=True):
        out = jit_run(controller, params, zs)
    with _property(owner, "jit == eager"):
        with jax.disable_jit():
            eager = run(controller, params, zs)
        assert_trees_close(eager, out, what="jit vs eager")

    @kit_settings(max_examples)
    @given(
        seed=seeds,
        zs=values((batch, steps, controller.input_width)),
    )
    def prop(seed, zs):
        T = steps
        params = controller.init_params(jax.random.PRNGKey(seed))
        init = controller.init_state(params)
        batched = vmap_run(controller, params, zs)
        for b in range(batch):
            one = jit_run(controller, params, zs[b])
            with _property(owner, "outputs have shape [output_size] and dtype float32"):
                shape, dtype = one["outputs"].shape, one["outputs"].dtype
                assert shape == (T, controller.output_size), (
                    f"outputs of {T} steps have shape {shape}, "
                    f"expected {(T, controller.output_size)}"
                )
                assert dtype == jnp.float32, f"outputs are {dtype}"
            with _property(owner, "state keeps its structure, shapes and dtypes"):
                assert _signature(one["state"]) == _signature(init), "the state changed"
            with _property(owner, "outputs are finite"):
                assert_finite(one, f"batch item {b}")
            with _property(owner, "vmap == loop"):
                assert_trees_close(_item(batched, b), one, what=f"batch item {b}")
        with _property(owner, "gradients are finite"):
            g_params, g_z = grad_fn(params, zs[0], controller)
            assert_finite({"params": g_params, "z": g_z}, "gradient")
        (g_params, g_z), xs = recurrence_grads(params, zs[0], controller)
        for name, x in xs.items():
            with _property(owner, f"linear_recurrence: {name!r} enters step only as x @ {name}"):
                assert_trees_close(
                    jnp.einsum("ti,tj->ij", x, g_z),
                    g_params[name],
                    what=f"sum_t x_t^T dL/dz_t vs the gradient of params[{name!r}]",
                )

    prop()


# -- machines ---------------------------------------------------------------------------------


def check_machine(
    machine,
    input_size: int = 3,
    output_size: int = 2,
    *,
    length: int = 5,
    batch: int = 3,
    context: Any = None,
    max_examples: int | None = None,
) -> CompiledMachine:
    """Compile ``machine`` and check jit == eager, vmap == loop over a mixed-length batch,
    padding leaving outputs and final state untouched, finite gradients, and (for machines
    that take training probes) the hoisted weight gradients equal to plain autodiff's.
    The compiled machine (the spec inside it) is an argument of every jitted function.

    ``context`` (named contexts ``{"source": Context(values[S, E], mask[S])}``, or one bare
    context, which counts as the source) is given to every run; the machine is compiled for the
    widths of its vectors. Returns the machine compiled with key 0."""
    check_spec(machine)
    owner = type(machine).__name__
    named = context if isinstance(context, Mapping) else {"source": context}
    contexts = {
        name: int(value[0].shape[-1])
        if jnp.issubdtype(jnp.asarray(value[0]).dtype, jnp.floating)
        else None
        for name, value in named.items()
        if value is not None
    }

    def build(key):
        return compile(machine, input_size, output_size, key=key, contexts=contexts)

    def run(model, xs, mask):
        ys, aux = model(xs, mask, context=context)
        return {"outputs": ys, "aux": aux}

    def loss(model, xs, mask, probes=None):
        ys, aux = model(xs, mask, context=context, probes=probes)
        return jnp.sum((ys * mask[:, None]) ** 2) + sum(aux["losses"].values(), 0.0), aux

    def batch_loss(model, probes, xs, mask):
        losses, aux = jax.vmap(loss, in_axes=(None, 0, 0, 0))(model, xs, mask, probes)
        return jnp.sum(losses), aux.get("taps")

    @jax.jit
    def plain_and_hoisted(model, xs, mask):
        plain = jax.grad(lambda m: batch_loss(m, None, xs, mask)[0])(model)
        probes = model.probes(length, batch)
        grad_fn = jax.grad(batch_loss, argnums=(0, 1), has_aux=True)
        (g_model, g_probes), taps = grad_fn(model, probes, xs, mask)
        return plain, model.hoisted_gradients(g_model, taps, g_probes)

    call = jax.jit(run)
    batched = jax.jit(jax.vmap(run, in_axes=(None, 0, 0)))
    grad_fn = jax.jit(jax.grad(lambda *args: loss(*args)[0], argnums=(0, 1)))
    model = build(jax.random.PRNGKey(0))
    hoists = model.probes(length) is not None

    xs0 = jax.random.normal(jax.random.PRNGKey(1), (length, input_size), jnp.float32)
    mask0 = jnp.ones((length,), jnp.float32)
    with _property(owner, "runs under jax.jit with the spec as an argument", any_error=True):
        out = call(model, xs0, mask0)
    with _property(owner, "jit == eager"):
        with jax.disable_jit():
            eager = run(model, xs0, mask0)
        assert_trees_close(eager, out, what="jit vs eager")

    short = max(1, length // 2)  # two lengths: the unpadded single runs compile twice per check

    @kit_settings(max_examples)
    @given(
        seed=seeds,
        xs=values((batch, length, input_size)),
        lengths=st.lists(st.sampled_from(sorted({short, length})), min_size=batch, max_size=batch),
    )
    def prop(seed, xs, lengths):
        m = build(jax.random.PRNGKey(seed))
        mask = (np.arange(length)[None, :] < np.asarray(lengths)[:, None]).astype(np.float32)
        padded = batched(m, xs, mask)
        for b, L in enumerate(lengths):
            one = call(m, xs[b, :L], mask[b, :L])
            with _property(owner, "outputs have shape [output_size]"):
                shape = one["outputs"].shape
                assert shape == (L, output_size), f"{shape} for {L} steps"
            with _property(owner, "outputs are finite"):
                assert_finite(one, f"batch item {b}")
            with _property(owner, "padding (and vmap) leaves outputs and final state unchanged"):
                assert_trees_close(
                    padded["outputs"][b, :L],
                    one["outputs"],
                    what=f"outputs of batch item {b} (length {L}, padded to {length})",
                )
                assert_trees_close(
                    _item(padded["aux"]["state"], b),
                    one["aux"]["state"],
                    what=f"final state of batch item {b} (length {L}, padded to {length})",
                )
        with _property(owner, "gradients are finite"):
            g_model, g_xs = grad_fn(m, xs[0], mask[0])
            assert_finite({"model": g_model, "inputs": g_xs}, "gradient")
        if hoists:
            with _property(owner, "hoisted gradients == plain autodiff"):
                plain, hoisted = plain_and_hoisted(m, xs, mask)
                scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(plain) if g.size)
                assert_trees_close(hoisted, plain, atol=1e-5 * scale, what="gradient")

    prop()
    return model


__all__ = [
    "PropertyFailed",
    "kit_settings",
    "values",
    "seeds",
    "check_device",
    "check_controller",
    "check_machine",
    "assert_trees_close",
    "assert_finite",
    "random_interface",
    "count_compiles",
]


class _CompileCounter:
    """Counts XLA backend compilations (via jax.monitoring) while active."""

    _registered = False
    _active: list[list[int]] = []

    @classmethod
    def _listener(cls, event, duration, **kwargs):
        if event == "/jax/core/compile/backend_compile_duration":
            for counter in cls._active:
                counter[0] += 1

    def __enter__(self):
        if not _CompileCounter._registered:
            jax.monitoring.register_event_duration_secs_listener(_CompileCounter._listener)
            _CompileCounter._registered = True
        self.count = [0]
        _CompileCounter._active.append(self.count)
        return self

    def __exit__(self, *exc):
        _CompileCounter._active.remove(self.count)

    @property
    def compiles(self) -> int:
        return self.count[0]


def count_compiles() -> _CompileCounter:
    """``with count_compiles() as c: ...; assert c.compiles == 0`` ("the second step compiles nothing")."""
    return _CompileCounter()
