"""Encoder-decoder with attention normalises dates: `"Monday, 7 March 1994" -> "1994-03-07"`.

Task: `DateFormat`: a date uniform over 1950-2049 written in one of eight human formats
(`7 Mar 1994`, `March 7, 1994`, `03/07/1994`, `7.3.1994`, `Monday, 7 March 1994`, ...) ->
ISO 8601. The alignment is monotone inside each field but the fields move (the year comes first
in the output and last in most inputs) and month names map to numbers. Greedy decoding, main
metric `errors = 1 - exact`. There is no length to vary (`eval` without `--lengths`).

Machine: bidirectional LSTM encoder (64 each way), LSTM-128 decoder with additive attention;
`--set attention=none` is the baseline. `difmachine trace runs/seq2seq_dates` shows which
source characters each output digit reads.
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
    task=dm.DateFormat(),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 32),
    steps=dm.param("steps", 3000),
    eval_every=250,
    target=dm.param("target", 0.0, optional=True),
)
