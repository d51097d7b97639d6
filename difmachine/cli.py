"""The ``difmachine`` command line: thin wrappers over library functions that tests also call."""

from __future__ import annotations

import functools
import json
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
from rich.markup import escape
from rich.table import Table

from .errors import DifmachineError

app = typer.Typer(
    add_completion=False,
    no_args_is_help=True,
    pretty_exceptions_enable=False,
    help="Differentiable machines as short programs: train, inspect and evaluate them.",
)
console = Console()
err_console = Console(stderr=True)
# piped into a file or a pager, a line is not cut at 80 columns (mid-metric); tables still fit
console.soft_wrap = not console.is_terminal


def _version(value: bool) -> None:
    if value:
        from importlib.metadata import PackageNotFoundError, version

        try:
            console.print(f"difmachine {version('difmachine')}")
        except PackageNotFoundError:  # a source tree on sys.path, not installed
            console.print("difmachine (not installed: run pip install -e .)")
        raise typer.Exit()


def _program_name(path: Path) -> str:
    return path.stem


def _user_errors(command):
    """Report a user mistake as one line on stderr with exit code 2, never a traceback; Ctrl-C
    (also during start-up, before a run can save anything) exits 130."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DifmachineError as e:
            _error(str(e))
        except MemoryError:
            _error("out of memory: use a smaller --batch-size, --samples or length")
        except KeyboardInterrupt:
            err_console.print("interrupted", highlight=False)
            raise typer.Exit(130) from None

    return wrapper


def _error(message: str):
    err_console.print(f"[red]error:[/red] {escape(message)}", highlight=False, soft_wrap=True)
    raise typer.Exit(2)


MAX_SEED = 2**63 - 1  # what JAX's PRNGKey takes
MAX_BATCH = 1 << 20
MAX_LENGTH = 100_000  # sequence length of eval/trace: beyond this, memory runs out first


def _check_at_most(option: str, value: int | None, high: int, low: int | None = None) -> None:
    """Too large to be meant (and an overflow or an out-of-memory crash later): one line now.
    Too small is the Program's check, unless ``low`` is given."""
    if low is not None and value is not None and value < low:
        raise DifmachineError(f"{option} must be at least {low}, got {value}")
    if value is not None and value > high:
        raise DifmachineError(f"{option} must be at most {high:,}, got {value:,}")


def _writable_dir(run_dir: Path) -> None:
    """Create ``run_dir`` and check a file can be written in it (before the model is built)."""
    import tempfile

    try:
        run_dir.mkdir(parents=True, exist_ok=True)
        with tempfile.TemporaryFile(dir=run_dir, prefix=".write-check."):
            pass
    except OSError as e:
        raise DifmachineError(
            f"--out {run_dir}: cannot write there ({e.strerror or e}); choose another directory"
        ) from None


def _resume_settings(run_dir: Path, overrides: dict, seed, batch_size, steps):
    """What a resumed run was started with; a flag that contradicts it is an error."""
    from . import checkpoint
    from .rundir import CHECKPOINT

    path = run_dir / CHECKPOINT
    if not path.exists():
        return overrides, seed, batch_size, steps  # train() explains what is there instead
    settings = checkpoint.read_header(path).get("settings", {})
    recorded = settings.get("overrides", {})
    for name, value in overrides.items():
        if name != "steps" and name in recorded and recorded[name] != value:
            raise DifmachineError(
                f"--set {name}={value} conflicts with the run's {name}={recorded[name]}: "
                "--resume continues the run as it was started; leave it out or use another --out"
            )
    for option, given, name in (
        ("--seed", seed, "seed"),
        ("--batch-size", batch_size, "batch_size"),
    ):
        if given is not None and settings.get(name) is not None and given != settings[name]:
            raise DifmachineError(
                f"{option} {given} conflicts with the run's {settings[name]}: --resume continues "
                "the run as it was started; leave it out or use another --out"
            )
    return (
        {**recorded, **overrides},
        settings.get("seed", seed) if seed is None else seed,
        settings.get("batch_size") if batch_size is None else batch_size,
        settings.get("steps") if steps is None and "steps" not in overrides else steps,
    )


