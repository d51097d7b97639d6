"""Process-wide settings (XLA CPU flags, glibc malloc tunables) against difmachine's NTM step.

These settings apply to a whole process, so each variant runs in its own child process
(``python -m bench.flags --child``), which times difmachine's NTM copy training step the way
``ntm_step`` does (fixed batch, two warm-up steps, median of repeats, nothing compiled in the timed
loop). The variants run round-robin, in a rotated order each round, and each is reported as its
median speed over rounds relative to the default run of the same round.
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys

from rich.table import Table

from .common import NTM_COPY, ROOT, Stepper, console, interleaved, machine_info, median, write_json

HELP = "XLA CPU flags and malloc tunables: difmachine NTM step speed, one process per variant"

GLIBC = "glibc.malloc.mmap_threshold=2147483647:glibc.malloc.trim_threshold=4294967295"
VARIANTS = {
    "default": {},
    "fast_math": {"XLA_FLAGS": "--xla_cpu_enable_fast_math=true"},
    "no_eigen_threads": {"XLA_FLAGS": "--xla_cpu_multi_thread_eigen=false"},
    "glibc_no_mmap": {"GLIBC_TUNABLES": GLIBC},
}


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--variants", nargs="+", default=list(VARIANTS), choices=list(VARIANTS))
    p.add_argument("--rounds", type=int, default=3)
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--steps-per-repeat", type=int, default=10)
    p.add_argument("--chunk", type=int, default=32, help="difmachine Program.chunk")


def _child(batch_sizes: list[int], repeats: int, steps: int, chunk: int) -> dict:
    """Seq/s of difmachine's NTM copy step per batch size, in this process."""
    import equinox as eqx
    import jax

    from difmachine import load_program
    from difmachine.program import build
    from difmachine.training import batch_rng, make_train_step

    program = load_program(NTM_COPY)
    task, optimizer = program.task, program.optimizer
    out = {}
    for B in batch_sizes:
        batch = jax.device_put(task.sample(batch_rng(program.seed, 0), B, length=20))
        model = build(program)
        state = (model, optimizer.init(eqx.filter(model, eqx.is_array)))
        stepper = Stepper(make_train_step(task, optimizer, chunk), state, batch)
        times, _ = interleaved({"difmachine": stepper}, repeats, steps)
        out[str(B)] = B / median(times["difmachine"])
    return out


def _run_variant(name: str, args) -> dict | str:
    env = {**os.environ, **VARIANTS[name]}
    cmd = [sys.executable, "-m", "bench.flags", "--child", "--batch-sizes",
           *map(str, args.batch_sizes), "--repeats", str(args.repeats), "--steps-per-repeat",
           str(args.steps_per_repeat), "--chunk", str(args.chunk)]  # fmt: skip
    done = subprocess.run(cmd, env=env, cwd=ROOT, capture_output=True, text=True)
    if done.returncode != 0:
        lines = (done.stderr or done.stdout).strip().splitlines()
        return lines[-1] if lines else f"exit code {done.returncode}"
    return json.loads(done.stdout.strip().splitlines()[-1])


def run(args) -> int:
    names = ["default", *[v for v in args.variants if v != "default"]]
    runs: dict[str, list] = {name: [] for name in names}
    for r in range(args.rounds):
        order = names[r % len(names) :] + names[: r % len(names)]
        for name in order:
            result = _run_variant(name, args)
            runs[name].append(result)
            shown = result if isinstance(result, str) else {k: round(v) for k, v in result.items()}
            console.print(f"round {r + 1}: {name}: {shown}")

    rows = []
    for name in names:
        ok = [(res, base) for res, base in zip(runs[name], runs["default"])
              if isinstance(res, dict) and isinstance(base, dict)]  # fmt: skip
        errors = [res for res in runs[name] if isinstance(res, str)]
        row = {"variant": name, "env": VARIANTS[name], "error": errors[0] if errors else None}
        for B in map(str, args.batch_sizes):
            row[f"seq_per_s_B{B}"] = median([res[B] for res, _ in ok]) if ok else None
            row[f"speedup_B{B}"] = median([res[B] / base[B] for res, base in ok]) if ok else None
        rows.append(row)

    table = Table(title=f"difmachine NTM copy step per process setting, median of {args.rounds} "
                        "rounds (speed-up = seq/s over the same round's default)")  # fmt: skip
    table.add_column("variant")
    for B in args.batch_sizes:
        table.add_column(f"B={B} seq/s (speed-up)", justify="right")
    for row in rows:
        if row["error"]:
            table.add_row(row["variant"], *[row["error"][:60]] * len(args.batch_sizes))
            continue
        table.add_row(row["variant"], *[f"{row[f'seq_per_s_B{B}']:.0f} "
                                        f"({row[f'speedup_B{B}']:.2f})" for B in args.batch_sizes])  # fmt: skip
    console.print(table)
    settings = {k: getattr(args, k) for k in ("variants", "rounds", "batch_sizes", "repeats",
                                              "steps_per_repeat", "chunk")}  # fmt: skip
    settings["machine_of_parent"] = machine_info()
    write_json(args.json, "flags", settings, {"rows": rows, "runs": runs})
    return 0


if __name__ == "__main__" and "--child" in sys.argv:
    p = argparse.ArgumentParser()
    p.add_argument("--child", action="store_true")
    add_arguments(p)
    a = p.parse_args()
    print(json.dumps(_child(a.batch_sizes, a.repeats, a.steps_per_repeat, a.chunk)))

__all__ = ["add_arguments", "run", "VARIANTS"]
