"""The Neural Programmer's simplified arithmetic version (Neelakantan et al. 2015).

Task: `Arithmetic`: three operands x1..x3 (digits 1..9) and a question `((x_i op1 x_j) op2 x_k)`
with a random order of the operands and random operations among add, subtract, multiply and
divide, read one clause per step (`question=clause`: step 1 gets the position of its operand,
steps 2 and 3 that of theirs and their operation, all one-hot, as an RNN over the question's
words would read them). Only the final numeric answer is supervised (Huber loss); an answer is
right within 0.01 + 0.1%. Main metric `errors = 1 - accuracy`.

Machine: a GRU controller and an `OpSelector` whose "table" is one row holding the operands as
columns x1..x3. Each step the controller emits a softmax over the operations `load, add,
subtract, multiply, divide` (each reads the previous step's result and the chosen column) and a
softmax over the columns; every operation runs and their results are mixed. `readout` makes the
machine's answer the device's output itself, so the answer can only come from the program.
`--set selection=hard` runs the argmax program instead of the mixture (for evaluation;
`selection=straight` trains straight-through, which learns worse here).

Training aids from the paper: gradient clipping (`clip`) and annealed Gaussian gradient noise with
variance `noise / (1 + t)^0.55` (`--set noise=0` turns it off; at 6000 steps of the whole question
the hard accuracy of seeds 0 and 1 fell from 0.62, 0.68 to 0.41, 0.45 without it). `--set seed=K`
changes the initialisation, the data and the noise. `difmachine trace RUN` prints the induced
program ("step 1: load(col x2) p=0.99; step 2: multiply(s[1], col x1) ..."); `difmachine eval RUN
--lengths 1,2,3` tries operands of 1, 2 and 3 digits (trained on 1).

`--set question=whole` gives the whole question as one vector at every step instead: the
controller must then also learn which part of the question belongs to which step, and with a
GRU-64 it does not within 6000 steps (hard accuracy 0.62 and 0.68 for seeds 0 and 1, against
1.00 for each of seeds 0-2 reading clauses; python -m bench neural_programmer --only
arithmetic --set question=whole --steps 6000).
"""

import optax

import difmachine as dm

seed = dm.param("seed", 0)
task = dm.Arithmetic(
    operands=dm.param("operands", 3),
    delta=dm.param("delta", 0.1),
    question=dm.param("question", "clause"),
)

optimizer = optax.chain(
    optax.clip_by_global_norm(dm.param("clip", 1.0)),
    dm.gradient_noise(dm.param("noise", 1e-3), 0.55, seed=seed),
    optax.adam(dm.param("lr", 1e-2)),
)

program = dm.Program(
    machine=dm.Machine(
        controller=dm.GRU(dm.param("hidden", 64)),
        devices={
            "programmer": dm.OpSelector(
                dm.ARITHMETIC_OPS,
                columns=task.columns,
                scale=task.scale,
                selection=dm.param("selection", "soft"),
            )
        },
        readout="programmer",
    ),
    task=task,
    optimizer=optimizer,
    batch_size=dm.param("batch_size", 32),
    steps=dm.param("steps", 3000),
    seed=seed,
    eval_every=1000,
    eval_samples=512,
    target=dm.param("target", 0.0, optional=True),
)
