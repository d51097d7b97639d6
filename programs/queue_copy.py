"""An LSTM with a continuous queue learns to copy sequences (Grefenstette et al. 2015, sec. 4).

Task: `SymbolCopy` over `symbols` symbols (16 by default; the paper's 128 is
`--set symbols=128`), source lengths 8..16. The episode is the source, a separator, then blank
steps on which the machine emits the source in order and then the end class; greedy decoding
without feedback. Main metric `errors = 1 - coarse`.

Machine: an LSTM of 256 units with a `NeuralQueue` of 32-wide values: enqueue each source
symbol, dequeue one per output step. One slot per time step and 2L + 2 steps per episode, so
the default capacity 4 * max_length + 2 = 66 covers evaluation at twice the training length
(`difmachine eval RUN --lengths 8,16,32`); `--set capacity=130` for L = 64.

Optimiser: Adam 3e-3, global-norm clipping at 1, batch 32 (Grefenstette et al.: RMSProp, batch 10,
clipping 1); the same settings as programs/stack_reverse.py, where they trained fastest on this CPU.
The controller is twice the stack machine's: with 128 units the queue machine settled on a muddled
mix of pushes and pops for seeds 0 and 1 (coarse 0.91 and 0.86 on the training mix after 8000 and
4000 steps, 0 at L = 32), while with 256 units it found the clean enqueue-then-dequeue solution by
step 1000 and copied L = 32 perfectly at step 4000. No early-stopping target (the extra steps after
the training mix is solved are for generalization, as in programs/stack_reverse.py): 4000 steps, a
few minutes. Baseline: programs/lstm_copy_symbols.py (the same LSTM without the queue, same
optimiser and step budget).
"""

import optax

import difmachine as dm

symbols = dm.param("symbols", 16)
max_length = dm.param("max_length", 16)
capacity = dm.param("capacity", 4 * max_length + 2)

# --set structure=...: another structure on this task (the paper's cross-structure controls)
kind = dm.param("structure", "queue", choices=("stack", "queue", "deque"))
structure = getattr(dm, "Neural" + kind.capitalize())(
    width=dm.param("width", 32), capacity=capacity
)
structure.check_length(2 * (2 * max_length) + 2)  # evaluation at twice the training length

program = dm.Program(
    machine=dm.Machine(controller=dm.LSTM(dm.param("hidden", 256)), devices=structure),
    task=dm.SymbolCopy(
        symbols=symbols, min_length=dm.param("min_length", 8), max_length=max_length
    ),
    optimizer=optax.chain(optax.clip_by_global_norm(1.0), optax.adam(dm.param("lr", 3e-3))),
    batch_size=32,
    steps=dm.param("steps", 4000),
    eval_every=500,
)
