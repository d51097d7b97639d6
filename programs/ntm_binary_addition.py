"""Baseline for the Neural GPU: an NTM on the binary addition of ``neural_gpu_add.py``.

The seed article's claim, measured: NTMs do not learn to add. A machine that reads one symbol
per step cannot answer at the input's own positions (the sum's low bit needs ``b_0``, which
comes after ``+``), so the task takes ``answer_after``: the ``2 k + 1`` input symbols, then as
many blank steps in which the sum's bits (then blanks) are written and scored. The numbers and
the curriculum are the Neural GPU's (up to 20 bits, short ones favoured); the machine and the
optimiser are ``ntm_copy.py``'s. ``lstm_binary_addition.py`` is the same task without memory.
Evaluate with ``difmachine eval RUN --lengths 5,10,20,50``.
"""

import optax

import difmachine as dm

bits = dm.param("bits", 20)

task = dm.BinaryAddition(min_bits=1, max_bits=bits, curriculum=1.0, answer_after=True)

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=128, width=20, read_heads=1, write_heads=1, shifts=(-1, 0, 1)),
    ),
    task=task,
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
    batch_size=16,
    steps=dm.param("steps", 10_000),
    eval_every=500,
    eval_samples=256,
    target=dm.param("target", 0.0, optional=True),
)
