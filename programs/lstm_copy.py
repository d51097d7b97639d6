"""Baseline: the copy task of programs/ntm_copy.py with a plain LSTM and no memory.

An LSTM of 256 units (about 5x the NTM's parameters) with the same optimiser, batch and budget;
compare `difmachine eval runs/lstm_copy --lengths 20,40` with the NTM's.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(controller=dm.LSTM(256)),
    task=dm.Copy(bits=8, min_length=1, max_length=20),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=20_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