@app.callback()
def _options(
    ctx: typer.Context,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            metavar="",
            help="Do not use the compilation cache (also: DIFMACHINE_NO_CACHE=1).",
        ),
    ] = False,
    _: Annotated[
        bool,
        typer.Option(
            "--version", callback=_version, is_eager=True, metavar="", help="Print the version."
        ),
    ] = False,
) -> None:
    """Differentiable machines as short programs: train, inspect and evaluate them."""
    from .cache import enable_compilation_cache

    if not no_cache and ctx.invoked_subcommand != "bench":  # benchmarks time the compiles
        enable_compilation_cache()


@app.command()
@_user_errors
def run(
    program_file: Annotated[Path, typer.Argument(help="A program file, e.g. programs/ntm_copy.py")],
    steps: Annotated[
        int | None, typer.Option(help="Training steps (overrides the program).")
    ] = None,
    batch_size: Annotated[int | None, typer.Option(help="Sequences per step.")] = None,
    seed: Annotated[int | None, typer.Option(help="Seed for parameters and data.")] = None,
    out: Annotated[
        Path | None, typer.Option(help="Run directory (default runs/<program>).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", metavar="", help="Continue from the run's last checkpoint."),
    ] = False,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Program parameter name=value (repeatable).")
    ] = None,
    devices: Annotated[
        int | None,
        typer.Option(
            help="Data-parallel over N devices: each batch is split, parameters replicated "
            "(on a CPU host the CPU is split into N XLA devices)."
        ),
    ] = None,
    coordinator: Annotated[
        str | None,
        typer.Option(
            help="Multi-host: HOST:PORT of process 0 (with --num-processes, --process-id)."
        ),
    ] = None,
    num_processes: Annotated[
        int | None, typer.Option(help="Multi-host: how many processes take part.")
    ] = None,
    process_id: Annotated[
        int | None, typer.Option(help="Multi-host: this process's rank, 0..N-1.")
    ] = None,
    tensorboard: Annotated[
        bool,
        typer.Option(
            "--tensorboard",
            help="Also write TensorBoard event files into RUN/tensorboard "
            "(pip install -e '.[tensorboard]').",
        ),
    ] = False,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start from another run's trained parameters wherever this machine has the "
            "same ones (fine-tuning; e.g. a soft HAM run trained on as mode=hard)."
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            metavar="",
            help="With --init: execute that run's program.py even though no run on this machine "
            "wrote it.",
        ),
    ] = False,
):
    """Train a program: live progress, periodic evaluation, atomic checkpoints (Ctrl-C saves).

    --resume continues the run with everything it was started with (seed, batch size, steps,
    --set parameters); pass --steps to extend it."""
    from . import parallel

    _check_at_most("--seed", seed, MAX_SEED)
    _check_at_most("--batch-size", batch_size, MAX_BATCH)
    if trust and init is None:
        raise DifmachineError("--trust applies to --init RUN (a run made elsewhere); give --init")
    _check_at_most("--steps", steps, MAX_SEED)
    if tensorboard:
        from .tensorboard import check_available

        check_available()

    # before anything runs JAX: joining a multi-host job and splitting the CPU must come first
    parallel.initialize(
        devices, coordinator=coordinator, num_processes=num_processes, process_id=process_id
    )
    import jax

    from .program import load_program, parse_overrides
    from .training import train

    name = _program_name(program_file)
    run_dir = out if out is not None else Path("runs") / name
    overrides = parse_overrides(set_)
    if resume:
        overrides, seed, batch_size, steps = _resume_settings(
            run_dir, overrides, seed, batch_size, steps
        )
    elif (not program_file.exists()) or program_file.is_dir():
        pass  # load_program says what is wrong with it
    else:
        _writable_dir(run_dir)
    program = load_program(program_file, overrides, steps=steps).replace(
        batch_size=batch_size, seed=seed
    )
    layout = None
    if devices is not None or jax.process_count() > 1:
        layout = parallel.use_devices(devices or len(jax.devices()))
    where = ""
    if layout is not None:
        hosts = f" on {jax.process_count()} processes" if jax.process_count() > 1 else ""
        where = f", split over {layout.size} {jax.devices()[0].platform} devices{hosts}"
    if layout is None or layout.is_main:
        console.print(
            f"[bold]{name}[/bold]: {program.steps} steps of {program.batch_size} sequences, "
            f"seed {program.seed}{where}, saving to {run_dir}"
        )
    result = train(
        program,
        run_dir,
        program_file=program_file,
        resume=resume,
        console=console,
        name=name,
        parallel=layout,
        tensorboard=tensorboard,
        init_from=init,
        trust_init=trust,
    )
    if layout is not None and not layout.is_main:
        raise typer.Exit(128 + int(result.signal) if result.interrupted else 0)
    main = program.task.main_metric
    final = result.metrics.get(f"eval_{main}", result.metrics.get(main))
    final_text = f"{main} {final:.4g}" if final is not None else "no steps run"
    status = "solved" if result.solved else ("interrupted" if result.interrupted else "done")
    span = f" (steps {result.start}-{result.step}, this session)" if result.start else ""
    console.print(
        f"{status}: step {result.step}, {final_text}, wall time {result.wall_time:.1f} s{span}, "
        f"saved in {result.run_dir}"
        + (f", {result.refused} non-finite steps refused" if result.refused else "")
    )
    if result.interrupted:
        raise typer.Exit(128 + int(result.signal or 2))  # 130 for Ctrl-C, 143 for SIGTERM


