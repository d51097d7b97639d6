"""Neural Turing Machine on repeat copy (Graves et al. 2014, section 4.2).

The input is a sequence followed by a delimiter step carrying the repeat count (normalised by
max_repeats); the machine must output the sequence that many times, then an end marker.
Sizes are reduced from the paper (lengths and repeats 1-10) to train on a laptop CPU:
lengths and repeats 1-6 give episodes of at most 44 steps, like copy. Same optimiser recipe as
programs/ntm_copy.py. `difmachine eval runs/ntm_repeat_copy --lengths 6,8,10` tests more
repeats, `--set vary=length` longer sequences (each with the other drawn from its training
range); the end marker's errors are reported apart from the data bits' (`marker_errors`,
`data_bit_errors`).
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=1, write_heads=1),
    ),
    task=dm.RepeatCopy(
        bits=8,
        min_length=1,
        max_length=6,
        min_repeats=1,
        max_repeats=6,
        vary=dm.param("vary", "repeats"),  # eval --set vary=length: generalisation in length
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=30_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
