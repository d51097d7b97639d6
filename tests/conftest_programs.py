"""Tiny program files for training and CLI tests (fast to compile and run)."""

TINY = """
import optax
import difmachine as dm

program = dm.Program(
    machine=dm.Machine(dm.LSTM(8), dm.NTMMemory(slots=6, width=4)),
    task=dm.Copy(bits=3, min_length=1, max_length=3),
    optimizer=optax.adam(1e-2),
    batch_size=4,
    steps={steps},
    eval_every=10,
    eval_samples=8,
    checkpoint_every=5,
    log_every=2,
)
"""

OTHER = TINY.replace("slots=6", "slots=7")


def write_program(path, steps=10, text=TINY):
    path.write_text(text.format(steps=steps))
    return path
