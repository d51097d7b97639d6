"""Encoder-decoder machines: an encoder reads the source, a decoder machine writes the target.

``Seq2Seq(encoder, decoder)`` is a spec like :class:`~difmachine.Machine`; ``compile`` turns it
into a :class:`CompiledSeq2Seq` with the same calling convention as a compiled machine, so the
training loop, checkpoints and traces treat both alike:

- the source comes in as the example's context, ``Context(values[S, in], mask[S])``;
- the encoder (a controller run over the source, or both ways with ``bidirectional=True``, or
  any :class:`~difmachine.Machine`, e.g. one with its own memory) turns it into states
  ``[S, E]`` and a summary (its final controller state, both directions concatenated);
- the decoder is an ordinary compiled :class:`~difmachine.Machine`. Its controller starts from
  ``tanh(W summary + b)`` (one map per leaf of the controller's state, the "bridge"), and every
  device of the decoder that reads the context ``"source"`` (an ``Attention``) gets the encoder's
  states (with the source mask) instead of the raw source. Other contexts of the task (a table)
  pass through unchanged. Without such a device this is the plain encoder-decoder of Sutskever
  et al. (2014), whose only view of the source is the summary.

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
from .controllers import LSTM
from .errors import CompileError
from .machine import CompiledMachine, Machine, _count, keep_padding
from .protocol import AbstractCompiledMachine, AbstractController, AbstractMachine
from .tasks.base import Context

SOURCE = "source"  # the context a Seq2Seq encodes, and what its decoder's devices then read


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


class Seq2Seq(AbstractMachine):
    """An encoder and a decoder machine (see the module docstring).

    ``encoder``: a controller (``LSTM(64)``), an :class:`Encoder` (``BiLSTM(64)``) or a
    :class:`~difmachine.Machine`, whose outputs (``encoder_size`` wide, default its
    controller's output size) are the states the decoder attends over.
    """

    encoder: Encoder | Machine
    decoder: Machine
    encoder_size: int | None = eqx.field(static=True, default=None)

    def __init__(
        self,
        encoder: Encoder | AbstractController | Machine,
        decoder: Machine,
        encoder_size: int | None = None,
    ):
        if isinstance(encoder, AbstractController):
            encoder = Encoder(encoder)
        if not isinstance(encoder, (Encoder, Machine)):
            raise TypeError(
                "Seq2Seq encoder must be a controller such as LSTM(64), BiLSTM(64) or a "
                f"Machine(...), got {encoder!r}"
            )
        if not isinstance(decoder, Machine):
            raise TypeError(f"Seq2Seq decoder must be a Machine(...), got {decoder!r}")
        if isinstance(encoder, Encoder) and encoder_size is not None:
            raise ValueError("Seq2Seq encoder_size is for a Machine encoder; leave it unset")
        if isinstance(encoder, Machine) and encoder_size is None:
            encoder_size = encoder.controller.output_size
        self.encoder = encoder
        self.encoder_size = encoder_size
        self.decoder = decoder.bind_contexts({SOURCE: self.states_size})

    @property
    def states_size(self) -> int:
        """The width ``E`` of the encoder's states."""
        if isinstance(self.encoder, Encoder):
            return self.encoder.output_size
        return self.encoder_size

    def contexts_read(self) -> frozenset[str]:
        parts = [self.decoder, *([self.encoder] if isinstance(self.encoder, Machine) else [])]
        return frozenset({SOURCE}).union(*(part.contexts_read() for part in parts))

    def check_contexts(self, provided):
        if SOURCE not in provided:
            have = ", ".join(sorted(provided)) or "none"
            raise ValueError(
                f"a Seq2Seq encodes the context {SOURCE!r}, which the task does not provide "
                f"(its contexts: {have}); use a sequence-to-sequence task such as ReverseString()"
            )
        if isinstance(self.encoder, Machine):
            self.encoder.check_contexts(provided)
        self.decoder.check_contexts({**provided, SOURCE: self.states_size})

    def prefers_remat(self) -> bool:
        return self.decoder.prefers_remat()

    def compile(self, input_size, output_size, *, key, remat=False, contexts=None):
        width = (contexts or {}).get(SOURCE)
        if not isinstance(width, int) or width < 1:
            raise CompileError(
                "compile: a Seq2Seq needs the width of its source tokens: "
                "contexts={'source': n} (a task's contexts), or context_size=n"
            )
        return CompiledSeq2Seq.build(
            self, input_size, output_size, key=key, contexts=dict(contexts), remat=remat
        )


class CompiledSeq2Seq(AbstractCompiledMachine):
    """A compiled :class:`Seq2Seq`: encoder and bridge parameters plus the compiled decoder (and
    the compiled encoder, when the encoder is a machine)."""

    spec: Seq2Seq
    decoder: CompiledMachine
    encoder: CompiledMachine | None
    context_size: int = eqx.field(static=True)
    params: dict

    @staticmethod
    def build(spec: Seq2Seq, input_size, output_size, *, key, contexts, remat=False):
        context_size = contexts[SOURCE]
        k_enc, k_dec, k_bridge = jax.random.split(key, 3)
        decoder = spec.decoder.compile(
            input_size,
            output_size,
            key=k_dec,
            remat=remat,
            contexts={**contexts, SOURCE: spec.states_size},
        )
        ctrl = spec.decoder.controller
        leaves = jax.tree.leaves(ctrl.init_state(decoder.params["controller"]))
        if isinstance(spec.encoder, Machine):
            encoder = spec.encoder.compile(
                context_size, spec.states_size, key=k_enc, remat=remat, contexts=contexts
            )
            params = {}
            enc, directions = spec.encoder.controller, 1
        else:
            encoder = None
            params = {"encoder": spec.encoder.init_params(k_enc, context_size)}
            enc, directions = spec.encoder.controller, spec.encoder.directions
        # the summary: every leaf of each direction's final controller state
        state = jax.eval_shape(lambda: enc.init_state(enc.init_params(k_enc)))
        E = sum(leaf.size for leaf in jax.tree.leaves(state)) * directions
        params["bridge"] = [
            {"W": glorot(k, E, leaf.size), "b": zeros(leaf.size)}
            for k, leaf in zip(jax.random.split(k_bridge, max(1, len(leaves))), leaves)
        ]
        return CompiledSeq2Seq(spec, decoder, encoder, context_size, params)

    @property
    def machine(self) -> Machine:
        """The decoder's machine spec."""
        return self.decoder.machine

    @property
    def input_size(self) -> int:
        return self.decoder.input_size

    @property
    def output_size(self) -> int:
        return self.decoder.output_size

    def encode(self, source: Context, others: dict):
        """``(states[S, E], summary)`` of the source."""
        values, mask = source
        if self.encoder is not None:
            mask = jnp.asarray(mask, jnp.float32)
            states, aux = self.encoder(values, mask, context={**others, SOURCE: source})
            return states, [aux["state"][0]]
        return self.spec.encoder.encode(self.params["encoder"], values, mask)

    def start(self, context):
        """Encode the source: the decoder's initial controller state and its contexts.

        ``context`` holds the source under ``"source"`` (``Context(values[S, in], mask[S])``)
        and any other named contexts of the task; a bare ``Context`` is the source alone. The
        decoder gets the encoder's states as ``"source"`` and the others unchanged.
        """
        if isinstance(context, Mapping):
            others = {k: v for k, v in context.items() if k != SOURCE}
            source = context.get(SOURCE)
        else:
            others, source = {}, context
        if source is None:
            raise ValueError(
                "a Seq2Seq machine needs its source: call it with context={'source': Context(...)}"
            )
        states, summary = self.encode(source, others)
        routed = {**others, SOURCE: Context(states, jnp.asarray(source[1], jnp.float32))}
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
        controller_state, routed = self.start(context)
        return self.decoder(
            xs,
            mask,
            trace=trace,
            context=routed,
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
        controller_state, routed = self.start(context)
        return self.decoder.generate(
            first,
            steps,
            feedback,
            stop,
            trace=trace,
            context=routed,
            controller_state=controller_state,
        )

    def components(self):
        return self.decoder.components()

    def statistics(self):
        return self.decoder.statistics()

    def task_loss(self, task, ys, aux, targets, loss_mask):
        return self.decoder.task_loss(task, ys, aux, targets, loss_mask)

    def at_step(self, step: int) -> CompiledSeq2Seq:
        decoder = self.decoder.at_step(step)
        encoder = None if self.encoder is None else self.encoder.at_step(step)
        if decoder is self.decoder and encoder is self.encoder:
            return self
        return dataclasses.replace(self, decoder=decoder, encoder=encoder)

    def summary(self):
        enc = self.spec.encoder
        return [
            (f"encoder {enc!r}, decoder {title}", cols, rows)
            for title, cols, rows in self.decoder.summary()
        ]

    def param_counts(self) -> dict[str, int]:
        encoder = self.params.get("encoder") if self.encoder is None else self.encoder.params
        return {
            "encoder": _count(encoder),
            "bridge": _count(self.params["bridge"]),
            **{f"decoder {k}": v for k, v in self.decoder.param_counts().items()},
        }


__all__ = ["Encoder", "BiLSTM", "Seq2Seq", "CompiledSeq2Seq", "SOURCE"]