@app.command()
@_user_errors
def sweep(
    program_file: Annotated[Path, typer.Argument(help="A program file, e.g. programs/ntm_copy.py")],
    seeds: Annotated[
        str | None,
        typer.Option(help="N (seeds 0..N-1), a list 3,5,9 or a range 10-17."),
    ] = None,
    steps: Annotated[
        int | None, typer.Option(help="Training steps per seed (overrides the program).")
    ] = None,
    out: Annotated[
        Path | None, typer.Option(help="Sweep directory (default runs/<program>_sweep).")
    ] = None,
    resume: Annotated[
        bool,
        typer.Option("--resume", metavar="", help="Continue every seed from its last checkpoint."),
    ] = False,
    processes: Annotated[
        bool,
        typer.Option(
            "--processes", metavar="", help="One `difmachine run` process per seed, not one vmap."
        ),
    ] = False,
    jobs: Annotated[int, typer.Option(help="With --processes: how many run at a time.")] = 2,
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Program parameter name=value (repeatable).")
    ] = None,
    init: Annotated[
        Path | None,
        typer.Option(
            help="Start each seed from another run's parameters (run --init): seed s from "
            "DIR/seed_s when DIR is a sweep. The seeds then run as processes."
        ),
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            metavar="",
            help="With --init: execute those runs' program.py even though no run on this "
            "machine wrote them.",
        ),
    ] = False,
):
    """Train N seeds of a program (one vmapped function), then its success rate and spread."""
    from .program import parse_overrides
    from .sweep import parse_seeds
    from .sweep import sweep as run_sweep

    if steps is not None and steps < 1:
        raise DifmachineError(f"--steps must be at least 1, got {steps}")
    if trust and init is None:
        raise DifmachineError("--trust applies to --init DIR (runs made elsewhere); give --init")
    seed_list = parse_seeds(seeds) if seeds is not None or not resume else None
    result = run_sweep(
        program_file,
        seed_list,
        out if out is not None else Path("runs") / f"{_program_name(program_file)}_sweep",
        overrides=parse_overrides(set_),
        steps=steps,
        resume=resume,
        processes=processes,
        jobs=jobs,
        console=console,
        name=_program_name(program_file),
        init=init,
        trust=trust,
    )
    if result["interrupted"]:
        raise typer.Exit(130)


