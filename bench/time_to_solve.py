"""Steps and wall time until ntm_copy reaches its target (eval bit_errors <= program.target).

Runs ``difmachine.training.train`` once per seed in a temporary run directory, with a quiet
console. Takes minutes per seed at the full budget; ``--quick`` is a smoke test.
"""

from __future__ import annotations

import argparse
import tempfile

from rich.console import Console
from rich.table import Table

from .common import NTM_COPY, console, machine_info, median, write_json

HELP = "steps and wall time to learn ntm_copy, per seed"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--program", default=str(NTM_COPY))
    p.add_argument("--seeds", type=int, nargs="+", default=[0, 1, 2])
    p.add_argument("--max-steps", type=int, default=None, help="default: the program's steps")
    p.add_argument("--eval-every", type=int, default=None, help="default: the program's")
    p.add_argument("--eval-samples", type=int, default=None, help="default: the program's")
    p.add_argument("--quick", action="store_true",
                   help="smoke test: seed 0, 20 steps, eval every 10 on 32 samples")  # fmt: skip


def run(args) -> int:
    from difmachine import load_program
    from difmachine.training import train

    if args.quick:
        args.seeds, args.max_steps = args.seeds[:1], args.max_steps or 20
        args.eval_every, args.eval_samples = args.eval_every or 10, args.eval_samples or 32
    base = load_program(args.program)
    max_steps = args.max_steps or base.steps
    settings = {"program": args.program, "seeds": args.seeds, "max_steps": max_steps,
                "eval_every": args.eval_every or base.eval_every,
                "eval_samples": args.eval_samples or base.eval_samples,
                "batch_size": base.batch_size, "target": base.target}  # fmt: skip
    console.print(f"[bold]time_to_solve[/bold]  {machine_info()['platform']}  target "
                  f"{base.task.main_metric} <= {base.target}, at most {max_steps} steps")  # fmt: skip
    rows = []
    for seed in args.seeds:
        program = base.replace(seed=seed, steps=max_steps, eval_every=args.eval_every,
                               eval_samples=args.eval_samples)  # fmt: skip
        with tempfile.TemporaryDirectory(prefix="bench_tts_") as tmp:
            result = train(program, run_dir=tmp, console=Console(quiet=True), name=f"seed{seed}")
        main = base.task.main_metric
        row = {"seed": seed, "solved": result.solved, "steps": result.step,
               "wall_s": result.wall_time, "interrupted": result.interrupted,
               "refused": result.refused,
               f"eval_{main}": result.metrics.get(f"eval_{main}")}  # fmt: skip
        rows.append(row)
        console.print(f"seed {seed}: {'solved' if result.solved else 'not solved'} at step "
                      f"{result.step}, {result.wall_time:.1f} s")  # fmt: skip
        if result.interrupted:
            break

    table = Table(title=f"ntm_copy time to solve ({base.task.main_metric} <= {base.target})")
    for col in ["seed", "solved", "steps", "wall s", f"final eval {base.task.main_metric}"]:
        table.add_column(col, justify="right")
    for r in rows:
        ev = r[f"eval_{base.task.main_metric}"]
        table.add_row(str(r["seed"]), "yes" if r["solved"] else "no", str(r["steps"]),
                      f"{r['wall_s']:.1f}", "-" if ev is None else f"{ev:.3f}")  # fmt: skip
    summary = {
        "median_steps": median([r["steps"] for r in rows]),
        "median_wall_s": median([r["wall_s"] for r in rows]),
        "solved": sum(r["solved"] for r in rows),
        "runs": len(rows),
    }
    table.add_row("median", f"{summary['solved']}/{summary['runs']}",
                  f"{summary['median_steps']:g}", f"{summary['median_wall_s']:.1f}", "")  # fmt: skip
    console.print(table)
    console.print("unsolved runs count at their last step, so the median is a lower bound "
                  "when some seeds do not solve")  # fmt: skip
    write_json(args.json, "time_to_solve", settings, {"rows": rows, "summary": summary})
    return 0
