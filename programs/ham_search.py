"""An LSTM with a hierarchical attentive memory searches a sorted list (Andrychowicz & Kurach 2016).

Task: `SearchPairs`: `length` (key, value) pairs sorted by key, one pair per step (a key of 128 and
a value of 8 symbols, one-hot side by side; keys distinct), then a separator step that carries the
query key; on the next (blank) step the machine outputs the query's value, then the end class.
Lengths 2..16 in training; `difmachine eval RUN --lengths 16,32,64 --set leaves=256` tests up to 4
times longer.

Machine and layout: `programs/ham_reverse.py`'s: the input phase embedded into the leaves before
the first step and an episode of only the answer steps (`MemoryInput`), an LSTM of 64 units
with a `HAMMemory` of 64 leaves of width 16, the DHAM (`mode=soft`) by default; `--set
mode=hard --init RUN` trains the paper's O(log n) HAM with REINFORCE from a soft run. `--set
adaptive=0.1`: a curriculum over the number of pairs (start at `min_length`, one more whenever
fewer than 10% of the training sequences were wrong over 200 steps). `--set cue=1`: the query
(the separator step) is also the controller's input on the first answer step
(`MemoryInput(cue=1)`); without it the query is only in a leaf, and the controller must answer
on its first step having read the tree with no idea what it is looking for.

The paper's setup (recalled, not yet checked against the paper): 5-bit keys and values as bit
vectors, the first of equal keys wanted, and the input embedded into the leaves before the
controller runs, which then gets only two steps to answer, forcing a binary search. Differences:
one-hot symbols and distinct keys (each answer unique); `--set memory_input=false`: the controller
reads the pairs one per step and writes them into the leaves itself; a gated write.
"""

from ham_reverse import layout
from ham_reverse import program as reverse  # the same machine, optimiser, budget and REINFORCE

import difmachine as dm

program = reverse.replace(
    task=layout(
        dm.SearchPairs(
            keys=dm.param("keys", 128),
            symbols=dm.param("symbols", 8),
            min_length=dm.param("min_length", 2),
            max_length=dm.param("max_length", 16),
            adaptive=dm.param("adaptive", 0.0),
        ),
        cue=dm.param("cue", 0),  # 1: the query also the controller's first input
    ),
)
