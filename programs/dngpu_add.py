"""The improved Neural GPU on binary addition (Freivalds & Liepins 2017, "Improving the Neural
GPU Architecture for Algorithm Learning"; the settings of the authors' code, LUMII-Syslab/DNGPU).

The task is ``neural_gpu_add.py``'s: two numbers of up to 20 bits, least significant bit first,
around ``+``; the output, at the same positions, is their sum's bits then blanks. The machine
is Kaiser & Sutskever's Neural GPU with the authors' changes, each an option of
``dm.NeuralGPU``:
- one row (``width=1``) and one CGRU per step with a 3-wide kernel along the positions, 48
  channels (96 for multiplication);
- hard nonlinearities, ``hard_sigmoid(x) = clip(0.5 x + 0.5, 0, 1)`` and ``hard_tanh(x) =
  clip(x, -1, 1)``, with the saturation cost ``saturation * relu(|x| - 0.9)`` on their inputs
  (a constant weight here unless ``adaptive_saturation=true``; the authors adapt it);
- diagonal gates: the kept state moves along the positions, a third of the channels right and
  a third left, ``s' = u . shift(s) + (1 - u) . c``;
- dropout on the candidate (50% for addition, 10% for multiplication);
- AdaMax after a global norm clip at 1, learning rate ``0.01 * 48 / channels`` along a cosine decay,
  no curriculum: lengths uniform in 1..20 bits, one length per batch.

Knobs (``--set name=value``): ``bins`` (false; true: the authors' batching, each batch padded to one
of their lengths 8, 12, .., 41 and its examples of any length up to it, every example run for the
batch's number of steps, ``freeze=false``), ``freeze`` and ``shorter`` (``freeze=false
shorter=0.05``: 5% of each batch shorter numbers, padded, run for as many steps as the batch's
longest, as the length bins of the authors' code hold 5% shorter examples), ``input_dropout`` (0;
the authors drop the embedded input at the candidate's rate, 0.5 for addition), ``optimizer``
(``adamax``, or ``clipped``: the authors' AdaMax, ``dm.clipped_adamax``, a per-entry clip against
the running maximum and their schedule of ``b2``), ``bucket``, ``channels``, ``dropout``,
``saturation``, ``diagonal``, ``hard`` (false: the paper's saturating sigmoid and tanh), ``layers``
(1, the authors'; 2: Kaiser & Sutskever's two CGRUs per step, so a signal crosses two positions per
step), ``mean_loss`` (false: the cross-entropy summed over the positions; true: averaged, as the
authors' code does), ``accumulate`` (1; 9 with ``bins=true``: each update averages the gradients of
9 batches, each of a random bin, close to the authors' step, which averages one batch of every bin),
``adaptive`` (Kaiser & Sutskever's curriculum, as in ``neural_gpu_add.py``; 0 = off, the authors'),
``lr`` (0 = the authors' rule), ``decay`` (cosine over ``steps``), ``plateau`` (false; true: the
authors' cut instead of the cosine, the rate times 0.7 whenever the mean loss of 200 updates has not
improved in two checks, down to the rate / 60: ``dm.plateau_cut``), ``adaptive_saturation`` (false;
true: the authors' saturation weight, every 200 updates ``clip(rate * mean loss / mean saturation,
1e-20, saturation)`` with the current rate, ``dm.adaptive_weight``; the cosine's rate is taken as
its start), ``batch_size``, ``bits``, ``steps``, ``select`` (0; e.g. 50: ``best.eqx`` is the
checkpoint with the fewest wrong 50-bit sums, ties as ``Program.select_length`` says). What still
differs from the authors' code (with ``bins=true shorter=0.05 optimizer=clipped input_dropout=0.5
mean_loss=true accumulate=9 plateau=true adaptive_saturation=true noise=true``; ``noise``: their
gradient noise, ``1e-4`` times the current rate per entry, ``dm.rate_noise``): bins drawn at random
for the 9 batches of an update (theirs takes each bin once) and the budget (their 20,000 updates
would be 180,000 steps here). The defaults are
the settings that learned fastest here: with ``optimizer=clipped input_dropout=0.5 freeze=false
shorter=0.05`` (the authors' choices, before ``mean_loss``) two seeds were still 1% and 41% wrong at
20 bits after 10,000 steps. Evaluate far beyond the training lengths with ``difmachine eval RUN
--lengths 20,50,100,200``. Measured here (README, "The improved Neural GPU"): exact on 20-bit sums
after 4,600-6,800 steps in eight runs, but wrong on many sums of 25 bits and on every sum of 30 bits
or more in all ten runs (two with ``bins=true shorter=0.05``). With the authors' loss too
(``bins=true shorter=0.05 optimizer=clipped input_dropout=0.5 mean_loss=true``) one of four seeds
got 91% of 50-bit sums right and 6% at 100 bits; the other three had not learned in 10,000 steps.
The mean loss alone learned fast and failed at 30 bits. ``python -m bench addition_probe RUN`` shows
where a run breaks.
"""

import optax

import difmachine as dm

AUTHORS_BINS = (8, 12, 16, 20, 25, 28, 31, 36, 41)  # their padded lengths, for up to 20 bits


