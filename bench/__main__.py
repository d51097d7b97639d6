"""``python -m bench <name> [--json FILE] [options]``: difmachine benchmarks.

Benchmarks: ntm_step (difmachine vs hand-written JAX training throughput), scaling (step time
against sequence length and memory size), time_to_solve (steps and wall time to learn copy),
neural_programmer (Neural Programmer accuracy, success over seeds and wall time),
memory_scaling (dense NTMMemory vs SparseMemory step time and peak memory, 1K-1M slots),
families (throughput and time to solve of one program per machine family), flags (XLA CPU flags
and malloc tunables, one process per setting), halting (ACT against PonderNet on parity, over
seeds, with extrapolation), dnc_scaling (DNCMemory step time against slots), neural_gpu_scaling
(Neural GPU step time and peak memory against input length), addition_probe (where a trained
binary-addition model breaks: transport or carries).
"""

from __future__ import annotations

import argparse
import importlib
import sys

BENCHMARKS = ("ntm_step", "scaling", "time_to_solve", "neural_programmer", "memory_scaling",
              "families", "flags", "halting", "dnc_scaling", "sweep_throughput",
              "neural_gpu_scaling", "addition_probe")  # fmt: skip


def build_parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(prog="python -m bench", description="difmachine benchmarks")
    sub = parser.add_subparsers(dest="name", metavar="benchmark", required=True)
    for name in BENCHMARKS:
        module = importlib.import_module(f"bench.{name}")
        p = sub.add_parser(name, help=module.HELP, description=module.__doc__)
        p.add_argument("--json", metavar="FILE", help="also write the results as JSON to FILE")
        module.add_arguments(p)
        p.set_defaults(_run=module.run)
    return parser


def main(argv: list[str] | None = None) -> int:
    """Run one benchmark; returns the process exit code."""
    args = build_parser().parse_args(sys.argv[1:] if argv is None else argv)
    return int(args._run(args) or 0)


if __name__ == "__main__":
    sys.exit(main())
