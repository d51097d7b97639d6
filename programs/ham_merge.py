"""An LSTM with a hierarchical attentive memory merges two sorted lists (Andrychowicz & Kurach
2016).

Task: `MergePairs`: two sequences of `length` (key, value) pairs, each sorted by key and each
followed by a separator (a key of 128 and a value of 8 symbols per step, one-hot side by side;
the 2 `length` keys distinct); on the blank steps after the second separator the machine
outputs the 2 `length` values in the order of their keys, then the end class. Lengths 1..8 in
training; `difmachine eval RUN --lengths 8,16,32 --set leaves=256` tests up to 4 times longer
(64 pairs per sequence would need 128 distinct keys: the default).

Machine and layout: `programs/ham_reverse.py`'s: the input phase embedded into the leaves before
the first step and an episode of only the answer steps (`MemoryInput`), an LSTM of 64 units
with a `HAMMemory` of 64 leaves of width 16, the DHAM (`mode=soft`) by default; `--set
mode=hard --init RUN` trains the paper's O(log n) HAM with REINFORCE from a soft run. `--set
adaptive=0.1`: a curriculum over the number of pairs (start at `min_length`, one more whenever
fewer than 10% of the training sequences were wrong over 200 steps).

The paper's setup (recalled, not yet checked against the paper): priorities (keys) unique, drawn
from {1/300, ..., 300/300}, values 5-bit vectors; the input embedded into the leaves before the
controller runs. Differences: one-hot symbols; the output is the values alone, in key order; `--set
memory_input=false`: the controller reads the pairs one per step and writes them into the leaves
itself; a gated write.
"""

from ham_reverse import layout
from ham_reverse import program as reverse  # the same machine, optimiser, budget and REINFORCE

import difmachine as dm

program = reverse.replace(
    task=layout(
        dm.MergePairs(
            keys=dm.param("keys", 128),
            symbols=dm.param("symbols", 8),
            min_length=dm.param("min_length", 1),
            max_length=dm.param("max_length", 8),
            adaptive=dm.param("adaptive", 0.0),
        )
    ),
)
