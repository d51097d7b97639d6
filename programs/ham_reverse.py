"""An LSTM with a hierarchical attentive memory reverses sequences (Andrychowicz & Kurach 2016).

Task: `Reverse` over `symbols` symbols, source lengths 4..8 (the paper trains reverse on short
sequences and tests several times longer). Each episode is the source one symbol per step, a
separator, then blank input steps on which the machine emits the reversed source and the end
class (see `programs/stack_reverse.py` for the task's scoring).

Machine: an LSTM of 64 units with a `HAMMemory` of 128 leaves of width 16. In `hard` mode (the
default, the paper's HAM) every step descends the tree by sampled left/right choices, reads the
reached leaf, writes it through the gated WRITE map and re-JOINs the path: log2(128) = 7 choices
and 8 touched nodes per step. The choices are trained with REINFORCE (`Reinforce`: reward minus
the example's task loss, a learned baseline, normalised advantages, a small entropy bonus);
everything else by backpropagation. `--set mode=soft` is the differentiable DHAM (every leaf
weighted by the product of its branch probabilities; linear in the leaves).

Differences from the paper: the controller writes the source into the leaves itself (the paper
embeds the input into the leaves before the controller runs: `--set input_leaves=true`, which
needs as many leaves as the episode has steps), and the write is gated.
"""

import optax

import difmachine as dm

# the paper's setup: the input goes into the leaves before the first step and the episode is only
# the answer steps, so the controller sees nothing but what it reads from the tree
memory_input = dm.param("memory_input", False)


def layout(task):
    """``task`` as the programs lay it out: wrapped in ``MemoryInput`` with ``memory_input``."""
    return dm.MemoryInput(task) if memory_input else task


program = dm.Program(
    machine=dm.Machine(
        controller=dm.LSTM(dm.param("hidden", 64)),
        devices={
            "ham": dm.HAMMemory(
                leaves=dm.param("leaves", 128),
                width=dm.param("width", 16),
                hidden=dm.param("search_hidden", 32),
                mode=dm.param("mode", "hard"),
                input_leaves=dm.param("input_leaves", memory_input),
            )
        },
    ),
    task=layout(
        dm.Reverse(
            symbols=dm.param("symbols", 8),
            min_length=dm.param("min_length", 4),
            max_length=dm.param("max_length", 8),
        )
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 5000),
    eval_every=250,
    reinforce=dm.Reinforce(
        normalise=True, entropy=dm.param("entropy", 0.01), credit=dm.param("credit", "sequence")
    ),
)
