"""Checkpoints: one JSON header line, then ``equinox.tree_serialise_leaves`` of the state.

No pickle (arbitrary code on load, format drift). Writes go to a temporary file in the same
directory, are flushed to disk, then ``os.replace``d over the old checkpoint (and the directory is
flushed too), so a crash or Ctrl-C at any moment leaves either the old or the new checkpoint, never
a half-written one. The header holds the SHA-256 of the body, checked on load: a flipped bit is
reported as corruption, not loaded as wrong numbers.
"""

from __future__ import annotations

import hashlib
import io
import json
import math
import os
import tempfile
from pathlib import Path
from typing import Any

import equinox as eqx

from .errors import CheckpointError

FORMAT = "difmachine-checkpoint"
VERSION = 1


def save(path: str | Path, tree: Any, header: dict) -> None:
    """Atomically write ``header`` and the array leaves of ``tree`` to ``path``."""
    path = Path(path)
    path.parent.mkdir(parents=True, exist_ok=True)
    buffer = io.BytesIO()
    eqx.tree_serialise_leaves(buffer, tree)
    body = buffer.getvalue()
    checksum = "sha256:" + hashlib.sha256(body).hexdigest()
    fields = {"format": FORMAT, "version": VERSION, **_standard(header), "checksum": checksum}
    head = json.dumps(fields, allow_nan=False).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(body)
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise
    fsync_dir(path.parent)


def fsync_dir(directory: str | Path) -> None:
    """Flush a directory's entries (a rename) to disk; a no-op where directories can't be opened."""
    try:
        fd = os.open(directory, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(fd)
    except OSError:
        pass
    finally:
        os.close(fd)


def _check_header(path: Path, header: dict) -> None:
    """Field types a loader relies on; a bad one is a one-line CheckpointError."""

    def bad(what: str):
        raise CheckpointError(f"{path} has a corrupt header ({what}); delete it or restore a copy")

    step = header.get("step")
    if not isinstance(step, int) or isinstance(step, bool) or step < 0:
        bad(f"step must be a non-negative integer, got {step!r}"[:120])
    settings = header.get("settings", {})
    if not isinstance(settings, dict):
        bad(f"settings must be a mapping, got {type(settings).__name__}")
    overrides = settings.get("overrides", {})
    if not isinstance(overrides, dict) or not all(
        isinstance(k, str) and isinstance(v, str) for k, v in overrides.items()
    ):
        bad("settings.overrides must map names to strings")
    for name in ("batch_size", "steps", "seed"):
        value = settings.get(name)
        if value is not None and (
            not isinstance(value, int) or isinstance(value, bool) or value < 0
        ):
            bad(f"settings.{name} must be a non-negative integer, got {value!r}"[:120])
    for name in ("fingerprint", "program", "checksum"):
        if name in header and not isinstance(header[name], str):
            bad(f"{name} must be a string")
    if "eval" in header and not (
        isinstance(header["eval"], dict)
        and all(
            v is None or (isinstance(v, (int, float)) and not isinstance(v, bool))
            for v in header["eval"].values()
        )
    ):
        bad("eval must map metric names to numbers")


def read_header(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: no checkpoint here; train first with `difmachine run PROGRAM`"
        )
    with open(path, "rb") as f:
        line = f.readline()
    try:
        header = json.loads(line, parse_constant=_no_constant)
    except (ValueError, RecursionError):  # bad JSON or bytes, NaN/Infinity, absurd nesting
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a difmachine checkpoint (corrupt header); delete it and retrain"
        )
    if header.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {header.get('version')!r:.40}, this difmachine reads {VERSION}"
        )
    _check_header(path, header)
    return header


def _no_constant(name: str):
    raise ValueError(f"{name} is not standard JSON")


def _standard(value):
    """``value`` with non-finite floats as ``None``: standard JSON, which strict parsers read."""
    if isinstance(value, float) and not math.isfinite(value):
        return None
    if isinstance(value, dict):
        return {k: _standard(v) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_standard(v) for v in value]
    return value


def load(path: str | Path, like: Any, fingerprint: str | None = None) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of ``like``; check it belongs to ``fingerprint``."""
    path = Path(path)
    header = read_header(path)
    if fingerprint is not None and header.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path} holds another machine than this program builds (written by "
            f"{header.get('program', '?')}); load it with the run's own program and settings, "
            "or train this one with another --out directory"
        )
    with open(path, "rb") as f:
        f.readline()
        body = f.read()
    checksum = header.get("checksum")  # checkpoints written before checksums have none
    if checksum is not None and checksum != "sha256:" + hashlib.sha256(body).hexdigest():
        raise CheckpointError(f"{path} is corrupt (checksum mismatch); {_instead(path)}")
    intact = "its arrays do not fit this program's machine" if checksum else "corrupt or truncated"
    stream = io.BytesIO(body)
    try:
        tree = eqx.tree_deserialise_leaves(stream, like)
        trailing = stream.read(1)
    except Exception as e:  # noqa: BLE001 - numpy raises several kinds on bad bytes
        raise CheckpointError(f"{path}: {intact} ({type(e).__name__}); {_instead(path)}") from None
    if trailing:
        raise CheckpointError(
            f"{path} holds more arrays than the structure it is read into ({intact}); a run's "
            "checkpoint holds (model, optimizer state): load it with dm.load_run(run_dir)"
        )
    return tree, header


def _instead(path: Path) -> str:
    if path.name == "best.eqx":
        return "restore a copy, or load the run's last step instead (leave out --best)"
    return "restore a copy, or use the run's best checkpoint (`difmachine eval RUN --best`)"


__all__ = ["save", "load", "read_header"]
