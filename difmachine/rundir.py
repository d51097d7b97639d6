"""A run directory: the files ``difmachine run`` writes, and loading a trained run back.

Also what keeps a run directory whole: the lock a run holds while it writes, the metrics log
(standard JSON, reconciled with the checkpoint on resume, no torn lines), the clean-up of
temporary files a killed run left, and the signature that says a run's ``program.py`` was
written on this machine (``eval``/``trace`` execute it; anything else needs ``--trust``).
"""

from __future__ import annotations

import contextlib
import errno
import fcntl
import hashlib
import hmac
import json
import math
import os
import secrets
import shutil
import tempfile
from collections.abc import Iterator
from pathlib import Path

import equinox as eqx
import jax

from . import checkpoint
from .errors import DifmachineError
from .program import MANIFEST, Program, build, load_program

CHECKPOINT = "checkpoint.eqx"
BEST = "best.eqx"  # the checkpoint of the best evaluation so far
METRICS = "metrics.jsonl"
PROGRAM_COPY = "program.py"
SIGNATURE = "program.sig"  # HMAC of program.py with this user's key (see ``sign_program``)
LOCK = ".lock"


# --- the lock ---------------------------------------------------------------------------------


@contextlib.contextmanager
def locked(run_dir: str | Path) -> Iterator[None]:
    """Hold the run directory's lock: an OS file lock (``flock``), released by the kernel when
    the process ends however it ends, so a lock file left by a killed run is stale and taken
    over. A second run on the same directory gets a one-line error naming the holder."""
    run_dir = Path(run_dir)
    path = run_dir / LOCK
    try:
        fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o644)
    except OSError as e:
        raise DifmachineError(
            f"{run_dir}: cannot write here ({e.strerror}); use another --out"
        ) from None
    try:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except OSError as e:
            if e.errno not in (errno.EWOULDBLOCK, errno.EAGAIN, errno.EACCES):
                raise
            holder = os.pread(fd, 32, 0).decode(errors="replace").strip() or "?"
            raise DifmachineError(
                f"{run_dir} is in use by another run (pid {holder}); wait for it to finish or "
                "stop it, or use another --out"
            ) from None
        os.ftruncate(fd, 0)
        os.pwrite(fd, f"{os.getpid()}\n".encode(), 0)
        yield
    finally:
        os.close(fd)  # releases the lock


def clean_temporaries(run_dir: str | Path) -> list[str]:
    """Delete the temporary files a killed run left (``.checkpoint.eqx.*.tmp`` and the like;
    only under the lock). Returns their names."""
    names = []
    for path in Path(run_dir).glob(".*.tmp"):
        if path.name.startswith(tuple(f".{n}." for n in (CHECKPOINT, BEST, METRICS))):
            path.unlink(missing_ok=True)
            names.append(path.name)
    return sorted(names)


# --- the metrics log --------------------------------------------------------------------------


