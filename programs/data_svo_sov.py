"""Your own data: reorder English-like sentences from subject-verb-object to subject-object-verb,
token pairs read from a tab-separated file.

Task: `TokenPairs("data/svo_sov.tsv", sep=" ")`: 240 lines `source<TAB>target`, words as
tokens (`sep=" "`; without it every character is a token). The vocabulary is the data's words.
A seeded 10% is held out for validation; `difmachine eval runs/data_svo_sov` scores it by
greedy decoding.

Machine: a bidirectional LSTM encoder and an LSTM decoder with attention (as in
programs/seq2seq_reverse.py).
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Seq2Seq(
        encoder=dm.BiLSTM(dm.param("encoder", 32)),
        decoder=dm.Machine(
            controller=dm.LSTM(dm.param("hidden", 64)), devices=[dm.Attention("additive", size=32)]
        ),
    ),
    task=dm.TokenPairs(dm.param("data", "data/svo_sov.tsv"), sep=" ", validation=0.1),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 16),
    steps=dm.param("steps", 1500),
    eval_every=250,
    target=dm.param("target", 0.0, optional=True),
)
