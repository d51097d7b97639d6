"""The RL-NTM (Zaremba & Sutskever 2015) on copy, reverse or duplicated input.

The source is on an input tape (`TapeTransduce`, context "tape"): the LSTM never sees it
directly but moves a discrete head over it (`InputTape`, moves -1 / 0 / +1), and has a
read-write `MemoryTape` with its own discrete head. Both heads' moves are sampled and trained
with REINFORCE (`Reinforce`: reward minus the task loss, a learned baseline, normalised
advantages, an entropy bonus); the rest by backpropagation. The machine's direct input is a
flag on the answer steps. `--set transform=reverse` or `duplicate` switches the task.

Differences from the paper: no output tape (outputs are scored at fixed steps), no curriculum
yet, Adam instead of the paper's optimiser.
"""

import optax

import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 64)),
        devices={
            "input": dm.InputTape(),
            "memory": dm.MemoryTape(cells=dm.param("cells", 32), width=dm.param("width", 8)),
        },
    ),
    task=dm.TapeTransduce(
        transform=dm.param("transform", "copy"),
        symbols=dm.param("symbols", 8),
        min_length=dm.param("min_length", 2),
        max_length=dm.param("max_length", 8),
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 5000),
    eval_every=250,
    reinforce=dm.Reinforce(normalise=True, entropy=dm.param("entropy", 0.01)),
)