def _standard(value):
    """Non-finite floats as the strings "nan", "inf", "-inf": every line is standard JSON."""
    if isinstance(value, float) and not math.isfinite(value):
        return str(value)
    if isinstance(value, dict):
        return {k: _standard(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_standard(v) for v in value]
    return value


EVAL_PREFIX = "eval/"  # evaluation columns of the metrics log: "eval/loss", "eval/bit_errors"


def eval_record(step: int, time: float, metrics: dict) -> dict:
    """A metrics log row of an evaluation: flat columns ``eval/<metric>`` beside ``step`` and
    ``time``, so ``pandas.read_json(path, lines=True)`` gives one column per metric."""
    return {"step": step, "time": time, **{EVAL_PREFIX + k: v for k, v in metrics.items()}}


def record_eval(record: dict) -> dict | None:
    """The evaluation metrics of a metrics log row (``None`` for a training row); reads this
    version's flat ``eval/<metric>`` columns and older logs' nested ``"eval": {...}``."""
    if isinstance(record.get("eval"), dict):
        return record["eval"]
    found = {k[len(EVAL_PREFIX) :]: v for k, v in record.items() if k.startswith(EVAL_PREFIX)}
    return found or None


class MetricsLog:
    """``metrics.jsonl``: one standard JSON object per line, flat: training rows hold
    ``step``, ``time``, ``seq_per_s`` and the metrics; evaluation rows ``step``, ``time`` and
    ``eval/<metric>`` columns (:func:`eval_record`).

    ``resume_step=None`` starts a fresh log (an old one is replaced); with a step, the lines
    after it (written after the checkpoint the run resumes from) and any torn line are dropped.
    A write that fails (disk full) is cut back so no partial line stays, then raises ``OSError``.
    """

    def __init__(self, path: str | Path, resume_step: int | None = None):
        self.path = Path(path)
        kept = b""
        if resume_step is not None and self.path.exists():
            lines = []
            for line in self.path.read_bytes().split(b"\n"):
                try:
                    record = json.loads(line)
                except ValueError:
                    continue  # torn or foreign
                step = record.get("step") if isinstance(record, dict) else None
                if isinstance(step, int) and step <= resume_step:
                    lines.append(line + b"\n")
            kept = b"".join(lines)
        fd, tmp = tempfile.mkstemp(
            dir=self.path.parent, prefix=f".{self.path.name}.", suffix=".tmp"
        )
        try:
            with os.fdopen(fd, "wb") as f:
                f.write(kept)
                f.flush()
                os.fsync(f.fileno())
            os.chmod(tmp, 0o644)
            os.replace(tmp, self.path)
        except BaseException:
            Path(tmp).unlink(missing_ok=True)
            raise
        self.fd = os.open(self.path, os.O_WRONLY | os.O_APPEND)

    def write(self, record: dict) -> None:
        data = (json.dumps(_standard(record), allow_nan=False) + "\n").encode()
        size = os.fstat(self.fd).st_size
        try:
            done = os.write(self.fd, data)
            if done != len(data):
                raise OSError(errno.ENOSPC, "short write (disk full?)")
        except BaseException:
            with contextlib.suppress(OSError):
                os.ftruncate(self.fd, size)
            raise

    def close(self) -> None:
        if self.fd >= 0:
            os.close(self.fd)
            self.fd = -1


# --- trusting a run's program copy ------------------------------------------------------------


def _key_path() -> Path:
    base = os.environ.get("XDG_CONFIG_HOME") or os.path.join(os.path.expanduser("~"), ".config")
    return Path(base) / "difmachine" / "signing.key"


def _key(create: bool) -> bytes | None:
    """This user's secret key (kept outside every run directory), created on first use."""
    path = _key_path()
    try:
        key = path.read_bytes()
        if len(key) >= 32:
            return key
    except OSError:
        pass
    if not create:
        return None
    try:
        path.parent.mkdir(parents=True, exist_ok=True, mode=0o700)
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
        with os.fdopen(fd, "wb") as f:
            f.write(secrets.token_bytes(32))
        return path.read_bytes()
    except OSError:
        return None  # no writable config: runs go unsigned and need --trust


def _signature(key: bytes, source: bytes) -> str:
    return "hmac-sha256:" + hmac.new(key, source, hashlib.sha256).hexdigest()


def _signed_bytes(run_dir: Path) -> bytes:
    """What a run's signature covers: ``program.py``, and with a manifest the manifest and
    every local module it lists (name and contents), so a changed module is refused like a
    changed program. A run without a manifest (an older one) signs ``program.py`` alone."""
    source = (run_dir / PROGRAM_COPY).read_bytes()
    manifest = run_dir / MANIFEST
    if not manifest.exists():
        return source
    text = manifest.read_bytes()
    parts = [source, text]
    try:
        names = json.loads(text).get("modules", [])
    except (ValueError, AttributeError):
        names = []
    for name in sorted(str(n) for n in names):
        if Path(name).is_absolute() or ".." in Path(name).parts:
            raise OSError(f"bad module name {name!r}")
        parts += [name.encode(), (run_dir / name).read_bytes()]
    return b"\0".join(hashlib.sha256(p).digest() for p in parts)


def write_program(run_dir: str | Path, program_file: str | Path, origin: dict | None) -> None:
    """Copy the program file beside the run as ``program.py``, with the local modules it
    imported (``origin["modules"]``, from :func:`~difmachine.program.load_program`) at the same
    relative places and a manifest naming them, then sign the lot. Nothing to copy when the
    program file is the run's own copy."""
    run_dir = Path(run_dir)
    program_file = Path(program_file)
    if program_file.resolve() != (run_dir / PROGRAM_COPY).resolve():
        modules = dict((origin or {}).get("modules", {}))
        for name, file in modules.items():
            if Path(name).with_suffix("").parts[0] in ("program",):
                raise DifmachineError(
                    f"{program_file} imports a local module {name!r}, whose name a run directory "
                    "uses for its program copy: rename the module"
                )
            target = run_dir / name
            target.parent.mkdir(parents=True, exist_ok=True)
            shutil.copyfile(file, target)
        shutil.copyfile(program_file, run_dir / PROGRAM_COPY)
        manifest = {
            "source": str(program_file.resolve()),
            "directory": (origin or {}).get("directory") or str(program_file.resolve().parent),
            "modules": sorted(modules),
        }
        tmp = run_dir / f".{MANIFEST}.tmp"
        tmp.write_text(json.dumps(manifest, indent=1) + "\n")
        os.replace(tmp, run_dir / MANIFEST)
    sign_program(run_dir)


def sign_program(run_dir: str | Path) -> None:
    """Mark the run's ``program.py`` (and its manifest's local modules) as written on this
    machine: an HMAC with this user's key."""
    run_dir = Path(run_dir)
    key = _key(create=True)
    if key is None:
        return
    signature = _signature(key, _signed_bytes(run_dir))
    tmp = run_dir / f".{SIGNATURE}.tmp"
    tmp.write_text(signature + "\n")
    os.replace(tmp, run_dir / SIGNATURE)


def is_signed(run_dir: str | Path) -> bool:
    """Whether the run's ``program.py`` and local modules carry this user's signature
    (unchanged since written)."""
    run_dir = Path(run_dir)
    key = _key(create=False)
    try:
        signature = (run_dir / SIGNATURE).read_text().strip()
        source = _signed_bytes(run_dir)
    except (OSError, UnicodeDecodeError):
        return False
    return key is not None and hmac.compare_digest(signature, _signature(key, source))


def load_run(
    run_dir: str | Path,
    overrides: dict | None = None,
    *,
    best: bool = False,
    trust: bool = True,
    program_file: str | Path | None = None,
) -> tuple[Program, eqx.Module, dict]:
    """The program and trained machine of a run directory (``difmachine eval/trace RUN``).

    ``overrides`` change program parameters on top of those the run was trained with; the
    checkpoint still has to fit (e.g. ``selection=hard`` evaluates a Neural Programmer's
    discrete program, a different ``slots`` is refused as another machine). ``best`` loads the
    checkpoint of the run's best evaluation instead of its last step.

    Loading executes a program file. ``program_file`` uses that one instead of the run's copy;
    with ``trust=False`` the run's copy is executed only if it carries this user's signature
    (a run made on this machine), anything else is refused (the CLI's default; ``--trust``)."""
    run_dir = Path(run_dir)
    if run_dir.suffix == ".py" and run_dir.is_file():
        raise DifmachineError(
            f"{run_dir} is a program, not a run directory: train it with `difmachine run "
            f"{run_dir}`, then use the run directory it writes (runs/{run_dir.stem})"
        )
    if not run_dir.is_dir():
        raise DifmachineError(
            f"{run_dir}: no such run directory (runs are written by `difmachine run`)"
        )
    source = run_dir / PROGRAM_COPY
    if program_file is None and not source.exists():
        raise DifmachineError(
            f"{run_dir} is not a run directory (no {PROGRAM_COPY}); give runs/<program>"
        )
    if program_file is not None:
        source = Path(program_file)
    elif not trust and not is_signed(run_dir):
        raise DifmachineError(
            f"{source} (or a module beside it) was not written by a run on this machine (no valid "
            "signature) and loading it runs its code: read it, then pass --trust, or --program "
            "FILE to use your own copy"
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
    return program, model.at_step(int(header.get("step", 0))), header


def warm_start(model: eqx.Module, run_dir: str | Path, *, trust: bool = False):
    """``model`` with every parameter array that another run also has (the same path in the
    parameters and the same shape) taken from that run's last checkpoint: fine-tuning, or
    continuing a differentiable machine as its discrete variant (a soft ``HAMMemory`` run as
    ``mode=hard``, whose REINFORCE baseline is new and starts fresh). Returns ``(model, line)``,
    the line saying what was taken. An array whose shape differs is an error (another machine),
    as is a source that shares no parameter; ``trust`` as for :func:`load_run`."""
    _, source, _ = load_run(run_dir, trust=trust)
    taken = {
        jax.tree_util.keystr(path): leaf
        for path, leaf in jax.tree_util.tree_flatten_with_path(eqx.filter(source, eqx.is_array))[0]
    }
    leaves, treedef = jax.tree_util.tree_flatten_with_path(eqx.filter(model, eqx.is_array))
    new, fresh, used = [], [], set()
    for path, leaf in leaves:
        key = jax.tree_util.keystr(path)
        if key not in taken:
            new.append(leaf)
            fresh.append(key)
            continue
        if taken[key].shape != leaf.shape or taken[key].dtype != leaf.dtype:
            raise DifmachineError(
                f"--init {run_dir}: its parameter {key} is {taken[key].dtype}{list(taken[key].shape)}"
                f", this program's is {leaf.dtype}{list(leaf.shape)}: another machine; start "
                "from a run of the same sizes"
            )
        new.append(taken[key])
        used.add(key)
    if not used:
        raise DifmachineError(
            f"--init {run_dir}: that run shares no parameter with this program's machine"
        )
    arrays = jax.tree_util.tree_unflatten(treedef, new)
    model = eqx.combine(arrays, eqx.filter(model, eqx.is_array, inverse=True))
    line = f"initialised {len(used)} of {len(leaves)} parameter arrays from {run_dir}"
    if fresh:
        line += f"; fresh: {', '.join(k.removeprefix('.params') for k in fresh)}"
    unused = sorted(set(taken) - used)
    if unused:
        line += f"; not used: {', '.join(k.removeprefix('.params') for k in unused)}"
    return model, line


__all__ = [
    "CHECKPOINT",
    "BEST",
    "METRICS",
    "PROGRAM_COPY",
    "EVAL_PREFIX",
    "MetricsLog",
    "eval_record",
    "record_eval",
    "clean_temporaries",
    "is_signed",
    "load_run",
    "locked",
    "sign_program",
    "warm_start",
    "write_program",
]
