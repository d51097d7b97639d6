"""The ``difmachine`` command line: thin wrappers over library functions that tests also call."""

from __future__ import annotations

import functools
import time
from pathlib import Path
from typing import Annotated

import typer
from rich.console import Console
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
            err_console.print(f"[red]error:[/red] {e}", highlight=False, soft_wrap=True)
            raise typer.Exit(2) from None

    return wrapper


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
):
    """Train a program: live progress, periodic evaluation, atomic checkpoints (Ctrl-C saves)."""
    from .program import load_program
    from .training import train

    program = load_program(program_file).replace(steps=steps, batch_size=batch_size, seed=seed)
    name = _program_name(program_file)
    run_dir = out if out is not None else Path("runs") / name
    console.print(
        f"[bold]{name}[/bold]: {program.steps} steps of {program.batch_size} sequences, "
        f"seed {program.seed}, saving to {run_dir}"
    )
    result = train(
        program, run_dir, program_file=program_file, resume=resume, console=console, name=name
    )
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
def show(program_file: Annotated[Path, typer.Argument(help="A program file.")]):
    """Print the compiled layout: every interface slice, its activation, parameter counts."""
    from .program import load_program
    from .training import build

    program = load_program(program_file)
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


@app.command("eval")
@_user_errors
def eval_(
    run_dir: Annotated[Path, typer.Argument(help="A run directory, e.g. runs/ntm_copy")],
    length: Annotated[list[int] | None, typer.Option(help="Sequence length (repeatable).")] = None,
    samples: Annotated[int, typer.Option(help="Fresh sequences per length.")] = 256,
    seed: Annotated[int, typer.Option(help="Seed of the evaluation data.")] = 12345,
):
    """Evaluate a trained run on fresh sequences, optionally longer than in training."""
    from .training import evaluate, load_run

    if samples < 1:
        raise DifmachineError(f"--samples must be at least 1, got {samples}")
    if length and any(n < 1 for n in length):
        raise DifmachineError(f"--length must be at least 1, got {length}")
    program, model, header = load_run(run_dir)
    table = Table(title=f"{run_dir} at step {header['step']}")
    table.add_column("length")
    metric_names: list[str] = []
    for L in length or [None]:
        t0 = time.perf_counter()
        metrics = evaluate(model, program.task, samples=samples, seed=seed, length=L)
        if not metric_names:
            metric_names = list(metrics)
            for k in metric_names:
                table.add_column(k, justify="right")
            table.add_column("time (s)", justify="right")
        table.add_row(
            "train mix" if L is None else str(L),
            *(f"{metrics[k]:.4g}" for k in metric_names),
            f"{time.perf_counter() - t0:.1f}",
        )
    console.print(table)


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
):
    """Run the machine on one fresh example and draw what every device did."""
    from .trace import print_trace, run_example, save_png
    from .training import build, load_run

    if length is not None and length < 1:
        raise DifmachineError(f"--length must be at least 1, got {length}")
    if target.suffix == ".py":
        from .program import load_program

        program = load_program(target)
        model, title = build(program), f"{target} (untrained)"
    else:
        program, model, header = load_run(target)
        title = f"{target} at step {header['step']}"
    example = run_example(model, program.task, length=length, seed=seed)
    title += f", example seed {seed}, {len(example.inputs)} steps"
    print_trace(example, model.machine, console, title=title)
    if png is not None:
        save_png(example, model.machine, png, title=title)
        console.print(f"wrote {png}")


def main() -> None:
    app()


if __name__ == "__main__":
    main()
