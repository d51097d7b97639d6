"""Dense ``NTMMemory``, ``SparseMemory`` and the hard ``HAMMemory``: step time and peak memory
from 1K to 1M slots.

The machine of ``programs/ntm_copy.py`` (LSTM 100, width-20 memory, one read and one write head)
on copy sequences of one length (T = 2L + 1 time steps), with either memory. For every size:

- forward step (the batch loss) and training step (loss, gradient, Adam update) wall time,
  median of ``--repeats`` single steps after two warm-ups;
- peak memory of the compiled training step, ``temp + argument + output`` bytes from XLA's
  ``memory_analysis()`` (no run needed), for ``remat`` on and off. A configuration whose
  estimate exceeds ``--limit-gb`` is not run ("would need X GB"), nor one whose training step,
  extrapolated linearly in slots from the previous size, would take over ``--max-seconds``.

The third device is a hard ``HAMMemory`` (Andrychowicz & Kurach 2016) with ``slots`` leaves of
the same width, stored sparsely (``capacity`` = T accesses: only the written nodes are kept), so
an access is ``log2(slots)`` sampled left/right choices; its training step samples (a key per
example) and includes the REINFORCE term. It is timed with ``remat=False``.

The dense memory is timed with ``remat=True`` (the library default), the sparse one with
``remat=False`` (``jax.checkpoint`` would save the whole memory at every step, see
``SparseMemory``). A second table sweeps the sequence length at ``--sweep-slots`` slots: the
compiled training step's temporary memory against T, so its growth per time step can be read
off, for both devices and both remat settings.
"""

from __future__ import annotations

import argparse
import time
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
from rich.table import Table

from .common import console, machine_info, median, write_json

HELP = "dense NTMMemory vs SparseMemory vs HAMMemory: step time and peak memory at 1K-1M slots"
KINDS = ("dense", "sparse", "ham")


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("--slots", type=int, nargs="+", default=[1024, 16384, 131072, 1048576])
    p.add_argument("--width", type=int, default=20)
    p.add_argument("--k", type=int, default=4, help="SparseMemory slots read per head")
    p.add_argument("--length", type=int, default=20, help="copy length L (T = 2L + 1)")
    p.add_argument("--batch-size", type=int, default=1)
    p.add_argument("--repeats", type=int, default=5)
    p.add_argument("--limit-gb", type=float, default=8.0, help="skip runs needing more memory")
    p.add_argument("--max-seconds", type=float, default=30.0,
                   help="skip timing a training step estimated (linearly in slots from the "
                        "previous size) to take longer")  # fmt: skip
    p.add_argument("--sweep-slots", type=int, default=16384, help="slots of the length sweep")
    p.add_argument("--sweep-lengths", type=int, nargs="+", default=[5, 10, 20, 40])
    p.add_argument("--png", help="log-log plot (default: the --json path with .png)")
    p.add_argument("--quick", action="store_true", help="smoke test: 1K and 16K slots, 3 repeats")
    p.add_argument("--devices", nargs="+", choices=KINDS, default=list(KINDS))
    p.add_argument("--no-sweep", action="store_true", help="skip the length sweep")
    p.add_argument("--paired", action="store_true",
                   help="only time the smallest and largest --slots of each device against each "
                        "other, interleaved step by step (ratios robust to a shared machine)")  # fmt: skip


# -- measuring --------------------------------------------------------------------------------


def make_program(kind: str, slots: int, args, remat: bool, length: int | None = None):
    import optax

    import difmachine as dm

    if kind == "dense":
        device = dm.NTMMemory(slots=slots, width=args.width)
    elif kind == "ham":
        device = dm.HAMMemory(
            leaves=slots,
            width=args.width,
            mode="hard",
            capacity=2 * max(args.length if length is None else length, 1) + 1,
        )
    else:
        device = dm.SparseMemory(slots=slots, width=args.width, k=args.k)
    return dm.Program(
        machine=dm.Machine(dm.LSTM(100), device),
        task=dm.Copy(bits=8, min_length=1, max_length=max(args.length, 1)),
        optimizer=optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3)),
        batch_size=args.batch_size,
        remat=remat,
    )


def _sizes(compiled) -> dict:
    ma = compiled.memory_analysis()
    temp, arg, out = ma.temp_size_in_bytes, ma.argument_size_in_bytes, ma.output_size_in_bytes
    return {"temp_bytes": temp, "argument_bytes": arg, "output_bytes": out,
            "peak_bytes": temp + arg + out}  # fmt: skip


