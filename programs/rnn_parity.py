"""Baseline for programs/act_parity.py: the same RNN of 128 tanh units, one step, no ACT.

With a single input step this is a one-hidden-layer network; Graves (2016) reports almost 40%
error on 64-bit parity without ACT. `--set bits=64` for the paper's size.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(controller=dm.RNN(128)),
    task=dm.Parity(bits=dm.param("bits", 16)),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=128,
    steps=dm.param("steps", 20_000),
    eval_every=500,
    eval_samples=2048,
    target=dm.param("target", 0.01, optional=True),
)
