"""Variants of the hand-written NTM step, timed side by side in one process.

``python -m bench.explore_handwritten --variants default bnw no_remat --batch-sizes 1 16 64``.
Each variant is a set of ``handwritten_ntm.Config`` overrides; ratios are against the first one.
"""

from __future__ import annotations

import argparse
import json
import sys

import jax
from rich.table import Table

from . import handwritten_ntm as hw
from .common import Stepper, console, interleaved, machine_info, median

VARIANTS = {
    "default": {},
    "bwn": {"layout": "bwn"},
    "bnw": {"layout": "bnw"},
    "remat": {"remat": True},
    "no_remat": {"remat": False},
    "no_donate": {"donate": False},
}


def parse_variant(spec: str) -> tuple[str, dict]:
    """``name`` from VARIANTS, or ``name=key:value,key:value`` (values parsed as JSON)."""
    if "=" not in spec:
        return spec, VARIANTS[spec]
    name, body = spec.split("=", 1)
    overrides = {}
    for item in body.split(","):
        k, v = item.split(":", 1)
        try:
            overrides[k] = json.loads(v)
        except json.JSONDecodeError:
            overrides[k] = v
    return name, overrides


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explore_handwritten")
    p.add_argument("--variants", nargs="+", default=["bwn", "bnw"])
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--length", type=int, default=20)
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps-per-repeat", type=int, default=10)
    p.add_argument("--json")
    args = p.parse_args(argv)
    from difmachine import Copy
    from difmachine.training import batch_rng

    variants = dict(parse_variant(v) for v in args.variants)
    console.print(f"load {machine_info()['loadavg']}  variants {variants}")
    task = Copy(bits=8, min_length=1, max_length=20)
    results = []
    for B in args.batch_sizes:
        batch = tuple(jax.device_put(task.sample(batch_rng(0, 0), B, length=args.length)))
        steppers, firsts, losses = {}, {}, {}
        for name, over in variants.items():
            cfg = hw.Config(**over)
            params, opt_state, step = hw.setup(cfg, 0)
            losses[name] = float(hw.loss_fn(cfg, params, batch)[0])
            steppers[name] = Stepper(step, (params, opt_state), batch)
            firsts[name] = steppers[name].first_call()[0]
        times, cpu = interleaved(steppers, args.repeats, args.steps_per_repeat)
        first = next(iter(variants))
        base, base_min, base_cpu = (median(times[first]), min(times[first]),
                                    median(cpu[first]))  # fmt: skip
        for name in variants:
            t = median(times[name])
            results.append({"batch_size": B, "variant": name, "step_s": t, "seq_per_s": B / t,
                            "relative_time": t / base, "relative_min": min(times[name]) / base_min,
                            "relative_cpu": median(cpu[name]) / base_cpu,
                            "first_call_s": firsts[name], "loss": losses[name],
                            "all": times[name], "cpu": cpu[name]})  # fmt: skip
    table = Table(title=f"hand-written NTM variants (length {args.length}), median of "
                        f"{args.repeats} x {args.steps_per_repeat} steps")  # fmt: skip
    for col in ["B", "variant", "seq/s (median)", "time / first (median)", "(min)", "(CPU s)",
                "first call s", "loss"]:  # fmt: skip
        table.add_column(col, justify="right")
    for r in results:
        table.add_row(str(r["batch_size"]), r["variant"], f"{r['seq_per_s']:.0f}",
                      f"{r['relative_time']:.3f}", f"{r['relative_min']:.3f}",
                      f"{r['relative_cpu']:.3f}", f"{r['first_call_s']:.1f}", f"{r['loss']:.5f}")  # fmt: skip
    console.print(table)
    if args.json:
        with open(args.json, "w") as f:
            json.dump({"machine": machine_info(), "settings": vars(args), "results": results}, f,
                      indent=2)  # fmt: skip
    return 0


if __name__ == "__main__":
    sys.exit(main())
