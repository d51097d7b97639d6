"""Baseline for programs/ntm_repeat_copy.py and programs/dnc_repeat_copy.py: a plain LSTM.

The same task, optimiser and budget (lengths and repeats 1-6), an LSTM of 256 units and no
memory. `difmachine eval runs/lstm_repeat_copy --lengths 6,8,10` tests more repeats.
"""

from ntm_repeat_copy import program as ntm  # the same task and budget as the NTM's

import difmachine as dm

program = ntm.replace(machine=dm.Machine(controller=dm.LSTM(256)))
