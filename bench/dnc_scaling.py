"""``DNCMemory`` step time against slots: dense links (quadratic in slots) against K-sparse links
(``sparse_links=K``, Rae et al. 2016).

The device alone (no controller), batch ``--batch-size`` (vmap), ``--length`` steps (scan) of
random activated interface values, width ``--width``, one read head, with the dense link matrix
and with ``sparse_links=--k``. For every slot count and both: the
forward pass and the forward + backward pass (gradient of the summed reads with respect to the
interface), median of ``--repeats`` runs after a warm-up, reported per time step. A size whose
previous forward + backward, extrapolated quadratically, would exceed ``--max-seconds`` is
skipped. The last column is the growth exponent between consecutive sizes
(``log(t2/t1) / log(n2/n1)``): 2 is quadratic, 1 linear.
"""

from __future__ import annotations

import argparse
import math
import time

import jax
import jax.numpy as jnp
from rich.table import Table

from .common import console, machine_info, median, write_json

HELP = "DNCMemory step time against slots, dense vs K-sparse links"


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slots", type=int, nargs="+", default=[16, 64, 256, 1024])
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--length", type=int, default=20, help="time steps per run")
    p.add_argument("--batch-size", type=int, default=4)
    p.add_argument("--k", type=int, default=8, help="sparse_links of the sparse variant")
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--max-seconds", type=float, default=20.0)
    p.add_argument("--quick", action="store_true", help="smoke test: 16 and 64 slots, 2 repeats")


def timed(fn, *args, repeats: int) -> list[float]:
    jax.block_until_ready(fn(*args))  # compile
    out = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn(*args))
        out.append(time.perf_counter() - t0)
    return out


def measure(slots: int, sparse: int | None, args) -> dict:
    import difmachine as dm
    from difmachine import testing
    from difmachine.protocol import activate

    dev = dm.DNCMemory(slots=slots, width=args.width, read_heads=1, sparse_links=sparse)
    fields = dev.interface()
    keys = jax.random.split(jax.random.PRNGKey(0), args.batch_size)
    raws = jax.vmap(lambda k: testing.random_interface(dev, k, args.length))(keys)

    def run(raw):
        def body(state, r):
            iface = {n: activate(f.activation, r[n]) for n, f in fields.items()}
            reads, state, _ = dev.step({}, state, iface)
            return state, reads

        _, reads = jax.lax.scan(body, dev.init_state({}), raw)
        return jnp.sum(reads**2)

    forward = jax.jit(lambda raws: jnp.sum(jax.vmap(run)(raws)))
    backward = jax.jit(jax.grad(lambda raws: jnp.sum(jax.vmap(run)(raws))))
    fwd = timed(forward, raws, repeats=args.repeats)
    bwd = timed(backward, raws, repeats=args.repeats)
    return {
        "links": "dense" if sparse is None else f"sparse K={sparse}",
        "slots": slots,
        "forward_step_s": median(fwd) / args.length,
        "train_step_s": median(bwd) / args.length,
        "forward_runs_s": fwd,
        "train_runs_s": bwd,
    }


def run(args) -> int:
    if args.quick:
        args.slots, args.repeats = [16, 64], 2
    console.print(f"[bold]dnc_scaling[/bold]  {machine_info()['platform']}  slots {args.slots}")
    rows: list[dict] = []
    for sparse in (None, args.k):
        done: list[dict] = []
        for slots in args.slots:
            if sparse is not None and sparse > slots:
                continue
            if done:
                prev = done[-1]
                estimate = prev["train_step_s"] * args.length * (slots / prev["slots"]) ** 2
                if estimate > args.max_seconds:
                    console.print(f"{slots} slots: skipped (estimated {estimate:.0f} s a run)")
                    continue
            row = measure(slots, sparse, args)
            if done:
                prev = done[-1]
                row["exponent"] = math.log(row["train_step_s"] / prev["train_step_s"]) / math.log(
                    slots / prev["slots"]
                )
            done.append(row)
            console.print(
                f"{row['links']}, {slots} slots: forward {row['forward_step_s'] * 1e3:.3f} ms, "
                f"forward+backward {row['train_step_s'] * 1e3:.3f} ms per step"
            )
        rows.extend(done)
    table = Table(title=f"DNCMemory per time step, batch {args.batch_size}, width {args.width}")
    for col in ["links", "slots", "forward ms", "forward+backward ms", "growth exponent"]:
        table.add_column(col, justify="right")
    for r in rows:
        table.add_row(
            r["links"],
            str(r["slots"]),
            f"{r['forward_step_s'] * 1e3:.3f}",
            f"{r['train_step_s'] * 1e3:.3f}",
            f"{r['exponent']:.2f}" if "exponent" in r else "-",
        )
    console.print(table)
    settings = {
        k: getattr(args, k) for k in ("slots", "width", "length", "batch_size", "k", "repeats")
    }
    write_json(args.json, "dnc_scaling", settings, {"rows": rows})
    return 0


__all__ = ["add_arguments", "run"]
