"""Shared helpers: machine info, JSON output, compile accounting and interleaved timing."""

from __future__ import annotations

import json
import os
import platform
import statistics
import sys
import time
from collections.abc import Callable
from importlib import metadata
from pathlib import Path

import jax
from rich.console import Console

ROOT = Path(__file__).resolve().parent.parent
NTM_COPY = ROOT / "programs" / "ntm_copy.py"

# wide enough for the tables when stdout is not a terminal
console = Console(width=None if sys.stdout.isatty() else 150)


def _version(name: str) -> str | None:
    try:
        return metadata.version(name)
    except metadata.PackageNotFoundError:
        return None


def git_info() -> dict:
    import subprocess

    def git(*args):
        try:
            out = subprocess.run(["git", "-C", str(ROOT), *args], capture_output=True, text=True,
                                 timeout=10)  # fmt: skip
            return out.stdout.strip() if out.returncode == 0 else None
        except (OSError, subprocess.SubprocessError):
            return None

    status = git("status", "--porcelain", "--untracked-files=no", "--", "difmachine")
    return {"commit": git("rev-parse", "HEAD"),
            "difmachine_modified": status.splitlines() if status else []}  # fmt: skip


def machine_info() -> dict:
    return {
        "platform": platform.platform(),
        "processor": platform.processor() or platform.machine(),
        "cpu_count": os.cpu_count(),
        "affinity": len(os.sched_getaffinity(0)) if hasattr(os, "sched_getaffinity") else None,
        "loadavg": list(os.getloadavg()) if hasattr(os, "getloadavg") else None,
        "python": sys.version.split()[0],
        "jax": jax.__version__,
        "jaxlib": _version("jaxlib"),
        "equinox": _version("equinox"),
        "optax": _version("optax"),
        "difmachine": _version("difmachine"),
        "jax_devices": [str(d) for d in jax.devices()],
        "XLA_FLAGS": os.environ.get("XLA_FLAGS"),
        "GLIBC_TUNABLES": os.environ.get("GLIBC_TUNABLES"),
        "git": git_info(),
    }


def write_json(path: str | None, name: str, settings: dict, results) -> None:
    if not path:
        return
    doc = {
        "benchmark": name,
        "time": time.strftime("%Y-%m-%dT%H:%M:%S%z"),
        "machine": machine_info(),
        "settings": settings,
        "results": results,
    }
    Path(path).write_text(json.dumps(doc, indent=2, default=float) + "\n")
    console.print(f"wrote {path}")


_COMPILE_EVENTS = {
    "/jax/core/compile/jaxpr_trace_duration": "trace",
    "/jax/core/compile/jaxpr_to_mlir_module_duration": "lower",
    "/jax/core/compile/backend_compile_duration": "compile",
}


class CompileTimer:
    """Sums jax.monitoring compile-phase durations (trace / lower / XLA compile) while active."""

    _registered = False
    _active: list[dict] = []

    @classmethod
    def _listener(cls, event, duration, **kwargs):
        phase = _COMPILE_EVENTS.get(event)
        if phase:
            for acc in cls._active:
                acc[phase] = acc.get(phase, 0.0) + duration

    def __enter__(self):
        if not CompileTimer._registered:
            jax.monitoring.register_event_duration_secs_listener(CompileTimer._listener)
            CompileTimer._registered = True
        self.phases: dict[str, float] = {}
        CompileTimer._active.append(self.phases)
        return self

    def __exit__(self, *exc):
        CompileTimer._active.remove(self.phases)

    @property
    def total(self) -> float:
        return sum(self.phases.values())


class Stepper:
    """A training loop under test: ``advance()`` runs one step and keeps the new state."""

    def __init__(self, step: Callable, state: tuple, batch):
        self.step, self.state, self.batch = step, state, batch

    def advance(self):
        *self.state, metrics = self.step(*self.state, self.batch)
        return metrics

    def run(self, n: int) -> float:
        """Wall seconds for ``n`` steps, blocking on the final state. The process CPU seconds
        (all threads) of the same span are left in ``self.last_cpu``: less sensitive than wall
        time to other jobs taking the cores, so a useful second opinion on a busy machine."""
        c0, t0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            metrics = self.advance()
        jax.block_until_ready((self.state, metrics))
        t = time.perf_counter() - t0
        self.last_cpu = time.process_time() - c0
        return t

    def first_call(self) -> tuple[float, dict]:
        """Wall time of the first (compiling) call and its compile-phase breakdown."""
        with CompileTimer() as ct:
            t = self.run(1)
        return t, ct.phases


def interleaved(steppers: dict[str, Stepper], repeats: int, steps: int, warmup: int = 2):
    """Time each stepper ``repeats`` times (``steps`` steps each), interleaving the steppers and
    alternating their order so that they share the machine's noise.

    Returns ``({name: [wall seconds per step, ...]}, {name: [CPU seconds per step, ...]})`` and
    asserts that the timed loop compiled nothing.
    """
    from difmachine.testing import count_compiles

    for s in steppers.values():
        s.run(warmup)
    times: dict[str, list[float]] = {name: [] for name in steppers}
    cpu: dict[str, list[float]] = {name: [] for name in steppers}
    names = list(steppers)
    with count_compiles() as cc:
        for rep in range(repeats):
            for name in names if rep % 2 == 0 else names[::-1]:
                times[name].append(steppers[name].run(steps) / steps)
                cpu[name].append(steppers[name].last_cpu / steps)
    assert cc.compiles == 0, f"the timed loop compiled {cc.compiles} time(s)"
    return times, cpu


def median(xs):
    return statistics.median(xs)


def spread(xs) -> str:
    """``min-max`` of a list, for tables."""
    return f"{min(xs) * 1e3:.1f}-{max(xs) * 1e3:.1f}"
