"""Adaptive Computation Time on parity (Graves 2016, section 3.1).

One input step: a vector of `bits` entries, 1..bits of them set to +1 or -1, the rest 0; output
whether the count of +1 is odd. An RNN of 128 tanh units that may ponder up to 20 inner steps per
input step; the paper used 64 bits (`--set bits=64`) and found < 5% error with ACT for every
time penalty <= 0.03 against ~40% without (programs/rnn_parity.py). 16 bits is the default so a
run takes minutes on a laptop CPU. `--set max_nonzeros=8` trains on vectors with at most 8
non-zero entries, for the extrapolation test of pondernet_parity.py.

The time penalty is 3e-4: over 5 seeds every seed solves (median step 8,500) and four of five
ponder less than the cap on easy inputs, one cleanly in proportion to the difficulty. At the
former default 1e-3 four of five solve and the ponder sits at the cap of 20 (a fixed-depth RNN);
at 1e-2 the machine collapses to one inner step and fails. `--set time_penalty=...` to compare.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.RNN(128),
        halting=dm.ACT(max_ponder=20, epsilon=0.01, time_penalty=dm.param("time_penalty", 3e-4)),
    ),
    task=dm.Parity(bits=dm.param("bits", 16), max_nonzeros=dm.param("max_nonzeros", 0) or None),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=128,
    steps=dm.param("steps", 20_000),
    eval_every=500,
    eval_samples=2048,
    target=dm.param("target", 0.01, optional=True),
)
