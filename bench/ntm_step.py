"""NTM copy training throughput: difmachine's compiled machine vs the hand-written JAX step.

Both run side by side in one process on the same fixed batch (all sequences of length 20, so 41
time steps), interleaved repeat by repeat. Before timing, a check confirms that the two compute the
same loss and gradients from the same parameters on a mixed-length (padded) batch.
"""

from __future__ import annotations

import argparse
import dataclasses

import equinox as eqx
import jax
import jax.numpy as jnp
from rich.table import Table

from . import handwritten_ntm as hw
from .common import (
    NTM_COPY,
    Stepper,
    console,
    interleaved,
    machine_info,
    median,
    spread,
    write_json,
)

HELP = "training throughput and compile time: difmachine vs hand-written JAX NTM"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--program", default=str(NTM_COPY), help="program file (default ntm_copy.py)")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--length", type=int, default=20, help="sequence length (T = 2L+1 steps)")
    p.add_argument("--repeats", type=int, default=7, help="timed repeats per side")
    p.add_argument("--steps-per-repeat", type=int, default=10)
    p.add_argument(
        "--remat",
        action=argparse.BooleanOptionalAction,
        default=hw.Config.remat,
        help="jax.checkpoint on the hand-written scan body",
    )
    p.add_argument("--layout", choices=["bwn", "bnw"], default=hw.Config.layout,
                   help="hand-written memory layout")  # fmt: skip
    p.add_argument("--dm-remat", action="store_true", help="program.replace(remat=True)")
    p.add_argument("--no-check", action="store_true", help="skip the equivalence check")
    p.add_argument("--chunk", type=int, default=32,
                   help="difmachine Program.chunk (the hand-written step chunks at 32 too)")  # fmt: skip
    p.add_argument("--quick", action="store_true", help="smoke test: B=1,4, few repeats")


def params_from_difmachine(dm_params: dict, device: str = "ntmmemory") -> dict:
    """difmachine's parameter tree in the hand-written layout (same values)."""
    dev = dm_params["devices"][device]
    return {
        "W_x": dm_params["W_x"],
        "W_rh": jnp.concatenate([dm_params["W_r"], dm_params["controller"]["U"]], axis=0),
        "b": dm_params["controller"]["b"],
        "W_i": dm_params["W_i"],
        "b_i": dm_params["b_i"],
        "W_o": dm_params["W_o"],
        "b_o": dm_params["b_o"],
        "read_logits": dev["read_logits"][0],
        "write_logits": dev["write_logits"][0],
    }


