"""PonderNet on parity (Banino, Balaguer & Blundell 2021, section 3.1), beside act_parity.py.

The same machine and task as `act_parity.py` (an RNN of 128 tanh units on parity vectors of
`bits` entries, one input step), but halting by PonderNet: the network may take up to 20 inner
steps; after each a halting unit gives lambda_n, p_n = lambda_n prod_{j<n}(1 - lambda_j) is the
probability of halting at step n, and the loss is the task loss in expectation over p (every
inner step's output scored) plus beta * KL(p || Geometric(lambda_p)). Evaluation halts at the
most likely step. The paper used lambda_p = 0.2 (`prior`) and beta = 0.01.

Extrapolation (the paper's test): `--set max_nonzeros=8` trains on vectors with 1..8 non-zero
entries; `difmachine eval runs/pondernet_parity --lengths 9,12,16` then scores harder vectors
than any seen in training.
"""

import optax

import difmachine as dm

bits = dm.param("bits", 16)
max_nonzeros = dm.param("max_nonzeros", 0)  # 0: all `bits`

program = dm.Program(
    machine=dm.Machine(
        controller=dm.RNN(128),
        halting=dm.PonderNet(
            max_steps=dm.param("max_steps", 20),
            prior=dm.param("prior", 0.2),
            beta=dm.param("beta", 0.01),
        ),
    ),
    task=dm.Parity(bits=bits, max_nonzeros=max_nonzeros or None),
    optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(dm.param("lr", 1e-3))),
    batch_size=128,
    steps=dm.param("steps", 20_000),
    eval_every=500,
    eval_samples=2048,
    target=dm.param("target", 0.01, optional=True),
)