def bins(task_class, bits: int) -> tuple[int, ...]:
    """The authors' length bins up to ``bits`` bits (per operand) of ``task_class``."""
    longest = task_class.size(bits)
    return tuple(b for b in AUTHORS_BINS if b < longest) + (longest,)


def optimizer(
    name: str,
    lr,
    accumulate: int = 1,
    plateau: bool = False,
    adapt: float = 0.0,
    noise: bool = False,
):
    """``clipped``: the authors' AdaMax (:func:`difmachine.clipped_adamax`: a per-entry clip against
    the running maximum, their schedule of ``b2``, no bias correction); ``adamax``: optax's AdaMax
    after a global norm clip at 1 (this program's optimizer before 2026-12-01). ``plateau``: then
    the authors' cut of the rate when the loss stops falling (:func:`difmachine.plateau_cut`).
    ``adapt``: the rate by which the saturation cost's weight follows the loss
    (:func:`difmachine.adaptive_weight`; 0: constant). ``accumulate > 1`` averages the gradients of
    that many batches into each update (``optax.MultiSteps``): the schedules then count updates, not
    batches. ``noise``: first the authors' gradient noise, ``1e-4`` times the current rate per
    entry (:func:`difmachine.rate_noise`)."""
    if name == "clipped":
        base = dm.clipped_adamax(lr)
    elif name == "adamax":
        base = optax.chain(optax.clip_by_global_norm(1.0), optax.adamax(lr))
    else:
        raise ValueError(f"dngpu optimizer must be 'clipped' or 'adamax', got {name!r}")
    if noise:
        base = optax.chain(dm.rate_noise(lr), base)
    if plateau:
        base = optax.chain(base, dm.plateau_cut())
    if adapt:
        base = optax.chain(base, dm.adaptive_weight("saturation", adapt))
    if accumulate == 1:
        return base
    steps = optax.MultiSteps(base, every_k_schedule=accumulate)  # passes `value` on to the cut
    return optax.GradientTransformationExtraArgs(steps.init, steps.update)


def dngpu(task_class, channels: int, dropout: float, bits: int = 20):
    """The program for ``task_class`` (a binary task), with these defaults of ``channels``,
    ``dropout`` and the longest training ``bits``; ``dngpu_mul.py`` calls it with the
    multiplication's, ``dngpu_reverse.py`` with reversal's."""
    channels = dm.param("channels", channels)
    steps = dm.param("steps", 10_000)
    lr = dm.param("lr", 0.0) or 0.01 * 48 / channels
    hard = dm.param("hard", True)
    dropout = dm.param("dropout", dropout)
    binned = dm.param("bins", False)
    max_bits = dm.param("bits", bits)
    accumulate = dm.param("accumulate", 1)
    if accumulate < 1:
        raise ValueError(f"--set accumulate={accumulate}: batches per update, at least 1")
    updates = max(steps // accumulate, 1)
    plateau = dm.param("plateau", False)  # the authors' cut on a plateau instead of the cosine
    cosine = dm.param("decay", True) and not plateau
    adapt = dm.param("adaptive_saturation", False)  # the authors' weight, following the loss
    saturation = dm.param("saturation", 1e-3) if hard else 0.0
    if adapt and not saturation:
        raise ValueError("--set adaptive_saturation=true needs the saturation cost (hard=true)")
    return dm.Program(
        machine=dm.NeuralGPU(
            width=1,
            channels=channels,
            layers=dm.param("layers", 1),  # the authors': 1; Kaiser & Sutskever's: 2
            kernel=(1, 3),
            nonlinearity="hard" if hard else "saturating",
            saturation=saturation,  # with adaptive_saturation the weight's ceiling
            diagonal=dm.param("diagonal", True),
            dropout=dropout,
            input_dropout=dm.param("input_dropout", 0.0),  # the authors': as `dropout`
            freeze=dm.param("freeze", not binned),
        ),
        task=task_class(
            min_bits=1,
            max_bits=max_bits,
            curriculum=0.0,
            bucket=dm.param("bucket", True),
            shorter=dm.param("shorter", 0.0),
            adaptive=dm.param("adaptive", 0.0),
            bins=bins(task_class, max_bits) if binned else (),
            mean_loss=dm.param("mean_loss", False),
        ),
        optimizer=optimizer(
            dm.param("optimizer", "adamax"),
            optax.cosine_decay_schedule(lr, updates, alpha=0.03) if cosine else lr,
            accumulate,
            plateau,
            lr if adapt else 0.0,
            dm.param("noise", False),  # the authors' gradient noise, 1e-4 * the rate
        ),
        batch_size=dm.param("batch_size", 32),
        steps=steps,
        eval_every=dm.param("eval_every", 200),
        eval_samples=128,
        checkpoint_every=200,
        select_length=dm.param("select", 0) or None,  # trained on <= `bits`, picked at this length
        target=None,  # the whole budget: a run stopped at its first perfect evaluation of the
        # training mix (0 of 128 wrong, at step 4,600 of 10,000) was 10% wrong at 20 bits and
        # wrong on every sequence of 50 bits
    )


program = dngpu(dm.BinaryAddition, channels=48, dropout=0.5)