def compiled_steps(program, length: int):
    """``(model, opt_state, batch, forward, train)`` with both steps compiled ahead of time.

    A stochastic machine's steps sample (one key per example, bound here) and its training
    step includes the REINFORCE term."""
    from difmachine.program import build
    from difmachine.stochastic import sample_key
    from difmachine.training import batch_rng, example_keys, loss_and_metrics, make_train_step

    task, optimizer = program.task, program.optimizer
    batch = jax.device_put(task.sample(batch_rng(0, 0), program.batch_size, length=length))
    model = build(program)
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    key = sample_key(0, 0) if model.stochastic() else None

    def loss(model, batch, key):
        return loss_and_metrics(model, task, batch, keys=example_keys(key, program.batch_size))[0]

    forward = jax.jit(loss).lower(model, batch, key).compile()
    train = make_train_step(task, optimizer, reinforce=program.reinforce)
    train = train.lower(model, opt_state, batch, key).compile()
    return model, opt_state, batch, _Bound(forward, key), _Bound(train, key)


class _Bound:
    """A compiled step with its sampling key bound as the last argument."""

    def __init__(self, compiled, key):
        self.compiled, self.key = compiled, key

    def __call__(self, *args):
        return self.compiled(*args, self.key)

    def memory_analysis(self):
        return self.compiled.memory_analysis()


def _time(fn, repeats: int) -> list[float]:
    for _ in range(2):
        jax.block_until_ready(fn())
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        jax.block_until_ready(fn())
        times.append(time.perf_counter() - t0)
    return times


def measure(kind: str, slots: int, args, previous: dict | None = None) -> dict:
    timed_remat = kind == "dense"  # the sparse memory and the HAM: off
    row: dict = {"device": kind, "slots": slots, "timed_remat": timed_remat}
    t0 = time.perf_counter()
    for remat in (timed_remat, not timed_remat):
        program = make_program(kind, slots, args, remat)
        model, opt_state, batch, forward, train = compiled_steps(program, args.length)
        row[f"train_remat_{'on' if remat else 'off'}"] = _sizes(train)
        if remat == timed_remat:
            row["forward"] = _sizes(forward)
            kept = (model, opt_state, batch, forward, train)
    row["compile_s"] = time.perf_counter() - t0
    model, opt_state, batch, forward, train = kept
    need = max(row["train_remat_on" if timed_remat else "train_remat_off"]["peak_bytes"],
               row["forward"]["peak_bytes"])  # fmt: skip
    if need > args.limit_gb * 1e9:
        row["skipped"] = f"would need {need / 1e9:.1f} GB"
        return row
    if previous is not None and "train_s" in previous:
        estimate = previous["train_s"] * slots / previous["slots"]
        if estimate > args.max_seconds:
            row["skipped"] = f"~{estimate:.0f} s/step est."
            return row
    fwd = _time(lambda: forward(model, batch), args.repeats)
    state = [model, opt_state]

    def train_once():
        state[0], state[1], metrics = train(state[0], state[1], batch)
        return metrics

    trn = _time(train_once, args.repeats)
    row.update(forward_s=median(fwd), forward_s_all=fwd, train_s=median(trn), train_s_all=trn)
    return row


def paired(args) -> dict:
    """The training step at the smallest and the largest ``--slots``, timed alternately (one
    step each per round, ``--repeats`` rounds after two warm-ups): the per-round ratio is
    measured under the same load."""
    out = {}
    lo, hi = min(args.slots), max(args.slots)
    for kind in args.devices:
        sides = []
        for slots in (lo, hi):
            model, opt_state, batch, _, train = compiled_steps(
                make_program(kind, slots, args, kind == "dense"), args.length
            )
            sides.append({"state": [model, opt_state], "batch": batch, "train": train})

        def once(side):
            t0 = time.perf_counter()
            side["state"][0], side["state"][1], m = side["train"](*side["state"], side["batch"])
            jax.block_until_ready(m)
            return time.perf_counter() - t0

        for side in sides:
            once(side), once(side)
        rounds = [(once(sides[0]), once(sides[1])) for _ in range(args.repeats)]
        small, large = [r[0] for r in rounds], [r[1] for r in rounds]
        out[kind] = {
            "slots": [lo, hi],
            "train_s": [median(small), median(large)],
            "ratio_of_medians": median(large) / median(small),
            "median_paired_ratio": median([b / a for a, b in rounds]),
            "rounds": rounds,
        }
        console.print(
            f"{kind}: train step {median(small) * 1e3:.1f} ms at {lo:,} slots, "
            f"{median(large) * 1e3:.1f} ms at {hi:,}: {hi // lo}x the slots costs "
            f"{out[kind]['median_paired_ratio']:.2f}x (median of {args.repeats} paired rounds)"
        )
    return out


