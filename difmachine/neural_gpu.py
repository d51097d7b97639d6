"""The Neural GPU machine kind (Kaiser & Sutskever 2015, "Neural GPUs learn algorithms").

It is not a controller reading one input per step. Its state is a grid ``s[w, n, m]`` (``width``
rows, the input's length ``n`` columns, ``channels`` m), updated by a stack of ``layers``
convolutional gated recurrent units (CGRUs) applied ``n`` times with shared parameters:

- the input symbols are embedded (a linear map of the one-hot inputs) into the grid's first row,
  ``s_0[0, t] = E x_t``; the other rows start at zero;
- step ``i = 0 .. n - 1``: ``s <- CGRU_layers(... CGRU_1(s))``;
- the output at position ``t`` is a linear map of the final grid's first row, ``y_t = O s_n[0, t]
  + b``.

Padding. A batch is padded to the longest example (``n`` columns); an example of real length
``L`` sees exactly what its unpadded self sees: the columns ``>= L`` are zeroed after every CGRU
(so the convolutions find the zeros they find at the edge of an unpadded grid, ``SAME``
padding) and the grid is frozen after ``L`` steps (``n - L`` further steps leave it as it is). A
mixed batch then compiles once, and padding never leaks into the real positions.

Training techniques of the paper, as options of :class:`NeuralGPU`:

- ``sigmoid_cutoff`` (default 1.2): the gates use the saturating sigmoid
  ``sat(x) = clip(c sigmoid(x) - (c - 1) / 2, 0, 1)``, with ``c = 1.2`` the paper's
  ``clip(1.2 sigmoid(x) - 0.1, 0, 1)``: a gate can be exactly 0 or 1, so a value can be carried
  through many steps unchanged. ``1.0`` is the plain sigmoid.
- ``tanh_cutoff`` (default 1.0, off): the same for the candidate,
  ``clip((1 + (c - 1) / 2) tanh(x), -1, 1)`` (the paper's code has it, off by default).
- ``relax`` and ``relax_pull``: parameter-sharing relaxation. ``relax = r`` keeps ``r`` copies
  of the CGRU stack's parameters, step ``i`` uses copy ``i mod r``, and
  ``aux["losses"]["relaxation"] = relax_pull * sum_c ||theta_c - mean_c theta_c||^2`` pulls them
  together. The paper raises the pull over training until the copies agree; the protocol gives
  the machine no training step, so here the pull is a constant (raise it between runs with
  ``--set``). At evaluation the copies are used as trained (``i mod r``), as in the paper once
  they have merged.
- Gradient noise is an optimiser matter: :func:`difmachine.gradient_noise` in the program's
  optimizer (``programs/neural_gpu_add.py``).
- Curriculum over lengths is a task matter: the binary tasks' ``curriculum`` option
  (:mod:`difmachine.tasks.binary`).
- ``dropout`` (default 0, off): dropout on the recurrence, applied to each CGRU's candidate
  ``tanh(U * (r . s) + B)`` before the update mixes it in (Semeniuta et al. 2016, "Recurrent
  dropout without memory loss": a dropped unit keeps its old value ``u . s`` instead of being
  erased, which matters over the thousands of steps of a long evaluation). Each example, step
  and layer draws its own mask from the training step's key (a machine with ``dropout > 0`` is
  :meth:`stochastic <difmachine.protocol.AbstractCompiledMachine.stochastic>`: training hands
  it a key per example, derived from the run's seed and step, so a resumed run drops the same
  units); evaluation passes no key and drops nothing. The paper's code drops 15%.

Traces: the component ``grid`` records, per step, the grid's mean over channels ``[w, n]``, and
the answer read from the grid as it stands after that step (the readout applied to the first
row: ``softmax(O s_i[0, t] + b)``, ``[classes, n]``); ``difmachine trace`` draws each grid row
and each output class as positions against steps. The answer panels show the result forming:
for an addition, a carry is a bit of ``P(1)`` flipping along a run of ones, one position per
step or two.
"""