@app.command()
@_user_errors
def show(
    program_file: Annotated[
        Path, typer.Argument(help="A program file, or a run directory (its program copy).")
    ],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Program parameter name=value (repeatable).")
    ] = None,
    trust: Annotated[
        bool,
        typer.Option(
            "--trust",
            help="Execute a run directory's program.py even though no run on this machine wrote it.",
        ),
    ] = False,
):
    """Print the compiled layout: every interface slice, its activation, parameter counts."""
    from .program import build, load_program, parse_overrides
    from .rundir import PROGRAM_COPY, is_signed
    from .specs import full_repr

    name = _program_name(program_file)
    if program_file.is_dir() and (program_file / PROGRAM_COPY).exists():
        if not trust and not is_signed(program_file):
            raise DifmachineError(
                f"{program_file / PROGRAM_COPY} (or a module beside it) was not written by a run "
                "on this machine (no valid signature) and loading it runs its code: read it, "
                "then pass --trust"
            )
        program_file = program_file / PROGRAM_COPY
    program = load_program(program_file, parse_overrides(set_))
    model = build(program)
    console.print(f"[bold]{name}[/bold]: a {type(program.machine).__name__}", highlight=False)
    for part in ("machine", "task"):
        console.print(f"{part} {escape(full_repr(getattr(program, part)))}", highlight=False)
    budget = ("batch_size", "steps", "seed", "eval_every", "target", "remat", "chunk")
    console.print("training " + ", ".join(f"{k}={getattr(program, k)}" for k in budget))
    console.print(f"input {model.input_size}, output {model.output_size}")
    for title, columns, rows in model.summary():
        table = Table(title=title)
        for col in columns:
            table.add_column(col)
        for row in rows:
            table.add_row(*row)
        console.print(table)
    counts = Table(title="parameters")
    counts.add_column("part")
    counts.add_column("count", justify="right")
    param_counts = model.param_counts()
    for part, n in param_counts.items():
        counts.add_row(part, f"{n:,}")
    counts.add_row("[bold]total", f"[bold]{sum(param_counts.values()):,}")
    console.print(counts)


# `eval` and `trace` of a run directory: load best.eqx instead of checkpoint.eqx
BestCheckpoint = Annotated[
    bool,
    typer.Option("--best", metavar="", help="The run's best-evaluated checkpoint, not its last."),
]
# loading a run executes its program.py: only a signed one (written by a run on this machine)
# unless the user says so
Trust = Annotated[
    bool,
    typer.Option(
        "--trust",
        metavar="",
        help="Execute the run's program.py even though no run on this machine wrote it.",
    ),
]
ProgramFile = Annotated[
    Path | None,
    typer.Option("--program", help="Build the run's machine from this program file instead."),
]


def _parse_lengths(text: str | None, repeated: list[int] | None) -> list[int | None]:
    """``--lengths 10,20,40`` and ranges ``1-60`` (inclusive), mixed as ``1-5,10``."""
    lengths: list[int] = list(repeated or [])
    for part in (text or "").split(","):
        lo, dash, hi = part.strip().partition("-")
        try:
            if not part.strip():
                continue
            first, last = int(lo), int(hi if dash else lo)
        except ValueError:
            raise DifmachineError(
                f"--lengths takes comma-separated integers and ranges like 10,20,40 or 1-60, "
                f"got {text!r}"
            ) from None
        if last < first:
            raise DifmachineError(f"--lengths range {part.strip()} is empty; write it low-high")
        if last - first > MAX_LENGTH:
            raise DifmachineError(f"--lengths range {part.strip()} is too long")
        lengths += range(first, last + 1)
    if any(n < 1 or n > MAX_LENGTH for n in lengths):
        raise DifmachineError(f"lengths must be between 1 and {MAX_LENGTH:,}, got {lengths}")
    return lengths or [None]


def _write_json_out(payload: dict, json_out: Path) -> None:
    """``--json FILE``, or ``--json -``: standard output then holds only the JSON."""
    text = json.dumps(payload, indent=2) + "\n"
    if str(json_out) == "-":
        print(text, end="", flush=True)
    else:
        json_out.write_text(text)
        console.print(f"wrote {json_out}")


