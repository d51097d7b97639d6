"""Baseline for the Neural GPU: an LSTM of 256 units, no memory, on ``ntm_binary_addition.py``'s
task (the Neural GPU's numbers, answered after the input), optimiser and budget."""

from ntm_binary_addition import program as ntm  # a module beside the program: the run copies it

import difmachine as dm

program = ntm.replace(machine=dm.Machine(controller=dm.LSTM(256)))
