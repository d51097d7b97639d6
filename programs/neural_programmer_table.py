"""The Neural Programmer on synthetic table question answering (Neelakantan et al. 2015).

Task: `TableQA`: tables of `columns` numeric columns (A, B, C by default; `--set columns=1` is
the paper's single-column setting) and 4..8 rows of distinct integers in [0, 100), and template
questions over them: "sum of B", "count rows where A greater than 30", "sum of B where A lesser
than 52", "sum of C where A greater than 12 and lesser than 70", "count rows where B lesser than
20 or greater than 80", "print B where A greater than 93", "difference between sum of B and sum
of C". Only the numeric answer is supervised (Huber loss); right means within 0.5. Main metric
`errors = 1 - accuracy`.

Machine: a `Seq2Seq` whose encoder is a GRU over the question's words (numbers as one <num>
token) and whose decoder is a GRU run for `T = 4` steps with an `OpSelector` holding the
paper's operations (sum, count, difference, print, greater, lesser, and, or, reset) and, as in
the paper's selector, attention over the question's words (`--set attention=none` drops it; then
3-column runs reached hard accuracy 0.45-0.62 instead of 0.63-0.81 at 5000 steps). The batch
context routes the question to the encoder and the table with the question's numbers to the
device: `{"source": Context(question), "table": Table(values, rows, numbers)}`. Each step
the decoder picks an operation, a column and, for greater/lesser, one of the question's numbers
(a pointer over them); `readout` makes the last step's scalar the answer. `--set
selection=hard` runs the argmax program instead of the mixture (python -m bench
neural_programmer evaluates both).

Training aids: gradient clipping (`clip`), annealed Gaussian gradient noise of variance
`noise / (1 + t)^0.55` (`--set noise=0` to turn it off) and a cosine decay of the learning rate
to 1% over `steps` (`--set decay=false` for a constant rate; runs without it drift away from
programs they had found; `--steps N` changes the budget and the decay follows).
`--set seed=K` changes initialisation, data and noise. Closer to the paper (README, "The Neural
Programmer"): `--set pivot=content` (comparison numbers chosen by the question's encoder state
at each number), `--set feedback=history` (the controller sees its past choices, not the
scalar) and `--set entropy=0.01 entropy_steps=5000` (an exploration bonus on the choices; the
only one that gets "difference" learned, in 1 seed of 5). `difmachine trace RUN` prints the
induced program ("step 1: greater(col A, 30) p=0.97; step 2: sum(col B, rows[1]) p=0.99"), the
attention over the question and the row selector over the table's rows; `difmachine eval RUN
--lengths 8,16,32` tries bigger tables than in training.
"""

import optax

import difmachine as dm

seed = dm.param("seed", 0)
task = dm.TableQA(
    columns=dm.param("columns", 3),
    max_rows=dm.param("max_rows", 8),
    delta=dm.param("delta", 10.0),
)
programmer = dm.OpSelector(
    dm.TABLE_OPS,
    columns=task.names,
    numbers=2,
    scale=task.scale,
    selection=dm.param("selection", "soft"),
    pivot=dm.param("pivot", "pointer"),
    feedback=dm.param("feedback", "scalar"),
    entropy=dm.param("entropy", 0.0),
    entropy_steps=dm.param("entropy_steps", 0),
)

attention = dm.param("attention", "additive")
devices = {"programmer": programmer}
if attention != "none":  # the controller re-reads the question's words at every step
    devices = {"question": dm.Attention(attention, size=dm.param("size", 32)), **devices}

steps = dm.param("steps", 10_000)
lr = dm.param("lr", 1e-2)
if dm.param("decay", True):  # cosine decay to 1% of lr over the run: keeps a found program
    lr = optax.cosine_decay_schedule(lr, steps, alpha=0.01)

program = dm.Program(
    machine=dm.Seq2Seq(
        encoder=dm.Encoder(
            dm.GRU(dm.param("encoder", 64)), bidirectional=dm.param("bidirectional", False)
        ),
        decoder=dm.Machine(
            controller=dm.GRU(dm.param("hidden", 64)),
            devices=devices,
            readout="programmer",
        ),
    ),
    task=task,
    optimizer=optax.chain(
        optax.clip_by_global_norm(dm.param("clip", 1.0)),
        dm.gradient_noise(dm.param("noise", 1e-3), 0.55, seed=seed),
        optax.adam(lr),
    ),
    batch_size=dm.param("batch_size", 32),
    steps=steps,
    seed=seed,
    eval_every=1000,
    eval_samples=512,
    target=dm.param("target", 0.0, optional=True),
)
