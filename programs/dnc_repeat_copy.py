"""Differentiable Neural Computer on repeat copy (Graves et al. 2014, section 4.2).

Sequence, then a delimiter step carrying the repeat count (normalised by max_repeats); output the
sequence that many times, then an end marker. To repeat, the read head follows the forward links
to the end of the sequence and jumps back to its start by content (or follows the backward links).
Task, optimiser and budget are programs/ntm_repeat_copy.py's (lengths and repeats 1-6); 32
slots hold the sequence.
`difmachine eval runs/dnc_repeat_copy --lengths 6,8,10` tests more repeats, `--set vary=length`
longer sequences; `marker_errors` and `data_bit_errors` are reported apart.
"""

from ntm_repeat_copy import program as ntm  # the same task and budget as the NTM's

import difmachine as dm

program = ntm.replace(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.DNCMemory(slots=dm.param("slots", 32), width=20, read_heads=1),
    ),
)