def _length_label(length, own) -> str:
    """An eval row's name: its length, or what ``None`` evaluated (a task's own evaluation
    data when it has ``own`` examples, else the training mix)."""
    if length is not None:
        return str(length)
    return "all" if own is not None else "training mix"


def _is_sweep(path: Path) -> bool:
    from .sweep import SWEEP_FILE

    return (path / SWEEP_FILE).is_file() and not (path / "program.py").exists()


def _eval_sweep(sweep_dir: Path, evaluate_run, metric, json_out, seed, out) -> None:
    """``eval SWEEP``: every seed's run (the same lengths, samples and data), a table of the
    chosen metric per seed and length (and its mean over the lengths), then each length's median
    and range over the seeds and, for the main metric of a program with a target, how many seeds
    reach it there."""
    from .rundir import CHECKPOINT
    from .sweep import SWEEP_FILE, distribution, seed_dir

    try:
        seeds = [int(s) for s in json.loads((sweep_dir / SWEEP_FILE).read_text())["seeds"]]
    except (OSError, ValueError, KeyError, TypeError) as e:
        raise DifmachineError(
            f"{sweep_dir / SWEEP_FILE} is unreadable ({type(e).__name__}): was the sweep "
            "written by difmachine sweep?"
        ) from None
    trained = [s for s in seeds if (seed_dir(sweep_dir, s) / CHECKPOINT).exists()]
    if not trained:
        raise DifmachineError(f"no seed of {sweep_dir} has a checkpoint yet: run the sweep first")
    results = {trained[0]: evaluate_run(seed_dir(sweep_dir, trained[0]))}
    program, _, rows, samples, own = results[trained[0]]
    name, main = program.task.length_name, metric or program.task.main_metric
    if main not in rows[0] or main in (name, "seconds"):  # told after one seed, not all
        known = ", ".join(k for k in rows[0] if k not in (name, "seconds"))
        raise DifmachineError(f"--metric {main}: the task reports {known}")
    results |= {s: evaluate_run(seed_dir(sweep_dir, s)) for s in trained[1:]}
    target = program.target if main == program.task.main_metric else None
    labels = [_length_label(r[name], own) for r in rows]
    values = {s: [r[main] for r in seed_rows] for s, (_, _, seed_rows, _, _) in results.items()}
    keys = [r[name] for r in rows]
    if len(rows) > 1:  # e.g. the fraction of n in 1-60 solved, per seed (eval's mean row)
        labels, keys = [*labels, "mean"], [*keys, "mean"]
        values = {s: [*v, sum(v) / len(v)] for s, v in values.items()}
    per_seed = Table(title=f"{sweep_dir}: {main}, {samples} sequences per {name} and seed")
    for col in ("seed", "step", *labels):
        per_seed.add_column(col, justify="right")
    for s, (_, header, _, _, _) in results.items():
        per_seed.add_row(str(s), str(header["step"]), *(f"{v:.4g}" for v in values[s]))
    summary = []
    for i, key in enumerate(keys):
        column = [v[i] for v in values.values()]
        row = {name: key, **distribution(column)}
        if target is not None:
            row["at_target"] = sum(v <= target for v in column)
        summary.append(row)
    table = Table(title=f"{main} over {len(trained)} seeds")
    columns = (name, "median", "min", "max", *(("at target",) if target is not None else ()))
    for col in columns:
        table.add_column(col, justify="right")
    for label, row in zip(labels, summary):
        cells = [f"{row[k]:.4g}" for k in ("median", "min", "max")]
        if target is not None:
            cells.append(f"{row['at_target']}/{len(trained)} ({main} <= {target})")
        table.add_row(label, *cells)
    missing = sorted(set(seeds) - set(trained))
    if missing:
        table.caption = f"seeds without a checkpoint yet: {', '.join(map(str, missing))}"
    out.print(per_seed)
    out.print(table)
    if json_out is not None:
        payload = {
            "sweep": str(sweep_dir),
            "metric": main,
            "samples": samples,
            "seed": seed,
            "seeds": {
                str(s): {"step": h["step"], "rows": r} for s, (_, h, r, _, _) in results.items()
            },
            "summary": summary,
        }
        _write_json_out(payload, json_out)


