"""An LSTM with a hierarchical attentive memory adds binary numbers (Andrychowicz & Kurach 2016).

Task: `BinaryAddition(answer_after=True)`, the layout for machines that read one symbol per
step: the bits of `a` (least significant first), `+`, the bits of `b`, one symbol per step;
then as many blank steps, on which the machine outputs the sum (least significant bit first)
and then the blank class up to the end; every answer step is scored (`errors`: sequences with
any wrong step). 1..8 bits per number in training (`length` is the bits per number);
`difmachine eval RUN --lengths 8,16,32 --set leaves=256` tests up to 4 times longer.

Machine and layout: `programs/ham_reverse.py`'s: the input phase embedded into the leaves before
the first step and an episode of only the answer steps (`MemoryInput`), an LSTM of 64 units
with a `HAMMemory` of 64 leaves of width 16, the DHAM (`mode=soft`) by default; `--set
mode=hard --init RUN` trains the paper's O(log n) HAM with REINFORCE from a soft run.

The paper's setup (recalled, not yet checked against the paper): the input `a_1 .. a_n + b_1 .. b_n
=` and the output the n + 1 bits of the sum; the input embedded into the leaves before the
controller runs. Differences: the first blank step plays `=`, the answer is scored over as many
steps as the input (blank after the sum); `--set memory_input=false`: the controller reads the bits
one per step and writes them into the leaves itself; a gated write.
"""

from ham_reverse import layout
from ham_reverse import program as reverse  # the same machine, optimiser, budget and REINFORCE

import difmachine as dm

program = reverse.replace(
    task=layout(
        dm.BinaryAddition(
            min_bits=dm.param("min_bits", 1),
            max_bits=dm.param("max_bits", 8),
            answer_after=True,
        )
    ),
)
