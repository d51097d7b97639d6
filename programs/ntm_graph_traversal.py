"""Baseline for programs/dnc_graph_traversal.py: the same graphs, an NTM.

The DNC program's controller, optimiser, batch and budget, with an `NTMMemory` of the same size
(32 slots of width 24, 2 read heads, one write head) in place of the DNC's memory.
"""

from dnc_graph_traversal import program as dnc  # the same task and budget as the DNC's

import difmachine as dm

program = dnc.replace(
    machine=dm.Machine(
        controller=dm.LSTM(100),
        devices=dm.NTMMemory(slots=32, width=24, read_heads=2, write_heads=1),
    ),
)