@app.command("eval")
@_user_errors
def eval_(
    run_dir: Annotated[
        Path,
        typer.Argument(help="A run directory, e.g. runs/ntm_copy, or a sweep's directory"),
    ],
    lengths: Annotated[
        str | None,
        typer.Option(help="Comma-separated lengths and ranges, e.g. 10,20,40,80 or 1-60."),
    ] = None,
    length: Annotated[list[int] | None, typer.Option(help="One length (repeatable).")] = None,
    samples: Annotated[
        int | None,
        typer.Option(
            help="Fresh sequences per length (default 256); for a task built from data, at "
            "most this many of its evaluation examples (default all)."
        ),
    ] = None,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation data.")] = 12345,
    json_out: Annotated[
        Path | None,
        typer.Option("--json", help="Also write the table as JSON (- for standard output)."),
    ] = None,
    png: Annotated[
        Path | None, typer.Option(help="Also plot error against length to a PNG.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Program parameter name=value on top of the run's, e.g. selection=hard."
        ),
    ] = None,
    data: Annotated[
        Path | None,
        typer.Option(
            help="Evaluate on this data file (.jsonl, .tsv, .npz) instead of the run's "
            "validation data (tasks built from data)."
        ),
    ] = None,
    split: Annotated[
        str | None,
        typer.Option(
            help="validation (the default) or train: which split of a task built from data."
        ),
    ] = None,
    best: BestCheckpoint = False,
    trust: Trust = False,
    program_file: ProgramFile = None,
    sample: Annotated[
        bool,
        typer.Option(
            "--sample",
            help="A machine with stochastic devices samples its actions instead of taking the "
            "most likely ones.",
        ),
    ] = False,
    metric: Annotated[
        str | None,
        typer.Option(
            help="With a sweep: the metric to compare over seeds (default the task's main metric)."
        ),
    ] = None,
):
    """Evaluate a trained run on fresh sequences, also longer than in training, or on its
    validation data or a data file (tasks built from data). Given a sweep directory, every
    seed's run, then each length's median and range over the seeds."""
    from .plotting import plot_generalization
    from .program import parse_overrides
    from .rundir import load_run
    from .training import generalization

    if samples is not None and samples < 1:
        raise DifmachineError(f"--samples must be at least 1, got {samples}")
    _check_at_most("--samples", samples, MAX_SEED)
    if data is not None and split is not None:
        raise DifmachineError("give --data FILE or --split NAME, not both")
    _check_at_most("--seed", seed, MAX_SEED, low=0)
    wanted = _parse_lengths(lengths, length)
    if data is not None:
        data = data.resolve()  # relative to where the user is, not to the program
    to_stdout = json_out is not None and str(json_out) == "-"
    out = err_console if to_stdout else console  # `--json -`: standard output holds only JSON

    def evaluate_run(directory: Path):
        program, model, header = load_run(
            directory, parse_overrides(set_), best=best, trust=trust, program_file=program_file
        )
        if data is not None or split is not None:
            program = program.replace(
                task=program.task.with_evaluation(data, split=split or "validation")
            )
        own = program.task.evaluation_size()
        n = own if own is not None and samples is None else samples or 256
        n = min(n, own) if own is not None else n
        with out.status(f"evaluating {directory}..."):
            rows = generalization(model, program.task, wanted, samples=n, seed=seed, sample=sample)
        return program, header, rows, n, own

    if _is_sweep(run_dir):
        if png is not None:
            raise DifmachineError(
                f"--png plots one run: give one seed's run, e.g. {run_dir / 'seed_0'}"
            )
        return _eval_sweep(run_dir, evaluate_run, metric, json_out, seed, out)
    if metric is not None:
        raise DifmachineError("--metric compares the seeds of a sweep: give a sweep directory")
    program, header, rows, samples, own = evaluate_run(run_dir)
    name = program.task.length_name
    on = f" of {data}" if data is not None else ""
    on = on or (f" of the {program.task.evaluate_on} split" if own is not None else "")
    table = Table(title=f"{run_dir} at step {header['step']}, {samples} sequences{on} per row")
    table.add_column(name)
    metric_names = [k for k in rows[0] if k not in (name, "seconds")]
    for k in metric_names:
        table.add_column(k, justify="right")
    table.add_column("seconds", justify="right")
    for row in rows:
        table.add_row(
            _length_label(row[name], own),
            *(f"{row[k]:.4g}" for k in metric_names),
            f"{row['seconds']:.1f}",
        )
    mean = {k: sum(r[k] for r in rows) / len(rows) for k in metric_names} if len(rows) > 1 else {}
    if mean:  # e.g. the fraction of n in 1-60 solved: `coarse` in the mean row of --samples 1
        table.add_section()
        total = sum(r["seconds"] for r in rows)
        table.add_row("mean", *(f"{mean[k]:.4g}" for k in metric_names), f"{total:.1f}")
    out.print(table)
    if json_out is not None:
        payload = {
            "run": str(run_dir),
            "step": header["step"],
            "samples": samples,
            "seed": seed,
            **({"data": str(data)} if data is not None else {}),
            "rows": rows,
            **({"mean": mean} if mean else {}),
        }
        _write_json_out(payload, json_out)
    if png is not None:
        plot_generalization(
            rows, name, program.task.main_metric, png, title=f"{run_dir} at step {header['step']}"
        )
        out.print(f"wrote {png}")


