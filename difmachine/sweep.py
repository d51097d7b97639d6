"""Sweeps: one program trained over many seeds, then its success rate.

``difmachine sweep PROGRAM --seeds N`` trains seeds ``0..N-1`` of a program. Where the machine
allows it the seeds run in *one* compiled function with the seed as a ``jax.vmap`` axis: seed
``s`` has its own initial parameters (``build(program.replace(seed=s))``), optimizer state and
data stream (its batch at step ``t`` is ``task.sample(batch_rng(s, t), batch_size)``, exactly what
a single run of seed ``s`` samples), so seed ``s`` of a sweep follows the trajectory of
``difmachine run PROGRAM --seed s`` up to float rounding. Otherwise (``--processes``, or a
machine whose step ``vmap`` cannot batch) each seed is a ``difmachine run`` process, a few at a
time.

A seed that reaches the program's target is *frozen*, not kept training: a mask keeps its
parameters and optimizer state from that step on, so its run directory holds exactly what a
single run (which stops at the target) would hold, whichever way the seed was trained, and
``eval``/``trace`` show the model that met the target rather than a later one. A frozen seed
still costs its share of each vmapped step (on a CPU the step is compute-bound: ``n`` seeds cost
about ``n`` single steps), so once a quarter of the seeds in the vmapped group have finished, the
group shrinks to the seeds still training (one compile per new width, at most a handful).

Every seed's directory ``DIR/seed_<s>`` is a normal run directory (``checkpoint.eqx`` with the
header ``train`` writes, ``best.eqx``, ``metrics.jsonl``, ``program.py``): ``difmachine eval`` and
``trace`` take it. ``DIR/sweep.json`` holds the sweep's settings, every seed's state and, at the
end, the summary (:func:`summarize`). Ctrl-C or SIGTERM saves every seed; ``--resume`` continues
each seed where it stopped.
"""

from __future__ import annotations

import json
import os
import re
import signal
import subprocess
import sys
import threading
import time
from dataclasses import asdict, dataclass
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
from rich.console import Console
from rich.live import Live
from rich.table import Table

from . import checkpoint
from .errors import DifmachineError
from .program import Program, build, load_program
from .rundir import (
    BEST,
    CHECKPOINT,
    METRICS,
    MetricsLog,
    eval_record,
    record_eval,
    write_program,
)
from .training import batch_rng, eval_batches, make_eval_step, make_train_step

SWEEP_FILE = "sweep.json"
MAX_JOBS = 2  # processes at a time by default: this project's machine has 2 cores
# a child's exit codes when it saved and stopped on a signal: 128 + SIGINT / SIGTERM
STOPPED = (128 + signal.SIGINT, 128 + signal.SIGTERM)


def parse_seeds(text: str | int | None) -> list[int]:
    """``"8"`` -> seeds 0..7; ``"3,5,9"`` -> those seeds; ``"10-17"`` -> 10..17."""
    fix = "give --seeds N (seeds 0..N-1), a list like 3,5,9 or a range like 10-17"
    if text is None:
        raise DifmachineError(f"no seeds: {fix}")
    text = str(text).strip()
    try:
        if "," in text:
            seeds = [int(x) for x in text.split(",") if x.strip()]
        elif re.fullmatch(r"\d+\s*-\s*\d+", text):
            lo, hi = (int(x) for x in text.split("-"))
            seeds = list(range(lo, hi + 1))
            if not seeds:
                raise DifmachineError(f"--seeds {text}: the range is empty; {fix}")
        else:
            n = int(text)
            if n < 1:
                raise DifmachineError(f"--seeds must be at least 1, got {n}; {fix}")
            seeds = list(range(n))
    except ValueError:
        raise DifmachineError(f"--seeds {text!r} is not a seed count; {fix}") from None
    if not seeds or any(s < 0 for s in seeds):
        raise DifmachineError(f"--seeds {text}: seeds must be non-negative integers; {fix}")
    if len(set(seeds)) != len(seeds):
        raise DifmachineError(f"--seeds {text} repeats a seed; {fix}")
    return seeds


def seed_dir(out: str | Path, seed: int) -> Path:
    return Path(out) / f"seed_{seed}"


