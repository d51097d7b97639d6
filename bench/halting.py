"""ACT against PonderNet on the same parity setup, over seeds, with the extrapolation test.

Both programs (``programs/act_parity.py``, ``programs/pondernet_parity.py``: an RNN of 128 tanh
units, parity vectors of ``bits`` entries, one input step, up to 20 inner steps) train on vectors
with 1..``max_nonzeros`` non-zero entries until the evaluated error is <= 0.01 or the budget ends;
then each trained machine is evaluated on 2,048 fresh vectors in distribution (1..max_nonzeros
non-zero entries) and beyond it (max_nonzeros+1..bits: PonderNet's extrapolation test, Banino et
al. 2021, section 3.1). Reports error, mean inner steps (ACT: ponder N + R; PonderNet: expected
steps) and wall time per run, and the median over seeds.
"""

from __future__ import annotations

import argparse
import tempfile
import time

import numpy as np
from rich.console import Console
from rich.table import Table

from .common import ROOT, console, machine_info, median, write_json

HELP = "ACT vs PonderNet on parity, over seeds, with extrapolation to more non-zero entries"
PROGRAMS = {"ACT": "programs/act_parity.py", "PonderNet": "programs/pondernet_parity.py"}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--bits", type=int, default=16)
    p.add_argument("--max-nonzeros", type=int, default=8, help="training's most non-zero entries")
    p.add_argument("--steps", type=int, default=10_000, help="training budget per run")
    p.add_argument("--samples", type=int, default=2048, help="evaluation vectors per split")
    p.add_argument("--policies", nargs="+", default=list(PROGRAMS), choices=list(PROGRAMS))


def _split_error(model, task, lengths, samples, seed):
    """Mean error and mean steps statistic over ``lengths`` (equal samples per length)."""
    from difmachine.training import evaluate

    rows = [
        evaluate(model, task, samples=max(1, samples // len(lengths)), seed=seed, length=n)
        for n in lengths
    ]
    stat = next((k for k in ("ponder", "steps") if k in rows[0]), None)
    return (
        float(np.mean([r["error"] for r in rows])),
        float(np.mean([r[stat] for r in rows])) if stat else float("nan"),
    )


def run(args) -> int:
    from difmachine import load_program
    from difmachine.rundir import load_run
    from difmachine.training import train

    settings = {k: getattr(args, k) for k in ("seeds", "bits", "max_nonzeros", "steps", "samples")}
    console.print(f"[bold]halting[/bold]  {machine_info()['platform']}  {settings}")
    inside = list(range(1, args.max_nonzeros + 1))
    beyond = list(range(args.max_nonzeros + 1, args.bits + 1))
    rows = []
    for seed in args.seeds:
        for policy in args.policies:
            overrides = {"bits": str(args.bits), "max_nonzeros": str(args.max_nonzeros)}
            program = load_program(ROOT / PROGRAMS[policy], overrides)
            program = program.replace(seed=seed, steps=args.steps)
            t0 = time.perf_counter()
            with tempfile.TemporaryDirectory(prefix="bench_halting_") as tmp:
                result = train(
                    program,
                    tmp,
                    program_file=ROOT / PROGRAMS[policy],
                    console=Console(quiet=True),
                    name=policy,
                )
                _, model, _ = load_run(tmp, best=True)
            wall = time.perf_counter() - t0
            err_in, steps_in = _split_error(model, program.task, inside, args.samples, 777)
            err_out, steps_out = (
                _split_error(model, program.task, beyond, args.samples, 778)
                if beyond
                else (float("nan"), float("nan"))
            )
            row = {"policy": policy, "seed": seed, "solved": result.solved,
                   "steps_trained": result.step, "wall_s": wall, "error_in": err_in,
                   "inner_steps_in": steps_in, "error_beyond": err_out,
                   "inner_steps_beyond": steps_out}  # fmt: skip
            rows.append(row)
            console.print(row)
    table = Table(title=f"parity, {args.bits} bits, trained on 1..{args.max_nonzeros} non-zero")
    for col in ("policy", "seeds solved", "median steps", "median wall s", "error in",
                "error beyond", "inner steps in", "inner steps beyond"):  # fmt: skip
        table.add_column(col, justify="right")
    summary = {}
    for policy in args.policies:
        mine = [r for r in rows if r["policy"] == policy]
        s = {
            "solved": f"{sum(r['solved'] for r in mine)}/{len(mine)}",
            **{
                k: median([r[k] for r in mine])
                for k in (
                    "steps_trained",
                    "wall_s",
                    "error_in",
                    "error_beyond",
                    "inner_steps_in",
                    "inner_steps_beyond",
                )
            },
        }
        summary[policy] = s
        table.add_row(policy, s["solved"], f"{s['steps_trained']:g}", f"{s['wall_s']:.0f}",
                      f"{s['error_in']:.3f}", f"{s['error_beyond']:.3f}",
                      f"{s['inner_steps_in']:.1f}", f"{s['inner_steps_beyond']:.1f}")  # fmt: skip
    console.print(table)
    write_json(args.json, "halting", settings, {"rows": rows, "summary": summary})
    return 0