def sweep_lengths(args) -> list[dict]:
    """Temporary memory of the compiled training step against T (compile only)."""
    rows = []
    configurations = [(k, r) for k in args.devices for r in (True, False)]
    for kind, remat in configurations:
        for L in args.sweep_lengths:
            *_, train = compiled_steps(make_program(kind, args.sweep_slots, args, remat, L), L)
            rows.append({"device": kind, "remat": remat, "length": L, "time_steps": 2 * L + 1,
                         **_sizes(train)})  # fmt: skip
    return rows


def per_step_growth(rows: list[dict]) -> dict:
    """Least-squares bytes of temporary memory per time step, per configuration."""
    out = {}
    for key in sorted({(r["device"], r["remat"]) for r in rows}):
        pts = [r for r in rows if (r["device"], r["remat"]) == key]
        slope, intercept = np.polyfit([r["time_steps"] for r in pts],
                                      [r["temp_bytes"] for r in pts], 1)  # fmt: skip
        out[key] = {"bytes_per_time_step": float(slope), "intercept_bytes": float(intercept)}
    return out


# -- output -----------------------------------------------------------------------------------


def _mb(b) -> str:
    return f"{b / 1e6:,.1f}"


def plot(rows: list[dict], path: str, title: str) -> None:
    from difmachine.plotting import pyplot

    plt = pyplot()
    fig, (ax_t, ax_m) = plt.subplots(1, 2, figsize=(11, 4.2))
    styles = {
        "dense": ("tab:red", "NTMMemory (dense)"),
        "sparse": ("tab:blue", "SparseMemory"),
        "ham": ("tab:green", "HAMMemory (hard)"),
    }
    for kind, (colour, label) in styles.items():
        rs = [r for r in rows if r["device"] == kind]
        timed = [r for r in rs if "train_s" in r]
        for key, ls, what in (("train_s", "-", "training step"), ("forward_s", "--", "forward")):
            ax_t.plot([r["slots"] for r in timed], [r[key] for r in timed], ls, marker="o",
                      color=colour, label=f"{label}, {what}")  # fmt: skip
        for remat, marker, ls in ((True, "s", ":"), (False, "o", "-")):
            key = f"train_remat_{'on' if remat else 'off'}"
            ax_m.plot([r["slots"] for r in rs], [r[key]["peak_bytes"] / 1e6 for r in rs], ls,
                      marker=marker, color=colour,
                      label=f"{label}, remat {'on' if remat else 'off'}")  # fmt: skip
        skipped = [r for r in rs if "skipped" in r]
        if skipped:
            ax_m.scatter([r["slots"] for r in skipped],
                         [r["train_remat_on"]["peak_bytes"] / 1e6 for r in skipped], s=120,
                         facecolors="none", edgecolors=colour, label=f"{label}: not run")  # fmt: skip
    for ax, ylabel in ((ax_t, "seconds per step"), (ax_m, "training step peak memory (MB)")):
        ax.set_xscale("log")
        ax.set_yscale("log")
        ax.set_xlabel("memory slots")
        ax.set_ylabel(ylabel)
        ax.grid(alpha=0.3, which="both")
        ax.legend(fontsize=7)
    fig.suptitle(title, fontsize=9)
    fig.tight_layout()
    fig.savefig(path, dpi=110)
    plt.close(fig)
    console.print(f"wrote {path}")


