"""Baseline for programs/dnc_babi.py: the same word-by-word bAbI-style stories, an NTM.

The DNC program's controller, optimiser, batch and budget, with an `NTMMemory` of the same size
(32 slots of width 16, 2 read heads, one write head, shifts -1..1) in place of the DNC's memory:
content and location addressing, but no allocation and no temporal links. `--set task=2` or `3`.
"""

from dnc_babi import program as dnc  # the same task and budget as the DNC's

import difmachine as dm

program = dnc.replace(
    machine=dm.Machine(
        controller=dm.LSTM(64),
        devices=dm.NTMMemory(slots=32, width=16, read_heads=2, write_heads=1),
    ),
)
