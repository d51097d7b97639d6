"""A stack-augmented RNN predicts a^n b^n (Joulin & Mikolov 2015).

Task: `AnBn`: the input is a^n b^n and an end symbol, one per step, n = 1..20 in training; at
each step the machine predicts the next symbol, and only the deterministic predictions are
scored (every b after the first, and the end after the last b). Counting the a's is what makes
this hard for a plain RNN: it must be exact for n it never saw. Evaluate the generalization
with `difmachine eval RUN --lengths 10,20,40,60` (length means n). The paper's score, the
fraction of n in 1..60 fully solved: `difmachine eval RUN --lengths 1-60 --samples 1` (a^n b^n
is one sequence per n), the `coarse` column of the table's mean row.

Machine: an RNN of 32 tanh units (`--set controller=lstm` for an LSTM) with 2 `JoulinStack`s of
scalars (push/pop/noop softmax actions, sigmoid push values, the top 2 entries of each stack
read back, as in the paper). Pushing one entry per a needs depth > n, so the default depth 128
covers evaluation up to n = 127 (a push beyond the depth drops the bottom entry). On this CPU,
2 stacks generalized to n = 60 for 3 of 3 seeds after 6000 steps, while 1 stack (seed 0) made
one error per sequence at n = 60 even after 12000 steps (`--set stacks=1`).

Optimiser: Adam 3e-3, global-norm clipping at 1, batch 32, with n drawn uniformly from 1..20
(no curriculum needed). No early-stopping target: the training mix is solved within 500-1000
steps, but a run stopped there failed at n = 40; the stack actions keep sharpening afterwards
and that is what carries the counting to n = 40 and 60, so the run uses its whole budget
(about a minute).
"""

import optax

import difmachine as dm

kind = dm.param("controller", "rnn")
controllers = {"rnn": dm.RNN, "lstm": dm.LSTM}
if kind not in controllers:
    raise ValueError(f"--set controller= takes rnn or lstm, got {kind!r}")

program = dm.Program(
    machine=dm.Machine(
        controller=controllers[kind](dm.param("hidden", 32)),
        devices=dm.JoulinStack(depth=dm.param("depth", 128), stacks=dm.param("stacks", 2)),
    ),
    task=dm.AnBn(max_n=dm.param("max_n", 20)),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 6000),
    eval_every=500,
)
