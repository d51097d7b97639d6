"""An LSTM with a hierarchical attentive memory sorts key-value pairs (Andrychowicz & Kurach 2016).

Task: `SortPairs`: `length` (key, value) pairs in random order, one per step (a key of 128 and a
value of 8 symbols, one-hot side by side; keys distinct), then a separator; on the blank steps
after it the machine outputs the `length` values in the order of their keys, then the end
class. Lengths 4..8 in training; `difmachine eval RUN --lengths 8,16,32,64` tests up to 8 times
longer, as the paper does.

Machine: an LSTM of 64 units with a `HAMMemory` of 128 leaves of width 16, `hard` (the paper's
HAM: log2(128) = 7 sampled left/right choices per step, trained with REINFORCE; see
`programs/ham_reverse.py`). `--set mode=soft` is the differentiable DHAM.

The paper's setup: unique priorities from {1/300, ..., 300/300} with 5-bit values, sorted in
O(n log n) by a machine that inserts each pair into the tree; the input embedded into the
leaves before the controller runs. Differences: one-hot symbols; the output is the values
alone, in key order; the controller reads the pairs one per step and writes them into the
leaves itself, unless `--set input_leaves=true`; a gated write.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 64)),
        devices={
            "ham": dm.HAMMemory(
                leaves=dm.param("leaves", 128),
                width=dm.param("width", 16),
                hidden=dm.param("search_hidden", 32),
                mode=dm.param("mode", "hard"),
                input_leaves=dm.param("input_leaves", False),
            )
        },
    ),
    task=dm.SortPairs(
        keys=dm.param("keys", 128),
        symbols=dm.param("symbols", 8),
        min_length=dm.param("min_length", 4),
        max_length=dm.param("max_length", 8),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 5000),
    eval_every=250,
    reinforce=dm.Reinforce(normalise=True, entropy=dm.param("entropy", 0.01)),
)
