"""Attention over a context sequence: Bahdanau/Luong attention and memory-network hops.

The device's memory is a context handed to ``init_state``: a :class:`~difmachine.tasks.Context`
of ``values[S, E]`` (an encoder's states) with ``mask[S]``. Each step the controller emits a
query; the device scores every position, turns the scores into a distribution in which padded
positions get exactly zero weight, and returns the weighted sum of the values.

Scores (``q`` the query, ``c_j`` the context vectors):

- ``additive`` (Bahdanau et al. 2014): ``v . tanh(W c_j + q)``; the query is ``W_2 s`` of the
  paper, emitted by the controller's interface projection, ``W c_j`` is computed once per
  sequence in ``init_state``;
- ``dot`` (Luong et al. 2015): ``c_j . q``;
- ``general`` (Luong et al. 2015): ``(W c_j) . q``, i.e. ``c_j^T W q`` with ``W c_j`` computed
  once per sequence.

With ``coverage=True`` (Tu et al. 2016; See et al. 2017) the device keeps the coverage
``cov_j``, the sum of its past weights on position ``j``, and scores with it: additive
``v . tanh(W c_j + q + w_c cov_j)`` (``w_c`` a learned vector), dot and general add
``w_c cov_j`` (a learned scalar) to the score. ``w_c`` starts at 0, so an untrained coverage
attention scores like the plain one; a trained one can learn to move on from positions it has
already read, which is what a decoder needs to keep going past the training lengths.

With ``location=True`` the weights are then moved by the Neural Turing Machine's location
addressing (Graves et al. 2014, section 3.3.2), applied to the source: the controller emits a
gate ``g``, a shift distribution ``s`` over -1 / 0 / +1 positions and a sharpening ``gamma >=
1``, and ``w = sharpen(shift(g w_content + (1 - g) w_prev, s), gamma)``, zero on padding. The
shift does not wrap around (a sequence has ends, unlike the NTM's ring of slots), so weight moved
past either end is lost before the sharpening renormalises (all of it lost: uniform weights).
``w_prev`` starts at 0, so the first step is content alone. A decoder can then find where to
start by content and walk the source one position per step, which does not depend on how long
the source is: the alignment that reversal and copying need at every length (contrast coverage,
which only says where it has been).

With ``story=StoryEmbedding(...)`` the context is a story: ``values[S, J]`` word ids of ``S``
sentences (0 = no word) and the device is the memory of an end-to-end memory network
(Sukhbaatar et al. 2015): keys ``m_i`` and values ``c_i`` are position-encoded bags of words
with separate embeddings and a temporal encoding; run it for several hops with ``Fixed(hops)``.

With ``linear_start=n`` the device trains its first ``n`` steps without the softmax: the
weights are the raw scores (zero on padding), and from step ``n`` on the softmax is back
(Sukhbaatar et al. 2015, section 4.2: "linear start", which they found to help the memory
network out of the poor local minima it otherwise lands in on some tasks). The paper puts the
softmax back when the validation loss stops falling; here it is a fixed step, so a resumed run
switches at the same step. ``eval`` and ``trace`` of a checkpoint use the device's form at the
checkpoint's step.
"""

from __future__ import annotations

import dataclasses
from typing import Any

import equinox as eqx
import jax
import jax.numpy as jnp

from .. import addressing
from .._init import glorot
from ..errors import CompileError
from ..protocol import AbstractDevice, Field, TraceField, check_count, check_flag

KINDS = ("additive", "dot", "general")
SHIFTS = (-1, 0, 1)  # location addressing's moves, in positions
_MASKED = -1e30  # exp(_MASKED - max) is exactly 0 in float32


def attend(scores: jax.Array, mask: jax.Array) -> jax.Array:
    """Softmax of ``scores[S]`` over the positions where ``mask[S]`` is 1; masked positions get
    exactly 0. With no real position at all the weights are all 0 (the read is zero)."""
    real = mask > 0
    w = jax.nn.softmax(jnp.where(real, scores, _MASKED))
    return jnp.where(real, w, 0.0)


def position_encoding(length: jax.Array, words: int, dim: int) -> jax.Array:
    """Sukhbaatar et al. (2015), section 4.1: ``l[j, k] = (1 - j/J) - (k/d)(1 - 2j/J)`` with
    1-based word position ``j`` and embedding index ``k``, ``J`` the sentence's length.
    Returns ``[words, dim]`` (rows past ``length`` are meaningless: those words are masked)."""
    J = jnp.maximum(length, 1).astype(jnp.float32)
    j = jnp.arange(1, words + 1, dtype=jnp.float32)[:, None]
    k = jnp.arange(1, dim + 1, dtype=jnp.float32)[None, :]
    return (1.0 - j / J) - (k / dim) * (1.0 - 2.0 * j / J)


