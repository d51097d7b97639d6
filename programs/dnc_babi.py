"""Differentiable Neural Computer on bAbI-style stories read word by word (Graves et al. 2016).

Task: `BabiWords(task=1)` (single supporting fact), `--set task=2` (two) or `--set task=3`
(three: "where was the apple before the kitchen ?"), stories of 2..6 sentences from our own
generator (no downloads). The story's words, then the question's, arrive one one-hot word per
step; at the answer marker `-` the machine must name the place; only that step is scored (main
metric `errors = 1 - accuracy`). Unlike programs/memn2n_babi.py, the machine sees no sentence
structure: it must write what matters to memory as the words go by and find it at the question.

Machine: an LSTM controller with a `DNCMemory` of 32 slots of width 16 and 2 read heads.
`difmachine trace runs/dnc_babi` shows the words under the allocation, write and read panels;
`difmachine eval runs/dnc_babi --lengths 4,6,10` varies the story length. The baseline without
memory on the same budget is programs/lstm_babi.py, the NTM's programs/ntm_babi.py. Over 5 seeds
and 6,000 steps none solves task 1: all three stop at about 0.47 wrong answers (loss 1.0),
naming a place from the story, not always the right one (README, the DNC's results); over 3
seeds and 4,000 steps task 2 stops at 0.33 (the LSTM 0.36) and task 3 at 0.20.
"""

import optax

import difmachine as dm

task = dm.param("task", 1)
program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 64)),
        devices=dm.DNCMemory(
            slots=dm.param("slots", 32), width=dm.param("width", 16), read_heads=2
        ),
    ),
    task=dm.BabiWords(
        task=task,
        min_sentences=dm.param("min_sentences", max(2, task)),  # task 3 needs 3 sentences
        max_sentences=dm.param("max_sentences", 6),
        adaptive=dm.param("adaptive", 0.0),  # e.g. 0.1: a curriculum over the story's length
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=dm.param("batch_size", 16),
    steps=dm.param("steps", 10_000),
    eval_every=500,
    target=dm.param("target", 0.01, optional=True),
)
