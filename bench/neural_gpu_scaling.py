"""The Neural GPU's cost against input length: train step and evaluation time per sequence, and
the compiled step's peak memory.

A Neural GPU runs as many steps as the input is long, each over the whole ``width x n`` grid,
so the work per example grows as ``n^2`` (``n = 2 k + 1`` symbols for ``k``-bit operands). For
each ``--bits`` value: the program's machine (``--program``, by default
``programs/neural_gpu_add.py``; its defaults) on a
batch of ``--batch-size`` additions of exactly ``k``-bit numbers; the training step (median of
``--repeats`` after two warm-ups, asserting that the timed steps compiled nothing) up to
``--max-train-bits``, the evaluation forward pass at every length; XLA's ``memory_analysis()``
(``temp + argument + output`` bytes) for both; the compile time of each (every length compiles
once: a run with ``bucket=True`` compiles one step per training length). The last column is the
growth exponent of the evaluation time between consecutive lengths (``log(t2/t1) / log(n2/n1)``):
2 is quadratic.
"""

from __future__ import annotations

import argparse
import math
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from rich.table import Table

from .common import ROOT, Stepper, console, machine_info, median, write_json

HELP = "Neural GPU step time and peak memory against input length"
PROGRAM = ROOT / "programs" / "neural_gpu_add.py"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--program", default=str(PROGRAM), help="a Neural GPU program file")
    p.add_argument("--bits", type=int, nargs="+", default=[5, 10, 20, 50, 100, 200, 500])
    p.add_argument("--max-train-bits", type=int, default=100)
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--repeats", type=int, default=3)
    p.add_argument("--quick", action="store_true", help="smoke test: 5 and 10 bits, batch 2")


def peak(compiled) -> int:
    ma = compiled.memory_analysis()
    return int(ma.temp_size_in_bytes + ma.argument_size_in_bytes + ma.output_size_in_bytes)


def measure(program, bits: int, args, train: bool) -> dict:
    from difmachine import testing
    from difmachine.program import build
    from difmachine.training import make_eval_step, make_train_step

    task = program.task
    model = build(program)
    batch = jax.device_put(task.sample(np.random.default_rng(bits), args.batch_size, bits))
    n = batch.inputs.shape[1]
    row: dict = {"bits": bits, "length": n, "batch_size": args.batch_size}
    eval_step = make_eval_step(task)
    t0 = time.perf_counter()
    compiled = eval_step.lower(model, batch).compile()
    row["eval_compile_s"] = time.perf_counter() - t0
    row["eval_peak_bytes"] = peak(compiled)
    jax.block_until_ready(compiled(model, batch))
    runs = []
    for _ in range(args.repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(compiled(model, batch))
        runs.append(time.perf_counter() - t0)
    row["eval_s_per_seq"] = median(runs) / args.batch_size
    if train:
        opt_state = program.optimizer.init(eqx.filter(model, eqx.is_array))
        train_step = make_train_step(task, program.optimizer)
        t0 = time.perf_counter()
        lowered = train_step.lower(model, opt_state, batch).compile()
        row["train_compile_s"] = time.perf_counter() - t0
        row["train_peak_bytes"] = peak(lowered)
        stepper = Stepper(train_step, (model, opt_state), batch)
        stepper.run(2)  # warm-ups: the second would recompile on a changed weak type
        with testing.count_compiles() as counter:
            times = [stepper.run(1) for _ in range(args.repeats)]
        if counter.compiles:
            raise RuntimeError(f"the timed steps compiled {counter.compiles} times")
        row["train_step_s"] = median(times)
        row["train_s_per_seq"] = row["train_step_s"] / args.batch_size
    return row


def run(args) -> int:
    from difmachine.program import load_program

    if args.quick:
        args.bits, args.batch_size, args.repeats, args.max_train_bits = [5, 10], 2, 1, 10
    program = load_program(args.program, {})
    name = Path(args.program).name
    console.print(
        f"[bold]neural_gpu_scaling[/bold]  {machine_info()['platform']}  bits {args.bits}"
    )
    rows: list[dict] = []
    for bits in args.bits:
        row = measure(program, bits, args, train=bits <= args.max_train_bits)
        if rows:
            prev = rows[-1]
            row["exponent"] = math.log(row["eval_s_per_seq"] / prev["eval_s_per_seq"]) / math.log(
                row["length"] / prev["length"]
            )
        rows.append(row)
        console.print(
            f"{bits} bits (n = {row['length']}): eval {row['eval_s_per_seq'] * 1e3:.1f} ms/seq"
            + (f", train step {row['train_step_s']:.3f} s" if "train_step_s" in row else "")
        )
    table = Table(title=f"Neural GPU ({name}), batch {args.batch_size}")
    cols = ["bits", "n", "train step s", "train peak MB", "eval ms/seq", "eval peak MB",
            "compile s (train / eval)", "growth exponent"]  # fmt: skip
    for col in cols:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            str(r["bits"]),
            str(r["length"]),
            f"{r['train_step_s']:.3f}" if "train_step_s" in r else "-",
            f"{r['train_peak_bytes'] / 2**20:.1f}" if "train_peak_bytes" in r else "-",
            f"{r['eval_s_per_seq'] * 1e3:.1f}",
            f"{r['eval_peak_bytes'] / 2**20:.1f}",
            (f"{r['train_compile_s']:.1f} / " if "train_compile_s" in r else "- / ")
            + f"{r['eval_compile_s']:.1f}",
            f"{r['exponent']:.2f}" if "exponent" in r else "-",
        )
    console.print(table)
    settings = {k: v for k, v in vars(args).items() if not k.startswith("_")}
    write_json(args.json, "neural_gpu_scaling", settings, {"rows": rows})
    return 0
