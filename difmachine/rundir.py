"""A run directory: the files ``difmachine run`` writes, and loading a trained run back."""

from __future__ import annotations

from pathlib import Path

import equinox as eqx

from . import checkpoint
from .errors import DifmachineError
from .program import Program, build, load_program

CHECKPOINT = "checkpoint.eqx"
BEST = "best.eqx"  # the checkpoint of the best evaluation so far
METRICS = "metrics.jsonl"
PROGRAM_COPY = "program.py"


def load_run(
    run_dir: str | Path, overrides: dict | None = None, *, best: bool = False
) -> tuple[Program, eqx.Module, dict]:
    """The program and trained machine of a run directory (``difmachine eval/trace RUN``).

    ``overrides`` change program parameters on top of those the run was trained with; the
    checkpoint still has to fit (e.g. ``selection=hard`` evaluates a Neural Programmer's
    discrete program, a different ``slots`` is refused as another machine). ``best`` loads the
    checkpoint of the run's best evaluation instead of its last step."""
    run_dir = Path(run_dir)
    if not run_dir.is_dir():
        raise DifmachineError(
            f"{run_dir}: no such run directory (runs are written by `difmachine run`)"
        )
    source = run_dir / PROGRAM_COPY
    if not source.exists():
        raise DifmachineError(
            f"{run_dir} is not a run directory (no {PROGRAM_COPY}); give runs/<program>"
        )
    path = run_dir / (BEST if best else CHECKPOINT)
    if best and not path.exists():
        raise DifmachineError(
            f"{run_dir} has no {BEST} (written by `difmachine run` at each evaluation that "
            "improves on the best so far); leave out --best to load the last step"
        )
    trained = checkpoint.read_header(path).get("settings", {}).get("overrides", {})
    program = load_program(source, {**trained, **(overrides or {})})
    program.check_checkpoint(checkpoint.read_header(path), path)
    model = build(program)
    (model, _), header = checkpoint.load(
        path,
        (model, program.optimizer.init(eqx.filter(model, eqx.is_array))),
        program.fingerprint(),
    )
    return program, model, header


__all__ = ["CHECKPOINT", "BEST", "METRICS", "PROGRAM_COPY", "load_run"]
