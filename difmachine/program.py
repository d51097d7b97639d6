"""``Program``: a machine, a task and how to train it; and loading one from a program file."""

from __future__ import annotations

import dataclasses
import hashlib
import importlib.util
import math
import sys
import traceback
from pathlib import Path

import jax
import optax

from .compiler import Machine
from .compiler import compile as compile_machine
from .errors import ProgramError
from .tasks.base import AbstractTask


@dataclasses.dataclass(frozen=True)
class Program:
    """Everything ``difmachine run`` needs.

    - ``machine``, ``task``: what to build and what to learn.
    - ``optimizer``: an optax transformation (include clipping in it, e.g. ``optax.chain``).
    - ``batch_size``, ``steps``, ``seed``: training budget and reproducibility.
    - ``eval_every``, ``eval_samples``: periodic evaluation on fresh data.
    - ``checkpoint_every``: steps between atomic checkpoints (also written at the end and on Ctrl-C).
    - ``target``: stop early once the evaluated main metric is at or below this value.
    - ``remat``: recompute each time step in the backward pass instead of storing it (default:
      it cuts the memory traffic that bounds the step at batch >= 16; 1.6x at batch 16 for the
      NTM, bench/FINDINGS.md).
    - ``chunk``: with a batch of several ``chunk``s, take forward and backward one chunk at a
      time and average (the same gradient up to float rounding): a chunk's working set stays in
      cache, 1.4x for the NTM step at batch 64 with ``chunk=32`` (bench/FINDINGS.md). Off
      (``None``) by default: the rounding differences change a run's trajectory, so turning it on
      changes the result of a seeded run (not its quality on average).
    - ``overrides``: the ``--set name=value`` parameters the program was loaded with (filled in by
      :func:`load_program`; recorded in checkpoints so eval and trace rebuild the same machine).
    """

    machine: Machine  # or a Seq2Seq
    task: AbstractTask
    optimizer: optax.GradientTransformation = dataclasses.field(
        default_factory=lambda: optax.chain(optax.clip_by_global_norm(10.0), optax.adam(1e-3))
    )
    batch_size: int = 16
    steps: int = 10_000
    seed: int = 0
    eval_every: int = 500
    eval_samples: int = 256
    checkpoint_every: int = 500
    log_every: int = 10
    target: float | None = None
    remat: bool = True
    chunk: int | None = None
    overrides: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        from .seq2seq import Seq2Seq

        if not isinstance(self.machine, (Machine, Seq2Seq)):
            raise ProgramError(
                "Program machine must be a Machine(...) or Seq2Seq(...), "
                f"got {type(self.machine).__name__}"
            )
        if not isinstance(self.task, AbstractTask):
            raise ProgramError(
                f"Program task must be a task such as Copy(), got {type(self.task).__name__}"
            )
        if isinstance(self.machine, Seq2Seq) and self.task.context_size is None:
            raise ProgramError(
                f"Program machine is a Seq2Seq but task {type(self.task).__name__} has no "
                "source sequence; use a sequence-to-sequence task such as ReverseString()"
            )
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise ProgramError(
                "Program optimizer must be an optax transformation, e.g. optax.adam(1e-3)"
            )
        for name in (
            "batch_size",
            "steps",
            "eval_every",
            "eval_samples",
            "checkpoint_every",
            "log_every",
            "chunk",
        ):
            value = getattr(self, name)
            optional = name == "chunk"  # None: the whole batch at once
            if optional and value is None:
                continue
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                kind = "a positive integer" + (" or None" if optional else "")
                raise ProgramError(f"Program {name} must be {kind}, got {value!r}")
        if self.target is not None and (
            not isinstance(self.target, (int, float)) or isinstance(self.target, bool)
        ):
            raise ProgramError(
                f"Program target must be a number (the main metric to stop at) or None, "
                f"got {self.target!r}"
            )
        if not isinstance(self.seed, int) or self.seed < 0:
            raise ProgramError(f"Program seed must be a non-negative integer, got {self.seed!r}")

    def replace(self, **changes) -> Program:
        """A copy with some settings changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    def fingerprint(self) -> str:
        """Identifies the machine and task (not the budget): checkpoints must match it."""
        spec = f"{self.machine!r}\n{self.task!r}"
        machine = getattr(self.machine, "decoder", self.machine)  # a Seq2Seq's decoder
        if machine.readout is not None:  # hidden from repr so older fingerprints stay valid
            spec += f"\nreadout={machine.readout}"
        return hashlib.sha256(spec.encode()).hexdigest()[:16]

    def settings(self) -> dict:
        return {
            "batch_size": self.batch_size,
            "steps": self.steps,
            "seed": self.seed,
            "eval_every": self.eval_every,
            "eval_samples": self.eval_samples,
            "target": self.target,
            "remat": self.remat,
            "chunk": self.chunk,
            "overrides": self.overrides,
            "machine": repr(self.machine),
            "task": repr(self.task),
        }


_overrides: dict[str, str] = {}
_used: set[str] = set()


def param(name: str, default):
    """A program parameter that ``difmachine run FILE --set name=value`` can override.

    In a program file: ``bits = dm.param("bits", 16)``. The override is converted to the type
    of ``default`` (int, float, bool or str); a bad value is a clear error.
    """
    _used.add(name)
    if name not in _overrides:
        return default
    text = _overrides[name]
    kind = type(default)
    try:
        if kind is bool:
            if text.lower() not in ("true", "false", "1", "0", "yes", "no"):
                raise ValueError
            return text.lower() in ("true", "1", "yes")
        value = kind(text)
        if kind is float and not math.isfinite(value):
            raise ProgramError(f"--set {name}={text}: expected a finite number like {default!r}")
        return value
    except ValueError:
        raise ProgramError(
            f"--set {name}={text}: expected a {kind.__name__} like {default!r}"
        ) from None


def parse_overrides(items: list[str] | None) -> dict[str, str]:
    """``["bits=64", "lr=0.01"]`` -> ``{"bits": "64", "lr": "0.01"}``."""
    out = {}
    for item in items or []:
        name, sep, value = item.partition("=")
        if not sep or not name.strip():
            raise ProgramError(f"--set takes name=value, got {item!r}")
        out[name.strip()] = value.strip()
    return out


def load_program(path: str | Path, overrides: dict[str, str] | None = None) -> Program:
    """Import a program file and return its ``program``; every failure is a one-line ProgramError.

    ``overrides`` are the values of :func:`param` calls in the file (``--set name=value``).
    """
    _overrides.clear()
    _overrides.update(overrides or {})
    _used.clear()
    try:
        program = _load(Path(path))
    finally:
        unknown = set(_overrides) - _used
        _overrides.clear()
    if unknown:
        raise ProgramError(
            f"{path} has no parameter {', '.join(sorted(unknown))} (it reads: {', '.join(sorted(_used)) or 'none'})"
        )
    return dataclasses.replace(program, overrides=dict(overrides or {}))


def _load(path: Path) -> Program:
    if not path.exists():
        raise ProgramError(f"{path}: no such program file (try one of programs/*.py)")
    if path.is_dir():
        raise ProgramError(
            f"{path} is a directory; give a program file such as programs/ntm_copy.py"
        )
    if path.suffix != ".py":
        raise ProgramError(f"{path}: a program file must be a Python file ending in .py")
    source = path.read_text()
    try:
        code = compile(source, str(path), "exec")
    except SyntaxError as e:
        raise ProgramError(
            f"{path}, line {e.lineno}: syntax error: {e.msg}; fix the file"
        ) from None
    module_name = f"difmachine_program_{abs(hash(str(path.resolve())))}"
    spec = importlib.util.spec_from_file_location(module_name, path)
    module = importlib.util.module_from_spec(spec)
    module.__file__ = str(path)
    sys.modules[module_name] = module
    try:
        exec(code, module.__dict__)
    except ProgramError as e:
        raise ProgramError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - report any user error in one line
        tb = traceback.extract_tb(e.__traceback__)
        lines = [f.lineno for f in tb if f.filename == str(path)]
        where = f", line {lines[-1]}" if lines else ""
        raise ProgramError(f"{path}{where}: {type(e).__name__}: {e}") from None
    program = getattr(module, "program", None)
    if program is None:
        raise ProgramError(
            f"{path} defines no `program`; add `program = Program(machine=..., task=...)`"
        )
    if not isinstance(program, Program):
        raise ProgramError(
            f"{path}: `program` must be a difmachine.Program, got {type(program).__name__}"
        )
    return program


def build(program: Program):
    """The program's machine, compiled for its task with fresh parameters from its seed."""
    task = program.task
    return compile_machine(
        program.machine,
        task.input_size,
        task.output_size,
        key=jax.random.PRNGKey(program.seed),
        remat=program.remat,
        context_size=task.context_size,
    )


__all__ = ["Program", "build", "load_program"]
