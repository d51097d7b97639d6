"""Encoder-decoder machines: an encoder reads the source, a decoder machine writes the target.

``Seq2Seq(encoder, decoder)`` is a spec like :class:`~difmachine.Machine`; ``compile`` turns it
into a :class:`CompiledSeq2Seq` with the same calling convention as a compiled machine, so the
training loop, checkpoints and traces treat both alike:

- the source comes in as the example's context, ``Context(values[S, in], mask[S])``;
- the encoder (a controller run over the source, or both ways with ``bidirectional=True``)
  turns it into states ``[S, E]`` and a summary (its final state, both directions
  concatenated);
- the decoder is an ordinary compiled :class:`~difmachine.Machine`. Its controller starts from
  ``tanh(W summary + b)`` (one map per leaf of the controller's state, the "bridge"), and every
  :class:`~difmachine.Attention` device among its devices gets the encoder's states (with the
  source mask) as its context. Without an attention device this is the plain encoder-decoder
  of Sutskever et al. (2014), whose only view of the source is the summary.

Training runs the decoder teacher-forced (its inputs are the target shifted by one, after a
start token); evaluation decodes greedily with :meth:`CompiledSeq2Seq.generate`, feeding each
output back as the next input until the end token. Both compile once for padded lengths.

Why not a special "decoder machine" in the compiler: the decoder needs nothing new beyond two
hooks every machine now has (``controller_state=`` and ``context=`` at the start, and
``generate`` for feedback decoding), so the encoder-decoder is a thin composition and any
machine (an NTM, a stack, ACT) can be the decoder.
"""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping

import equinox as eqx
import jax
import jax.numpy as jnp

from ._init import glorot, zeros
from .compiler import CompiledMachine, Machine, _count, keep_padding
from .compiler import compile as compile_machine
from .controllers import LSTM
from .devices.attention import Attention
from .protocol import AbstractController
from .tasks.base import Context


class Encoder(eqx.Module):
    """Runs ``controller`` over the source (padding keeps its state); ``bidirectional`` adds a
    second copy run right to left, and the states are the two directions concatenated."""

    controller: AbstractController
    bidirectional: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        if not isinstance(self.controller, AbstractController):
            raise TypeError(
                f"Encoder needs a controller such as LSTM(128), got {self.controller!r}"
            )

    @property
    def directions(self) -> int:
        return 2 if self.bidirectional else 1

    @property
    def output_size(self) -> int:
        return self.controller.output_size * self.directions

    def init_params(self, key, input_size: int):
        params = []
        for k in jax.random.split(key, self.directions):
            k_c, k_x = jax.random.split(k)
            params.append(
                {
                    "controller": self.controller.init_params(k_c),
                    "W_x": glorot(k_x, input_size, self.controller.input_width),
                }
            )
        return params

    def _run(self, params, xs, mask):
        ctrl = self.controller
        zs = xs.astype(jnp.float32) @ params["W_x"]

        def body(state, inputs):
            z, m = inputs
            h, new = ctrl.step(params["controller"], state, z)
            state = keep_padding(m, new, state)
            return state, h

        state, hs = jax.lax.scan(body, ctrl.init_state(params["controller"]), (zs, mask))
        return hs, state

    def encode(self, params, xs: jax.Array, mask: jax.Array):
        """``xs[S, in]``, ``mask[S]`` -> ``(states[S, E], summary)``; ``summary`` is the final
        controller state of each direction (a list), which the bridge maps to the decoder."""
        mask = mask.astype(jnp.float32)
        hs, last = self._run(params[0], xs, mask)
        states, summary = [hs], [last]
        if self.bidirectional:
            # right to left: padding (at the end) comes first and leaves the state untouched
            hs_b, last_b = self._run(params[1], xs[::-1], mask[::-1])
            states.append(hs_b[::-1])
            summary.append(last_b)
        return jnp.concatenate(states, axis=-1), summary


def BiLSTM(hidden: int) -> Encoder:
    """A bidirectional LSTM encoder (``hidden`` units each way; states are ``2 * hidden`` wide)."""
    return Encoder(LSTM(hidden), bidirectional=True)


class Seq2Seq(eqx.Module):
    """An encoder and a decoder machine (see the module docstring)."""

    encoder: Encoder
    decoder: Machine

    def __init__(self, encoder: Encoder | AbstractController, decoder: Machine):
        if isinstance(encoder, AbstractController):
            encoder = Encoder(encoder)
        if not isinstance(encoder, Encoder):
            raise TypeError(
                f"Seq2Seq encoder must be Encoder(LSTM(n)) or BiLSTM(n), got {encoder!r}"
            )
        if not isinstance(decoder, Machine):
            raise TypeError(f"Seq2Seq decoder must be a Machine(...), got {decoder!r}")
        E = encoder.output_size
        devices = []
        for name, dev in zip(decoder.names, decoder.devices):
            if isinstance(dev, Attention) and dev.story is None:
                if dev.context_size not in (None, E):
                    raise ValueError(
                        f"Seq2Seq: attention {name!r} has context_size {dev.context_size} but "
                        f"the encoder's states are {E} wide; leave context_size unset"
                    )
                dev = dataclasses.replace(dev, context_size=E)
            devices.append(dev)
        self.encoder = encoder
        self.decoder = Machine(
            decoder.controller,
            dict(zip(decoder.names, devices)),
            decoder.halting,
            readout=decoder.readout,
        )

    @property
    def attention(self) -> tuple[str, ...]:
        return tuple(
            n for n, d in zip(self.decoder.names, self.decoder.devices) if isinstance(d, Attention)
        )


