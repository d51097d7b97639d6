"""Reusable hypothesis-backed checks, so a new device or controller is proven in one line::

    def test_my_device():
        difmachine.testing.check_device(MyDevice(...))

Each check draws random seeds with hypothesis, drives the component with random (activated)
inputs for a few steps and asserts: jit == eager, vmap == a Python loop, finite gradients with
respect to parameters and inputs, state structure/shapes/dtypes stable across steps, and any
``invariants(final_state, reads[T, ...], traces[T, ...])`` the caller supplies (e.g. "weightings sum to 1").
Functions are jit-compiled once per check, outside the hypothesis loop, to keep it fast.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import jax
import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

from .compiler import compile
from .machine import CompiledMachine
from .protocol import AbstractController, AbstractDevice, activate

seeds = st.integers(min_value=0, max_value=2**31 - 1)


def assert_trees_close(a, b, rtol=1e-4, atol=1e-5, what="trees"):
    la, ta = jax.tree.flatten(a)
    lb, tb = jax.tree.flatten(b)
    assert ta == tb, f"{what}: structures differ:\n{ta}\n{tb}"
    for x, y in zip(la, lb):
        np.testing.assert_allclose(np.asarray(x), np.asarray(y), rtol=rtol, atol=atol, err_msg=what)


def assert_finite(tree, what="values"):
    for leaf in jax.tree.leaves(tree):
        assert np.all(np.isfinite(np.asarray(leaf))), f"{what}: non-finite entries"


def _signature(tree):
    return jax.tree.structure(tree), [(x.shape, x.dtype) for x in jax.tree.leaves(tree)]


def random_interface(device: AbstractDevice, key: jax.Array, steps: int) -> dict[str, jax.Array]:
    """Pre-activation interface values for ``steps`` steps (standard normal, times 2)."""
    fields = device.interface()
    keys = jax.random.split(key, max(1, len(fields)))
    return {
        name: 2.0 * jax.random.normal(k, (steps, *field.shape), jnp.float32)
        for k, (name, field) in zip(keys, fields.items())
    }


def _device_runner(device: AbstractDevice, context: Any):
    fields = device.interface()

    def run(params, raw):
        state = device.init_state(params, context)

        def body(state, raw_t):
            iface = {n: activate(fields[n].activation, raw_t[n]) for n in fields}
            read, state, trace = device.step(params, state, iface)
            return state, (read, trace)

        return jax.lax.scan(body, state, raw)

    return run


def check_device(
    device: AbstractDevice,
    *,
    context: Any = None,
    steps: int = 4,
    batch: int = 3,
    invariants: Callable[[Any, jax.Array, dict], None] | None = None,
    rtol: float = 1e-4,
    atol: float = 1e-5,
) -> None:
    """Check the device protocol and the numerical hygiene of ``device`` (see module docstring)."""
    assert isinstance(device, AbstractDevice), f"{device!r} is not a device"
    run = _device_runner(device, context)
    jit_run = jax.jit(run)
    vmap_run = jax.jit(jax.vmap(run, in_axes=(None, 0)))

    def objective(params, raw):
        state, (reads, _) = run(params, raw)
        state_sum = sum(
            jnp.sum(x) for x in jax.tree.leaves(state) if jnp.issubdtype(x.dtype, jnp.floating)
        )
        return jnp.sum(reads**2) + state_sum

    grad_fn = jax.jit(jax.grad(objective, argnums=(0, 1)))

    @given(seed=seeds)
    def prop(seed):
        k_params, k_raw = jax.random.split(jax.random.PRNGKey(seed))
        params = device.init_params(k_params)
        raw = random_interface(device, k_raw, steps)
        init = device.init_state(params, context)

        final, (reads, traces) = jit_run(params, raw)
        assert reads.shape == (steps, device.read_size), (
            f"read shape {reads.shape[1:]} != read_size ({device.read_size},)"
        )
        assert reads.dtype == jnp.float32, f"reads are {reads.dtype}, expected float32"
        assert _signature(final) == _signature(init), "state structure, shapes or dtypes changed"
        assert_finite((final, reads, traces), "device outputs")

        with jax.disable_jit():
            eager = run(params, raw)
        assert_trees_close(eager, (final, (reads, traces)), rtol, atol, "jit vs eager")

        raws = random_interface(device, jax.random.fold_in(k_raw, 1), steps * batch)
        raws = jax.tree.map(lambda x: x.reshape(batch, steps, *x.shape[1:]), raws)
        batched = vmap_run(params, raws)
        for b in range(batch):
            one = jit_run(params, jax.tree.map(lambda x: x[b], raws))
            assert_trees_close(
                jax.tree.map(lambda x: x[b], batched), one, rtol, atol, "vmap vs loop"
            )

        assert_finite(grad_fn(params, raw), "gradients")

        if invariants is not None:
            invariants(final, reads, traces)

    prop()


def check_controller(controller: AbstractController, *, steps: int = 4, batch: int = 3) -> None:
    """Same checks for a controller driven by random ``z`` inputs. A controller that declares
    a :meth:`~difmachine.protocol.AbstractController.linear_recurrence` must also keep its
    promise: each declared ``U``'s gradient equals ``sum_t x_t^T dL/dz_t``."""
    assert isinstance(controller, AbstractController), f"{controller!r} is not a controller"

    def run(params, zs):
        def body(state, z):
            h, state = controller.step(params, state, z)
            return state, h

        return jax.lax.scan(body, controller.init_state(params), zs)

    def recurrence_loss(params, zs):  # also returns the declared recurrence inputs x_t
        def body(state, z):
            x = controller.linear_recurrence(state)
            h, state = controller.step(params, state, z)
            return state, (h, x)

        _, (hs, xs) = jax.lax.scan(body, controller.init_state(params), zs)
        return jnp.sum(jnp.sin(hs)), xs

    jit_run = jax.jit(run)
    vmap_run = jax.jit(jax.vmap(run, in_axes=(None, 0)))
    grad_fn = jax.jit(jax.grad(lambda p, z: jnp.sum(run(p, z)[1] ** 2), argnums=(0, 1)))
    recurrence_grads = jax.jit(jax.grad(recurrence_loss, argnums=(0, 1), has_aux=True))

    @given(seed=seeds)
    def prop(seed):
        k_params, k_z = jax.random.split(jax.random.PRNGKey(seed))
        params = controller.init_params(k_params)
        zs = jax.random.normal(k_z, (batch, steps, controller.input_width), jnp.float32)
        final, hs = jit_run(params, zs[0])
        assert hs.shape == (steps, controller.output_size)
        assert hs.dtype == jnp.float32
        assert _signature(final) == _signature(controller.init_state(params)), "state changed shape"
        with jax.disable_jit():
            assert_trees_close(run(params, zs[0]), (final, hs), what="jit vs eager")
        batched = vmap_run(params, zs)
        for b in range(batch):
            assert_trees_close(
                jax.tree.map(lambda x: x[b], batched), jit_run(params, zs[b]), what="vmap vs loop"
            )
        assert_finite(grad_fn(params, zs[0]), "gradients")
        (g_params, g_z), xs = recurrence_grads(params, zs[0])
        for name, x in xs.items():
            assert_trees_close(
                jnp.einsum("ti,tj->ij", x, g_z),
                g_params[name],
                what=f"linear_recurrence: {name!r} must enter step only as x @ {name} added to z",
            )

    prop()


