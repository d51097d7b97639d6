"""An LSTM with a continuous deque learns bigram flipping (Grefenstette et al. 2015, sec. 4).

Task: `BigramFlip` over `symbols` symbols (16 by default; the paper's 128 is
`--set symbols=128`), source lengths 8..16: swap each consecutive pair (abcd -> badc; an odd
length keeps its last symbol). The episode is the source, a separator, then blank steps on which
the machine emits the flipped source and then the end class; greedy decoding without feedback.
Main metric `errors = 1 - coarse`.

Machine: an LSTM of 128 units with a `NeuralDeque` of 32-wide values (it can be used as a queue
whose controller holds back one symbol, or as a stack at either end). One slot per end per time
step and 2L + 2 steps per episode, so the default capacity 4 * max_length + 2 = 66 covers
evaluation at twice the training length (`difmachine eval RUN --lengths 8,16,32`).

Optimiser: Adam 3e-3, global-norm clipping at 1, batch 32 (Grefenstette et al.: RMSProp, batch
10, clipping 1); the settings that trained fastest for programs/stack_reverse.py on this CPU.
The training mix is solved after about 1500 steps; as for the stack, the extra steps (4000 in
all, no early-stopping target; the deque step costs about twice a queue step, so a few minutes)
are for generalizing to longer sequences.
"""

import optax

import difmachine as dm

symbols = dm.param("symbols", 16)
max_length = dm.param("max_length", 16)
capacity = dm.param("capacity", 4 * max_length + 2)

# --set structure=...: another structure on this task (the paper's cross-structure controls)
kind = dm.param("structure", "deque", choices=("stack", "queue", "deque"))
structure = getattr(dm, "Neural" + kind.capitalize())(
    width=dm.param("width", 32), capacity=capacity
)
structure.check_length(2 * (2 * max_length) + 2)  # evaluation at twice the training length

program = dm.Program(
    machine=dm.Machine(controller=dm.LSTM(dm.param("hidden", 128)), devices=structure),
    task=dm.BigramFlip(
        symbols=symbols, min_length=dm.param("min_length", 8), max_length=max_length
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 4000),
    eval_every=500,
)
