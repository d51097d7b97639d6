"""Baseline for programs/stack_reverse.py: the same `Reverse` task with a plain LSTM, no memory.

An LSTM of 256 units (about 3x the parameters of the stack machine's 128-unit controller) with
the same optimiser (Adam 3e-3, clipping at 1), batch and step budget (3000 steps, no
early-stopping target). Grefenstette et al. (2015)
found that deep LSTMs learn to reverse the training lengths only partly and do not generalize to
longer sequences; compare `difmachine eval RUN --lengths 8,16,32` with the stack machine's.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(controller=dm.LSTM(dm.param("hidden", 256))),
    task=dm.Reverse(
        symbols=dm.param("symbols", 16),
        min_length=dm.param("min_length", 8),
        max_length=dm.param("max_length", 16),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 3000),
    eval_every=250,
)
