"""Your own data: reverse sequences of bit vectors read from a JSON lines file.

Task: `BitSequences("data/reverse_bits.jsonl")`: 500 examples, each a sequence of 1..6 4-bit
vectors (`"input"`) and the same vectors in reverse order (`"target"`). The file's name is
relative to this program's directory. A seeded 20% of the examples are held out for
validation; periodic evaluation and `difmachine eval runs/data_reverse_bits` score them
(`--data FILE` scores another file, `--split train` the training examples).

Machine: an LSTM with a neural stack (reversal is what a stack does).
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 64)), devices=[dm.NeuralStack(width=16, capacity=16)]
    ),
    task=dm.BitSequences(
        dm.param("data", "data/reverse_bits.jsonl"), validation=0.2, seed=dm.param("split", 0)
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 16),
    steps=dm.param("steps", 2000),
    eval_every=200,
    target=dm.param("target", 0.0, optional=True),
)
