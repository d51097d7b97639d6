"""``Program``: a machine, a task and how to train it; and loading one from a program file."""

from __future__ import annotations

import contextlib
import dataclasses
import functools
import hashlib
import importlib.machinery
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
from .errors import CheckpointError, DifmachineError, ProgramError
from .protocol import AbstractMachine, check_count
from .specs import check_spec
from .stochastic import Reinforce
from .tasks.base import AbstractTask
from .tasks.data import relative_to


@dataclasses.dataclass(frozen=True)
class Program:
    """Everything ``difmachine run`` needs.

    - ``machine``, ``task``: what to build and what to learn.
    - ``optimizer``: an optax transformation (include clipping in it, e.g. ``optax.chain``).
    - ``batch_size``, ``steps``, ``seed``: training budget and reproducibility.
    - ``eval_every``, ``eval_samples``: periodic evaluation on fresh data.
    - ``select_length``: for length generalisation, the length (as ``eval --lengths`` counts it)
      whose evaluation picks ``best.eqx``. Each periodic evaluation then also scores
      ``eval_samples`` fresh sequences of that length (logged as ``select/<metric>``), and the best
      checkpoint is the one with the lowest main metric there (ties: the training mix's main metric,
      the loss there, the mix's loss). ``None`` (the default): the training mix picks it.
      Training and ``target`` still see only the training mix.
    - ``checkpoint_every``: steps between atomic checkpoints (also written at the end and on
      Ctrl-C).
    - ``target``: stop early once the evaluated main metric is at or below this value; ``None``
      trains the whole budget (programs read it with ``dm.param("target", ..., optional=True)``,
      so ``--set target=none`` does).
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
    - ``origin``: where :func:`load_program` found it (filled in): ``{"file": ..., "directory":
      ..., "modules": {relative name: file}}``, the local modules the program imported, which
      a run copies beside its ``program.py``.
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
    select_length: int | None = None
    remat: bool | None = None
    chunk: int | None = None
    reinforce: Reinforce | None = None
    overrides: dict = dataclasses.field(default_factory=dict, compare=False)
    origin: dict = dataclasses.field(default_factory=dict, compare=False, repr=False)

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
        read = self.machine.contexts_read()
        for name, fix in self.task.required_contexts.items():
            if name not in read:
                raise ProgramError(
                    f"Program: {type(self.task).__name__} scores what the machine does with its "
                    f"context {name!r}, which no part of the machine reads: {fix}"
                )
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
            check_count("Program", "select_length", self.select_length, optional=True)
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
            "select_length": self.select_length,
            "remat": self.remat,
            "chunk": self.chunk,
            "overrides": self.overrides,
            "machine": repr(self.machine),
            "task": repr(self.task),
        }


_overrides: dict[str, str] = {}
_used: set[str] = set()


def param(name: str, default, choices=None, *, optional: bool = False):
    """A program parameter that ``difmachine run FILE --set name=value`` can override.

    In a program file: ``bits = dm.param("bits", 16)``. The override is converted to the type
    of ``default`` (int, float, bool or str); a bad value is a clear error. ``choices``, when
    given, are the only values allowed (``dm.param("structure", "stack", ("stack", "queue"))``).
    ``optional=True`` also takes ``--set name=none``, which gives ``None``: a program's
    ``target=dm.param("target", 0.1, optional=True)`` lets ``--set target=none`` train the whole
    budget.
    """
    _used.add(name)
    if optional and _overrides.get(name, "").lower() == "none":
        return None
    value = _override(name, default, optional) if name in _overrides else default
    if choices is not None and value not in choices:
        raise ProgramError(
            f"--set {name}={value}: expected one of {', '.join(str(c) for c in choices)}"
        )
    return value


def _override(name: str, default, optional: bool = False):
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
            + (" (or none)" if optional else "")
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


def load_program(
    path: str | Path, overrides: dict[str, str] | None = None, *, steps: int | None = None
) -> Program:
    """Import a program file and return its ``program``; every failure is a one-line ProgramError.

    ``overrides`` are the values of :func:`param` calls in the file (``--set name=value``).
    ``steps`` (``--steps``) replaces the training budget; when the file reads a parameter
    ``steps`` (a learning-rate schedule over the run, say), that parameter is set to it too, so
    whatever the file derives from the budget follows it.
    """
    program, used = _load_with(path, overrides)
    if steps is not None and "steps" in used and (overrides or {}).get("steps") != str(steps):
        program, used = _load_with(path, {**(overrides or {}), "steps": str(steps)})
    return program if steps is None else program.replace(steps=steps)


def _load_with(path: str | Path, overrides: dict[str, str] | None) -> tuple[Program, set[str]]:
    """The file's program with ``overrides``, and the names of the parameters it read."""
    _overrides.clear()
    _overrides.update(overrides or {})
    _used.clear()
    try:
        program, origin = _load(Path(path))
    finally:
        unknown = set(_overrides) - _used
        _overrides.clear()
    if "target" in unknown and (overrides or {})["target"].lower() == "none":
        if program.target is None:  # `--set target=none` on a program that has no target
            unknown.discard("target")
    if unknown:
        raise ProgramError(
            f"{path} has no parameter {', '.join(sorted(unknown))} (it reads: {', '.join(sorted(_used)) or 'none'})"
        )
    used = set(_used)
    return dataclasses.replace(program, overrides=dict(overrides or {}), origin=origin), used


