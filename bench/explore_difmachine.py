"""What a candidate change to difmachine would be worth, measured without editing difmachine.

``python -m bench.explore_difmachine --batch-sizes 16 64``: times difmachine's NTM training step
as is and with candidate changes, next to the hand-written step, side by side in one process:
- ``remat``: ``program.replace(remat=True)``;
- ``per-head write``: ``difmachine.addressing.write_many`` swapped (at trace time only) for a
  same-math version that writes one head at a time with 2-D outer products;
- ``jax.jit``: difmachine's own train-step function (``make_train_step(...).__wrapped__``) under
  ``jax.jit`` with the model split into arrays and static parts, instead of ``eqx.filter_jit``,
  which blocks until every call has finished (equinox checks for runtime errors), so the host
  can never run ahead; ``+ donate`` also donates params and optimizer state.

Why: profiling the B=16 gradient showed two fusions, the reductions in the backward pass of
``write_many``'s ``(H, N, W)`` intermediate ``1 - w[:, :, None] * erase[:, None, :]`` (shapes
``(B, 1, N, W) -> (B, 1, W)`` and ``-> (B, 1, N)`` after vmap), taking ~40% of the gradient's time.
"""

from __future__ import annotations

import argparse
import sys

import equinox as eqx
import jax
import jax.numpy as jnp
from rich.table import Table

from . import handwritten_ntm as hw
from .common import NTM_COPY, Stepper, console, interleaved, machine_info, median


def write_many_per_head(memory, w, erase, add):
    """``addressing.write_many`` with the same math, one head at a time (no 3-D intermediate)."""
    keep = 1.0 - jnp.outer(w[0], erase[0])
    for h in range(1, w.shape[0]):
        keep = keep * (1.0 - jnp.outer(w[h], erase[h]))
    out = memory * keep
    for h in range(w.shape[0]):
        out = out + jnp.outer(w[h], add[h])
    return out


def jax_jit_step(filter_jitted_step, model, donate: bool):
    """difmachine's train step under plain ``jax.jit`` over (params, opt_state, batch)."""
    raw = filter_jitted_step.__wrapped__
    params, static = eqx.partition(model, eqx.is_array)

    def step(params, opt_state, batch):
        new_model, opt_state, metrics = raw(eqx.combine(params, static), opt_state, batch)
        return eqx.filter(new_model, eqx.is_array), opt_state, metrics

    return params, jax.jit(step, donate_argnums=(0, 1) if donate else ())


def main(argv: list[str] | None = None) -> int:
    p = argparse.ArgumentParser(prog="python -m bench.explore_difmachine")
    p.add_argument("--batch-sizes", type=int, nargs="+", default=[1, 16, 64])
    p.add_argument("--repeats", type=int, default=7)
    p.add_argument("--steps-per-repeat", type=int, default=8)
    args = p.parse_args(argv)
    import difmachine.addressing as addressing
    from difmachine import load_program
    from difmachine.program import build
    from difmachine.training import batch_rng, make_train_step

    original = addressing.write_many
    variants = {  # name: (remat, write_many, dispatch)
        "difmachine": (False, original, "filter_jit"),
        "+ remat": (True, original, "filter_jit"),
        "+ per-head write": (False, write_many_per_head, "filter_jit"),
        "+ jax.jit": (False, original, "jit"),
        "+ per-head write + remat": (True, write_many_per_head, "filter_jit"),
        "+ all three + donate": (True, write_many_per_head, "jit+donate"),
    }
    console.print(f"load {machine_info()['loadavg']}")
    rows = []
    for B in args.batch_sizes:
        base = load_program(str(NTM_COPY)).replace(batch_size=B)
        task, opt = base.task, base.optimizer
        batch = jax.device_put(task.sample(batch_rng(0, 0), B, length=20))
        steppers = {}
        for name, (remat, write_many, dispatch) in variants.items():
            addressing.write_many = write_many  # looked up when the step is traced
            try:
                model = build(base.replace(remat=remat))
                step = make_train_step(task, opt)
                if dispatch != "filter_jit":
                    model, step = jax_jit_step(step, model, donate=dispatch == "jit+donate")
                state = (model, opt.init(eqx.filter(model, eqx.is_array)))
                steppers[name] = Stepper(step, state, batch)
                steppers[name].first_call()
            finally:
                addressing.write_many = original
        params, opt_state, step = hw.setup(hw.Config())
        steppers["handwritten"] = Stepper(step, (params, opt_state), tuple(batch))
        steppers["handwritten"].first_call()
        wall, cpu = interleaved(steppers, args.repeats, args.steps_per_repeat)
        t0, c0 = median(wall["difmachine"]), median(cpu["difmachine"])
        for name in steppers:
            rows.append((B, name, B / median(wall[name]), t0 / median(wall[name]),
                         c0 / median(cpu[name])))  # fmt: skip
    table = Table(title="difmachine NTM step with candidate changes (length 20)")
    for col in ["B", "variant", "seq/s", "speed-up (wall)", "speed-up (CPU time)"]:
        table.add_column(col, justify="right")
    for B, name, rate, s_wall, s_cpu in rows:
        table.add_row(str(B), name, f"{rate:.0f}", f"{s_wall:.2f}", f"{s_cpu:.2f}")
    console.print(table)
    return 0


if __name__ == "__main__":
    sys.exit(main())