from __future__ import annotations

from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from ._init import full, glorot, zeros
from .errors import DifmachineError
from .protocol import (
    AbstractCompiledMachine,
    AbstractMachine,
    Component,
    TraceField,
    check_count,
)

GRID = "grid"  # the component whose trace is the grid over the steps

# -- the CGRU as pure functions -----------------------------------------------------------------


def saturating_sigmoid(x: jax.Array, cutoff: float = 1.2) -> jax.Array:
    """``sat(x) = clip(c sigmoid(x) - (c - 1) / 2, 0, 1)`` with ``c = cutoff`` (Kaiser &
    Sutskever 2015, section 3: ``clip(1.2 sigmoid(x) - 0.1, 0, 1)``); ``cutoff = 1`` is the
    sigmoid."""
    y = jax.nn.sigmoid(x)
    if cutoff == 1.0:
        return y
    return jnp.clip(cutoff * y - (cutoff - 1.0) / 2.0, 0.0, 1.0)


def saturating_tanh(x: jax.Array, cutoff: float = 1.0) -> jax.Array:
    """``clip((1 + (c - 1) / 2) tanh(x), -1, 1)`` with ``c = cutoff``; ``cutoff = 1`` is tanh."""
    y = jnp.tanh(x)
    if cutoff == 1.0:
        return y
    return jnp.clip((1.0 + (cutoff - 1.0) / 2.0) * y, -1.0, 1.0)


