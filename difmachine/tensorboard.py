"""TensorBoard event files for a run (optional: ``pip install -e '.[tensorboard]'``).

Written with tensorboardX, which writes TensorBoard's event files without TensorFlow (numpy and
protobuf only). Every row of the metrics log becomes scalars at its step: a training row's
metrics under ``train/<metric>`` (and ``train/seq_per_s``), an evaluation row's columns as they
are, ``eval/<metric>``. The events go to ``RUN/tensorboard/``; watch them with
``tensorboard --logdir runs``.
"""

from __future__ import annotations

import math
from pathlib import Path

from .errors import DifmachineError

DIRECTORY = "tensorboard"
INSTALL = "pip install -e '.[tensorboard]' (or pip install tensorboardX)"


def _summary_writer():
    try:
        from tensorboardX import SummaryWriter
    except ImportError:
        raise DifmachineError(
            f"--tensorboard needs the tensorboardX package, which is not installed: {INSTALL}"
        ) from None
    return SummaryWriter


class EventWriter:
    """Scalars of metrics log rows into ``run_dir/tensorboard``. ``start``: the step a resumed
    run continues from (events written after it by the interrupted run are dropped, as the
    metrics log drops its lines)."""

    def __init__(self, run_dir: str | Path, start: int | None = None):
        SummaryWriter = _summary_writer()
        self.writer = SummaryWriter(
            logdir=str(Path(run_dir) / DIRECTORY), purge_step=start + 1 if start else None
        )

    def write(self, record: dict) -> None:
        step = record.get("step")
        if not isinstance(step, int):
            return
        for key, value in record.items():
            if key in ("step", "time") or not isinstance(value, (int, float)):
                continue
            if isinstance(value, bool) or not math.isfinite(value):
                continue
            tag = key if "/" in key else f"train/{key}"
            self.writer.add_scalar(tag, float(value), step, walltime=record.get("time"))

    def close(self) -> None:
        self.writer.close()


def check_available() -> None:
    """Raise the one-line error naming the install command unless tensorboardX is there."""
    _summary_writer()


__all__ = ["EventWriter", "check_available", "DIRECTORY"]
