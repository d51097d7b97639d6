"""N seeds in one process (``difmachine sweep``, the seeds a vmapped axis) against N sequential
single runs (``difmachine run --seed s``) of the same program and budget.

Each side is timed as a user would see it: CLI processes from start to exit (Python and JAX
start-up, compilation, training, the final evaluation, checkpoints), rounds interleaved
(sweep, sequential, sweep, ...) because the machine is shared; the load average is recorded
before and after every measurement. Throughput = seeds x steps x batch / wall time; the
steady-state rate is the median of the ``seq_per_s`` logged in ``metrics.jsonl`` (no compile).
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from rich.table import Table

from .common import NTM_COPY, ROOT, console, write_json

HELP = "N seeds in one vmapped sweep process vs N sequential single runs"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--programs", nargs="+", default=[str(NTM_COPY)])
    p.add_argument("--seeds", type=int, default=8)
    p.add_argument("--steps", type=int, default=300)
    p.add_argument("--rounds", type=int, default=2)


def _cli(*args) -> float:
    env = {**os.environ, "PYTHONPATH": str(ROOT)}
    t0 = time.perf_counter()
    done = subprocess.run(
        [sys.executable, "-m", "difmachine.cli", *map(str, args)],
        env=env,
        capture_output=True,
        text=True,
    )
    wall = time.perf_counter() - t0
    if done.returncode != 0:
        raise RuntimeError(f"{args}: exit {done.returncode}\n{done.stdout[-2000:]}{done.stderr}")
    return wall


def _steady_rate(run_dir: Path, seeds_in_step: int) -> float | None:
    """Median logged sequences/s, the first window (which holds the compile) left out; a sweep
    logs each seed's share, so multiply by the seeds in a step."""
    rates = [
        json.loads(line)["seq_per_s"]
        for line in (run_dir / "metrics.jsonl").read_text().splitlines()
        if '"seq_per_s"' in line
    ][1:]
    return statistics.median(rates) * seeds_in_step if rates else None


def _measure(program: str, seeds: int, steps: int, mode: str) -> dict:
    load_before = os.getloadavg()
    with tempfile.TemporaryDirectory(prefix="bench_sweep_") as tmp:
        tmp = Path(tmp)
        if mode == "sweep":
            wall = _cli("sweep", program, "--seeds", seeds, "--steps", steps, "--out", tmp / "sw")
            steady = _steady_rate(tmp / "sw" / "seed_0", seeds)
            walls = None
        else:
            walls = [
                _cli("run", program, "--seed", s, "--steps", steps, "--out", tmp / f"s{s}")
                for s in range(seeds)
            ]
            wall = sum(walls)
            steady = statistics.median(_steady_rate(tmp / f"s{s}", 1) for s in range(seeds))
    return {"mode": mode, "wall_s": wall, "steady_seq_per_s": steady, "run_walls_s": walls,
            "loadavg_before": list(load_before), "loadavg_after": list(os.getloadavg())}  # fmt: skip


def run(args) -> int:
    from difmachine import load_program

    settings = {k: v for k, v in vars(args).items() if k not in ("_run", "json", "name")}
    results = {}
    table = Table(title=f"{args.seeds} seeds x {args.steps} steps: one sweep vs sequential runs")
    for col in ("program", "mode", "round", "wall s", "seq/s (wall)", "seq/s steady", "load 1m"):
        table.add_column(col, justify="right")
    for program in args.programs:
        batch = load_program(program).batch_size
        sequences = args.seeds * args.steps * batch
        rows = []
        for r in range(args.rounds):
            for mode in ("sweep", "sequential") if r % 2 == 0 else ("sequential", "sweep"):
                row = _measure(program, args.seeds, args.steps, mode)
                row |= {"round": r, "seq_per_s": sequences / row["wall_s"]}
                rows.append(row)
                table.add_row(Path(program).name, mode, str(r), f"{row['wall_s']:.1f}",
                              f"{row['seq_per_s']:.0f}", f"{row['steady_seq_per_s'] or 0:.0f}",
                              f"{row['loadavg_before'][0]:.1f}-{row['loadavg_after'][0]:.1f}")  # fmt: skip
                console.print(f"{Path(program).name} {mode} round {r}: {row['wall_s']:.1f} s")
        med = lambda mode, key: statistics.median(x[key] for x in rows if x["mode"] == mode)
        summary = {
            "batch_size": batch,
            "sequences": sequences,
            "sweep_wall_s": med("sweep", "wall_s"),
            "sequential_wall_s": med("sequential", "wall_s"),
            "speedup_wall": med("sequential", "wall_s") / med("sweep", "wall_s"),
            "sweep_steady_seq_per_s": med("sweep", "steady_seq_per_s"),
            "single_steady_seq_per_s": med("sequential", "steady_seq_per_s"),
        }
        summary["speedup_steady"] = (
            summary["sweep_steady_seq_per_s"] / summary["single_steady_seq_per_s"]
        )
        results[Path(program).name] = {"summary": summary, "rounds": rows}
        write_json(args.json, "sweep_throughput", settings, results)  # after each program
    console.print(table)
    for name, r in results.items():
        s = r["summary"]
        console.print(
            f"{name}: wall {s['sweep_wall_s']:.1f} s (sweep) vs {s['sequential_wall_s']:.1f} s "
            f"(sequential), {s['speedup_wall']:.2f}x; steady {s['sweep_steady_seq_per_s']:.0f} vs "
            f"{s['single_steady_seq_per_s']:.0f} seq/s, {s['speedup_steady']:.2f}x"
        )
    return 0
