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

``freeze=False`` runs every example for all ``n`` steps of its batch instead (the padded columns
still zeroed), as both papers' code does: an example shorter than its batch's bucket then takes
more steps than it is long, so its answer must stay right after it has formed. Trained on
mixed-length batches (``BinaryAddition(bucket=False)``), a machine cannot count on its number
of steps.

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
- ``input_dropout`` (default 0, off): dropout on the embedded input (after the hard tanh with
  ``nonlinearity="hard"``), one mask per example, before the first step. Freivalds & Liepins's
  code drops the embedding at the same rate as the candidate (50% for addition).

Later improvements, from Freivalds & Liepins 2017 ("Improving the Neural GPU Architecture for
Algorithm Learning"; the details from the authors' code, LUMII-Syslab/DNGPU), as options:

- ``nonlinearity="hard"``: the gates are ``hard_sigmoid(x) = clip(0.5 x + 0.5, 0, 1)`` and the
  candidate ``hard_tanh(x) = clip(x, -1, 1)`` (the embedding too goes through the hard tanh); the
  gates' biases start at 0.7 (``u``) and 0.5 (``r``), the constants the authors add.
- ``saturation`` (default 0, off; hard only): the saturation cost, ``aux["losses"]
  ["saturation"] = saturation * sum relu(|x| - 0.9)`` over the pre-activations ``x`` of ``u``,
  ``r`` and the candidate, summed over channels and averaged over the real (step, row,
  position) cells. It keeps the pre-activations from drifting deep into the flat parts where a
  hard nonlinearity passes no gradient. The authors adapt its weight every 200 steps so that it
  stays near ``lr`` times the task loss, capped at 1e-3; here it is a constant.
- ``diagonal``: the diagonal gates. The kept state is shifted along the positions before the
  update mixes it in, ``s' = u . shift(s) + (1 - u) . c`` (:func:`shift_diagonal`: a third of
  the channels one position right, a third one left, the rest in place), so a kept value
  travels along the sequence by itself.

The authors' model is ``NeuralGPU(width=1, layers=1, kernel=(1, 3), nonlinearity="hard",
diagonal=True, saturation=1e-3)`` with 48 channels for addition and 96 for multiplication
(``programs/dngpu_add.py``); they train with AdaMax, dropout on the candidate (50% for addition,
10% for multiplication) and no curriculum, and report binary multiplication learned in 800 steps
where the original needed about 30,000.

