"""Composition: a Neural Turing Machine that ponders with Adaptive Computation Time.

The NTM of programs/ntm_copy.py, wrapped in ACT (Graves 2016): at every input step the
controller and the memory may take up to 3 inner steps, and the halting weights average the
controller state, the reads and the memory itself (see difmachine.ACT). One line of the program
differs from ntm_copy.py; no anchor implementation can express this without a fork.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=1, write_heads=1),
        halting=dm.ACT(max_ponder=3, time_penalty=dm.param("time_penalty", 1e-3)),
    ),
    task=dm.Copy(bits=8, min_length=1, max_length=dm.param("max_length", 20)),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=20_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
