"""Neural Turing Machine on associative recall (Graves et al. 2014, section 4.3).

Items of 3 six-bit vectors, each introduced by a delimiter, then a query item between two query
delimiters: output the item that followed the query. Training uses 2-6 items as in the paper;
`difmachine eval runs/ntm_associative_recall --lengths 6,8,12` tests more items.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=1, write_heads=1),
    ),
    task=dm.AssociativeRecall(bits=6, item_length=3, min_items=2, max_items=6),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=30_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
