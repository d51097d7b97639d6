"""A hand-written NTM copy-task training step in plain JAX (no difmachine), written for speed.

It computes the same math as difmachine's compiled machine for ``programs/ntm_copy.py``:
LSTM(100) fed ``[x_t; read_{t-1}]``, one fused interface projection (write head: key, beta, gate,
shift, gamma, erase, add; read head: key, beta, gate, shift, gamma), a 128x20 memory starting at
1e-6, write-then-read each step, ``y_t = W_o [h_t; read_t] + b_o``, BCE summed over bits on scored
steps averaged over the batch, Adam 1e-3 after global-norm clipping at 10.

Levers applied (see bench/FINDINGS.md for what each is worth on this CPU):
- batch-major step, no vmap: every array has a leading batch axis;
- memory stored ``(B, W, N)`` so the slot axis is innermost (``layout="bnw"`` to compare);
- ``W_x x_t`` for all t is one matmul before the scan, ``W_o [h; r]`` one matmul after it;
- ``[r_{t-1}; h_{t-1}] @ [W_r; U]`` is one matmul per step;
- memory contractions (key . M, w . M) as batched einsums; outer products elementwise;
- elementwise 3-way circular shift from slices of one padded concatenate;
- the slot norms of the memory written at step t are carried to step t+1, where the write head
  addresses that same memory (one reduction over the memory per step instead of two);
- padding mask folded into the write weighting (a frozen step writes nothing, so the memory needs
  no select); the small state arrays are frozen with ``jnp.where``. Outputs on padded steps may
  differ from difmachine's, but they are never scored, so loss and gradients are the same;
- optional ``jax.checkpoint`` on the scan body (``remat``): only the carry is saved per step;
- weight gradients of the in-loop matmuls as one matmul each after the backward scan instead of
  an accumulation per step (``hoist_weight_grads``);
- batches larger than ``chunk`` run as a loop over chunks, whose working set stays in cache;
- params and optimizer state donated to the step (``donate``);
- float32 everywhere (no weakly typed inputs, so the second call does not recompile).
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from functools import partial

import jax
import jax.numpy as jnp
import optax

F32 = jnp.float32
EPS = 1e-8  # under the square roots of the cosine similarity
FLOOR = 1e-12  # added to weights before sharpening


@dataclass(frozen=True)
class Config:
    bits: int = 8
    hidden: int = 100
    slots: int = 128
    width: int = 20
    init_value: float = 1e-6
    remat: bool = True
    layout: str = "bwn"  # memory layout: "bwn" (slot axis innermost) or "bnw"
    lr: float = 1e-3
    clip: float = 10.0
    donate: bool = True
    hoist_weight_grads: bool = True
    chunk: int = 32  # larger batches run as a loop over chunks of this many sequences (0: never)

    @property
    def input_size(self) -> int:
        return self.bits + 1

    @property
    def iface_size(self) -> int:
        return 4 * self.width + 12  # write head (W+6), erase (W), add (W), read head (W+6)


def _glorot(key, fan_in, fan_out):
    limit = math.sqrt(6.0 / (fan_in + fan_out))
    return jax.random.uniform(key, (fan_in, fan_out), F32, -limit, limit)


def init_params(cfg: Config, key) -> dict:
    H, W, N = cfg.hidden, cfg.width, cfg.slots
    k_u, k_x, k_r, k_i, k_o = jax.random.split(key, 5)
    focused = lambda: jnp.zeros((N,), F32).at[0].set(10.0)  # distinct buffers (donation)
    return {
        "W_x": _glorot(k_x, cfg.input_size, 4 * H),
        # [W_r; U]: the previous read and the previous h enter the LSTM through one matmul
        "W_rh": jnp.concatenate([_glorot(k_r, W, 4 * H), _glorot(k_u, H, 4 * H)], axis=0),
        "b": jnp.zeros((4 * H,), F32).at[H : 2 * H].set(1.0),  # gates i, f, g, o; forget bias 1
        "W_i": _glorot(k_i, H, cfg.iface_size),
        "b_i": jnp.zeros((cfg.iface_size,), F32),
        "W_o": _glorot(k_o, H + W, cfg.bits),
        "b_o": jnp.zeros((cfg.bits,), F32),
        "read_logits": focused(),
        "write_logits": focused(),
    }


def _split_head(f, W):
    """key tanh, beta softplus, gate sigmoid, 3-way shift softmax, gamma 1+softplus."""
    return (
        jnp.tanh(f[:, :W]),
        jax.nn.softplus(f[:, W : W + 1]),
        jax.nn.sigmoid(f[:, W + 1 : W + 2]),
        jax.nn.softmax(f[:, W + 2 : W + 5], axis=1),
        1.0 + jax.nn.softplus(f[:, W + 5 : W + 6]),
    )


def _slot_norms(mem, cfg):
    return jnp.sqrt(jnp.sum(mem * mem, axis=1 if cfg.layout == "bwn" else 2) + EPS)


def _address(mem, norms, head, w_prev, cfg):
    """content -> interpolate -> shift -> sharpen, for a batch: ``mem (B,W,N)``, ``w (B,N)``."""
    key, beta, gate, shift, gamma = head
    dots = jnp.einsum("bw,bwn->bn" if cfg.layout == "bwn" else "bw,bnw->bn", key, mem)
    key_norm = jnp.sqrt(jnp.sum(key * key, axis=1, keepdims=True) + EPS)
    w = jax.nn.softmax(beta * (dots / (norms * key_norm)), axis=1)
    w = gate * w + (1.0 - gate) * w_prev
    # circular shift by offsets (-1, 0, +1); one-hot on +1 == jnp.roll(w, 1)
    padded = jnp.concatenate([w[:, -1:], w, w[:, :1]], axis=1)
    w = shift[:, 0:1] * padded[:, 2:] + shift[:, 1:2] * w + shift[:, 2:3] * padded[:, :-2]
    w = jnp.exp(gamma * jnp.log(w + FLOOR))
    return w / jnp.sum(w, axis=1, keepdims=True)


def _outer(w, v, cfg):
    """``w (B,N)`` and ``v (B,W)`` -> the memory-shaped outer product."""
    return v[:, :, None] * w[:, None, :] if cfg.layout == "bwn" else w[:, :, None] * v[:, None, :]


def forward(cfg: Config, p: dict, xs, mask, probes=None):
    """``xs (B,T,in)``, ``mask (B,T)`` -> logits ``(T,B,bits)`` (time-major) and the stacked
    inputs of the two in-loop matmuls, ``([r; h]_{t-1}, h_t)``.

    ``probes``: zeros ``(T,B,4H)``, ``(T,B,iface)`` added to the in-loop matmul outputs, so that
    their gradients are the per-step cotangents of those outputs (see :func:`grads_fn`)."""
    B, T, _ = xs.shape
    H, W, N = cfg.hidden, cfg.width, cfg.slots
    zx = jnp.einsum("btx,xg->tbg", xs, p["W_x"]) + p["b"][None, None, :]  # hoisted input proj.
    ms = jnp.transpose(mask)[:, :, None]  # (T,B,1)
    W_rh, W_i, b_i = p["W_rh"], p["W_i"], p["b_i"]
    if probes is not None:  # these weights' gradients are assembled from the probes' instead
        W_rh, W_i, b_i = (jax.lax.stop_gradient(w) for w in (W_rh, W_i, b_i))

    def body(carry, inputs):
        h, c, r, mem, norms, w_write, w_read = carry
        z, m, *probe = inputs
        rh = jnp.concatenate([r, h], axis=1)
        gates = z + rh @ W_rh + (probe[0] if probe else 0.0)
        i, f, g, o = (gates[:, k * H : (k + 1) * H] for k in range(4))
        c2 = jax.nn.sigmoid(f) * c + jax.nn.sigmoid(i) * jnp.tanh(g)
        h2 = jax.nn.sigmoid(o) * jnp.tanh(c2)
        iface = h2 @ W_i + b_i[None, :] + (probe[1] if probe else 0.0)
        ww = _address(mem, norms, _split_head(iface[:, : W + 6], W), w_write, cfg)
        erase = jax.nn.sigmoid(iface[:, W + 6 : 2 * W + 6])
        add = jnp.tanh(iface[:, 2 * W + 6 : 3 * W + 6])
        wm = ww * m  # padding: a frozen step writes nothing, so the memory is left unchanged
        mem2 = mem * (1.0 - _outer(wm, erase, cfg)) + _outer(wm, add, cfg)
        norms2 = _slot_norms(mem2, cfg)  # also the write head's norms at the next step
        wr = _address(mem2, norms2, _split_head(iface[:, 3 * W + 6 :], W), w_read, cfg)
        r2 = jnp.einsum("bn,bwn->bw" if cfg.layout == "bwn" else "bn,bnw->bw", wr, mem2)
        keep = lambda new, old: jnp.where(m > 0, new, old)
        carry = (keep(h2, h), keep(c2, c), keep(r2, r), mem2, norms2, keep(ww, w_write),
                 keep(wr, w_read))  # fmt: skip
        return carry, (h2, r2, rh)

    if cfg.remat:
        body = jax.checkpoint(body, prevent_cse=False)
    shape = (B, W, N) if cfg.layout == "bwn" else (B, N, W)
    mem0 = jnp.full(shape, cfg.init_value, F32)
    ones = jnp.ones((B, 1), F32)
    carry = (
        jnp.zeros((B, H), F32),
        jnp.zeros((B, H), F32),
        jnp.zeros((B, W), F32),
        mem0,
        _slot_norms(mem0, cfg),
        ones * jax.nn.softmax(p["write_logits"])[None, :],
        ones * jax.nn.softmax(p["read_logits"])[None, :],
    )
    _, (hs, rs, rhs) = jax.lax.scan(body, carry, (zx, ms, *(probes or ())))
    logits = jnp.concatenate([hs, rs], axis=2) @ p["W_o"] + p["b_o"][None, None, :]
    return logits, (rhs, hs)


def loss_fn(cfg: Config, p: dict, batch, probes=None):
    """BCE summed over bits and scored steps, averaged over the batch; also bit errors."""
    inputs, targets, mask, loss_mask = batch[:4]
    logits, stacks = forward(cfg, p, inputs, mask, probes)
    targets = jnp.transpose(targets, (1, 0, 2))
    lm = jnp.transpose(loss_mask)[:, :, None]
    bce = jnp.maximum(logits, 0) - logits * targets + jnp.log1p(jnp.exp(-jnp.abs(logits)))
    B = inputs.shape[0]
    loss = jnp.sum(bce * lm) / B
    bit_errors = jnp.sum(((logits > 0) != (targets > 0.5)) * lm) / B
    return loss, ({"loss": loss, "bit_errors": bit_errors}, stacks)


def grads_fn(cfg: Config, p: dict, batch):
    """``(grads, metrics)``. With ``cfg.hoist_weight_grads`` the gradients of the in-loop weights
    are not accumulated step by step inside the backward scan (a small matmul and an add per step
    and weight): the scan hands back the per-step cotangents of the matmul outputs (the probes'
    gradients) and each weight gradient is one matmul over all time steps afterwards."""
    if not cfg.hoist_weight_grads:
        grads, (metrics, _) = jax.grad(partial(loss_fn, cfg), has_aux=True)(p, batch)
        return grads, metrics
    B, T = batch[2].shape
    probes = (jnp.zeros((T, B, 4 * cfg.hidden), F32), jnp.zeros((T, B, cfg.iface_size), F32))
    grad = jax.grad(partial(loss_fn, cfg), argnums=(0, 2), has_aux=True)
    (grads, (ct_gates, ct_iface)), (metrics, (rhs, hs)) = grad(p, batch, probes)
    return {
        **grads,
        "W_rh": jnp.einsum("tbk,tbg->kg", rhs, ct_gates),
        "W_i": jnp.einsum("tbh,tbk->hk", hs, ct_iface),
        "b_i": jnp.sum(ct_iface, axis=(0, 1)),
    }, metrics


def batch_grads(cfg: Config, p: dict, batch):
    """:func:`grads_fn`, over chunks of ``cfg.chunk`` sequences when the batch is larger."""
    B, k = batch[0].shape[0], cfg.chunk
    if not k or B <= k or B % k:
        return grads_fn(cfg, p, batch)
    # the mean of equal-size chunk means is the batch mean; a chunk's working set stays in cache
    chunks = jax.tree.map(lambda x: x.reshape(B // k, k, *x.shape[1:]), tuple(batch))
    per_chunk = jax.lax.map(lambda chunk: grads_fn(cfg, p, chunk), chunks)
    return jax.tree.map(lambda x: jnp.mean(x, axis=0), per_chunk)


def make_optimizer(cfg: Config):
    return optax.chain(optax.clip_by_global_norm(cfg.clip), optax.adam(cfg.lr))


def make_train_step(cfg: Config):
    """``step(params, opt_state, batch) -> (params, opt_state, metrics)``, jitted.

    ``batch`` is ``(inputs[B,T,in], targets[B,T,bits], mask[B,T], loss_mask[B,T])`` float32.
    With ``cfg.donate`` the old params and optimizer state are donated (do not reuse them).
    """
    optimizer = make_optimizer(cfg)

    @partial(jax.jit, donate_argnums=(0, 1) if cfg.donate else ())
    def step(params, opt_state, batch):
        grads, metrics = batch_grads(cfg, params, batch)
        updates, opt_state = optimizer.update(grads, opt_state, params)
        return optax.apply_updates(params, updates), opt_state, metrics

    return step


def setup(cfg: Config, seed: int = 0):
    """``(params, opt_state, step)`` ready to train."""
    params = init_params(cfg, jax.random.PRNGKey(seed))
    return params, make_optimizer(cfg).init(params), make_train_step(cfg)
