"""Sparse Access Memory on the copy task (Rae et al. 2016; the task of Graves et al. 2014, 4.1).

The machine of ``ntm_copy.py`` with :class:`~difmachine.SparseMemory` in place of the NTM memory:
reads touch the ``k = 4`` slots most similar to the read key, writes go to the least recently used
slot or to the previous read locations. There is no location shift: a fresh memory is allocated
slot 0, 1, 2, ... by the LRU rule, and the read head finds each item again by its content.

``remat=False``: the sparse memory's backward pass keeps only the ``k`` gathered rows per step,
while ``jax.checkpoint`` on the step would save the whole memory at every step.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.SparseMemory(slots=128, width=20, k=4, read_heads=1, write_heads=1),
    ),
    task=dm.Copy(bits=8, min_length=1, max_length=20),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=20_000,
    eval_every=500,
    target=dm.param("target", 0.1, optional=True),
    remat=False,
)