def check_machine(
    machine,
    input_size: int = 3,
    output_size: int = 2,
    *,
    length: int = 5,
    batch: int = 3,
    context: Any = None,
) -> CompiledMachine:
    """Compile ``machine`` and check jit == eager, vmap == loop over a mixed-length batch,
    padding leaving outputs and final state untouched, finite gradients, and (for machines
    that take training probes) the hoisted weight gradients equal to plain autodiff's.

    ``context`` (named contexts ``{"source": Context(values[S, E], mask[S])}``, or one bare
    context, which counts as the source) is given to every run; the machine is compiled for the
    widths of its vectors."""
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
        return model(xs, mask, context=context)

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
    grad_fn = jax.jit(jax.grad(lambda *args: loss(*args)[0]))
    model = build(jax.random.PRNGKey(0))
    hoists = model.probes(length) is not None

    @given(seed=seeds)
    def prop(seed):
        key = jax.random.PRNGKey(seed)
        k_model, k_x, k_len = jax.random.split(key, 3)
        m = build(k_model)
        xs = jax.random.normal(k_x, (batch, length, input_size), jnp.float32)
        # two distinct lengths keep the unpadded single runs at two compiles per check
        lengths = jax.random.choice(k_len, jnp.array([max(1, length // 2), length]), (batch,))
        mask = (jnp.arange(length)[None, :] < lengths[:, None]).astype(jnp.float32)
        ys, aux = call(m, xs[0], mask[0])
        assert ys.shape == (length, output_size)
        assert_finite(ys, "outputs")
        with jax.disable_jit():
            assert_trees_close(run(m, xs[0], mask[0]), (ys, aux), what="jit vs eager")
        all_ys, all_aux = batched(m, xs, mask)
        for b in range(batch):
            L = int(lengths[b])
            ys_b, aux_b = call(m, xs[b, :L], mask[b, :L])
            np.testing.assert_allclose(
                all_ys[b, :L],
                ys_b,
                rtol=1e-4,
                atol=1e-5,
                err_msg="padded batch vs unpadded single run",
            )
            assert_trees_close(
                jax.tree.map(lambda x: x[b], all_aux["state"]),
                aux_b["state"],
                what="final state with padding vs without",
            )
        assert_finite(grad_fn(m, xs[0], mask[0]), "gradients")
        if hoists:
            plain, hoisted = plain_and_hoisted(m, xs, mask)
            scale = max(float(jnp.max(jnp.abs(g))) for g in jax.tree.leaves(plain) if g.size)
            assert_trees_close(hoisted, plain, atol=1e-5 * scale, what="hoisted vs plain gradients")

    prop()
    return model


__all__ = [
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