Traces: the component ``grid`` records, per step, the grid's mean over channels ``[w, n]``, and
the answer read from the grid as it stands after that step (the readout applied to the first
row: ``softmax(O s_i[0, t] + b)``, ``[classes, n]``); ``difmachine trace`` draws each grid row
and each output class as positions against steps. The answer panels show the result forming:
for an addition, a carry is a bit of ``P(1)`` flipping along a run of ones, one position per
step or two.
"""

from __future__ import annotations

import functools
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
    check_flag,
    check_fraction,
    check_non_negative,
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


def hard_sigmoid(x: jax.Array) -> jax.Array:
    """``clip(0.5 x + 0.5, 0, 1)`` (Freivalds & Liepins 2017's gates)."""
    return jnp.clip(0.5 * x + 0.5, 0.0, 1.0)


def hard_tanh(x: jax.Array) -> jax.Array:
    """``clip(x, -1, 1)`` (Freivalds & Liepins 2017's candidate)."""
    return jnp.clip(x, -1.0, 1.0)


SATURATION_THRESHOLD = 0.9


def saturation_excess(pre: jax.Array) -> jax.Array:
    """``relu(|x| - 0.9)`` of each pre-activation: how far a hard nonlinearity's input is past
    the point where it stops passing gradients (at ``|x| = 1``), less a margin."""
    return jax.nn.relu(jnp.abs(pre) - SATURATION_THRESHOLD)


def shift_diagonal(s: jax.Array) -> jax.Array:
    """The diagonal gates' shift of the kept state (Freivalds & Liepins 2017), along the
    positions of ``s[w, n, m]``. With ``k = m // 3``: the first ``m - 2 k`` channels stay where
    they are, the next ``k`` move one position right (``out[:, t] = s[:, t - 1]``) and the last
    ``k`` one position left (``out[:, t] = s[:, t + 1]``), zeros entering at the ends. A value
    the update gate keeps then travels along the sequence by itself, one position per step."""
    m = s.shape[-1]
    k = m // 3
    if k == 0:
        return s
    stay, right, left = s[..., : m - 2 * k], s[..., m - 2 * k : m - k], s[..., m - k :]
    from_left = jnp.pad(right, ((0, 0), (1, 0), (0, 0)))[:, :-1]
    from_right = jnp.pad(left, ((0, 0), (0, 1), (0, 0)))[:, 1:]
    return jnp.concatenate([stay, from_left, from_right], axis=-1)


def cgru(
    params: dict,
    s: jax.Array,
    gate=saturating_sigmoid,
    candidate=jnp.tanh,
    convolve=conv,
    keep: jax.Array | None = None,
    diagonal: bool = False,
) -> tuple[jax.Array, jax.Array]:
    """One convolutional gated recurrent unit (Kaiser & Sutskever 2015, equation 1)::

        u  = gate(U'  * s + B')                     update gate
        r  = gate(U'' * s + B'')                    reset gate
        s' = u . s + (1 - u) . candidate(U * (r . s) + B)

    ``*`` is the convolution ``convolve`` (:func:`conv`, or :func:`conv_matmul`), ``.``
    elementwise; ``gate`` is :func:`saturating_sigmoid` in the paper (:func:`hard_sigmoid` in
    Freivalds & Liepins 2017), ``candidate`` ``tanh`` (:func:`hard_tanh`). ``params``: ``U_u,
    B_u`` (U', B'), ``U_r, B_r`` (U'', B''), ``U, B``. Both gates read ``s``: they are one
    convolution with ``2 m`` output channels. ``keep`` (optional, shaped like ``s``): the
    candidate's dropout mask, already scaled (``0`` or ``1 / (1 - p)``). ``diagonal``: the kept
    state is :func:`shift_diagonal` ``(s)`` instead of ``s`` (the diagonal gates of Freivalds &
    Liepins 2017; the gates and the candidate still read ``s``). Returns ``(s', pre)``, ``pre[w,
    n, 3 m]`` the pre-activations of ``u``, ``r`` and the candidate (for the saturation cost)."""
    m = s.shape[-1]
    kernel = jnp.concatenate([params["U_u"], params["U_r"]], axis=-1)
    gates = convolve(s, kernel, jnp.concatenate([params["B_u"], params["B_r"]]))
    u = gate(gates[..., :m])
    r = gate(gates[..., m:])
    pre_c = convolve(r * s, params["U"], params["B"])
    c = candidate(pre_c)
    if keep is not None:
        c = c * keep
    kept = shift_diagonal(s) if diagonal else s
    return u * kept + (1.0 - u) * c, jnp.concatenate([gates, pre_c], axis=-1)


def init_cgru(key: jax.Array, channels: int, kernel: tuple[int, int], gate_bias=(1.0, 1.0)) -> dict:
    """Glorot-uniform kernels (fan in ``kw kn m``, fan out ``m``); the gates' biases start at
    ``gate_bias`` (``B'``, ``B''``), ``B`` at 0. The paper's ``(1, 1)`` puts ``u`` near 0.7: the
    state is mostly kept at first, as in its code; Freivalds & Liepins add the constants ``0.7``
    and ``0.5`` to the hard gates' inputs (``u = 0.85``, ``r = 0.75`` at first)."""
    kw, kn = kernel
    m = channels
    ku, kr, kc = jax.random.split(key, 3)

    def k(key):
        return glorot(key, kw * kn * m, m).reshape(kw, kn, m, m)

    return {
        "U_u": k(ku),
        "B_u": full((m,), gate_bias[0]),
        "U_r": k(kr),
        "B_r": full((m,), gate_bias[1]),
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

# nonlinearity -> (gate, candidate, the gates' initial biases B', B''); the saturating pair takes
# the spec's cutoffs (see CompiledNeuralGPU._nonlinearities)
NONLINEARITIES = {
    "saturating": (saturating_sigmoid, saturating_tanh, (1.0, 1.0)),
    "hard": (hard_sigmoid, hard_tanh, (0.7, 0.5)),
}

# -- the spec -----------------------------------------------------------------------------------


def _kernel(k) -> tuple[int, int]:
    return (k, k) if isinstance(k, int) and not isinstance(k, bool) else tuple(k)


class NeuralGPU(AbstractMachine):
    """A Neural GPU: a grid of ``width`` rows x input length x ``channels``, ``layers`` CGRUs per
    step with ``kernel`` (rows, positions) convolutions, run for as many steps as the input is long.
    See the module docstring for the options (``sigmoid_cutoff``, ``tanh_cutoff``, ``relax``,
    ``relax_pull``, ``dropout``, ``input_dropout``, ``freeze``; Freivalds & Liepins's
    ``nonlinearity="hard"``, ``saturation``, ``diagonal``). The paper's sizes: ``width=4,
    channels=24, layers=2, kernel=3``. ``convolution``: ``"matmul"`` (default, :func:`conv_matmul`:
    the patches times the kernel, fastest to differentiate on a CPU) or ``"xla"`` (:func:`conv`,
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
    nonlinearity: str = eqx.field(static=True, default="saturating")
    diagonal: bool = eqx.field(static=True, default=False)
    saturation: float = eqx.field(static=True, default=0.0)
    freeze: bool = eqx.field(static=True, default=True)
    input_dropout: float = eqx.field(static=True, default=0.0)

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
        for name in ("dropout", "input_dropout"):
            check_fraction("NeuralGPU", name, getattr(self, name))
        if self.nonlinearity not in NONLINEARITIES:
            raise ValueError(
                f"NeuralGPU nonlinearity must be one of {sorted(NONLINEARITIES)}, "
                f"got {self.nonlinearity!r}"
            )
        hard = self.nonlinearity == "hard"
        if hard and (self.sigmoid_cutoff, self.tanh_cutoff) != (1.2, 1.0):
            raise ValueError(
                "NeuralGPU sigmoid_cutoff and tanh_cutoff shape the saturating nonlinearities; "
                "the hard ones have none: drop them or use nonlinearity='saturating'"
            )
        check_non_negative("NeuralGPU", "saturation", self.saturation)
        if self.saturation > 0 and not hard:
            raise ValueError(
                "NeuralGPU saturation is the cost of the hard nonlinearities' saturation: "
                "use it with nonlinearity='hard'"
            )
        check_flag("NeuralGPU", "freeze", self.freeze)
        check_flag("NeuralGPU", "diagonal", self.diagonal)
        check_non_negative("NeuralGPU", "relax_pull", self.relax_pull)

    def compile(self, input_size, output_size, *, key, remat=False, contexts=None):
        for what, value in (("input_size", input_size), ("output_size", output_size)):
            check_count("compile:", what, value)
        k_e, k_c, k_o = jax.random.split(key, 3)
        stack_keys = jax.random.split(k_c, self.relax * self.layers).reshape(
            self.relax, self.layers, -1
        )
        # every leaf [relax, layers, ...]: copy c, layer l of the CGRU stack
        bias = NONLINEARITIES[self.nonlinearity][2]
        stack = jax.vmap(jax.vmap(lambda k: init_cgru(k, self.channels, self.kernel, bias)))(
            stack_keys
        )
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


def _count(n: int, one: str, many: str | None = None) -> str:
    """``1 layer``, ``2 layers``."""
    return f"{n} {one if n == 1 else many or one + 's'}"


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
        gate, candidate = self._nonlinearities()
        hard = spec.nonlinearity == "hard"
        columns = mask[None, :, None]  # [1, n, 1]: zero the padded columns after every CGRU
        embedded = xs.astype(jnp.float32) @ p["embed"]
        if hard:  # Freivalds & Liepins: the embedding too goes through the hard tanh
            embedded = hard_tanh(embedded)
        if key is not None and spec.input_dropout > 0:
            key, k_in = jax.random.split(key)
            kept = jax.random.bernoulli(k_in, 1.0 - spec.input_dropout, embedded.shape)
            embedded = embedded * kept.astype(jnp.float32) / (1.0 - spec.input_dropout)
        embedded = embedded * mask[:, None]
        s0 = jnp.zeros((spec.width, n, spec.channels), jnp.float32).at[0].set(embedded)

        dropping = key is not None and spec.dropout > 0
        costing = spec.saturation > 0

        def body(carry, i):
            s, excess = carry if costing else (carry, None)
            copy = jax.tree.map(lambda a: a[i % spec.relax], p["cgru"])
            new = s
            for layer in range(spec.layers):
                params = jax.tree.map(lambda a, layer=layer: a[layer], copy)
                keep = None
                if dropping:  # a mask per step and layer
                    k = jax.random.fold_in(jax.random.fold_in(key, i), layer)
                    kept = jax.random.bernoulli(k, 1.0 - spec.dropout, s.shape)
                    keep = kept.astype(jnp.float32) / (1.0 - spec.dropout)
                new, pre = cgru(params, new, gate, candidate, convolve, keep, spec.diagonal)
                new = new * columns
                if costing:  # the real cells of the real steps only
                    real = columns * (i < length) if spec.freeze else columns
                    excess = excess + jnp.sum(saturation_excess(pre) * real)
            # an example of length L takes L steps, or with `freeze=False` all n of the batch
            s = jnp.where(i < length, new, s) if spec.freeze else new
            carry = (s, excess) if costing else s
            if not trace:
                return carry, None
            answer = jax.nn.softmax(s[0] @ p["W_o"] + p["b_o"][None, :], axis=-1)
            return carry, (jnp.mean(s, axis=-1), answer.T)

        if self.remat:
            body = jax.checkpoint(body)
        init = (s0, jnp.zeros((), jnp.float32)) if costing else s0
        final, recorded = jax.lax.scan(body, init, jnp.arange(n))
        losses = {}
        if costing:
            final, excess = final
            # summed over channels and the three pre-activations, averaged over the real
            # (step, row, position) cells: the authors' normalisation (they divide by n^2)
            steps = length if spec.freeze else n
            cells = spec.width * jnp.maximum(length, 1.0) * jnp.maximum(steps, 1.0)
            losses["saturation"] = spec.saturation * excess / cells
        ys = final[0] @ p["W_o"] + p["b_o"][None, :]
        if spec.relax > 1:
            losses["relaxation"] = spec.relax_pull * relaxation_penalty(p["cgru"])
        if trace:
            grids, answers = recorded
            recorded = {GRID: {"grid": grids, "answer": answers}}
        aux = {"trace": recorded if trace else {}, "losses": losses, "stats": {}}
        return ys, aux

    def _nonlinearities(self):
        gate, candidate, _ = NONLINEARITIES[self.spec.nonlinearity]
        if self.spec.nonlinearity == "saturating":
            return (
                functools.partial(gate, cutoff=self.spec.sigmoid_cutoff),
                functools.partial(candidate, cutoff=self.spec.tanh_cutoff),
            )
        return gate, candidate

    def generate(self, first, steps, feedback, stop=None, *, trace=False, context=None):
        raise DifmachineError(
            "the Neural GPU reads its whole input at once and cannot decode one step at a time; "
            "give it a task that is not generative (e.g. BinaryAddition)"
        )

    def components(self) -> list[Component]:
        return [Component(GRID, self.spec)]

    def stochastic(self) -> bool:
        # training then hands it a key per example
        return self.spec.dropout > 0 or self.spec.input_dropout > 0

    def summary(self):
        s = self.spec
        rows = [
            ["grid", f"{s.width} rows x input length x {s.channels} channels"],
            ["steps", "the input's length (each example its own)"]
            if s.freeze
            else ["steps", "the batch's length (a shorter example takes more than its own)"],
            ["CGRUs per step", f"{s.layers}, kernel {s.kernel[0]}x{s.kernel[1]}"],
            ["gates", f"saturating sigmoid, cutoff {s.sigmoid_cutoff}"]
            if s.nonlinearity == "saturating"
            else ["gates", "hard sigmoid clip(0.5 x + 0.5, 0, 1)"],
            ["candidate", f"tanh, cutoff {s.tanh_cutoff}"]
            if s.nonlinearity == "saturating"
            else ["candidate", "hard tanh clip(x, -1, 1)"],
            ["kept state", "shifted diagonally (a third right, a third left)"]
            if s.diagonal
            else ["kept state", "in place"],
            ["saturation cost", f"{s.saturation:g}" if s.saturation else "none"],
            [
                "dropout",
                f"{s.dropout:g} of the candidate, in training" if s.dropout else "none",
            ],
            [
                "input dropout",
                f"{s.input_dropout:g} of the embedding, in training" if s.input_dropout else "none",
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
            f"CGRUs ({_count(s.relax, 'copy', 'copies')} x {_count(s.layers, 'layer')})": count(
                p["cgru"]
            ),
            "output projection": count(p["W_o"]) + count(p["b_o"]),
        }


__all__ = [
    "NeuralGPU",
    "CompiledNeuralGPU",
    "cgru",
    "conv",
    "hard_sigmoid",
    "hard_tanh",
    "saturation_excess",
    "shift_diagonal",
    "conv_matmul",
    "patches",
    "init_cgru",
    "relaxation_penalty",
    "saturating_sigmoid",
    "saturating_tanh",
]