class CompiledSeq2Seq(eqx.Module):
    """A compiled :class:`Seq2Seq`: encoder and bridge parameters plus the compiled decoder."""

    spec: Seq2Seq
    decoder: CompiledMachine
    context_size: int = eqx.field(static=True)
    params: dict

    @staticmethod
    def build(spec: Seq2Seq, input_size, output_size, *, key, context_size, remat=False):
        if not isinstance(context_size, int) or context_size < 1:
            raise ValueError(
                "compile: a Seq2Seq needs context_size=..., the width of the source tokens "
                "(the task's context_size)"
            )
        k_enc, k_dec, k_bridge = jax.random.split(key, 3)
        decoder = compile_machine(spec.decoder, input_size, output_size, key=k_dec, remat=remat)
        ctrl = spec.decoder.controller
        leaves = jax.tree.leaves(ctrl.init_state(decoder.params["controller"]))
        enc = spec.encoder.controller  # the summary: every leaf of each direction's final state
        state = jax.eval_shape(lambda: enc.init_state(enc.init_params(k_enc)))
        E = sum(leaf.size for leaf in jax.tree.leaves(state)) * spec.encoder.directions
        bridge = [
            {"W": glorot(k, E, leaf.size), "b": zeros(leaf.size)}
            for k, leaf in zip(jax.random.split(k_bridge, max(1, len(leaves))), leaves)
        ]
        params = {"encoder": spec.encoder.init_params(k_enc, context_size), "bridge": bridge}
        return CompiledSeq2Seq(spec, decoder, context_size, params)

    # the attributes the training loop, traces and the CLI read from a compiled machine
    @property
    def machine(self) -> Machine:
        return self.decoder.machine

    @property
    def input_size(self) -> int:
        return self.decoder.input_size

    @property
    def output_size(self) -> int:
        return self.decoder.output_size

    def start(self, context):
        """Encode the source: the decoder's initial controller state and its devices' contexts.

        ``context`` is the source ``Context(values[S, in], mask[S])``, or a mapping with the
        source under ``"source"`` and other entries named after decoder devices (e.g. a table
        for an operation selector); attention devices not named there get the encoder's states.
        """
        extra = {}
        if isinstance(context, Mapping):
            extra = {k: v for k, v in context.items() if k != "source"}
            context = context.get("source")
        if context is None:
            raise ValueError(
                "a Seq2Seq machine needs its source: call it with context=Context(...)"
            )
        values, mask = context
        states, summary = self.spec.encoder.encode(self.params["encoder"], values, mask)
        encoded = Context(states, mask)
        routed = {
            name: extra.get(name, encoded if isinstance(dev, Attention) else None)
            for name, dev in zip(self.machine.names, self.machine.devices)
        }
        flat = jnp.concatenate([leaf.reshape(-1) for leaf in jax.tree.leaves(summary)])
        template = self.spec.decoder.controller.init_state(self.decoder.params["controller"])
        leaves, treedef = jax.tree.flatten(template)
        init = [
            jnp.tanh(flat @ b["W"] + b["b"]).reshape(leaf.shape)
            for b, leaf in zip(self.params["bridge"], leaves)
        ]
        return jax.tree.unflatten(treedef, init), routed

    def __call__(self, xs, mask=None, *, trace: bool = False, context=None, probes=None):
        """Teacher-forced decoding of one example (see :meth:`CompiledMachine.__call__`)."""
        controller_state, encoded = self.start(context)
        return self.decoder(
            xs,
            mask,
            trace=trace,
            context=encoded,
            controller_state=controller_state,
            probes=probes,
        )

    def probes(self, steps: int, batch: int | None = None):
        """The decoder's probes (:meth:`CompiledMachine.probes`)."""
        return self.decoder.probes(steps, batch)

    def hoisted_gradients(self, grads, taps, cotangents):
        """The decoder's in-loop weight gradients added (:meth:`CompiledMachine.hoisted_gradients`)."""
        decoder = self.decoder.hoisted_gradients(grads.decoder, taps, cotangents)
        return eqx.tree_at(lambda g: g.decoder, grads, decoder)

    def generate(self, first, steps, feedback, stop=None, *, trace=False, context=None):
        """Greedy decoding (see :meth:`CompiledMachine.generate`)."""
        controller_state, encoded = self.start(context)
        return self.decoder.generate(
            first,
            steps,
            feedback,
            stop,
            trace=trace,
            context=encoded,
            controller_state=controller_state,
        )

    def param_counts(self) -> dict[str, int]:
        return {
            "encoder": _count(self.params["encoder"]),
            "bridge": _count(self.params["bridge"]),
            **{f"decoder {k}": v for k, v in self.decoder.param_counts().items()},
        }


__all__ = ["Encoder", "BiLSTM", "Seq2Seq", "CompiledSeq2Seq"]