@dataclass
class SeedRecord:
    """What the live table and the summary know of one seed."""

    seed: int
    step: int = 0
    loss: float | None = None  # training loss, mean over the last log window
    metric: float | None = None  # training main metric, same window
    eval: float | None = None  # the last evaluated main metric
    solved_step: int | None = None
    solved_wall: float | None = None  # seconds of sweep wall time until it solved
    wall_time: float = 0.0  # seconds of wall time this seed has been training
    done: bool = False  # solved, or ran its whole budget
    refused: int = 0
    status: str = "waiting"


def distribution(values) -> dict | None:
    if not values:
        return None
    x = np.asarray(values, np.float64)
    q1, median, q3 = np.percentile(x, [25, 50, 75])
    return {
        "n": len(x),
        "median": float(median),
        "min": float(x.min()),
        "max": float(x.max()),
        "q1": float(q1),
        "q3": float(q3),
        "mean": float(x.mean()),
    }


def summarize(records: list[SeedRecord], *, target: float | None, main_metric: str) -> dict:
    """Success rate against ``target`` (``None`` without one), and the distributions (median,
    min/max, quartiles) of the steps and wall time to solve over the solved seeds and of the last
    evaluated main metric over all seeds."""
    solved = [r for r in records if r.solved_step is not None]
    return {
        "seeds": len(records),
        "main_metric": main_metric,
        "target": target,
        "solved": len(solved),
        "success_rate": None if target is None else len(solved) / len(records),
        "steps_to_solve": distribution([r.solved_step for r in solved]),
        "wall_time_to_solve": distribution(
            [r.solved_wall for r in solved if r.solved_wall is not None]
        ),
        "final_metric": distribution([r.eval for r in records if r.eval is not None]),
        "solved_seeds": [r.seed for r in solved],
    }


def _num(x, fmt=".4g") -> str:
    return "-" if x is None else format(x, fmt)


def seeds_table(records: list[SeedRecord], main: str, title: str = "") -> Table:
    table = Table(title=title or None)
    for col in ("seed", "step", "loss", main, f"eval {main}", "solved at", "status"):
        table.add_column(col, justify="right" if col != "status" else "left")
    for r in records:
        solved = "-" if r.solved_step is None else f"{r.solved_step} ({r.solved_wall or 0:.0f} s)"
        table.add_row(
            str(r.seed),
            str(r.step),
            _num(r.loss),
            _num(r.metric),
            _num(r.eval),
            solved,
            r.status + (f" [red]refused {r.refused}[/red]" if r.refused else ""),
        )
    return table


def summary_table(summary: dict, title: str = "summary") -> Table:
    table = Table(title=title)
    for col in ("", "median", "min", "q1", "q3", "max"):
        table.add_column(col, justify="right")
    rows = (
        ("steps to solve", summary["steps_to_solve"], ".0f"),
        ("wall s to solve", summary["wall_time_to_solve"], ".1f"),
        (f"final {summary['main_metric']}", summary["final_metric"], ".4g"),
    )
    for label, d, fmt in rows:
        if d is None:
            table.add_row(label, "-", "-", "-", "-", "-")
        else:
            table.add_row(label, *(format(d[k], fmt) for k in ("median", "min", "q1", "q3", "max")))
    rate = summary["success_rate"]
    table.caption = (
        f"solved {summary['solved']}/{summary['seeds']} "
        f"(success rate {rate:.0%}, {summary['main_metric']} <= {summary['target']})"
        if rate is not None
        else f"{summary['seeds']} seeds (the program has no target, so none counts as solved)"
    )
    return table


def _write_json(path: Path, payload: dict) -> None:
    tmp = path.with_name(f".{path.name}.tmp")
    tmp.write_text(json.dumps(payload, indent=2) + "\n")
    os.replace(tmp, path)


