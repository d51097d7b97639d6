"""An LSTM with a hierarchical attentive memory reverses sequences (Andrychowicz & Kurach 2016).

Task: `Reverse` over `symbols` symbols, source lengths 2..16, laid out as the paper does
(`MemoryInput`): before the first step the source and its separator are embedded into the
leaves, one step per leaf (`HAMMemory(input_leaves=True)`); the episode is then only the answer
steps, with blank inputs, on which the machine emits the reversed source and the end class.
The controller never sees the input: all it knows of it comes through the memory.
`difmachine eval RUN --lengths 16,32,64 --set leaves=256` tests up to 4 times longer (the
leaves are no parameter: a bigger tree holds a longer input with the same weights).

Machine: an LSTM of 64 units with a `HAMMemory` of 64 leaves of width 16. `mode=soft` (the
default) is the paper's differentiable DHAM: every leaf is read and written in proportion to
the product of its branch probabilities (linear in the leaves). `--set mode=hard` is the
paper's HAM: every step descends the tree by sampled left/right choices, reads the reached leaf,
writes it through the gated WRITE map and re-JOINs the path (log2(64) = 6 choices, O(log n));
the choices are trained with REINFORCE (`Reinforce`: reward minus each step's task loss,
credited to the steps before it (`credit="to_go"`), a learned per-step baseline, normalised
advantages, a small entropy bonus); everything else by backpropagation. From scratch the hard
HAM learns nothing in this budget; started from a trained DHAM it is exact within 500 steps:
`difmachine run programs/ham_reverse.py --set mode=hard --init runs/ham_reverse --steps 500
--out runs/ham_reverse_hard`.

`--set memory_input=false` is the NTM-like layout: the controller reads the source one symbol
per step and must write it into the leaves itself (`input_leaves=true` then also embeds the
whole episode into the leaves, as an extra). Differences from the paper: a gated write; the
training lengths and sizes are ours (the paper's details could not be checked).
"""

import optax

import difmachine as dm

# the paper's setup: the input goes into the leaves before the first step and the episode is only
# the answer steps, so the controller sees nothing but what it reads from the tree
memory_input = dm.param("memory_input", True)


def layout(task, cue: int = 0):
    """``task`` as the programs lay it out: wrapped in ``MemoryInput`` with ``memory_input``
    (``cue``: its last input steps also given to the controller, ``MemoryInput(cue=...)``)."""
    return dm.MemoryInput(task, cue=cue) if memory_input else task


program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 64)),
        devices={
            "ham": dm.HAMMemory(
                leaves=dm.param("leaves", 64),
                width=dm.param("width", 16),
                hidden=dm.param("search_hidden", 32),
                mode=dm.param("mode", "soft"),
                input_leaves=dm.param("input_leaves", memory_input),
            )
        },
    ),
    task=layout(
        dm.Reverse(
            symbols=dm.param("symbols", 8),
            min_length=dm.param("min_length", 2),
            max_length=dm.param("max_length", 16),
        )
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 5000),
    eval_every=250,
    # no target: every run trains its whole budget, so the seeds' generalisation to longer
    # inputs is compared at one budget (whether stopping at the target would change it was not
    # settled: 1 of 5 seeds reversed twice the length either way)
    reinforce=dm.Reinforce(
        normalise=True, entropy=dm.param("entropy", 0.01), credit=dm.param("credit", "to_go")
    ),
)
