"""difmachine NTM training-step time against sequence length and memory slots.

Sweeps the copy task's sequence length L (T = 2L+1 time steps) at 128 slots, then the number of
memory slots at length 20, at a fixed batch size; reports step time, cost per time step (or per
slot), compile time, and least-squares linear fits ``time = a + b * x``.
"""

from __future__ import annotations

import argparse

import equinox as eqx
import jax
import numpy as np
from rich.table import Table

from .common import NTM_COPY, Stepper, console, interleaved, machine_info, median, write_json

HELP = "difmachine NTM step time against sequence length and memory slots"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--program", default=str(NTM_COPY))
    p.add_argument("--batch-size", type=int, default=16)
    p.add_argument("--lengths", type=int, nargs="+", default=[10, 25, 50, 100, 200])
    p.add_argument("--slots", type=int, nargs="+", default=[32, 128, 512, 2048, 4096])
    p.add_argument("--slots-length", type=int, default=20, help="sequence length of the slot sweep")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--repeat-seconds", type=float, default=0.5, help="target length of a repeat")
    p.add_argument("--remat", action="store_true", help="program.replace(remat=True)")
    p.add_argument("--quick", action="store_true", help="smoke test: 3 lengths, 3 sizes, 3 repeats")


def with_slots(program, slots: int):
    import difmachine as dm

    m = program.machine
    (mem,) = m.devices
    new = dm.NTMMemory(slots=slots, width=mem.width, read_heads=mem.read_heads,
                       write_heads=mem.write_heads, shifts=mem.shifts,
                       memory_init=mem.memory_init, init_value=mem.init_value)  # fmt: skip
    return program.replace(machine=dm.Machine(m.controller, {m.names[0]: new}, m.halting))


def measure(program, length: int, repeats: int, repeat_seconds: float) -> dict:
    from difmachine.program import build
    from difmachine.training import batch_rng, make_train_step

    task, optimizer = program.task, program.optimizer
    B = program.batch_size
    batch = jax.device_put(task.sample(batch_rng(program.seed, 0), B, length=length))
    model = build(program)
    stepper = Stepper(make_train_step(task, optimizer),
                      (model, optimizer.init(eqx.filter(model, eqx.is_array))), batch)  # fmt: skip
    first, phases = stepper.first_call()
    estimate = stepper.run(1)
    steps = int(np.clip(round(repeat_seconds / estimate), 1, 50))
    wall, cpu = interleaved({"difmachine": stepper}, repeats, steps, warmup=1)
    times = wall["difmachine"]
    return {
        "length": length,
        "time_steps": 2 * length + 1,
        "slots": program.machine.devices[0].slots,
        "step_s": median(times),
        "step_s_all": times,
        "cpu_s_per_step": median(cpu["difmachine"]),
        "steps_per_repeat": steps,
        "seq_per_s": B / median(times),
        "first_call_s": first,
        "compile_phases_s": phases,
    }


def linear_fit(x, y) -> dict:
    x, y = np.asarray(x, float), np.asarray(y, float)
    slope, intercept = np.polyfit(x, y, 1)
    pred = intercept + slope * x
    ss_tot = float(np.sum((y - y.mean()) ** 2))
    r2 = 1.0 - float(np.sum((y - pred) ** 2)) / ss_tot if ss_tot > 0 else 1.0
    return {"intercept": float(intercept), "slope": float(slope), "r2": r2}


def _fit_text(fit: dict, unit: str, scale: float = 1e3, name: str = "ms") -> str:
    return (f"fit: {fit['intercept'] * scale:.2f} {name} + {fit['slope'] * scale:.4f} {name} x "
            f"{unit}  (R^2 {fit['r2']:.4f})")  # fmt: skip


def run(args) -> int:
    from difmachine import load_program

    if args.quick:
        args.lengths, args.slots, args.repeats = [10, 25, 50], [32, 128, 512], 3
        args.repeat_seconds = min(args.repeat_seconds, 0.3)
    program = load_program(args.program).replace(batch_size=args.batch_size)
    if args.remat:
        program = program.replace(remat=True)
    B = args.batch_size
    settings = {k: getattr(args, k) for k in ("program", "batch_size", "lengths", "slots",
                "slots_length", "repeats", "repeat_seconds", "quick")}  # fmt: skip
    settings["remat"] = program.remat
    console.print(f"[bold]scaling[/bold]  {machine_info()['platform']}  jax {jax.__version__}  "
                  f"B={B}  remat={program.remat}")  # fmt: skip

    by_length = []
    for L in args.lengths:
        by_length.append(measure(program, L, args.repeats, args.repeat_seconds))
        console.print(f"length {L}: {by_length[-1]['step_s'] * 1e3:.1f} ms/step")
    by_slots = []
    for N in args.slots:
        by_slots.append(measure(with_slots(program, N), args.slots_length, args.repeats,
                                args.repeat_seconds))  # fmt: skip
        console.print(f"slots {N}: {by_slots[-1]['step_s'] * 1e3:.1f} ms/step")

    T = [r["time_steps"] for r in by_length]
    fits = {
        "step_vs_time_steps": linear_fit(T, [r["step_s"] for r in by_length]),
        "compile_vs_time_steps": linear_fit(T, [r["first_call_s"] for r in by_length]),
        "step_vs_slots": linear_fit(
            [r["slots"] for r in by_slots], [r["step_s"] for r in by_slots]
        ),
    }

    t1 = Table(title=f"difmachine NTM training step vs sequence length (B={B}, 128 slots)")
    for col in ["length", "T", "ms/step", "seq/s", "us per time step", "us per time step per seq",
                "first call s", "XLA compile s"]:  # fmt: skip
        t1.add_column(col, justify="right")
    for r in by_length:
        t1.add_row(str(r["length"]), str(r["time_steps"]), f"{r['step_s'] * 1e3:.1f}",
                   f"{r['seq_per_s']:.0f}", f"{r['step_s'] / r['time_steps'] * 1e6:.0f}",
                   f"{r['step_s'] / r['time_steps'] / B * 1e6:.1f}", f"{r['first_call_s']:.2f}",
                   f"{r['compile_phases_s'].get('compile', 0.0):.2f}")  # fmt: skip
    console.print(t1)
    console.print("step time  " + _fit_text(fits["step_vs_time_steps"], "T"))
    console.print("first call " + _fit_text(fits["compile_vs_time_steps"], "T", 1.0, "s"))

    t2 = Table(title=f"difmachine NTM training step vs memory slots (B={B}, length "
                     f"{args.slots_length})")  # fmt: skip
    for col in ["slots", "ms/step", "seq/s", "us per slot", "us per time step", "first call s"]:
        t2.add_column(col, justify="right")
    for r in by_slots:
        t2.add_row(str(r["slots"]), f"{r['step_s'] * 1e3:.1f}", f"{r['seq_per_s']:.0f}",
                   f"{r['step_s'] / r['slots'] * 1e6:.1f}",
                   f"{r['step_s'] / r['time_steps'] * 1e6:.0f}", f"{r['first_call_s']:.2f}")  # fmt: skip
    console.print(t2)
    console.print("step time  " + _fit_text(fits["step_vs_slots"], "slots"))
    write_json(args.json, "scaling", settings,
               {"by_length": by_length, "by_slots": by_slots, "fits": fits})  # fmt: skip
    return 0
