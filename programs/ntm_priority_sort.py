"""Neural Turing Machine on priority sort (Graves et al. 2014, section 4.5).

20 eight-bit vectors, each with a priority in [-1, 1]; after a delimiter, output the 16 with the
highest priority, highest first. The default is the paper's LSTM configuration (its table 3): a
controller of 2 x 100 LSTM units (`LSTM(100, layers=2)`), 5 read and 5 write heads, a 128 x 20
memory. `--set heads=2 layers=1` is a smaller machine. The paper trained with RMSProp at 3e-5
(momentum 0.9, clipping at 10) and batch 1; here Adam 1e-3 with clipping at 10 and batch 16.

The paper's learning curve (its figure 16) is the cost per sequence in bits, the metric
`cost_bits` (the training loss in bits), against sequences seen. The target stops a run once
fewer than one bit per sequence is wrong. The hardest task of the paper: expect a long run.
"""

import optax

import difmachine as dm

heads = dm.param("heads", 5)

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 100), layers=dm.param("layers", 2)),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=heads, write_heads=heads),
    ),
    task=dm.PrioritySort(bits=8, min_inputs=20, max_inputs=20, outputs=16),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=16,
    steps=dm.param("steps", 50_000),
    eval_every=dm.param("eval_every", 1000),
    target=dm.param("target", 1.0, optional=True),
)