@app.command()
@_user_errors
def trace(
    target: Annotated[
        Path, typer.Argument(help="A run directory (trained) or a program file (untrained).")
    ],
    length: Annotated[int | None, typer.Option(help="Sequence length of the example.")] = None,
    seed: Annotated[int, typer.Option(help="Seed of the example.")] = 0,
    png: Annotated[
        Path | None, typer.Option(help="Also write the figure to this PNG file.")
    ] = None,
    set_: Annotated[
        list[str] | None,
        typer.Option(
            "--set", help="Program parameter name=value (on top of a run's own parameters)."
        ),
    ] = None,
    best: BestCheckpoint = False,
    trust: Trust = False,
    program_file: ProgramFile = None,
):
    """Run the machine on one fresh example and draw what every device did."""
    from .program import build, load_program, parse_overrides
    from .rundir import load_run
    from .trace import print_trace, run_example, save_png

    if length is not None and length < 1:
        raise DifmachineError(f"--length must be at least 1, got {length}")
    _check_at_most("--length", length, MAX_LENGTH)
    _check_at_most("--seed", seed, MAX_SEED, low=0)
    if target.suffix == ".py":
        program = load_program(target, parse_overrides(set_))
        model, title = build(program), f"{target} (untrained)"
    else:
        program, model, header = load_run(
            target, parse_overrides(set_), best=best, trust=trust, program_file=program_file
        )
        title = f"{target} at step {header['step']}"
    example = run_example(model, program.task, length=length, seed=seed)
    title += f", example seed {seed}, {len(example.inputs)} steps"
    print_trace(example, model, console, title=title)
    if png is not None:
        save_png(example, model, png, title=title)
        console.print(f"wrote {png}")


@app.command(
    context_settings={"allow_extra_args": True, "ignore_unknown_options": True},
    add_help_option=False,
)
@_user_errors
def bench(ctx: typer.Context):
    """Run a benchmark from the source checkout's bench/ (ntm_step, scaling, time_to_solve, ...)."""
    import importlib
    import sys

    root = Path(__file__).resolve().parent.parent
    if not (root / "bench" / "__main__.py").exists():
        raise DifmachineError(
            "bench/ is part of the source checkout: run this from a git clone (pip install -e .)"
        )
    if str(root) not in sys.path:
        sys.path.insert(0, str(root))
    raise typer.Exit(importlib.import_module("bench.__main__").main(list(ctx.args)))


def main() -> None:
    app()


if __name__ == "__main__":
    main()
