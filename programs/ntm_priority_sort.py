"""Neural Turing Machine on priority sort (Graves et al. 2014, section 4.5).

20 eight-bit vectors, each with a priority in [-1, 1]; after a delimiter, output the 16 with the
highest priority, highest first. The paper used 8 parallel read and write heads and a
feed-forward controller; this default keeps the LSTM controller with 2 read and 2 write heads.
The hardest task of the paper: expect a long run.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=2, write_heads=2),
    ),
    task=dm.PrioritySort(bits=8, min_inputs=20, max_inputs=20, outputs=16),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=50_000,
    eval_every=1000,
    target=1.0,
)
