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


def _program_name(path: Path) -> str:
    return path.stem


def _user_errors(command):
    """Report a user mistake as one line on stderr with exit code 2, never a traceback."""

    @functools.wraps(command)
    def wrapper(*args, **kwargs):
        try:
            return command(*args, **kwargs)
        except DifmachineError as e:
            err_console.print(
                f"[red]error:[/red] {escape(str(e))}", highlight=False, soft_wrap=True
            )
            raise typer.Exit(2) from None

    return wrapper


@app.callback()
def _options(
    ctx: typer.Context,
    no_cache: Annotated[
        bool,
        typer.Option(
            "--no-cache",
            help="Do not use the compilation cache (also: DIFMACHINE_NO_CACHE=1).",
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
        bool, typer.Option("--resume", help="Continue from the run's last checkpoint.")
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
):
    """Train a program: live progress, periodic evaluation, atomic checkpoints (Ctrl-C saves)."""
    from . import parallel

    # before anything runs JAX: joining a multi-host job and splitting the CPU must come first
    parallel.initialize(
        devices, coordinator=coordinator, num_processes=num_processes, process_id=process_id
    )
    import jax

    from . import checkpoint
    from .program import load_program, parse_overrides
    from .rundir import CHECKPOINT
    from .training import train

    name = _program_name(program_file)
    run_dir = out if out is not None else Path("runs") / name
    overrides = parse_overrides(set_)
    if resume and not overrides and (run_dir / CHECKPOINT).exists():  # resume as it was started
        overrides = (
            checkpoint.read_header(run_dir / CHECKPOINT).get("settings", {}).get("overrides", {})
        )
    program = load_program(program_file, overrides).replace(
        steps=steps, batch_size=batch_size, seed=seed
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
    )
    if layout is not None and not layout.is_main:
        raise typer.Exit(130 if result.interrupted else 0)
    main = program.task.main_metric
    final = result.metrics.get(f"eval_{main}", result.metrics.get(main))
    final_text = f"{main} {final:.4g}" if final is not None else "no steps run"
    status = "solved" if result.solved else ("interrupted" if result.interrupted else "done")
    console.print(
        f"{status}: step {result.step}, {final_text}, wall time {result.wall_time:.1f} s, "
        f"saved in {result.run_dir}"
        + (f", {result.refused} non-finite steps refused" if result.refused else "")
    )
    if result.interrupted:
        raise typer.Exit(130)


@app.command()
@_user_errors
def show(
    program_file: Annotated[Path, typer.Argument(help="A program file.")],
    set_: Annotated[
        list[str] | None, typer.Option("--set", help="Program parameter name=value (repeatable).")
    ] = None,
):
    """Print the compiled layout: every interface slice, its activation, parameter counts."""
    from .program import build, load_program, parse_overrides

    program = load_program(program_file, parse_overrides(set_))
    model = build(program)
    machine = model.machine
    console.print(
        f"[bold]{_program_name(program_file)}[/bold]: {machine.controller!r}, "
        f"halting {machine.halting!r}"
    )
    console.print(f"task {program.task!r}: input {model.input_size}, output {model.output_size}")
    table = Table(title="interface (controller output -> devices)")
    for col in ("device", "field", "shape", "activation", "slice"):
        table.add_column(col)
    for slot in machine.layout():
        table.add_row(
            slot.device,
            slot.name,
            str(slot.field.shape),
            slot.field.activation,
            f"[{slot.start}:{slot.stop}]",
        )
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
    bool, typer.Option("--best", help="The run's best-evaluated checkpoint, not its last.")
]


def _parse_lengths(text: str | None, repeated: list[int] | None) -> list[int | None]:
    lengths: list[int] = list(repeated or [])
    if text:
        try:
            lengths += [int(x) for x in text.split(",") if x.strip()]
        except ValueError:
            raise DifmachineError(
                f"--lengths takes comma-separated integers like 10,20,40, got {text!r}"
            ) from None
    if any(n < 1 for n in lengths):
        raise DifmachineError(f"lengths must be at least 1, got {lengths}")
    return lengths or [None]


@app.command("eval")
@_user_errors
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. runs/ntm_copy")],
    lengths: Annotated[
        str | None, typer.Option(help="Comma-separated lengths, e.g. 10,20,40,80.")
    ] = None,
    length: Annotated[list[int] | None, typer.Option(help="One length (repeatable).")] = None,
    samples: Annotated[int, typer.Option(help="Fresh sequences per length.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation data.")] = 12345,
    json_out: Annotated[
        Path | None, typer.Option("--json", help="Also write the table as JSON.")
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
    best: BestCheckpoint = False,
):
    """Evaluate a trained run on fresh sequences, also longer than in training."""
    from .plotting import plot_generalization
    from .program import parse_overrides
    from .rundir import load_run
    from .training import generalization

    if samples < 1:
        raise DifmachineError(f"--samples must be at least 1, got {samples}")
    wanted = _parse_lengths(lengths, length)
    program, model, header = load_run(run_dir, parse_overrides(set_), best=best)
    name = program.task.length_name
    with console.status("evaluating..."):
        rows = generalization(model, program.task, wanted, samples=samples, seed=seed)
    table = Table(title=f"{run_dir} at step {header['step']}, {samples} sequences per row")
    table.add_column(name)
    metric_names = [k for k in rows[0] if k not in (name, "seconds")]
    for k in metric_names:
        table.add_column(k, justify="right")
    table.add_column("seconds", justify="right")
    for row in rows:
        label = "training mix" if row[name] is None else str(row[name])
        table.add_row(label, *(f"{row[k]:.4g}" for k in metric_names), f"{row['seconds']:.1f}")
    console.print(table)
    if json_out is not None:
        payload = {
            "run": str(run_dir),
            "step": header["step"],
            "samples": samples,
            "seed": seed,
            "rows": rows,
        }
        json_out.write_text(json.dumps(payload, indent=2) + "\n")
        console.print(f"wrote {json_out}")
    if png is not None:
        plot_generalization(
            rows, name, program.task.main_metric, png, title=f"{run_dir} at step {header['step']}"
        )
        console.print(f"wrote {png}")


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
):
    """Run the machine on one fresh example and draw what every device did."""
    from .program import build, load_program, parse_overrides
    from .rundir import load_run
    from .trace import print_trace, run_example, save_png

    if length is not None and length < 1:
        raise DifmachineError(f"--length must be at least 1, got {length}")
    if target.suffix == ".py":
        program = load_program(target, parse_overrides(set_))
        model, title = build(program), f"{target} (untrained)"
    else:
        program, model, header = load_run(target, parse_overrides(set_), best=best)
        title = f"{target} at step {header['step']}"
    example = run_example(model, program.task, length=length, seed=seed)
    title += f", example seed {seed}, {len(example.inputs)} steps"
    print_trace(example, model.machine, console, title=title)
    if png is not None:
        save_png(example, model.machine, png, title=title)
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
