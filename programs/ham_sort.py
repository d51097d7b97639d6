"""An LSTM with a hierarchical attentive memory sorts key-value pairs (Andrychowicz & Kurach 2016).

Task: `SortPairs`: `length` (key, value) pairs in random order, one per step (a key of 128 and a
value of 8 symbols, one-hot side by side; keys distinct), then a separator; on the blank steps
after it the machine outputs the `length` values in the order of their keys, then the end
class. Lengths 2..16 in training; `difmachine eval RUN --lengths 16,32,64 --set leaves=256`
tests up to 4 times longer.

Machine and layout: `programs/ham_reverse.py`'s: the input phase embedded into the leaves before
the first step and an episode of only the answer steps (`MemoryInput`), an LSTM of 64 units
with a `HAMMemory` of 64 leaves of width 16, the DHAM (`mode=soft`) by default; `--set
mode=hard --init RUN` trains the paper's O(log n) HAM with REINFORCE from a soft run. `--set
adaptive=0.1`: a curriculum over the number of pairs (start at `min_length`, one more whenever
fewer than 10% of the training sequences were wrong over 200 steps).

The paper's setup (recalled, not yet checked against the paper): unique priorities from {1/300, ...,
300/300} with 5-bit values, sorted in O(n log n) by a machine that inserts each pair into the tree;
the input embedded into the leaves before the controller runs. Differences: one-hot symbols; the
output is the values alone, in key order; `--set memory_input=false`: the controller reads the pairs
one per step and writes them into the leaves itself; a gated write.
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
            adaptive=dm.param("adaptive", 0.0),
        )
    ),
)
