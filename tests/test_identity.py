"""A checkpoint belongs to a program when its parameter tree matches: settings that build no
parameter (loss weights, task sizes, evaluation modes) may change at eval and trace."""

import io

import pytest
from rich.console import Console
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.rundir import load_run
from difmachine.training import train

PROGRAM = """
import optax
import difmachine as dm

program = dm.Program(
    machine=dm.Machine(
        dm.LSTM(8),
        dm.NTMMemory(slots=dm.param("slots", 6), width=4),
        halting=dm.ACT(max_ponder=3, time_penalty=dm.param("time_penalty", 1e-3)),
    ),
    task=dm.Copy(bits=3, min_length=1, max_length=dm.param("max_length", 3)),
    optimizer=optax.adam(1e-2),
    batch_size=4, steps=2, eval_every=2, eval_samples=4, checkpoint_every=2, log_every=1,
)
"""


@pytest.fixture(scope="module")
def run_dir(tmp_path_factory):
    tmp = tmp_path_factory.mktemp("identity")
    source = tmp / "p.py"
    source.write_text(PROGRAM)
    train(
        dm.load_program(source),
        tmp / "run",
        program_file=source,
        console=Console(file=io.StringIO()),
    )
    return tmp / "run"


def test_loss_weights_and_task_sizes_change_at_eval(run_dir):
    program, model, header = load_run(run_dir, {"time_penalty": "0.5", "max_length": "9"})
    assert header["step"] == 2
    assert program.machine.halting.time_penalty == 0.5 and program.task.max_length == 9
    result = CliRunner().invoke(
        app, ["eval", str(run_dir), "--set", "time_penalty=0.5", "--lengths", "5", "--samples", "4"]
    )
    assert result.exit_code == 0, result.output


def test_another_machine_is_refused_with_what_differs(run_dir):
    with pytest.raises(
        dm.CheckpointError,
        match=r"holds another machine: parameter .*ntmmemory.* is float32\[1, 6\] there",
    ):
        load_run(run_dir, {"slots": "7"})
    result = CliRunner().invoke(app, ["eval", str(run_dir), "--set", "slots=7"])
    assert result.exit_code == 2
    assert "holds another machine" in result.output and "delete" not in result.output


def test_identity_ignores_settings_that_build_no_parameter():
    base = dm.Program(
        machine=dm.Machine(dm.RNN(4), halting=dm.ACT(time_penalty=1e-3)), task=dm.Parity(bits=4)
    )
    other = dm.Program(
        machine=dm.Machine(dm.RNN(4), halting=dm.ACT(time_penalty=0.3, epsilon=0.2)),
        task=dm.Parity(bits=4),
    )
    wider = dm.Program(machine=dm.Machine(dm.RNN(5), halting=dm.ACT()), task=dm.Parity(bits=4))
    gru = dm.Program(machine=dm.Machine(dm.GRU(4), halting=dm.ACT()), task=dm.Parity(bits=4))
    assert base.fingerprint() == other.fingerprint()
    assert base.fingerprint() != wider.fingerprint()
    assert base.fingerprint() != gru.fingerprint()
    assert base.identity()["kinds"] == ["Machine", "RNN", "ACT"]


def test_remat_defaults_to_what_the_machine_prefers():
    dense = dm.Program(
        machine=dm.Machine(dm.LSTM(4), dm.NTMMemory(slots=8, width=2)), task=dm.Copy(bits=2)
    )
    sparse = dm.Program(
        machine=dm.Machine(dm.LSTM(4), dm.SparseMemory(slots=8, width=2, k=2)), task=dm.Copy(bits=2)
    )
    assert dm.build(dense).remat is True and dm.build(sparse).remat is False
    assert dm.build(sparse.replace(remat=True)).remat is True  # an explicit choice stands
    with pytest.raises(dm.ProgramError, match="chunk 3 does not divide batch_size 16"):
        dense.replace(chunk=3)
