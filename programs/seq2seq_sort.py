"""Encoder-decoder with attention sorts strings: `dbca -> abcd`.

Task: `SortString`: strings of 4..12 letters over 10 symbols (repeats allowed) -> the letters in
alphabetical order. Unlike reversal the alignment is content-dependent: the decoder must find
the smallest letter not yet emitted, which is what content-based attention is for. Trained
teacher-forced, evaluated by greedy decoding until the end token; main metric `errors =
1 - exact`.

The machine and its knobs are those of `seq2seq_reverse.py` (bidirectional LSTM encoder, 64 each
way, LSTM-128 decoder with additive attention; `--set attention=none` is the plain
encoder-decoder baseline, `dot`/`general` Luong's scores). `difmachine eval runs/seq2seq_sort
--lengths 8,12,18,24` tests 1.5-2x longer strings.
"""

from seq2seq_reverse import program as reverse  # a module beside the program: the run copies it

import difmachine as dm

program = reverse.replace(
    task=dm.SortString(
        symbols=dm.param("symbols", 10),
        min_length=dm.param("min_length", 4),
        max_length=dm.param("max_length", 12),
    ),
    steps=dm.param("steps", 4000),
)