class _Stop:
    """Ctrl-C / SIGTERM set a flag that the loop checks between steps, so a step and its
    bookkeeping are never torn apart; a second signal raises KeyboardInterrupt at once."""

    def __init__(self):
        self.requested = False
        self._old = {}

    def __enter__(self):
        if threading.current_thread() is threading.main_thread():
            for sig in (signal.SIGINT, signal.SIGTERM):
                self._old[sig] = signal.signal(sig, self._handle)
        return self

    def _handle(self, signum, frame):
        if self.requested:
            raise KeyboardInterrupt
        self.requested = True

    def __exit__(self, *exc):
        for sig, old in self._old.items():
            signal.signal(sig, old)


def _last_eval(run_dir: Path, main: str, up_to: int) -> tuple[int | None, float | None]:
    """The step and main metric of the last evaluation logged at or before step ``up_to``."""
    step = value = None
    path = run_dir / METRICS
    if not path.exists():
        return None, None
    for line in path.read_text().splitlines():
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue  # a line cut by a crash
        ev = record_eval(row)
        if ev is not None and row["step"] <= up_to and main in ev:
            step, value = row["step"], ev[main]
    return step, value


def _last_train(run_dir: Path, main: str) -> dict:
    path = run_dir / METRICS
    if not path.exists():
        return {}
    last = {}
    for line in path.read_text().splitlines()[-20:]:
        try:
            row = json.loads(line)
        except json.JSONDecodeError:
            continue
        if "loss" in row:
            last = row
    return last


def read_seed(run_dir: Path, program: Program, previous: dict | None = None) -> SeedRecord:
    """A seed's state from its run directory: step from the checkpoint, the last evaluation from
    ``metrics.jsonl``; solved when that evaluation, at the checkpoint's step, meets the target.
    ``previous``: the seed's entry in ``sweep.json`` (wall times)."""
    previous = previous or {}
    seed = program.seed
    record = SeedRecord(seed, wall_time=previous.get("wall_time", 0.0))
    if not (run_dir / CHECKPOINT).exists():
        return record
    record.step = int(checkpoint.read_header(run_dir / CHECKPOINT)["step"])
    main = program.task.main_metric
    eval_step, value = _last_eval(run_dir, main, record.step)
    record.eval = value
    last = _last_train(run_dir, main)
    record.loss, record.metric = last.get("loss"), last.get(main)
    target = program.target
    if target is not None and value is not None and eval_step == record.step and value <= target:
        record.solved_step = record.step
        record.solved_wall = previous.get("solved_wall", record.wall_time)
    record.done = record.solved_step is not None or record.step >= program.steps
    record.status = "solved" if record.solved_step is not None else "stopped"
    if record.done and record.solved_step is None:
        record.status = "budget spent"
    return record


# ---------------------------------------------------------------------------------------------
# the sweep


