"""Differentiable Neural Computer on the copy task (Graves et al. 2016; the task of Graves et al.
2014, section 4.1).

The DNC needs no shifts to copy: the write head allocates a fresh slot each step and the temporal
links remember their order, so the read head replays the sequence by following the links
forward from the first slot written (found by content). 32 slots of width 20 hold the longest
sequence (20); one read head; the same optimiser recipe as programs/ntm_copy.py (Adam 1e-3,
clipped, batch 16, lengths 1-20 mixed and padded). Training stops early once fresh sequences
average below 0.1 wrong bits.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.DNCMemory(slots=dm.param("slots", 32), width=20, read_heads=1),
    ),
    task=dm.Copy(bits=8, min_length=1, max_length=20),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=20_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
