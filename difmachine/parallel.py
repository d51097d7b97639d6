"""Data parallelism with JAX's own sharding: one mesh axis ``"batch"`` over N devices.

Parameters and optimizer state are *replicated* on every device; each training batch is *split*
along its first (example) axis. The train step is the same ``jax.jit`` function as on one device:
XLA's SPMD partitioner sees the input shardings, runs each device's share of the batch and
inserts the all-reduce of the gradients (the loss is a mean over the batch, so its gradient is a
sum over devices). Nothing here is a home-made distributed engine.

Multi-host: after :func:`initialize` (``jax.distributed.initialize``), ``jax.devices()`` lists
the devices of every process and the mesh spans them all. Every process samples the *whole*
global batch from the same ``(seed, step)`` generator (cheap for these tasks) and hands JAX only
the rows its own devices hold (``jax.make_array_from_callback``), so the data a step sees does not
depend on the number of devices or processes, and neither does a checkpoint: parameters are
gathered to plain arrays before saving, so a run can resume on any device count.
"""

from __future__ import annotations

import os
from dataclasses import dataclass

import equinox as eqx
import jax
import numpy as np
from jax.sharding import Mesh, NamedSharding
from jax.sharding import PartitionSpec as P

from .errors import DifmachineError

AXIS = "batch"


def initialize(
    devices: int | None = None,
    *,
    coordinator: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
) -> None:
    """Prepare JAX before its first computation: join a multi-host job, and on a CPU-only host
    split the CPU into ``devices`` XLA devices if fewer exist (``jax_num_cpu_devices``, the
    successor of ``XLA_FLAGS=--xla_force_host_platform_device_count``).

    Multi-host settings come from the arguments or from the environment variables
    ``DIFMACHINE_COORDINATOR``, ``DIFMACHINE_NUM_PROCESSES`` and ``DIFMACHINE_PROCESS_ID``.
    """
    coordinator = coordinator or os.environ.get("DIFMACHINE_COORDINATOR")
    if num_processes is None:
        num_processes = _env_int("DIFMACHINE_NUM_PROCESSES")
    if process_id is None:
        process_id = _env_int("DIFMACHINE_PROCESS_ID")
    multi = coordinator is not None or (num_processes or 1) > 1
    if multi and (coordinator is None or num_processes is None or process_id is None):
        raise DifmachineError(
            "a multi-host run needs all of --coordinator HOST:PORT, --num-processes N and "
            "--process-id I (or DIFMACHINE_COORDINATOR / _NUM_PROCESSES / _PROCESS_ID)"
        )
    if multi and not 0 <= process_id < num_processes:
        raise DifmachineError(
            f"--process-id must be in 0..{num_processes - 1} for --num-processes {num_processes}, "
            f"got {process_id}"
        )
    if devices is not None and devices < 1:
        raise DifmachineError(f"--devices must be at least 1, got {devices}")
    if multi:
        # CPU processes exchange gradients over gloo (TCP); GPU/TPU backends bring their own
        jax.config.update("jax_cpu_collectives_implementation", "gloo")
    per_process = None
    if devices is not None:
        per_process = -(-devices // (num_processes or 1))
    if per_process and per_process > 1:
        # only the CPU backend reads this; on GPU/TPU hosts jax.devices() are the accelerators
        try:
            jax.config.update("jax_num_cpu_devices", per_process)
        except RuntimeError:
            pass  # JAX already ran something: use_devices() reports the devices there are
    if multi:
        try:
            jax.distributed.initialize(
                coordinator_address=coordinator, num_processes=num_processes, process_id=process_id
            )
        except Exception as e:  # noqa: BLE001 - XLA reports connection problems several ways
            first = str(e).strip().splitlines()[0] if str(e).strip() else type(e).__name__
            raise DifmachineError(
                f"could not join the multi-host job at {coordinator} as process {process_id} of "
                f"{num_processes} ({first}); start every process with the same --coordinator, "
                "reachable from all hosts"
            ) from None


def _env_int(name: str) -> int | None:
    text = os.environ.get(name)
    if not text:
        return None
    try:
        return int(text)
    except ValueError:
        raise DifmachineError(f"{name} must be an integer, got {text!r}") from None


@dataclass(frozen=True)
class DataParallel:
    """Where arrays live for data-parallel training over ``mesh`` (one axis, ``"batch"``)."""

    mesh: Mesh

    @property
    def size(self) -> int:
        return self.mesh.devices.size

    @property
    def is_main(self) -> bool:
        """The process that writes checkpoints, logs and progress."""
        return jax.process_index() == 0

    def replicate(self, tree):
        """Every array leaf copied to every device (parameters, optimizer state)."""
        return _place(tree, NamedSharding(self.mesh, P()))

    def split(self, batch):
        """A batch with each leaf split along its first axis over the devices."""
        return _place(batch, NamedSharding(self.mesh, P(AXIS)))

    @staticmethod
    def gather(tree):
        """Replicated arrays back as plain host arrays (what a checkpoint stores): any process
        holds a whole copy, so this needs no communication."""

        def host(x):
            if isinstance(x, jax.Array):
                return np.asarray(x.addressable_data(0))
            return x

        return jax.tree.map(host, tree)

    def check_batch_size(self, batch_size: int) -> None:
        if batch_size % self.size:
            raise DifmachineError(
                f"batch size {batch_size} does not split over {self.size} devices: "
                f"use --batch-size a multiple of {self.size} or another --devices"
            )


def _place(tree, sharding: NamedSharding):
    def put(x):
        if not eqx.is_array(x):
            return x
        x = np.asarray(x)
        # each process supplies only the pieces its own devices hold
        return jax.make_array_from_callback(x.shape, sharding, lambda index: x[index])

    return jax.tree.map(put, tree)


def use_devices(n: int) -> DataParallel:
    """A data-parallel layout over the first ``n`` devices (of all processes)."""
    available = jax.devices()
    if n > len(available):
        raise DifmachineError(
            f"--devices {n} but JAX sees {len(available)} device(s) "
            f"({available[0].platform}); on a CPU host pass --devices before anything else "
            "runs JAX, or set XLA_FLAGS=--xla_force_host_platform_device_count="
            f"{n}"
        )
    if jax.process_count() > 1 and n != len(available):
        raise DifmachineError(
            f"a multi-host run uses every device: --devices must be {len(available)}, got {n}"
        )
    return DataParallel(Mesh(np.array(available[:n]), (AXIS,)))


__all__ = ["DataParallel", "initialize", "use_devices"]
