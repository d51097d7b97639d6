"""Encoder-decoder with attention reverses strings (Bahdanau et al. 2014's model on a toy task).

Task: `ReverseString`: strings of 4..12 letters over 10 symbols -> the string reversed. The
decoder is trained teacher-forced and evaluated by greedy decoding: it gets a start token,
then its own previous output, until it emits the end token. Metrics: `exact` (whole string and
end right), `token_accuracy`; the main metric is `errors = 1 - exact`.

Machine: a bidirectional LSTM encoder (64 units each way) and an LSTM-128 decoder whose only
device is additive attention over the encoder's states. `--set attention=none` removes it: the
plain encoder-decoder of Sutskever et al. (2014), which sees the source only through the
encoder's final state (the baseline). `--set attention=dot|general` are Luong's scores,
`--set coverage=true` adds coverage to the attention (the sum of its past weights),
`--set location=true` location addressing after it (the NTM's gate, shift and sharpening, so
the decoder can walk the source one position per step).

`difmachine eval runs/seq2seq_reverse --lengths 8,12,18,24` measures 1.5-2x longer strings
(trained up to 12); `difmachine trace runs/seq2seq_reverse` draws the alignment matrix, which
for reversal is the anti-diagonal.
"""

import optax

import difmachine as dm

attention = dm.param("attention", "additive")
size = None if attention == "dot" else dm.param("size", 64)
coverage = dm.param("coverage", False)  # --set coverage=true: scores see the past weights
location = dm.param("location", False)  # --set location=true: gate, shift and sharpen
decoder_devices = (
    []
    if attention == "none"
    else [dm.Attention(attention, size=size, coverage=coverage, location=location)]
)

program = dm.Program(
    machine=dm.Seq2Seq(
        encoder=dm.BiLSTM(dm.param("encoder", 64)),
        decoder=dm.Machine(controller=dm.LSTM(dm.param("hidden", 128)), devices=decoder_devices),
    ),
    task=dm.ReverseString(
        symbols=dm.param("symbols", 10),
        min_length=dm.param("min_length", 4),
        max_length=dm.param("max_length", 12),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 32),
    steps=dm.param("steps", 3000),
    eval_every=250,
    target=dm.param("target", 0.0, optional=True),
)
