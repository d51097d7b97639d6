"""Every shipped program loads, compiles and trains a couple of steps (a smoke test)."""

import os
from pathlib import Path

import numpy as np
import pytest
from rich.console import Console

import difmachine as dm
from difmachine.training import train

PROGRAMS = sorted((Path(__file__).parent.parent / "programs").glob("*.py"))


def test_there_are_programs():
    assert {p.stem for p in PROGRAMS} >= {"ntm_copy", "lstm_copy", "ntm_repeat_copy"}


# families whose own test file already trains, evaluates and traces a program through the CLI
# (tests/test_neural_gpu.py): their smoke runs here are slow (a 41-position grid) and add nothing
COVERED = {"neural_gpu_add", "neural_gpu_mul"}


@pytest.mark.parametrize(
    "path",
    [pytest.param(p, marks=pytest.mark.slow) if p.stem in COVERED else p for p in PROGRAMS],
    ids=lambda p: p.stem,
)
def test_program_trains_a_few_steps(path, tmp_path):
    program = dm.load_program(path).replace(steps=2, batch_size=2, eval_samples=2, eval_every=2)
    result = train(program, tmp_path / "run", console=Console(file=open(os.devnull, "w")))
    assert result.step == 2 and not result.interrupted
    assert np.isfinite(result.metrics["loss"])
    assert (tmp_path / "run" / "checkpoint.eqx").exists()
