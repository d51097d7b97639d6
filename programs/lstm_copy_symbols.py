"""Baseline for programs/queue_copy.py: the same `SymbolCopy` task with a plain LSTM, no memory.

An LSTM of 256 units (the queue machine's controller, without the queue) with the same
optimiser (Adam 3e-3, clipping at 1), batch and step budget (4000 steps, no early-stopping
target). (programs/lstm_copy.py is
the baseline for the NTM's bit-vector copy.) Compare `difmachine eval RUN --lengths 8,16,32`
with the queue machine's.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(controller=dm.LSTM(dm.param("hidden", 256))),
    task=dm.SymbolCopy(
        symbols=dm.param("symbols", 16),
        min_length=dm.param("min_length", 8),
        max_length=dm.param("max_length", 16),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 4000),
    eval_every=500,
)