def check_equivalence(program, cfg: hw.Config, batch_size: int = 4) -> dict:
    """Loss and gradients of both implementations from the same parameters and padded batch."""
    from difmachine.program import build
    from difmachine.training import batch_rng, loss_and_metrics

    task = program.task
    model = build(program)
    batch = task.sample(batch_rng(123, 0), batch_size)  # mixed lengths: padding is exercised
    dm_fn = eqx.filter_jit(eqx.filter_value_and_grad(loss_and_metrics, has_aux=True))
    (dm_loss, _), dm_grads = dm_fn(model, task, batch)
    hw_params = params_from_difmachine(model.params)
    hw_loss = jax.jit(lambda p, b: hw.loss_fn(cfg, p, b)[0])(hw_params, tuple(batch))
    chunked = dataclasses.replace(cfg, chunk=batch_size // 2)  # exercise the chunked path too
    hw_grads, _ = jax.jit(lambda p, b: hw.batch_grads(chunked, p, b))(hw_params, tuple(batch))
    dm_grads = params_from_difmachine(dm_grads.params)
    worst = max(
        float(jnp.max(jnp.abs(dm_grads[k] - hw_grads[k])) / (jnp.max(jnp.abs(dm_grads[k])) + 1e-12))
        for k in hw_grads
    )
    loss_rel = abs(float(dm_loss) - float(hw_loss)) / abs(float(dm_loss))
    ok = loss_rel < 1e-5 and worst < 1e-3
    return {"ok": ok, "loss_difmachine": float(dm_loss), "loss_handwritten": float(hw_loss),
            "loss_rel_diff": loss_rel, "grad_max_rel_diff": worst}  # fmt: skip


def run(args) -> int:
    from difmachine import load_program
    from difmachine.program import build
    from difmachine.training import batch_rng, make_train_step

    if args.quick:
        args.batch_sizes, args.repeats, args.steps_per_repeat = [1, 4], 3, 3
    program = load_program(args.program)
    if args.dm_remat:
        program = program.replace(remat=True)
    task, optimizer = program.task, program.optimizer
    mem = program.machine.devices[0]
    cfg = hw.Config(bits=task.bits, hidden=program.machine.controller.hidden, slots=mem.slots,
                    width=mem.width, remat=args.remat, layout=args.layout)  # fmt: skip
    settings = {
        "program": args.program,
        "batch_sizes": args.batch_sizes,
        "length": args.length,
        "time_steps": 2 * args.length + 1,
        "repeats": args.repeats,
        "steps_per_repeat": args.steps_per_repeat,
        "warmup_steps": 2,
        "handwritten": dataclasses.asdict(cfg),
        "difmachine_remat": program.remat,
        "difmachine_chunk": args.chunk,
        "batch": "one fixed batch, device_put once, every sequence of the given length",
    }
    console.print(f"[bold]ntm_step[/bold]  {machine_info()['platform']}  jax {jax.__version__}  "
                  f"handwritten remat={cfg.remat} layout={cfg.layout}  difmachine remat={program.remat}")  # fmt: skip

    check = None
    if not args.no_check:
        check = check_equivalence(program, cfg)
        colour = "green" if check["ok"] else "red"
        console.print(f"[{colour}]equivalence: loss {check['loss_difmachine']:.6f} vs "
                      f"{check['loss_handwritten']:.6f}, max grad rel diff "
                      f"{check['grad_max_rel_diff']:.2e}[/{colour}]")  # fmt: skip

    rows = []
    for B in args.batch_sizes:
        prog = program.replace(batch_size=B)
        batch = jax.device_put(task.sample(batch_rng(prog.seed, 0), B, length=args.length))
        model = build(prog)
        dm = Stepper(make_train_step(task, optimizer, args.chunk),
                     (model, optimizer.init(eqx.filter(model, eqx.is_array))), batch)  # fmt: skip
        params, opt_state, step = hw.setup(cfg, prog.seed)
        hand = Stepper(step, (params, opt_state), tuple(batch))
        firsts = {name: s.first_call() for name, s in (("difmachine", dm), ("handwritten", hand))}
        times, cpu = interleaved({"difmachine": dm, "handwritten": hand}, args.repeats,
                                 args.steps_per_repeat)  # fmt: skip
        t_dm, t_hw = median(times["difmachine"]), median(times["handwritten"])
        paired = [a / b for a, b in zip(times["difmachine"], times["handwritten"])]
        row = {
            "batch_size": B,
            "difmachine_seq_per_s": B / t_dm,
            "handwritten_seq_per_s": B / t_hw,
            "ratio_difmachine_over_handwritten": t_dm / t_hw,
            "ratio_paired_median": median(paired),
            "ratio_cpu_time": median(cpu["difmachine"]) / median(cpu["handwritten"]),
            "difmachine_step_s": times["difmachine"],
            "handwritten_step_s": times["handwritten"],
            "difmachine_cpu_s": cpu["difmachine"],
            "handwritten_cpu_s": cpu["handwritten"],
        }
        for name, (wall, phases) in firsts.items():
            row[f"{name}_first_call_s"] = wall
            row[f"{name}_compile_phases_s"] = phases
        rows.append(row)
        console.print(f"B={B}: difmachine {B / t_dm:.0f} seq/s, handwritten {B / t_hw:.0f} seq/s, "
                      f"ratio {t_dm / t_hw:.2f}")  # fmt: skip

    table = Table(title=f"NTM copy training step, length {args.length} ({2 * args.length + 1} "
                        f"time steps), median of {args.repeats} x {args.steps_per_repeat} steps")  # fmt: skip
    for col in ["B", "difmachine seq/s", "handwritten seq/s", "ratio dm/hw", "CPU-time ratio",
                "dm ms/step", "hw ms/step", "dm compile s", "hw compile s"]:  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        dm_c, hw_c = r["difmachine_compile_phases_s"], r["handwritten_compile_phases_s"]
        table.add_row(
            str(r["batch_size"]),
            f"{r['difmachine_seq_per_s']:.0f}",
            f"{r['handwritten_seq_per_s']:.0f}",
            f"{r['ratio_difmachine_over_handwritten']:.2f} (paired {r['ratio_paired_median']:.2f})",
            f"{r['ratio_cpu_time']:.2f}",
            spread(r["difmachine_step_s"]),
            spread(r["handwritten_step_s"]),
            f"{r['difmachine_first_call_s']:.2f} ({sum(dm_c.values()):.2f})",
            f"{r['handwritten_first_call_s']:.2f} ({sum(hw_c.values()):.2f})",
        )
    console.print(table)
    console.print("compile s = wall time of the first call (trace + lower + XLA compile in "
                  "parentheses); ms/step = min-max over repeats; CPU-time ratio = ratio of median process "
                  "CPU seconds per step (less sensitive to other jobs)")  # fmt: skip
    write_json(args.json, "ntm_step", settings, {"equivalence": check, "rows": rows})
    if check is not None and not check["ok"]:
        console.print("[red]the two implementations disagree; timings are not comparable")
        return 1
    return 0


__all__ = ["add_arguments", "run", "params_from_difmachine", "check_equivalence"]
