"""``Program``: a machine, a task and how to train it; and loading one from a program file."""

from __future__ import annotations

import dataclasses
import functools
import hashlib
import importlib.util
import json
import math
import sys
import traceback
from pathlib import Path

import equinox as eqx
import jax
import optax

from .compiler import compile as compile_machine
from .errors import CheckpointError, ProgramError
from .protocol import AbstractMachine, check_count
from .specs import check_spec
from .stochastic import Reinforce
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
    - ``remat``: recompute each time step in the backward pass instead of storing it. ``None``
      (the default) asks the machine (``prefers_remat``): on for dense machines, where it cuts
      the memory traffic that bounds the step at batch >= 16 (1.6x at batch 16 for the NTM,
      bench/FINDINGS.md), off when a device such as ``SparseMemory`` would have its whole state
      saved at every step.
    - ``chunk``: with a batch of several ``chunk``s, take forward and backward one chunk at a
      time and average (the same gradient up to float rounding): a chunk's working set stays in
      cache, 1.4x for the NTM step at batch 64 with ``chunk=32`` (bench/FINDINGS.md). Off
      (``None``) by default: the rounding differences change a run's trajectory, so turning it on
      changes the result of a seeded run (not its quality on average). It must divide
      ``batch_size``.
    - ``reinforce``: how a machine with stochastic devices is trained (:class:`Reinforce`:
      reward, baseline weight, advantage normalisation, entropy bonus); ``None`` is
      ``Reinforce()``. Ignored by deterministic machines.
    - ``overrides``: the ``--set name=value`` parameters the program was loaded with (filled in by
      :func:`load_program`; recorded in checkpoints so eval and trace rebuild the same machine).
    """

    machine: AbstractMachine
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
    remat: bool | None = None
    chunk: int | None = None
    reinforce: Reinforce | None = None
    overrides: dict = dataclasses.field(default_factory=dict, compare=False)

    def __post_init__(self):
        if not isinstance(self.machine, AbstractMachine):
            raise ProgramError(
                "Program machine must be a machine spec such as Machine(...) or Seq2Seq(...), "
                f"got {type(self.machine).__name__}"
            )
        if not isinstance(self.task, AbstractTask):
            raise ProgramError(
                f"Program task must be a task such as Copy(), got {type(self.task).__name__}"
            )
        check_spec(self.machine)
        check_spec(self.task)
        try:
            self.machine.check_contexts(self.task.contexts)
        except ValueError as e:
            raise ProgramError(f"Program: {e}") from None
        if not isinstance(self.optimizer, optax.GradientTransformation):
            raise ProgramError(
                "Program optimizer must be an optax transformation, e.g. optax.adam(1e-3)"
            )
        try:
            for name in ("batch_size", "steps", "eval_every", "eval_samples"):
                check_count("Program", name, getattr(self, name))
            for name in ("checkpoint_every", "log_every"):
                check_count("Program", name, getattr(self, name))
            check_count("Program", "chunk", self.chunk, optional=True)
            check_count("Program", "seed", self.seed, least=0)
        except ValueError as e:
            raise ProgramError(str(e)) from None
        if self.seed >= 2**63:
            raise ProgramError(f"Program seed must be below 2**63, got {self.seed}")
        if self.chunk is not None and self.batch_size % self.chunk:
            raise ProgramError(
                f"Program chunk {self.chunk} does not divide batch_size {self.batch_size}; "
                "pick a divisor or chunk=None"
            )
        if self.reinforce is not None and not isinstance(self.reinforce, Reinforce):
            raise ProgramError(
                f"Program reinforce must be Reinforce(...) or None, got {self.reinforce!r}"
            )
        if self.remat is not None and not isinstance(self.remat, bool):
            raise ProgramError(f"Program remat must be True, False or None, got {self.remat!r}")
        if self.target is not None and (
            not isinstance(self.target, (int, float)) or isinstance(self.target, bool)
        ):
            raise ProgramError(
                f"Program target must be a number (the main metric to stop at) or None, "
                f"got {self.target!r}"
            )

    def replace(self, **changes) -> Program:
        """A copy with some settings changed (``None`` values are ignored)."""
        return dataclasses.replace(self, **{k: v for k, v in changes.items() if v is not None})

    @functools.cached_property
    def _identity(self) -> dict:
        model = jax.eval_shape(lambda: build(self))
        leaves = jax.tree_util.tree_flatten_with_path(model)[0]
        return {
            "kinds": _kinds(self.machine),
            "params": [
                [jax.tree_util.keystr(path), list(leaf.shape), str(leaf.dtype)]
                for path, leaf in leaves
            ],
        }

    def identity(self) -> dict:
        """What a checkpoint must match to load into this program: the kinds of the machine's
        parts and its parameter tree (every leaf's path, shape and dtype). Settings that build no
        parameter (loss weights such as ``time_penalty``, task sizes that keep the widths, data
        splits, evaluation modes) are not part of it, so eval and trace may change them."""
        return self._identity

    def fingerprint(self) -> str:
        """A short hash of :meth:`identity`: checkpoints must match it."""
        text = json.dumps(self.identity(), sort_keys=True)
        return hashlib.sha256(text.encode()).hexdigest()[:16]

    def check_checkpoint(self, header: dict, path) -> None:
        """Raise a one-line :class:`CheckpointError` saying what differs unless the checkpoint
        whose ``header`` this is was written for a machine of this program's identity."""
        if header.get("fingerprint") == self.fingerprint():
            return
        mine = self.identity()
        theirs = header.get("identity")
        if not isinstance(theirs, dict):
            raise CheckpointError(
                f"{path} was written before checkpoints recorded their parameter tree (an older "
                "difmachine) or for another machine; it cannot be loaded into this program: "
                "retrain it, or use --out DIR for a new run"
            )
        raise CheckpointError(f"{path} holds another machine: {_difference(theirs, mine)}")

    def settings(self) -> dict:
        extra = {} if self.reinforce is None else {"reinforce": repr(self.reinforce)}
        return {
            **extra,
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
    remat = program.machine.prefers_remat() if program.remat is None else program.remat
    return compile_machine(
        program.machine,
        task.input_size,
        task.output_size,
        key=jax.random.PRNGKey(program.seed),
        remat=remat,
        contexts=task.contexts,
    )


def _kinds(spec) -> list[str]:
    """The class names of a spec and the specs nested in it, in field order."""
    names = []

    def walk(x):
        if isinstance(x, eqx.Module):
            names.append(type(x).__name__)
            for field in dataclasses.fields(x):
                walk(getattr(x, field.name, None))
        elif isinstance(x, (tuple, list)):
            for y in x:
                walk(y)
        elif isinstance(x, dict):
            for y in x.values():
                walk(y)

    walk(spec)
    return names


def _difference(theirs: dict, mine: dict) -> str:
    """The first difference between two identities, in words."""
    if theirs.get("kinds") != mine["kinds"]:
        return (
            f"its parts are {', '.join(theirs.get('kinds') or [])}; this program's are "
            f"{', '.join(mine['kinds'])}"
        )
    old = {p: (s, d) for p, s, d in theirs.get("params", [])}
    new = {p: (s, d) for p, s, d in mine["params"]}
    for path in new:
        if path not in old:
            return f"this program has parameter {path}, the checkpoint has not"
        if old[path] != new[path]:
            (s0, d0), (s1, d1) = old[path], new[path]
            return (
                f"parameter {path} is {d0}{s0} there and {d1}{s1} here (a size setting "
                "differs; use the run's own settings)"
            )
    extra = [p for p in old if p not in new]
    return f"the checkpoint has parameter {extra[0]}, this program has not" if extra else "?"


__all__ = ["Program", "build", "load_program"]
