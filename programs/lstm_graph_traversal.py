"""Baseline for programs/dnc_graph_traversal.py: the same graphs, a plain LSTM of 256 units.

The DNC program's task, optimiser, batch and budget, and no memory: the whole graph must fit in
the LSTM's state.
"""

from dnc_graph_traversal import program as dnc  # the same task and budget as the DNC's

import difmachine as dm

program = dnc.replace(machine=dm.Machine(controller=dm.LSTM(256)))