class StoryEmbedding(eqx.Module):
    """Embeds a story of ``sentences`` sentences of up to ``words`` word ids from ``vocab`` (id
    0 is padding) as memory-network keys and values of width ``dim``.

    ``m_i = sum_j l_j * A[x_ij] + T_A[age_i]`` and ``c_i = sum_j l_j * C[x_ij] + T_C[age_i]``,
    with the position encoding ``l`` (or a plain bag of words with ``position_encoding=False``)
    and ``age_i = 0`` for the most recent sentence (temporal encoding, ``temporal=True``).
    """

    vocab: int = eqx.field(static=True)
    dim: int = eqx.field(static=True, default=20)
    sentences: int = eqx.field(static=True, default=20)
    words: int = eqx.field(static=True, default=8)
    position_encoding: bool = eqx.field(static=True, default=True)
    temporal: bool = eqx.field(static=True, default=True)

    def __check_init__(self):
        for name in ("vocab", "dim", "sentences", "words"):
            value = getattr(self, name)
            if not isinstance(value, int) or value < 1:
                raise ValueError(f"StoryEmbedding {name} must be a positive integer, got {value!r}")

    def init_params(self, key):
        k_a, k_c, k_ta, k_tc = jax.random.split(key, 4)
        scale = 0.1  # the paper's N(0, 0.1) initialisation
        normal = lambda k, shape: scale * jax.random.normal(k, shape, jnp.float32)
        return {
            "A": normal(k_a, (self.vocab, self.dim)),
            "C": normal(k_c, (self.vocab, self.dim)),
            "T_A": normal(k_ta, (self.sentences, self.dim)),
            "T_C": normal(k_tc, (self.sentences, self.dim)),
        }

    def embed(self, params, tokens: jax.Array, mask: jax.Array) -> tuple[jax.Array, jax.Array]:
        """``tokens[S, J]`` (ints, 0 = none), ``mask[S]`` -> keys ``[S, dim]``, values ``[S, dim]``."""
        tokens = tokens.astype(jnp.int32)
        S, J = tokens.shape
        if S > self.sentences or J > self.words:
            raise CompileError(  # a user's setting: one line from the CLI, not a traceback
                f"a story of {S} sentences x {J} words does not fit StoryEmbedding(sentences="
                f"{self.sentences}, words={self.words}): train with more (memn2n_babi.py: --set "
                f"memory={S}), or use shorter stories or fewer empty memories"
            )
        present = (tokens > 0).astype(jnp.float32)
        if self.position_encoding:
            lengths = present.sum(axis=1)
            weights = jax.vmap(lambda n: position_encoding(n, J, self.dim))(lengths)
        else:
            weights = jnp.ones((S, J, self.dim), jnp.float32)
        weights = weights * present[:, :, None]
        keys = jnp.sum(weights * params["A"][tokens], axis=1)
        values = jnp.sum(weights * params["C"][tokens], axis=1)
        if self.temporal:
            real = (mask > 0).astype(jnp.int32)
            age = jnp.clip(jnp.sum(real) - 1 - jnp.arange(S), 0, self.sentences - 1)
            keys = keys + params["T_A"][age]
            values = values + params["T_C"][age]
        return keys, values