def conv(s: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """``U * s + B``: the convolution of the grid ``s[w, n, m]`` with ``kernel[kw, kn, m, m']``
    (``lax.conv_general_dilated``, stride 1, ``SAME`` zero padding, so the grid keeps its shape)
    plus the per-channel bias ``B[m']``. ``(U * s)[a, b, j] = sum_{u, v, i} s[a + u - kw // 2,
    b + v - kn // 2, i] U[u, v, i, j]`` over in-range cells."""
    out = jax.lax.conv_general_dilated(
        s[None],
        kernel,
        window_strides=(1, 1),
        padding="SAME",
        dimension_numbers=("NHWC", "HWIO", "NHWC"),
    )[0]
    return out + bias[None, None, :]


def patches(s: jax.Array, kw: int, kn: int) -> jax.Array:
    """``[w, n, kw kn m]``: each cell's ``kw x kn`` neighbourhood (zero beyond the grid), in the
    kernel's ``(u, v, i)`` order, so that ``patches(s) @ U.reshape(-1, m')`` is ``U * s``."""
    w, n, _ = s.shape
    padded = jnp.pad(s, ((kw // 2, kw // 2), (kn // 2, kn // 2), (0, 0)))
    return jnp.concatenate(
        [padded[u : u + w, v : v + n] for u in range(kw) for v in range(kn)], axis=-1
    )


def conv_matmul(s: jax.Array, kernel: jax.Array, bias: jax.Array) -> jax.Array:
    """:func:`conv` as one matmul of the :func:`patches` (the same numbers up to rounding). On
    a CPU its gradient is about 7x faster than ``lax.conv_general_dilated``'s, which XLA
    computes with a slow generic convolution for these small channel counts."""
    kw, kn, m, out = kernel.shape
    return patches(s, kw, kn) @ kernel.reshape(kw * kn * m, out) + bias[None, None, :]


def cgru(
    params: dict,
    s: jax.Array,
    sigmoid_cutoff: float = 1.2,
    tanh_cutoff: float = 1.0,
    convolve=conv,
    keep: jax.Array | None = None,
):
    """One convolutional gated recurrent unit (Kaiser & Sutskever 2015, equation 1)::

        u  = sat(U'  * s + B')                      update gate
        r  = sat(U'' * s + B'')                     reset gate
        s' = u . s + (1 - u) . tanh(U * (r . s) + B)

    ``*`` is the convolution ``convolve`` (:func:`conv`, or :func:`conv_matmul`), ``.``
    elementwise, ``sat`` :func:`saturating_sigmoid` (``tanh`` is :func:`saturating_tanh` with
    ``tanh_cutoff``). ``params``: ``U_u, B_u`` (U', B'), ``U_r, B_r`` (U'', B''), ``U, B``.
    Both gates read ``s``: they are one convolution with ``2 m`` output channels. ``keep``
    (optional, shaped like ``s``): the candidate's dropout mask, already scaled (``0`` or
    ``1 / (1 - p)``)."""
    m = s.shape[-1]
    kernel = jnp.concatenate([params["U_u"], params["U_r"]], axis=-1)
    gates = convolve(s, kernel, jnp.concatenate([params["B_u"], params["B_r"]]))
    u = saturating_sigmoid(gates[..., :m], sigmoid_cutoff)
    r = saturating_sigmoid(gates[..., m:], sigmoid_cutoff)
    c = saturating_tanh(convolve(r * s, params["U"], params["B"]), tanh_cutoff)
    if keep is not None:
        c = c * keep
    return u * s + (1.0 - u) * c


def init_cgru(key: jax.Array, channels: int, kernel: tuple[int, int]) -> dict:
    """Glorot-uniform kernels (fan in ``kw kn m``, fan out ``m``); the gates' biases start at 1
    (``u`` near 0.7: the state is mostly kept at first, as in the paper's code), ``B`` at 0."""
    kw, kn = kernel
    m = channels
    ku, kr, kc = jax.random.split(key, 3)

    def k(key):
        return glorot(key, kw * kn * m, m).reshape(kw, kn, m, m)

    return {
        "U_u": k(ku),
        "B_u": full((m,), 1.0),
        "U_r": k(kr),
        "B_r": full((m,), 1.0),
        "U": k(kc),
        "B": zeros(m),
    }


def relaxation_penalty(copies: Any) -> jax.Array:
    """``sum_c ||theta_c - mean_c theta_c||^2`` over every leaf (the copies on the leading
    axis): zero exactly when all copies are equal."""
    total = jnp.zeros((), jnp.float32)
    for leaf in jax.tree.leaves(copies):
        total = total + jnp.sum((leaf - jnp.mean(leaf, axis=0, keepdims=True)) ** 2)
    return total


CONVOLUTIONS = {"xla": conv, "matmul": conv_matmul}

# -- the spec -----------------------------------------------------------------------------------


def _kernel(k) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) and not isinstance(k, bool) else tuple(k)


class NeuralGPU(AbstractMachine):
    """A Neural GPU: a grid of ``width`` rows x input length x ``channels``, ``layers`` CGRUs per
    step with ``kernel`` (rows, positions) convolutions, run for as many steps as the input is
    long. See the module docstring for the options (``sigmoid_cutoff``, ``tanh_cutoff``,
    ``relax``, ``relax_pull``, ``dropout``). The paper's sizes: ``width=4, channels=24, layers=2,
    kernel=3``. ``convolution``: ``"matmul"`` (default, :func:`conv_matmul`: the patches times
    the kernel, fastest to differentiate on a CPU) or ``"xla"`` (:func:`conv`,
    ``lax.conv_general_dilated``); the same function, a different speed."""

    width: int = eqx.field(static=True, default=4)
    channels: int = eqx.field(static=True, default=24)
    layers: int = eqx.field(static=True, default=2)
    kernel: tuple[int, int] = eqx.field(static=True, default=(3, 3), converter=_kernel)
    sigmoid_cutoff: float = eqx.field(static=True, default=1.2)
    tanh_cutoff: float = eqx.field(static=True, default=1.0)
    relax: int = eqx.field(static=True, default=1)
    relax_pull: float = eqx.field(static=True, default=1e-3)
    convolution: str = eqx.field(static=True, default="matmul")
    dropout: float = eqx.field(static=True, default=0.0)

    def __check_init__(self):
        for name in ("width", "channels", "layers", "relax"):
            check_count("NeuralGPU", name, getattr(self, name))
        if len(self.kernel) != 2 or any(
            not isinstance(k, int) or k < 1 or k % 2 == 0 for k in self.kernel
        ):
            raise ValueError(
                f"NeuralGPU kernel must be an odd positive size or a pair of them such as 3 or "
                f"(3, 3), got {self.kernel!r}"
            )
        for name in ("sigmoid_cutoff", "tanh_cutoff"):
            value = getattr(self, name)
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 1.0:
                raise ValueError(
                    f"NeuralGPU {name} must be a number >= 1 (1 = no cutoff), got {value!r}"
                )
        if self.convolution not in CONVOLUTIONS:
            raise ValueError(
                f"NeuralGPU convolution must be one of {sorted(CONVOLUTIONS)}, "
                f"got {self.convolution!r}"
            )
        d = self.dropout
        if not isinstance(d, (int, float)) or isinstance(d, bool) or not 0 <= d < 1:
            raise ValueError(f"NeuralGPU dropout must be a number in [0, 1), got {d!r}")
        if not isinstance(self.relax_pull, (int, float)) or self.relax_pull < 0:
            raise ValueError(
                f"NeuralGPU relax_pull must be a non-negative number, got {self.relax_pull!r}"
            )

    def compile(self, input_size, output_size, *, key, remat=False, contexts=None):
        for what, value in (("input_size", input_size), ("output_size", output_size)):
            check_count("compile:", what, value)
        k_e, k_c, k_o = jax.random.split(key, 3)
        stack_keys = jax.random.split(k_c, self.relax * self.layers).reshape(
            self.relax, self.layers, -1
        )
        # every leaf [relax, layers, ...]: copy c, layer l of the CGRU stack
        stack = jax.vmap(jax.vmap(lambda k: init_cgru(k, self.channels, self.kernel)))(stack_keys)
        params = {
            "embed": glorot(k_e, input_size, self.channels),
            "cgru": stack,
            "W_o": glorot(k_o, self.channels, output_size),
            "b_o": zeros(output_size),
        }
        return CompiledNeuralGPU(self, input_size, output_size, remat, params)

    def prefers_remat(self) -> bool:
        return False  # a step keeps little beside the grid; recomputing it only costs time

    def trace_spec(self) -> dict[str, TraceField]:
        return {
            "grid": TraceField(
                "heatmap", "grid row {head} (mean over channels)", axis="position", signed=True
            ),
            "answer": TraceField("heatmap", "answer so far, P(class {head})", axis="position"),
        }


# -- the compiled machine -----------------------------------------------------------------------


class CompiledNeuralGPU(AbstractCompiledMachine):
    """A compiled :class:`NeuralGPU`: ``params`` holds ``embed[in, m]``, the CGRU stack
    ``cgru`` (every leaf ``[relax, layers, ...]``), ``W_o[m, out]`` and ``b_o[out]``."""

    spec: NeuralGPU
    input_size: int = eqx.field(static=True)
    output_size: int = eqx.field(static=True)
    remat: bool = eqx.field(static=True)
    params: dict

    def __call__(self, xs, mask=None, *, trace: bool = False, context=None, probes=None, key=None):
        """Run one example: ``xs[n, input_size]`` (one-hot symbols), ``mask[n]`` (1 = real
        position; the real positions come first); ``key``: the example's dropout key in training
        (``None``: no dropout). Returns ``(ys[n, output_size], aux)``: the
        logits read from the final grid's first row; ``aux["trace"]["grid"]["grid"]`` is
        ``[n, width, n]`` (the grid's mean over channels after each step) and ``["answer"]``
        ``[n, output_size, n]`` (the readout's probabilities after each step) when ``trace``,
        ``aux["losses"]`` the relaxation pull when ``relax > 1``."""
        if probes is not None:
            raise DifmachineError("the Neural GPU takes plain autodiff; it has no probes")
        spec, p = self.spec, self.params
        n = xs.shape[0]
        mask = jnp.ones((n,), jnp.float32) if mask is None else mask.astype(jnp.float32)
        length = jnp.sum(mask)
        convolve = CONVOLUTIONS[spec.convolution]
        columns = mask[None, :, None]  # [1, n, 1]: zero the padded columns after every CGRU
        embedded = (xs.astype(jnp.float32) @ p["embed"]) * mask[:, None]
        s0 = jnp.zeros((spec.width, n, spec.channels), jnp.float32).at[0].set(embedded)

        dropping = key is not None and spec.dropout > 0

        def body(s, i):
            copy = jax.tree.map(lambda a: a[i % spec.relax], p["cgru"])
            new = s
            for layer in range(spec.layers):
                params = jax.tree.map(lambda a, layer=layer: a[layer], copy)
                keep = None
                if dropping:  # a mask per step and layer
                    k = jax.random.fold_in(jax.random.fold_in(key, i), layer)
                    kept = jax.random.bernoulli(k, 1.0 - spec.dropout, s.shape)
                    keep = kept.astype(jnp.float32) / (1.0 - spec.dropout)
                new = (
                    cgru(params, new, spec.sigmoid_cutoff, spec.tanh_cutoff, convolve, keep)
                    * columns
                )
            s = jnp.where(i < length, new, s)  # an example of length L takes L steps
            if not trace:
                return s, None
            answer = jax.nn.softmax(s[0] @ p["W_o"] + p["b_o"][None, :], axis=-1)
            return s, (jnp.mean(s, axis=-1), answer.T)

        if self.remat:
            body = jax.checkpoint(body)
        final, recorded = jax.lax.scan(body, s0, jnp.arange(n))
        ys = final[0] @ p["W_o"] + p["b_o"][None, :]
        losses = {}
        if spec.relax > 1:
            losses["relaxation"] = spec.relax_pull * relaxation_penalty(p["cgru"])
        if trace:
            grids, answers = recorded
            recorded = {GRID: {"grid": grids, "answer": answers}}
        aux = {"trace": recorded if trace else {}, "losses": losses, "stats": {}}
        return ys, aux

    def generate(self, first, steps, feedback, stop=None, *, trace=False, context=None):
        raise DifmachineError(
            "the Neural GPU reads its whole input at once and cannot decode one step at a time; "
            "give it a task that is not generative (e.g. BinaryAddition)"
        )

    def components(self) -> list[Component]:
        return [Component(GRID, self.spec)]

    def stochastic(self) -> bool:
        return self.spec.dropout > 0  # training then hands it a key per example

    def summary(self):
        s = self.spec
        rows = [
            ["grid", f"{s.width} rows x input length x {s.channels} channels"],
            ["steps", "the input's length (each example its own)"],
            ["CGRUs per step", f"{s.layers}, kernel {s.kernel[0]}x{s.kernel[1]}"],
            ["gates", f"saturating sigmoid, cutoff {s.sigmoid_cutoff}"],
            ["candidate", f"tanh, cutoff {s.tanh_cutoff}"],
            [
                "dropout",
                f"{s.dropout:g} of the candidate, in training" if s.dropout else "none",
            ],
            [
                "parameter copies",
                f"{s.relax} (step i uses copy i mod {s.relax}, pull {s.relax_pull})"
                if s.relax > 1
                else "1 (shared by every step)",
            ],
        ]
        return [("NeuralGPU", ["part", "setting"], rows)]

    def param_counts(self) -> dict[str, int]:
        p, s = self.params, self.spec

        def count(tree):
            return sum(x.size for x in jax.tree.leaves(tree))

        return {
            "embedding": count(p["embed"]),
            f"CGRUs ({s.relax} copies x {s.layers} layers)": count(p["cgru"]),
            "output projection": count(p["W_o"]) + count(p["b_o"]),
        }


__all__ = [
    "NeuralGPU",
    "CompiledNeuralGPU",
    "cgru",
    "conv",
    "conv_matmul",
    "patches",
    "init_cgru",
    "relaxation_penalty",
    "saturating_sigmoid",
    "saturating_tanh",
]