#: beside a run's ``program.py``: where the program came from and the local modules copied
MANIFEST = "program.json"


def _under(path: str | None, directory: Path) -> bool:
    if not path:
        return False
    try:
        Path(path).resolve().relative_to(directory)
        return True
    except ValueError:
        return False


def _shared_dirs() -> list[Path]:
    """Where installed code lives (never a program's local module)."""
    import site
    import sysconfig

    dirs = {sys.prefix, sys.base_prefix, *site.getsitepackages()}
    dirs.update(sysconfig.get_paths().values())
    dirs.add(str(Path(__file__).resolve().parent))  # difmachine itself
    return [Path(d).resolve() for d in dirs if d]


def _is_local(module, directory: Path, shared: list[Path]) -> bool:
    """A module imported from ``directory`` that is not installed code (site-packages, the
    standard library, difmachine), even when ``directory`` holds some of those."""
    file = getattr(module, "__file__", None)
    if not _under(file, directory):
        return False
    if any(part in ("site-packages", "dist-packages") for part in Path(file).parts):
        return False
    return not any(_under(file, d) and not _under(str(directory), d) for d in shared)


class _SourceLoader(importlib.machinery.SourceFileLoader):
    """Compiles the signed source itself: never a ``__pycache__`` file beside it (which the
    signature does not cover), and writes none into the run directory."""

    def get_code(self, fullname):
        return compile(self.get_data(self.path), self.path, "exec", dont_inherit=True)


class _ManifestFinder:
    """Imports exactly the modules a run directory's manifest lists, from the run directory
    (a file dropped there later is never imported instead of an installed module)."""

    def __init__(self, run_dir: Path, names: list[str]):
        self.files = {}
        for name in names:
            rel = Path(name)
            if rel.is_absolute() or ".." in rel.parts or rel.suffix != ".py":
                raise ProgramError(f"{run_dir / MANIFEST} lists {name!r}, not a module file")
            parts = rel.with_suffix("").parts
            package = parts[-1] == "__init__"
            dotted = ".".join(parts[:-1] if package else parts)
            self.files[dotted] = (run_dir / rel, package)

    def find_spec(self, name, path=None, target=None):
        if name not in self.files:
            return None
        file, package = self.files[name]
        return importlib.util.spec_from_file_location(
            name,
            file,
            loader=_SourceLoader(name, str(file)),
            submodule_search_locations=[str(file.parent)] if package else None,
        )


