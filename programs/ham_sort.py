"""An LSTM with a hierarchical attentive memory sorts key-value pairs (Andrychowicz & Kurach 2016).

Task: `SortPairs`: `length` (key, value) pairs in random order, one per step (a key of 128 and a
value of 8 symbols, one-hot side by side; keys distinct), then a separator; on the blank steps
after it the machine outputs the `length` values in the order of their keys, then the end
class. Lengths 4..8 in training; `difmachine eval RUN --lengths 8,16,32,64` tests up to 8 times
longer, as the paper does.

Machine: an LSTM of 64 units with a `HAMMemory` of 128 leaves of width 16, `hard` (the paper's
HAM: log2(128) = 7 sampled left/right choices per step, trained with REINFORCE; see
`programs/ham_reverse.py`). `--set mode=soft` is the differentiable DHAM.

The paper's setup (recalled, not yet checked against the paper): unique priorities from {1/300, ..., 300/300} with 5-bit values, sorted in
O(n log n) by a machine that inserts each pair into the tree; the input embedded into the
leaves before the controller runs. Differences: one-hot symbols; the output is the values
alone, in key order; the controller reads the pairs one per step and writes them into the
leaves itself, unless `--set input_leaves=true`; a gated write.
"""

from ham_reverse import layout
from ham_reverse import program as reverse  # the same machine, optimiser, budget and REINFORCE

import difmachine as dm

program = reverse.replace(
    task=layout(
        dm.SortPairs(
            keys=dm.param("keys", 128),
            symbols=dm.param("symbols", 8),
            min_length=dm.param("min_length", 2),
            max_length=dm.param("max_length", 16),
        )
    ),
)