class Attention(AbstractDevice):
    """Content-based attention over a context sequence (see the module docstring).

    - ``kind``: ``"additive"``, ``"dot"`` or ``"general"``.
    - ``size``: the query width for additive and general attention (the scoring layer's width);
      dot attention's query is as wide as the context.
    - ``context_size``: the width ``E`` of the context vectors, which is also the read width.
      :class:`~difmachine.Seq2Seq` fills it in from its encoder; with ``story`` it is the
      story's embedding width.
    - ``story``: a :class:`StoryEmbedding` for memory networks (the context is word ids).
    - ``coverage``: score with the sum of the past weights (see the module docstring).
    - ``linear_start``: train the first ``linear_start`` steps without the softmax (the
      weights are the scores; see the module docstring).
    - ``linear``: that form without the softmax. :meth:`at_step` sets it during a linear
      start; without one, ``linear=True`` is a device that never has the softmax.
    - ``location``: location addressing after the content weights (the NTM's gate, shift by
      -1 / 0 / +1 and sharpening; see the module docstring).

    Trace: ``weights[S]`` per step: stacked over a decoder's steps it is the alignment matrix.
    """

    kind: str = eqx.field(static=True, default="additive")
    size: int | None = eqx.field(static=True, default=None)
    context_size: int | None = eqx.field(static=True, default=None)
    story: StoryEmbedding | None = None
    coverage: bool = eqx.field(static=True, default=False)
    linear_start: int = eqx.field(static=True, default=0)
    linear: bool = eqx.field(static=True, default=False)
    location: bool = eqx.field(static=True, default=False)

    def __check_init__(self):
        check_count("Attention", "linear_start", self.linear_start, 0)
        for flag in ("linear", "coverage", "location"):
            check_flag("Attention", flag, getattr(self, flag))
        if self.location and (self.linear or self.linear_start):
            raise ValueError(
                "Attention location addressing shifts and sharpens a distribution, so it needs "
                "the softmax: drop linear / linear_start, or location"
            )
        if self.kind not in KINDS:
            raise ValueError(f"Attention kind must be one of {', '.join(KINDS)}, got {self.kind!r}")
        if self.size is not None and (not isinstance(self.size, int) or self.size < 1):
            raise ValueError(f"Attention size must be a positive integer, got {self.size!r}")
        if self.kind in ("additive", "general") and self.size is None:
            raise ValueError(f"Attention({self.kind!r}) needs size=..., the query width")
        if self.story is not None and self.context_size not in (None, self.story.dim):
            raise ValueError(
                f"Attention context_size {self.context_size} differs from its story's dim "
                f"{self.story.dim}"
            )

    @property
    def width(self) -> int:
        """The context width ``E`` (= read size)."""
        if self.story is not None:
            return self.story.dim
        if self.context_size is None:
            raise ValueError(
                "Attention needs context_size=... (the width of the context vectors); a program "
                "sets it from its task's source, and Seq2Seq from its encoder"
            )
        return self.context_size

    def context(self) -> str:
        """A story (memory networks) or a source sequence (an encoder's states, in a Seq2Seq)."""
        return "story" if self.story is not None else "source"

    def bind_context(self, width):
        if self.story is not None or width is None or self.context_size == width:
            return self
        if self.context_size is not None:
            raise ValueError(
                f"Attention has context_size {self.context_size} but its context's vectors are "
                f"{width} wide; leave context_size unset"
            )
        return dataclasses.replace(self, context_size=width)

    def interface(self):
        query = self.width if self.kind == "dot" else self.size
        fields = {"query": Field((query,), "identity")}
        if self.location:
            fields["gate"] = Field((1,), "sigmoid")
            fields["shift"] = Field((len(SHIFTS),), "softmax")
            fields["gamma"] = Field((1,), "oneplus")
        return fields

    @property
    def read_size(self) -> int:
        return self.width

    def init_params(self, key):
        k_w, k_v, k_story = jax.random.split(key, 3)
        params: dict[str, Any] = {}
        if self.kind in ("additive", "general"):
            params["W"] = glorot(k_w, self.width, self.size)
        if self.kind == "additive":
            params["v"] = glorot(k_v, self.size, 1)[:, 0]
        if self.story is not None:
            params["story"] = self.story.init_params(k_story)
        if self.coverage:
            params["w_c"] = jnp.zeros((self.size,) if self.kind == "additive" else (), jnp.float32)
        return params

    def init_state(self, params, context=None):
        if context is None:
            raise ValueError(
                f"Attention needs a context: run the machine with context={{{self.context()!r}: "
                "Context(values, mask)}"
            )
        values, mask = context
        mask = jnp.asarray(mask, jnp.float32)
        if self.story is not None:
            keys, values = self.story.embed(params["story"], values, mask)
        else:
            values = jnp.asarray(values, jnp.float32)
            if values.shape[-1] != self.width:
                raise ValueError(
                    f"Attention context vectors are {values.shape[-1]} wide, "
                    f"but context_size is {self.width}"
                )
            keys = values
        if self.kind in ("additive", "general"):
            keys = keys @ params["W"]
        state = {"keys": keys, "values": values, "mask": mask}
        if self.coverage:
            state["coverage"] = jnp.zeros(mask.shape, jnp.float32)
        if self.location:
            state["previous"] = jnp.zeros(mask.shape, jnp.float32)
        return state

    def scores(self, params, state, query: jax.Array) -> jax.Array:
        if self.kind == "additive":
            pre = state["keys"] + query[None, :]
            if self.coverage:
                pre = pre + state["coverage"][:, None] * params["w_c"][None, :]
            return jnp.tanh(pre) @ params["v"]
        scores = state["keys"] @ query
        return scores + params["w_c"] * state["coverage"] if self.coverage else scores

    def at_step(self, step: int) -> Attention:
        if not self.linear_start:  # no linear start: the form the program gave, throughout
            return self
        linear = step < self.linear_start
        return self if linear == self.linear else dataclasses.replace(self, linear=linear)

    def step(self, params, state, iface):
        scores = self.scores(params, state, iface["query"])
        if self.linear:  # linear start: the scores themselves, zero on padding
            weights = jnp.where(state["mask"] > 0, scores, 0.0)
        else:
            weights = attend(scores, state["mask"])
        if self.location:
            weights = self.locate(weights, state, iface)
            state = {**state, "previous": weights}
        if self.coverage:
            state = {**state, "coverage": state["coverage"] + weights}
        return weights @ state["values"], state, {"weights": weights}

    @staticmethod
    def locate(content: jax.Array, state, iface) -> jax.Array:
        """Location addressing of the content weights: gate with the previous weights, shift
        (without wrapping) and sharpen, zero on padding."""
        w = addressing.interpolate(content, state["previous"], iface["gate"][0])
        w = addressing.shift(w, iface["shift"], SHIFTS, circular=False)
        # sharpen as a masked softmax of gamma log w: the same distribution as
        # addressing.sharpen, but finite when every real weight is (nearly) 0 -- shifted past
        # an end -- where w ** gamma / sum would be 0 / 0; it is then uniform
        return attend(iface["gamma"][0] * jnp.log(w + addressing.SHARPEN_FLOOR), state["mask"])

    def trace_spec(self):
        return {"weights": TraceField("heatmap", "attention", axis=self.context())}


__all__ = ["Attention", "StoryEmbedding", "attend", "position_encoding", "KINDS", "SHIFTS"]