def sweep(
    program_file: str | Path,
    seeds: list[int] | None,
    out: str | Path,
    *,
    overrides: dict | None = None,
    steps: int | None = None,
    resume: bool = False,
    processes: bool = False,
    jobs: int = MAX_JOBS,
    console: Console | None = None,
    name: str | None = None,
    init: str | Path | None = None,
    trust: bool = False,
) -> dict:
    """Train ``seeds`` of the program in ``program_file`` into ``out/seed_<s>``; returns the
    contents of ``out/sweep.json`` (settings, every seed's record, the summary).

    ``init``: each seed starts from another run's parameters (``difmachine run --init``): seed
    ``s`` from ``init/seed_<s>`` when ``init`` is a sweep, else every seed from the run
    ``init``. The seeds then run as processes; ``trust`` lets them load runs whose program no
    run on this machine wrote (``run --init RUN --trust``).

    With ``resume`` the seeds, overrides and budget default to those the sweep was started
    with; each seed continues from its own checkpoint."""
    console = console or Console()
    out = Path(out)
    program_file = Path(program_file)
    name = name or program_file.stem
    state_path = out / SWEEP_FILE
    previous = {}
    if resume:
        if not state_path.exists():
            raise DifmachineError(
                f"{out} holds no sweep ({SWEEP_FILE} missing); leave out --resume to start one"
            )
        try:
            previous = json.loads(state_path.read_text())
            previous["seeds"]
        except (json.JSONDecodeError, KeyError, TypeError):
            raise DifmachineError(
                f"{state_path} is corrupt; resume each seed with `difmachine run --resume` or "
                "start a new sweep with another --out"
            ) from None
        if seeds is not None and seeds != previous["seeds"]:
            raise DifmachineError(
                f"{out} is a sweep over seeds {previous['seeds']}, not {seeds}; leave out --seeds "
                "to resume it or use another --out"
            )
        seeds = previous["seeds"]
        overrides = overrides or previous.get("overrides", {})
        steps = steps or previous.get("steps")
        processes = processes or previous.get("mode") == "processes"
        init = init or previous.get("init")
    elif seeds is None:
        raise DifmachineError("no seeds: give --seeds N (seeds 0..N-1)")
    else:
        taken = [s for s in seeds if (seed_dir(out, s) / CHECKPOINT).exists()]
        if taken or state_path.exists():
            raise DifmachineError(
                f"{out} already holds a sweep; pass --resume to continue it or --out DIR for a "
                "new one"
            )
    if jobs < 1:
        raise DifmachineError(f"--jobs must be at least 1, got {jobs}")
    program = load_program(program_file, overrides, steps=steps)
    if init is not None:
        init = str(init)
        for s in seeds:
            source = _init_source(init, s)
            if not (source / CHECKPOINT).exists():
                raise DifmachineError(
                    f"--init {init}: {source} holds no trained run to start seed {s} from"
                )
    processes = processes or init is not None  # each seed loads its own start
    if program.select_length is not None and not processes:  # the vmapped loop has no such eval
        console.print(
            f"[yellow]the program picks its best checkpoints at length {program.select_length} "
            "(select_length): running the seeds as processes"
        )
        processes = True
    mode = "processes" if processes else "vmap"
    per_seed = {int(k): v for k, v in previous.get("records", {}).items()}
    records = [read_seed(seed_dir(out, s), program.replace(seed=s), per_seed.get(s)) for s in seeds]
    out.mkdir(parents=True, exist_ok=True)
    state = {
        "program": name,
        "program_file": str(program_file),
        "fingerprint": program.fingerprint(),
        "seeds": seeds,
        "mode": mode,
        "steps": program.steps,
        "batch_size": program.batch_size,
        "target": program.target,
        "main_metric": program.task.main_metric,
        "overrides": program.overrides,
        "init": init,
    }

    def save_state(status: str, wall: float) -> dict:
        payload = {
            **state,
            "status": status,
            "wall_time": previous.get("wall_time", 0.0) + wall,
            "records": {str(r.seed): asdict(r) for r in records},
            "summary": summarize(records, target=program.target, main_metric=main),
        }
        _write_json(state_path, payload)
        return payload

    main = program.task.main_metric
    save_state("running", 0.0)
    what = "in one vmapped function" if mode == "vmap" else f"as processes, {jobs} at a time"
    console.print(
        f"[bold]{name}[/bold]: {len(seeds)} seeds {what}, {program.steps} steps of "
        f"{program.batch_size} sequences each, saving to {out}"
    )
    t0 = time.perf_counter()
    interrupted = None
    if mode == "vmap":
        try:
            interrupted = _run_vmapped(
                program,
                program_file,
                name,
                out,
                records,
                console,
                saved=lambda: save_state("running", time.perf_counter() - t0),
            )
        except _NoVmap as e:
            console.print(f"[yellow]{e}: running the seeds as processes instead, {jobs} at a time")
            state["mode"] = mode = "processes"
    if interrupted is None:
        interrupted = _run_processes(
            program_file,
            program,
            out,
            records,
            console,
            jobs=jobs,
            overrides=program.overrides,
            init=init,
            trust=trust,
        )
    payload = save_state("interrupted" if interrupted else "done", time.perf_counter() - t0)
    console.print(seeds_table(records, main, title=f"{name}: {len(seeds)} seeds"))
    console.print(summary_table(payload["summary"]))
    if interrupted:
        console.print(
            f"[yellow]interrupted: every seed saved; continue with `difmachine sweep "
            f"{program_file} --out {out} --resume`"
        )
    else:
        console.print(f"wrote {state_path}")
    payload["interrupted"] = interrupted
    return payload


class _NoVmap(Exception):
    """The machine's train step does not vmap over seeds (e.g. a primitive without a batching
    rule): the sweep falls back to one process per seed."""