def run(args) -> int:
    if args.quick:
        args.slots, args.repeats, args.sweep_lengths = [1024, 16384], 3, [5, 20]
        args.sweep_slots = min(args.sweep_slots, 4096)
    B, T = args.batch_size, 2 * args.length + 1
    if args.paired:
        settings = {k: getattr(args, k) for k in ("slots", "width", "length", "batch_size",
                    "repeats", "devices")}  # fmt: skip
        write_json(args.json, "memory_scaling_paired", settings, paired(args))
        return 0
    settings = {k: getattr(args, k) for k in ("slots", "width", "k", "length", "batch_size",
                "repeats", "limit_gb", "sweep_slots", "sweep_lengths", "quick", "devices",
                "no_sweep")}  # fmt: skip
    console.print(f"[bold]memory_scaling[/bold]  {machine_info()['platform']}  jax "
                  f"{jax.__version__}  B={B}  T={T}  width={args.width}  k={args.k}")  # fmt: skip
    rows, last = [], {}
    for slots in args.slots:
        for kind in args.devices:
            rows.append(measure(kind, slots, args, last.get(kind)))
            if "train_s" in rows[-1]:
                last[kind] = rows[-1]
            r = rows[-1]
            done = r.get("skipped") or (f"forward {r['forward_s'] * 1e3:.1f} ms, "
                                        f"train {r['train_s'] * 1e3:.1f} ms")  # fmt: skip
            console.print(f"{kind} {slots}: {done}")

    table = Table(title=f"dense NTMMemory vs SparseMemory (k={args.k}) vs hard HAMMemory, copy "
                        f"T={T}, B={B}, width {args.width}; peak = temp + arguments + outputs")  # fmt: skip
    for col in ["slots", "device", "forward ms", "train ms", "train peak MB (timed)",
                "remat on MB", "remat off MB", "forward peak MB"]:  # fmt: skip
        table.add_column(col, justify="right")
    for r in rows:
        timed = r["train_remat_on" if r["timed_remat"] else "train_remat_off"]
        table.add_row(
            f"{r['slots']:,}", f"{r['device']} (remat {'on' if r['timed_remat'] else 'off'})",
            r.get("skipped", f"{r.get('forward_s', 0) * 1e3:,.1f}"),
            "" if "skipped" in r else f"{r['train_s'] * 1e3:,.1f}",
            _mb(timed["peak_bytes"]), _mb(r["train_remat_on"]["peak_bytes"]),
            _mb(r["train_remat_off"]["peak_bytes"]), _mb(r["forward"]["peak_bytes"]),
        )  # fmt: skip
    console.print(table)
    ratios = {}
    for slots in args.slots:
        by = {r["device"]: r for r in rows if r["slots"] == slots}
        ratios[slots] = {}
        if "dense" in by and "sparse" in by:
            d, s = by["dense"], by["sparse"]
            ratios[slots] |= {
                "peak_dense_over_sparse": d["train_remat_on"]["peak_bytes"]
                / s["train_remat_off"]["peak_bytes"],
                "train_dense_over_sparse": d["train_s"] / s["train_s"] if "train_s" in d else None,
            }
        if "ham" in by and "sparse" in by and "train_s" in by["ham"] and "train_s" in by["sparse"]:
            ratios[slots]["train_sparse_over_ham"] = by["sparse"]["train_s"] / by["ham"]["train_s"]
    growth_by_size = {}
    for kind in args.devices:
        timed = [r for r in rows if r["device"] == kind and "train_s" in r]
        if len(timed) > 1:
            lo, hi = timed[0], timed[-1]
            growth_by_size[kind] = {
                "slots": [lo["slots"], hi["slots"]],
                "train_ratio": hi["train_s"] / lo["train_s"],
                "forward_ratio": hi["forward_s"] / lo["forward_s"],
            }
            console.print(f"{kind}: {hi['slots'] // lo['slots']}x the slots costs "
                          f"{hi['train_s'] / lo['train_s']:.2f}x the training step time and "
                          f"{hi['forward_s'] / lo['forward_s']:.2f}x the forward time")  # fmt: skip

    sweep = [] if args.no_sweep else sweep_lengths(args)
    growth = per_step_growth(sweep)
    t2 = Table(title=f"training step temporary memory (MB) against T, {args.sweep_slots:,} slots "
                     f"(memory itself {args.sweep_slots * args.width * 4 * B / 1e6:.2f} MB)")  # fmt: skip
    t2.add_column("configuration")
    for L in args.sweep_lengths:
        t2.add_column(f"T={2 * L + 1}", justify="right")
    t2.add_column("KB per time step", justify="right")
    for (kind, remat), g in growth.items():
        temps = [r["temp_bytes"] for r in sweep if (r["device"], r["remat"]) == (kind, remat)]
        t2.add_row(f"{kind} remat={'on' if remat else 'off'}", *(_mb(t) for t in temps),
                   f"{g['bytes_per_time_step'] / 1e3:,.1f}")  # fmt: skip
    console.print(t2)

    growth = {f"{kind} remat={'on' if remat else 'off'}": g for (kind, remat), g in growth.items()}
    results = {"by_slots": rows, "ratios": ratios, "by_length": sweep, "growth": growth,
               "growth_by_slots": growth_by_size}  # fmt: skip
    write_json(args.json, "memory_scaling", settings, results)
    png = args.png or (str(Path(args.json).with_suffix(".png")) if args.json else None)
    if png:
        plot(rows, png, f"dense vs sparse memory, copy T={T}, B={B}, width {args.width}, "
                        f"k={args.k} ({machine_info()['processor']})")  # fmt: skip
    return 0
