"""Sparse Access Memory on associative recall (Rae et al. 2016; Graves et al. 2014, 4.3).

The machine of ``ntm_associative_recall.py`` with :class:`~difmachine.SparseMemory` in place of
the NTM memory: the query item's key finds its slot among the ``k = 4`` most similar ones, and the
answer is what was written next (the LRU rule writes the items in order). ``remat=False``: see
``sparse_copy.py``.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.SparseMemory(slots=128, width=20, k=4, read_heads=1, write_heads=1),
    ),
    task=dm.AssociativeRecall(bits=6, item_length=3, min_items=2, max_items=6),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=30_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
    remat=False,
)
