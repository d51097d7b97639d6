"""Encoder-decoder with attention learns decimal addition from characters: `"57+8" -> "65"`.

Task: `Addition`: each operand has 1..3 digits, the source is `a+b` one character per token and
the target is the sum's digits (the character-level addition task of many seq2seq tutorials;
a plain encoder-decoder reaches exact match on it). Trained teacher-forced, evaluated by
greedy decoding; main metric `errors = 1 - exact`. `difmachine eval runs/seq2seq_addition
--lengths 2,3,4,5` evaluates operands of exactly that many digits (4 and 5 are beyond training).

Machine: bidirectional LSTM encoder (64 each way), LSTM-128 decoder with additive attention;
`--set attention=none` is the plain encoder-decoder baseline.
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
    task=dm.Addition(max_digits=dm.param("max_digits", 3)),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=dm.param("batch_size", 64),
    steps=dm.param("steps", 6000),
    eval_every=500,
    target=dm.param("target", 0.0, optional=True),
)