def _read_manifest(path: Path) -> dict | None:
    """The manifest beside a run directory's ``program.py`` (``None`` for another file)."""
    manifest = path.parent / MANIFEST
    if path.name != "program.py" or not manifest.exists():
        return None
    try:
        data = json.loads(manifest.read_text())
        if not isinstance(data, dict) or not isinstance(data.get("modules", []), list):
            raise ValueError
        return data
    except (OSError, ValueError):
        raise ProgramError(
            f"{manifest} is unreadable or corrupt; use --program FILE with the original program"
        ) from None


class _LocalImports:
    """While a program file runs: its directory is importable (or, for a run directory's copy,
    exactly the modules its manifest lists); afterwards the local modules it imported are taken
    out of ``sys.modules`` again (and a module of one of those names imported before is put
    back), so two programs with different ``mymodule.py`` loaded in one process each get their
    own, and nothing of one leaks into the next."""

    def __init__(self, path: Path, manifest: dict | None):
        self.directory = path.parent.resolve()
        self.manifest = manifest
        self.found: dict[str, str] = {}

    def __enter__(self):
        self.shared = _shared_dirs()
        self.before = set(sys.modules)
        self.stashed = {}
        if self.manifest is not None:
            self.finder = _ManifestFinder(self.directory, self.manifest.get("modules", []))
            names = {n.split(".")[0] for n in self.finder.files}
            sys.meta_path.insert(0, self.finder)
        else:
            self.finder = None
            names = {
                p.stem if p.suffix == ".py" else p.name
                for p in self.directory.iterdir()
                if p.suffix == ".py" or (p / "__init__.py").exists()
            }
            sys.path.insert(0, str(self.directory))
        # a module of the same name imported before (another program's, or the user's own) must
        # not stand in for this directory's: set it aside while the program runs
        for key in list(sys.modules):
            file = getattr(sys.modules[key], "__file__", None)
            if (
                key.split(".")[0] in names
                and file
                and not any(_under(file, d) for d in self.shared)
            ):
                self.stashed[key] = sys.modules.pop(key)
        return self

    def __exit__(self, *exc):
        if self.finder is not None:
            sys.meta_path.remove(self.finder)
        else:
            with contextlib.suppress(ValueError):
                sys.path.remove(str(self.directory))
        for key in set(sys.modules) - self.before:
            module = sys.modules[key]
            if _is_local(module, self.directory, self.shared):
                rel = Path(module.__file__).resolve().relative_to(self.directory)
                self.found[str(rel)] = str(Path(module.__file__).resolve())
                del sys.modules[key]
        sys.modules.update(self.stashed)
        return False


def _load(path: Path) -> tuple[Program, dict]:
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
    manifest = _read_manifest(path)
    # relative data file names start at the program's own directory (a run's original one)
    data_dir = (manifest or {}).get("directory") or str(path.parent.resolve())
    imports = _LocalImports(path, manifest)
    try:
        with imports, relative_to(data_dir):
            exec(code, module.__dict__)
    except ProgramError as e:
        raise ProgramError(f"{path}: {e}") from None
    except Exception as e:  # noqa: BLE001 - report any user error in one line
        tb = traceback.extract_tb(e.__traceback__)
        lines = [f.lineno for f in tb if f.filename == str(path)]
        where = f", line {lines[-1]}" if lines else ""
        kind = "" if isinstance(e, DifmachineError) else f"{type(e).__name__}: "  # says itself
        raise ProgramError(f"{path}{where}: {kind}{e}") from None
    program = getattr(module, "program", None)
    if program is None:
        raise ProgramError(
            f"{path} defines no `program`; add `program = Program(machine=..., task=...)`"
        )
    if not isinstance(program, Program):
        raise ProgramError(
            f"{path}: `program` must be a difmachine.Program, got {type(program).__name__}"
        )
    if manifest is not None:
        modules = {name: str(path.parent.resolve() / name) for name in manifest.get("modules", [])}
    else:
        modules = imports.found
    origin = {"file": str(path.resolve()), "directory": data_dir, "modules": modules}
    return program, origin


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


__all__ = ["MANIFEST", "Program", "build", "load_program"]
