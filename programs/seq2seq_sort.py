"""Encoder-decoder with attention sorts strings: `dbca -> abcd`.

Task: `SortString`: strings of 4..12 letters over 10 symbols (repeats allowed) -> the letters in
alphabetical order. Unlike reversal the alignment is content-dependent: the decoder must find
the smallest letter not yet emitted, which is what content-based attention is for. Trained
teacher-forced, evaluated by greedy decoding until the end token; main metric `errors =
1 - exact`.

Machine: bidirectional LSTM encoder (64 each way), LSTM-128 decoder with additive attention;
`--set attention=none` is the plain encoder-decoder baseline, `dot`/`general` Luong's scores.
`difmachine eval runs/seq2seq_sort --lengths 8,12,18,24` tests 1.5-2x longer strings.
"""

import optax

import difmachine as dm

attention = dm.param("attention", "additive")
decoder_devices = (
    [] if attention == "none" else [dm.Attention(attention, size=dm.param("size", 64))]
)

program = dm.Program(
    machine=dm.Seq2Seq(
        encoder=dm.BiLSTM(dm.param("encoder", 64)),
        decoder=dm.Machine(controller=dm.LSTM(dm.param("hidden", 128)), devices=decoder_devices),
    ),
    task=dm.SortString(
        symbols=dm.param("symbols", 10),
        min_length=dm.param("min_length", 4),
        max_length=dm.param("max_length", 12),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 32),
    steps=dm.param("steps", 4000),
    eval_every=250,
    target=dm.param("target", 0.0),
)