def _many_step(train_step, static):
    """``train_step`` vmapped over seeds; a seed whose ``active`` is False keeps its state."""

    def one(params, opt_state, batch):
        model, opt_state, metrics = train_step(eqx.combine(params, static), opt_state, batch)
        return eqx.filter(model, eqx.is_array), opt_state, metrics

    def many(params, opt_states, batches, active):
        new_params, new_opt, metrics = jax.vmap(one)(params, opt_states, batches)

        def keep(new, old):
            return jnp.where(active.reshape(active.shape + (1,) * (new.ndim - 1)), new, old)

        new_params = jax.tree.map(keep, new_params, params)
        new_opt = jax.tree.map(keep, new_opt, opt_states)
        return new_params, new_opt, metrics

    return many


def _stack_batches(batches):
    """One batch per seed -> a batch with a leading seed axis. Tasks pad every batch to one
    shape; if two seeds' batches still differ, each array is zero-padded to the largest (the
    padding's masks are 0, so it runs and scores nothing)."""
    leaves = [jax.tree.leaves(b) for b in batches]
    treedef = jax.tree.structure(batches[0])
    stacked = []
    for arrays in zip(*leaves):
        shape = np.max([a.shape for a in arrays], axis=0)
        if any(a.shape != tuple(shape) for a in arrays):
            arrays = [np.pad(a, [(0, m - d) for d, m in zip(a.shape, shape)]) for a in arrays]
        stacked.append(np.stack(arrays))
    return jax.tree.unflatten(treedef, stacked)


def evaluate_seeds(eval_fn, params, task, data_seeds: list[int], samples: int) -> list[dict]:
    """Every seed's mean evaluation metrics, computed as :func:`~difmachine.training.evaluate`
    computes them for a single run (fresh data from ``data_seeds[i]``, batches of 64), in one
    vmapped ``eval_fn(params, batch)`` per batch."""
    totals = [dict() for _ in data_seeds]
    done = 0
    streams = [eval_batches(task, samples, d) for d in data_seeds]
    for pairs in zip(*streams):
        k = pairs[0][1]
        batch = _stack_batches([b for b, _ in pairs])
        metrics = jax.device_get(eval_fn(params, batch))
        for i, t in enumerate(totals):
            for key, v in metrics.items():
                t[key] = t.get(key, 0.0) + float(v[i]) * k
        done += k
    return [{key: v / done for key, v in t.items()} for t in totals]


_FUNCTIONS: dict = {}  # a sweep resumed in the same process (tests) reuses its compiled step


def _functions(program: Program, program_file: Path, static):
    """The jitted vmapped train and evaluation steps, one pair per program file text, the
    local modules it imports and overrides (which determine task, optimizer and machine)."""
    modules = sorted(program.origin.get("modules", {}).items())
    key = (
        program_file.read_text(),
        tuple((name, Path(file).read_bytes()) for name, file in modules),
        json.dumps(program.overrides, sort_keys=True),
        repr(program.task),
    )
    if key not in _FUNCTIONS:
        task = program.task
        train_step = make_train_step(task, program.optimizer, program.chunk)
        eval_step = make_eval_step(task)
        _FUNCTIONS.clear()
        _FUNCTIONS[key] = (
            jax.jit(_many_step(train_step, static), donate_argnums=(0, 1)),
            jax.jit(jax.vmap(lambda p, b: eval_step(eqx.combine(p, static), b))),
        )
    return _FUNCTIONS[key]


