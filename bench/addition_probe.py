"""Where a trained binary-addition model breaks: hand-built sums at lengths past its training.

Random sums mix everything a Neural GPU has to do; these kinds of ``k``-bit sums pull it apart:

- ``random``: ``a`` and ``b`` uniform, as in evaluation;
- ``a=0``: the result is ``b``, moved ``k + 1`` places left onto ``a``'s positions (only the
  transport);
- ``b=0``: the result is ``a``, where it already is (no transport);
- ``no carry``: ``a & b == 0``, so every result bit is ``a_i + b_i`` (transport, no carries);
- ``long carry``: ``(2^k - 1) + 1``, one carry through all ``k`` bits (random sums almost never
  hold one longer than a few bits).

For each kind and ``--bits`` value: the fraction of ``--samples`` sums with a wrong position, the
fraction of positions wrong, and the lowest and highest wrong result position. ``RUN`` is a run
directory of a program whose task is ``BinaryAddition`` (e.g. ``programs/dngpu_add.py``).
"""

from __future__ import annotations

import argparse

import jax
import numpy as np
from rich.table import Table

from difmachine.tasks.binary import from_bits

from .common import console, write_json

HELP = "where a trained binary-addition model breaks (transport, carries) past its training"
KINDS = ("random", "a=0", "b=0", "no carry", "long carry")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("run", help="a run directory of a BinaryAddition program")
    p.add_argument("--bits", type=int, nargs="+", default=[20, 25, 30, 50])
    p.add_argument("--samples", type=int, default=64)
    p.add_argument("--best", action="store_true", help="the run's best checkpoint")


def operands(kind: str, k: int, rng: np.random.Generator) -> tuple[int, int]:
    """One ``(a, b)`` pair of ``kind`` with ``k``-bit operands."""
    draw = lambda: from_bits(rng.integers(0, 2, size=k))  # noqa: E731 (any k: Python ints)
    if kind == "random":
        return draw(), draw()
    if kind == "a=0":
        return 0, draw()
    if kind == "b=0":
        return draw(), 0
    if kind == "no carry":
        a = draw()
        return a, draw() & ~a
    return 2**k - 1, 1


def run(args) -> None:
    import difmachine as dm
    from difmachine.rundir import load_run
    from difmachine.training import batch_outputs

    program, model, header = load_run(args.run, best=args.best)
    task = program.task
    if not isinstance(task, dm.BinaryAddition):
        raise SystemExit(f"{args.run}: its task is {type(task).__name__}, not BinaryAddition")
    forward = jax.jit(lambda batch: batch_outputs(model, batch)[0])
    rows = []
    for k in args.bits:
        for i, kind in enumerate(KINDS):
            rng = np.random.default_rng([k, i])  # a row's sums do not depend on the other rows
            examples = [task.operands(*operands(kind, k, rng), k) for _ in range(args.samples)]
            batch = task.encode(examples, task.size(k))
            ys = np.asarray(forward(batch))
            wrong = (ys.argmax(-1) != batch.targets.argmax(-1)) & (batch.loss_mask > 0)
            where = np.flatnonzero(wrong.any(0))
            rows.append(
                {
                    "bits": k,
                    "kind": kind,
                    "sums_wrong": float(wrong.any(1).mean()),
                    "positions_wrong": float(wrong.sum() / batch.loss_mask.sum()),
                    "wrong_from": int(where.min()) if len(where) else None,
                    "wrong_to": int(where.max()) if len(where) else None,
                }
            )
    table = Table(title=f"{args.run} at step {header['step']}: {args.samples} sums per row")
    for column in ("bits", "kind", "sums wrong", "positions wrong", "wrong result bits"):
        table.add_column(column, justify="left" if column == "kind" else "right")
    for r in rows:
        span = "-" if r["wrong_from"] is None else f"{r['wrong_from']}-{r['wrong_to']}"
        table.add_row(
            str(r["bits"]), r["kind"], f"{r['sums_wrong']:.2f}", f"{r['positions_wrong']:.3f}", span
        )
    console.print(table)
    settings = {"run": str(args.run), "step": header["step"], "samples": args.samples}
    write_json(args.json, "addition_probe", settings, rows)
