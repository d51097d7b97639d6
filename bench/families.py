"""Training throughput and time to solve for one program of each machine family.

For each program: the compiled train step's throughput at the program's batch size (two warm-up
steps, then the median of ``--repeats`` timed runs of ``--steps-per-repeat`` steps, asserting that
the timed runs compiled nothing) and its first-call (compile) time; then, per seed, a full
``difmachine run`` of the program's defaults: steps and wall time until its target (or its whole
budget when it has no target) and the final evaluated main metric.
"""

from __future__ import annotations

import argparse
import tempfile

import equinox as eqx
import jax

from .common import ROOT, Stepper, console, machine_info, median, write_json

HELP = "throughput and time to solve, one program per machine family"

FAMILIES = {
    "act": "act_parity.py",
    "stack": "stack_reverse.py",
    "seq2seq": "seq2seq_reverse.py",
    "memory network": "memn2n_babi.py",
    "neural programmer": "neural_programmer_table.py",
    "neural gpu": "neural_gpu_add.py",  # ~3 s/step on a loaded 2-core CPU: use --max-steps
    "dnc": "dnc_copy.py",
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--only", choices=list(FAMILIES), action="append", help="repeatable")
    p.add_argument("--seeds", type=int, nargs="+", default=[0])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps-per-repeat", type=int, default=10)
    p.add_argument("--max-steps", type=int, default=None, help="cap every program's budget")
    p.add_argument("--no-solve", action="store_true", help="throughput only")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 repeats, 20 steps")


def throughput(program, repeats: int, steps_per_repeat: int) -> dict:
    from difmachine import testing
    from difmachine.program import build
    from difmachine.training import batch_rng, make_train_step

    task = program.task
    model = build(program)
    state = (model, program.optimizer.init(eqx.filter(model, eqx.is_array)))
    batch = jax.device_put(task.sample(batch_rng(program.seed, 0), program.batch_size))
    stepper = Stepper(make_train_step(task, program.optimizer), state, batch)
    first_call = stepper.run(1)
    stepper.run(1)  # a second warm-up: a changed weak type would recompile here
    with testing.count_compiles() as counter:
        times = [stepper.run(steps_per_repeat) / steps_per_repeat for _ in range(repeats)]
    if counter.compiles:
        raise RuntimeError(f"the timed steps compiled {counter.compiles} times")
    return {
        "batch_size": program.batch_size,
        "seq_per_s": program.batch_size / median(times),
        "step_s": times,
        "first_call_s": first_call,
    }


def solve(program, seed: int, max_steps: int | None) -> dict:
    from rich.console import Console

    from difmachine.training import train

    program = program.replace(seed=seed, steps=min(program.steps, max_steps or program.steps))
    with tempfile.TemporaryDirectory(prefix="bench_families_") as tmp:
        result = train(program, run_dir=tmp, console=Console(quiet=True))
    main = program.task.main_metric
    return {
        "seed": seed,
        "target": program.target,
        "solved": result.solved,
        "steps": result.step,
        "wall_s": result.wall_time,
        "main_metric": main,
        "final": result.metrics.get(f"eval_{main}"),
    }


def run(args) -> int:
    from rich.table import Table

    from difmachine import load_program

    if args.quick:
        args.repeats, args.steps_per_repeat, args.max_steps = 3, 2, args.max_steps or 20
    names = args.only or list(FAMILIES)
    console.print(f"[bold]families[/bold]  {machine_info()['platform']}  {', '.join(names)}")
    rows = []
    for name in names:
        path = ROOT / "programs" / FAMILIES[name]
        program = load_program(path)
        row = {"family": name, "program": path.name,
               **throughput(program, args.repeats, args.steps_per_repeat), "runs": []}  # fmt: skip
        console.print(f"{name}: {row['seq_per_s']:.0f} seq/s at batch {row['batch_size']}, "
                      f"first call {row['first_call_s']:.1f} s")  # fmt: skip
        if not args.no_solve:
            for seed in args.seeds:
                r = solve(program, seed, args.max_steps)
                row["runs"].append(r)
                outcome = ("ran (no target) to" if program.target is None
                           else "solved at" if r["solved"] else "not solved at")  # fmt: skip
                console.print(f"  seed {seed}: {outcome} step {r['steps']}, {r['wall_s']:.1f} s, "
                              f"{r['main_metric']} {r['final']}")  # fmt: skip
        rows.append(row)

    table = Table(title="one program per family: training throughput and time to solve")
    for col in ["family", "program", "batch", "seq/s", "compile s", "target", "solved",
                "median steps", "median wall s", "final metric"]:  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        runs = r["runs"]
        finals = ", ".join(f"{x['final']:.3g}" for x in runs if x["final"] is not None)
        target = runs[0]["target"] if runs else None
        table.add_row(
            r["family"],
            r["program"],
            str(r["batch_size"]),
            f"{r['seq_per_s']:.0f}",
            f"{r['first_call_s']:.1f}",
            "-" if target is None else f"{runs[0]['main_metric']} <= {target:g}",
            f"{sum(x['solved'] for x in runs)}/{len(runs)}" if runs and target is not None else "-",
            f"{median([x['steps'] for x in runs]):g}" if runs else "-",
            f"{median([x['wall_s'] for x in runs]):.0f}" if runs else "-",
            finals or "-",
        )
    console.print(table)
    settings = {"families": names, "seeds": args.seeds, "repeats": args.repeats,
                "steps_per_repeat": args.steps_per_repeat, "max_steps": args.max_steps}  # fmt: skip
    write_json(args.json, "families", settings, {"rows": rows})
    return 0


__all__ = ["add_arguments", "run", "FAMILIES"]
