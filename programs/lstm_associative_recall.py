"""Baseline for programs/ntm_associative_recall.py and programs/dnc_associative_recall.py.

The same task, optimiser and budget (2-6 items of 3 six-bit vectors), an LSTM of 256 units and
no memory. `difmachine eval runs/lstm_associative_recall --lengths 6,8` tests more items.
"""

from ntm_associative_recall import program as ntm  # the same task and budget as the NTM's

import difmachine as dm

program = ntm.replace(machine=dm.Machine(controller=dm.LSTM(256)))
