"""Checkpoints: one JSON header line, then ``equinox.tree_serialise_leaves`` of the state.

No pickle (arbitrary code on load, format drift). Writes go to a temporary file in the same
directory, are flushed to disk, then ``os.replace``d over the old checkpoint, so a crash or Ctrl-C
at any moment leaves either the old or the new checkpoint, never a half-written one.
"""

from __future__ import annotations

import io
import json
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
    head = json.dumps({"format": FORMAT, "version": VERSION, **header}).encode() + b"\n"
    fd, tmp = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    try:
        with os.fdopen(fd, "wb") as f:
            f.write(head)
            f.write(buffer.getvalue())
            f.flush()
            os.fsync(f.fileno())
        os.chmod(tmp, 0o644)
        os.replace(tmp, path)
    except BaseException:
        Path(tmp).unlink(missing_ok=True)
        raise


def read_header(path: str | Path) -> dict:
    path = Path(path)
    if not path.exists():
        raise CheckpointError(
            f"{path}: no checkpoint here; train first with `difmachine run PROGRAM`"
        )
    with open(path, "rb") as f:
        line = f.readline()
    try:
        header = json.loads(line)
    except (json.JSONDecodeError, UnicodeDecodeError):
        header = None
    if not isinstance(header, dict) or header.get("format") != FORMAT:
        raise CheckpointError(
            f"{path} is not a difmachine checkpoint (corrupt header); delete it and retrain"
        )
    if header.get("version") != VERSION:
        raise CheckpointError(
            f"{path} has checkpoint format version {header.get('version')}, this difmachine reads {VERSION}"
        )
    return header


def load(path: str | Path, like: Any, fingerprint: str | None = None) -> tuple[Any, dict]:
    """Read a checkpoint into the structure of ``like``; check it belongs to ``fingerprint``."""
    path = Path(path)
    header = read_header(path)
    if fingerprint is not None and header.get("fingerprint") != fingerprint:
        raise CheckpointError(
            f"{path} was written by a different program ({header.get('program', '?')}, other machine or task);"
            " use another --out directory or delete the run"
        )
    with open(path, "rb") as f:
        f.readline()
        try:
            tree = eqx.tree_deserialise_leaves(f, like)
            trailing = f.read(1)
        except Exception as e:  # noqa: BLE001 - numpy raises several kinds on bad bytes
            raise CheckpointError(
                f"{path} is corrupt or truncated ({type(e).__name__}); delete it or restore a copy"
            ) from None
    if trailing:
        raise CheckpointError(
            f"{path} has trailing data (corrupt or mismatched); delete it and retrain"
        )
    return tree, header


__all__ = ["save", "load", "read_header"]
