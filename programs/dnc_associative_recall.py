"""Differentiable Neural Computer on associative recall (Graves et al. 2014, section 4.3).

Items of 3 six-bit vectors, each introduced by a delimiter, then a query item between two query
delimiters: output the item that followed the query. The DNC's way: find the query's slots by
content, then follow the temporal links forward into the next item. Two read heads (one can hold
the content match while the other follows the links); 32 slots hold 6 items of 4 steps.
`difmachine eval runs/dnc_associative_recall --lengths 6,8` tests more items.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.DNCMemory(slots=dm.param("slots", 32), width=20, read_heads=2),
    ),
    task=dm.AssociativeRecall(bits=6, item_length=3, min_items=2, max_items=6),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=30_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
)
