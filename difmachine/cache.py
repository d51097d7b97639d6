"""JAX's persistent compilation cache, so the second ``run``/``eval``/``trace`` of a program
starts without recompiling.

The CLI turns it on by default in ``$DIFMACHINE_CACHE_DIR``, else
``$XDG_CACHE_HOME/difmachine/jax``, else ``~/.cache/difmachine/jax``; ``DIFMACHINE_NO_CACHE=1``
(or ``difmachine --no-cache ...``) turns it off. Entries are keyed by JAX on the compiled
program, the JAX version and the backend, so a stale entry is never used; deleting the
directory is always safe.
"""

from __future__ import annotations

import os
from pathlib import Path

# cache every compilation (JAX's default: those over 1 s). The small ones (parameter
# initialisation, key splits, evaluation's reductions: about 50 per program, 1-2 s together) are
# most of what a second start would redo: a second `run` of ntm_copy reached its first step 1.4 s
# sooner with them cached than with only those over 0.2 s, for 2 MB more cache
MIN_COMPILE_SECONDS = 0.0


def cache_dir() -> Path:
    """Where the compiled programs are kept (see the module docstring)."""
    if os.environ.get("DIFMACHINE_CACHE_DIR"):
        return Path(os.environ["DIFMACHINE_CACHE_DIR"])
    base = os.environ.get("XDG_CACHE_HOME") or Path.home() / ".cache"
    return Path(base) / "difmachine" / "jax"


def disabled() -> bool:
    return os.environ.get("DIFMACHINE_NO_CACHE", "").strip().lower() not in ("", "0", "false", "no")


def enable_compilation_cache(path: str | Path | None = None) -> Path | None:
    """Turn on JAX's persistent compilation cache in ``path`` (default :func:`cache_dir`);
    returns the directory, or ``None`` when ``DIFMACHINE_NO_CACHE`` is set or the directory
    cannot be created (the cache is an optimisation: never an error). Call it before the
    first compilation."""
    if disabled():
        return None
    path = Path(path) if path is not None else cache_dir()
    try:
        path.mkdir(parents=True, exist_ok=True)
    except OSError:
        return None
    import jax

    jax.config.update("jax_compilation_cache_dir", str(path))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", MIN_COMPILE_SECONDS)
    return path


__all__ = ["cache_dir", "enable_compilation_cache"]