def _run_vmapped(program, program_file, name, out, records, console, saved=None) -> bool:
    """Train every unfinished seed in one vmapped step; returns whether it was interrupted.

    The seeds still training form the *group* the step is vmapped over. A seed that finishes
    (target met, or budget spent) is frozen by the step's mask; once a quarter of the group has
    finished, the group shrinks to the seeds still training (one more compile at the new
    width), so finished seeds stop costing compute: on a CPU the step is compute-bound and
    ``n`` seeds cost ``n`` times one."""
    task, optimizer, main = program.task, program.optimizer, program.task.main_metric
    programs = [program.replace(seed=r.seed) for r in records]
    dirs = [seed_dir(out, r.seed) for r in records]
    group = [i for i, r in enumerate(records) if not r.done]
    if not group:
        return False
    if task.curriculum_start() is not None:
        raise _NoVmap("the task's adaptive curriculum keeps a level per run")
    params, opts, static = [], [], None
    for i in group:
        model = build(programs[i])
        if any(model.at_step(s) is not model for s in (0, program.steps)):
            raise _NoVmap("the machine changes form during training (e.g. linear start)")
        if model.stochastic():  # its train step samples with a key per step: a run's, per seed
            raise _NoVmap(
                "the machine samples (a stochastic device or dropout) and the vmapped step "
                "draws no per-seed keys"
            )
        opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
        if (dirs[i] / CHECKPOINT).exists():
            (model, opt_state), header = checkpoint.load(
                dirs[i] / CHECKPOINT, (model, opt_state), programs[i].fingerprint()
            )
            records[i].step = int(header["step"])
        p_arrays, static = eqx.partition(model, eqx.is_array)
        params.append(p_arrays)
        opts.append(opt_state)
    # stacked on the host: stacking on the device would compile one op per leaf shape
    stack = lambda trees: jax.tree.map(lambda *xs: jnp.asarray(np.stack(xs)), *trees)
    params, opts = stack(jax.device_get(params)), stack(jax.device_get(opts))
    step_fn, eval_fn = _functions(program, program_file, static)

    def batches_of(group):
        return _stack_batches(
            [
                task.sample(batch_rng(records[i].seed, records[i].step), program.batch_size)
                for i in group
            ]
        )

    try:  # traced (not compiled) before any file is touched, so a fallback starts clean
        step_fn.trace(params, opts, batches_of(group), jnp.ones(len(group), bool))
    except Exception as e:  # noqa: BLE001 - e.g. a primitive without a batching rule
        raise _NoVmap(
            f"the train step does not vmap over seeds ({type(e).__name__}: {str(e)[:200]})"
        ) from e
    best = {}
    for i in group:
        d = dirs[i]
        if not (d / CHECKPOINT).exists() and (d / BEST).exists():
            (d / BEST).unlink()  # left by a run whose checkpoint was deleted: not this run's
        best[i] = (
            checkpoint.read_header(d / BEST).get("eval", {}).get(main)
            if (d / BEST).exists()
            else None
        )
        d.mkdir(parents=True, exist_ok=True)
        # eval/trace of a seed directory made here need no --trust
        write_program(d, program_file, program.origin)
        records[i].status = "compiling"
    # the run's own log: a resumed seed drops the rows written after its checkpoint
    logs = {i: MetricsLog(dirs[i] / METRICS, resume_step=records[i].step) for i in group}
    windows: dict[int, list[dict]] = {i: [] for i in group}
    pending: list[tuple[dict, list[int]]] = []  # (metrics of a step, the seeds it trained)
    wall0 = {i: records[i].wall_time for i in group}
    t0 = time.perf_counter()
    window_start, window_steps = t0, 0
    host = {}  # the stacked state fetched once per step, for however many seeds save

    def seed_state(i):
        if not host:
            host["state"] = jax.device_get((params, opts))
        k = group.index(i)
        take = lambda tree: jax.tree.map(lambda x: np.asarray(x[k]), tree)
        return (eqx.combine(take(host["state"][0]), static), take(host["state"][1]))

    def save(i, path=None, **extra):
        p = programs[i]
        header = {
            "program": name,
            "fingerprint": p.fingerprint(),
            "step": records[i].step,
            "settings": p.settings(),
            "time": time.time(),
            "sweep": str(out),
            **extra,
        }
        checkpoint.save(path or dirs[i] / CHECKPOINT, seed_state(i), header)

    def flush_pending():
        nonlocal pending
        for metrics, trained in jax.device_get(pending):
            for k, i in enumerate(group):
                if i in trained:
                    windows[i].append({key: float(v[k]) for key, v in metrics.items()})
        pending = []

    live = Live(seeds_table(records, main), console=console, refresh_per_second=2, transient=True)
    interrupted = False
    try:
        with _Stop() as stop, live:
            while True:
                training = [i for i in group if not records[i].done]
                if not training:
                    break
                if stop.requested:
                    interrupted = True
                    break
                if len(group) - len(training) >= max(1, len(group) / 4):
                    flush_pending()  # its metrics are indexed by the old group
                    keep = [group.index(i) for i in training]
                    state = jax.device_get((params, opts))
                    params, opts = jax.tree.map(lambda x: jnp.asarray(x[keep]), state)
                    group = training
                    host.clear()
                active = np.array([not records[i].done for i in group])
                params, opts, metrics = step_fn(
                    params, opts, batches_of(group), jnp.asarray(active)
                )
                host.clear()
                pending.append((metrics, training))
                window_steps += 1
                now = time.perf_counter()
                for i in training:
                    records[i].step += 1
                    records[i].wall_time = wall0[i] + now - t0
                to_log = [
                    i
                    for i in training
                    if records[i].step % program.log_every == 0 or records[i].step == program.steps
                ]
                if to_log:
                    flush_pending()
                    rate = window_steps * program.batch_size / (now - window_start)
                    window_start, window_steps = now, 0
                    for i in to_log:
                        window, windows[i] = windows[i], []
                        last = {k: float(np.mean([w[k] for w in window])) for k in window[0]}
                        r = records[i]
                        r.refused += int(sum(w["refused"] for w in window))
                        r.loss, r.metric, r.status = last["loss"], last[main], "training"
                        row = {"step": r.step, "time": time.time(), "seq_per_s": rate, **last}
                        logs[i].write(row)
                    title = f"{name}: {rate * len(training):.0f} seq/s over {len(training)} seeds"
                    live.update(seeds_table(records, main, title=title))
                to_eval = [
                    i
                    for i in training
                    if records[i].step % program.eval_every == 0 or records[i].step == program.steps
                ]
                if to_eval:
                    data_seeds = [records[i].seed + records[i].step for i in group]
                    evals = evaluate_seeds(eval_fn, params, task, data_seeds, program.eval_samples)
                    for i in to_eval:
                        r, ev = records[i], evals[group.index(i)]
                        logs[i].write(eval_record(r.step, time.time(), ev))
                        r.eval = ev[main]
                        if best[i] is None or ev[main] < best[i]:
                            best[i] = ev[main]
                            save(i, dirs[i] / BEST, eval=ev)
                        if program.target is not None and ev[main] <= program.target:
                            r.solved_step, r.solved_wall = r.step, r.wall_time
                            r.done, r.status = True, "solved"
                            save(i)
                    live.update(seeds_table(records, main, title=f"{name}: evaluated"))
                    if not console.is_terminal:  # piped to a log: no live table, a line instead
                        console.print(
                            f"step {records[to_eval[0]].step}  eval {main}  "
                            + "  ".join(
                                f"seed {records[i].seed} {records[i].eval:.4g}"
                                + (" solved" if records[i].status == "solved" else "")
                                for i in to_eval
                            ),
                            highlight=False,
                        )
                    window_start = time.perf_counter()
                for i in training:
                    r = records[i]
                    if r.step >= program.steps and not r.done:
                        r.done, r.status = True, "budget spent"
                        save(i)
                    elif r.step % program.checkpoint_every == 0 and r.solved_step != r.step:
                        save(i)
                if host:  # something was saved: note it in sweep.json; don't count it in seq/s
                    if saved is not None:
                        saved()
                    window_start = time.perf_counter()
            if interrupted:
                for i in group:
                    if not records[i].done:
                        save(i)
                        records[i].status = "interrupted"
    finally:
        for log in logs.values():
            log.close()
    return interrupted


