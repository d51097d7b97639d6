"""Neural GPU on binary addition (Kaiser & Sutskever 2015, "Neural GPUs learn algorithms").

The input is two numbers of up to 20 bits, least significant bit first, separated by ``+``; the
output, at the same positions, is their sum's bits then blanks. The machine is a grid of 4 rows
x input length x 24 channels updated by 2 convolutional GRUs (3x3) per step, run for as many
steps as the input is long; it is scored on every position of the output (``errors``: the
fraction of sequences with any wrong symbol).

The paper's training techniques, each a knob (``--set name=value``):
- ``cutoff``: the saturating sigmoid of the gates, clip(1.2 sigmoid(x) - 0.1, 0, 1) at 1.2
  (1.0 = plain sigmoid);
- ``relax``, ``pull``: parameter-sharing relaxation (``relax`` copies of the CGRU parameters,
  step i uses copy i mod relax, pulled together by ``pull``); 1 = no relaxation;
- ``noise``: annealed gradient noise, variance noise / (1 + t)^0.55 (0 = off);
- ``lr``, ``decay``: Adam's learning rate, decayed along a cosine to 3% of it over the run's
  ``steps`` (``decay=false``: constant; at 3e-3 constant, a run that was right on 98% of the
  symbols at step 8,500 drifted back to 75% by step 30,000);
- ``curriculum``: numbers of k bits drawn with probability proportional to k^-curriculum
  (0 = uniform), a stateless stand-in for the paper's growing lengths;
- ``adaptive``: the paper's adaptive curriculum instead (0.15 in the paper): start at 2 bits,
  add a bit whenever fewer than that fraction of training sequences are wrong over 200 steps;
- ``bucket``: one length per batch, padded only to it (the paper's buckets): a batch of short
  numbers costs what it is; each length compiles once.
- ``dropout``: dropout on the recurrence (on each CGRU's candidate; the paper's code drops 15%);
  0 = off.
``--steps N`` (or ``--set steps=N``) sets the budget, and the decay follows it.
Evaluate far beyond the training lengths with ``difmachine eval RUN --lengths 20,50,100,200``.
"""

import optax

import difmachine as dm

bits = dm.param("bits", 20)
channels = dm.param("channels", 24)
cutoff = dm.param("cutoff", 1.2)
relax = dm.param("relax", 1)
pull = dm.param("pull", 1e-3)
noise = dm.param("noise", 1e-4)
curriculum = dm.param("curriculum", 2.0)
bucket = dm.param("bucket", True)
adaptive = dm.param("adaptive", 0.0)
lr = dm.param("lr", 3e-3)
steps = dm.param("steps", 20_000)
decay = dm.param("decay", True)
dropout = dm.param("dropout", 0.0)

program = dm.Program(
    machine=dm.NeuralGPU(
        width=4,
        channels=channels,
        layers=2,
        kernel=3,
        sigmoid_cutoff=cutoff,
        relax=relax,
        relax_pull=pull,
        dropout=dropout,
    ),
    task=dm.BinaryAddition(
        min_bits=1, max_bits=bits, curriculum=curriculum, bucket=bucket, adaptive=adaptive
    ),
    optimizer=optax.chain(
        optax.clip_by_global_norm(1.0),
        dm.gradient_noise(noise),
        optax.adam(optax.cosine_decay_schedule(lr, steps, alpha=0.03) if decay else lr),
    ),
    batch_size=dm.param("batch_size", 16),
    steps=steps,
    eval_every=dm.param("eval_every", 200),
    eval_samples=128,
    checkpoint_every=200,
    target=dm.param("target", 0.0, optional=True),
)
