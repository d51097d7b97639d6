"""`--init RUN`: a run starts from another run's trained parameters (e.g. a soft HAM run
trained on as the hard, REINFORCE-trained HAM)."""

import textwrap

import jax
import numpy as np
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.rundir import SIGNATURE, warm_start
from difmachine.sweep import _init_source

runner = CliRunner()

PROGRAM = textwrap.dedent(
    """
    import optax
    import difmachine as dm

    program = dm.Program(
        machine=dm.Machine(
            dm.LSTM(dm.param("hidden", 8)),
            {"ham": dm.HAMMemory(leaves=16, width=4, hidden=8, mode=dm.param("mode", "soft"),
                                 input_leaves=True)},
        ),
        task=dm.MemoryInput(dm.Reverse(symbols=3, min_length=1, max_length=3)),
        optimizer=optax.adam(1e-2),
        batch_size=4,
        steps=2,
        eval_every=2,
        eval_samples=4,
        reinforce=dm.Reinforce(credit="to_go"),
    )
    """
)


def _soft_run(tmp_path):
    path = tmp_path / "ham.py"
    path.write_text(PROGRAM)
    soft = tmp_path / "soft"
    result = runner.invoke(app, ["run", str(path), "--out", str(soft)])
    assert result.exit_code == 0, result.output
    return path, soft


def test_a_hard_run_starts_from_a_soft_runs_parameters(tmp_path):
    path, soft = _soft_run(tmp_path)
    _, source, _ = dm.load_run(soft)
    hard = dm.build(dm.load_program(path, {"mode": "hard"}))
    started, line = warm_start(hard, soft)
    assert "initialised" in line and "fresh: ['baseline']['b'], ['baseline']['w']" in line
    for part in ("controller", "devices", "W_o"):
        for a, b in zip(
            jax.tree.leaves(source.params[part]), jax.tree.leaves(started.params[part])
        ):
            np.testing.assert_array_equal(a, b)
    np.testing.assert_array_equal(started.params["baseline"]["w"], hard.params["baseline"]["w"])

    hard_run = tmp_path / "hard"
    args = ["run", str(path), "--set", "mode=hard", "--init", str(soft), "--out", str(hard_run)]
    result = runner.invoke(app, args)
    assert result.exit_code == 0, result.output
    assert "initialised" in result.output and (hard_run / "checkpoint.eqx").exists()
    resumed = runner.invoke(app, [*args[:-2], "--out", str(hard_run), "--resume"])
    assert resumed.exit_code == 2 and "drop --init" in resumed.output


def test_init_refuses_another_machine_in_one_line(tmp_path):
    path, soft = _soft_run(tmp_path)
    args = [
        "run",
        str(path),
        "--set",
        "hidden=6",
        "--init",
        str(soft),
        "--out",
        str(tmp_path / "x"),
    ]
    result = runner.invoke(app, args)
    assert result.exit_code == 2
    assert "another machine; start from a run of the same sizes" in result.output
    assert "Traceback" not in result.output
    missing = runner.invoke(app, ["run", str(path), "--init", str(tmp_path / "nowhere")])
    assert missing.exit_code == 2 and "no such run directory" in missing.output


def test_a_sweep_starts_each_seed_from_its_own_seed(tmp_path):
    sweep = tmp_path / "sweep"
    (sweep / "seed_3").mkdir(parents=True)
    (sweep / "sweep.json").write_text("{}")
    assert _init_source(sweep, 3) == sweep / "seed_3"
    assert _init_source(tmp_path / "one_run", 3) == tmp_path / "one_run"
    path = tmp_path / "ham.py"
    path.write_text(PROGRAM)
    result = runner.invoke(
        app,
        ["sweep", str(path), "--seeds", "2", "--init", str(sweep), "--out", str(tmp_path / "s")],
    )
    assert result.exit_code == 2 and "holds no trained run to start seed 0 from" in result.output


def test_init_from_a_run_made_elsewhere_needs_trust(tmp_path):
    path, soft = _soft_run(tmp_path)
    (soft / SIGNATURE).unlink()  # as if copied from another machine: its program.py is unsigned
    args = ["run", str(path), "--init", str(soft), "--out", str(tmp_path / "a")]
    refused = runner.invoke(app, args)
    assert refused.exit_code == 2 and "pass --trust" in refused.output
    trusted = runner.invoke(app, [*args, "--trust"])
    assert trusted.exit_code == 0 and "initialised" in trusted.output, trusted.output
    alone = runner.invoke(app, ["run", str(path), "--trust", "--out", str(tmp_path / "b")])
    assert alone.exit_code == 2 and "--trust applies to --init" in alone.output