def _init_source(init: str | Path, seed: int) -> Path:
    """The run seed ``seed`` starts from: its own seed's run in a sweep, else ``init`` itself."""
    init = Path(init)
    return seed_dir(init, seed) if (init / SWEEP_FILE).exists() else init


def _run_processes(
    program_file, program, out, records, console, *, jobs, overrides, init=None, trust=False
) -> bool:
    """Each unfinished seed as ``difmachine run ... --seed s --out DIR/seed_s``, ``jobs`` at a
    time; the table follows their ``metrics.jsonl``. Returns whether it was interrupted."""
    main = program.task.main_metric
    queue = [r for r in records if not r.done]
    running: dict[int, tuple[subprocess.Popen, float, float]] = {}
    by_seed = {r.seed: r for r in records}
    interrupted = False

    def command(r: SeedRecord) -> list[str]:
        cmd = [sys.executable, "-m", "difmachine.cli", "run", str(program_file)]
        cmd += ["--seed", str(r.seed), "--out", str(seed_dir(out, r.seed))]
        cmd += ["--steps", str(program.steps)]
        for k, v in overrides.items():
            cmd += ["--set", f"{k}={v}"]
        if (seed_dir(out, r.seed) / CHECKPOINT).exists():
            cmd.append("--resume")
        elif init is not None:
            cmd += ["--init", str(_init_source(init, r.seed))] + (["--trust"] if trust else [])
        return cmd

    def refresh(r: SeedRecord, wall: float) -> None:
        fresh = read_seed(seed_dir(out, r.seed), program.replace(seed=r.seed))
        r.step, r.loss, r.metric, r.eval = fresh.step, fresh.loss, fresh.metric, fresh.eval
        r.wall_time = wall
        last = _last_train(seed_dir(out, r.seed), main)
        r.step = max(r.step, int(last.get("step", 0)))

    def finish(seed: int, code: int) -> None:
        """Record a child's end from its run directory. 130 and 143 (SIGINT, SIGTERM): it saved
        and stopped when told to, so the seed is interrupted, not failed, and resumes."""
        r = by_seed[seed]
        final = read_seed(
            seed_dir(out, seed),
            program.replace(seed=seed),
            {"wall_time": r.wall_time, "solved_wall": r.wall_time},
        )
        r.step, r.eval, r.done = final.step, final.eval, final.done
        r.solved_step, r.solved_wall = final.solved_step, final.solved_wall
        if code == 0 and final.done:
            r.status = final.status
        elif code in (0, *STOPPED):
            r.status = "interrupted"
        else:
            r.status, r.done = f"failed (exit {code})", True
            console.print(
                f"[red]seed {seed} failed (exit {code}); see {seed_dir(out, seed) / 'run.log'}"
            )

    def tell_to_stop() -> None:
        for seed, (proc, _, _) in running.items():
            if seed not in told and proc.poll() is None:
                proc.send_signal(signal.SIGTERM)  # train() saves, then exits
                told.add(seed)

    told: set[int] = set()
    live = Live(seeds_table(records, main), console=console, refresh_per_second=2, transient=True)
    try:
        with _Stop() as stop, live:
            while queue or running:
                if stop.requested and not interrupted:
                    interrupted = True
                    queue = []
                    tell_to_stop()
                while queue and len(running) < jobs and not interrupted:
                    r = queue.pop(0)
                    d = seed_dir(out, r.seed)
                    d.mkdir(parents=True, exist_ok=True)
                    log = open(d / "run.log", "a")
                    proc = subprocess.Popen(
                        command(r),
                        stdout=log,
                        stderr=subprocess.STDOUT,
                        start_new_session=True,  # a terminal's Ctrl-C reaches only the sweep
                    )
                    log.close()
                    running[r.seed] = (proc, time.perf_counter(), r.wall_time)
                    r.status = "running"
                time.sleep(0.5)
                for seed, (proc, started, wall_before) in list(running.items()):
                    refresh(by_seed[seed], wall_before + time.perf_counter() - started)
                    code = proc.poll()
                    if code is not None:
                        del running[seed]
                        finish(seed, code)
                live.update(seeds_table(records, main, title=f"{len(running)} running"))
    except KeyboardInterrupt:
        # a second signal, possibly before the loop passed on the first: stop waiting on the
        # table, but every child is still told to stop, so each saves its step and exits
        interrupted = True
        tell_to_stop()
        for seed, (proc, _, _) in list(running.items()):
            finish(seed, proc.wait())
    return interrupted


__all__ = ["sweep", "parse_seeds", "summarize", "read_seed", "seed_dir", "SeedRecord"]
