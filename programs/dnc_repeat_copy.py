"""Differentiable Neural Computer on repeat copy (Graves et al. 2014, section 4.2).

Sequence, then a delimiter step carrying the repeat count (normalised by max_repeats); output the
sequence that many times, then an end marker. To repeat, the read head follows the forward links
to the end of the sequence and jumps back to its start by content (or follows the backward links).
Sizes as programs/ntm_repeat_copy.py (lengths and repeats 1-6); 32 slots hold the sequence.
`difmachine eval runs/dnc_repeat_copy --lengths 6,8,10` tests more repeats, `--set vary=length`
longer sequences; `marker_errors` and `data_bit_errors` are reported apart.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.DNCMemory(slots=32, width=20, read_heads=1),
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
    target=0.1,
)
