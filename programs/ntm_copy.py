"""Neural Turing Machine on the copy task (Graves et al. 2014, section 4.1).

Choices that make NTMs train reliably, from the literature:
- memory starts at a small constant (1e-6), not learned or random: Collier & Beel (2018) found this
  converges about twice as fast (it is NTMMemory's default);
- Adam 1e-3 with gradient clipping, batch 16 (Collier & Beel used Adam 1e-3, batch 32, clip 50;
  clipping at 10 guards the early steps where the addressing is still diffuse);
- lengths 1-20 mixed within each batch, padded: one compile for the whole run.
Training stops early once fresh sequences average below 0.1 wrong bits (`--set target=none`
trains the whole budget, as for the paper's generalisation figure).
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=1, write_heads=1, shifts=(-1, 0, 1)),
    ),
    task=dm.Copy(bits=8, min_length=1, max_length=20),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=20_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
