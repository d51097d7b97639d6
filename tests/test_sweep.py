import io
import json
import os
import signal
import subprocess
import types
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
from conftest_programs import TINY, write_program
from rich.console import Console
from typer.testing import CliRunner

import difmachine.sweep as sweep_mod
from difmachine import checkpoint, testing
from difmachine.cli import app
from difmachine.errors import DifmachineError
from difmachine.program import build, load_program
from difmachine.rundir import BEST, CHECKPOINT, METRICS, record_eval
from difmachine.sweep import SeedRecord, parse_seeds, summarize, sweep
from difmachine.training import train

runner = CliRunner()


def quiet():
    return Console(file=open(os.devnull, "w"))


def state_of(run_dir, program):
    model = build(program)
    like = (model, program.optimizer.init(eqx.filter(model, eqx.is_array)))
    return checkpoint.load(run_dir / CHECKPOINT, like, program.fingerprint())


def test_seed_s_of_a_vmapped_sweep_is_a_single_run_of_seed_s(tmp_path):
    """Parameters, optimizer state, header and logged metrics of every seed after K steps match
    ``train`` of that seed alone (float rounding: the vmapped step batches the matmuls)."""
    path = write_program(tmp_path / "p.py", steps=10)
    result = sweep(path, [0, 3], tmp_path / "sw", console=quiet())
    assert result["mode"] == "vmap" and not result["interrupted"]
    program = load_program(path)
    for s in (3,):  # one is enough: each single run compiles its own step
        single = program.replace(seed=s)
        train(single, tmp_path / f"single{s}", console=quiet(), name="p")
        a, ha = state_of(tmp_path / "sw" / f"seed_{s}", single)
        b, hb = state_of(tmp_path / f"single{s}", single)
        testing.assert_trees_close(a, b, rtol=1e-4, atol=1e-5, what=f"seed {s}")
        for key in ("program", "fingerprint", "step", "settings"):
            assert ha[key] == hb[key], key
        evals = [
            [e for x in (d / METRICS).read_text().splitlines() if (e := record_eval(json.loads(x)))]
            for d in (tmp_path / "sw" / f"seed_{s}", tmp_path / f"single{s}")
        ]
        assert len(evals[0]) == len(evals[1]) == 1
        for k, v in evals[1][0].items():
            assert evals[0][0][k] == pytest.approx(v, rel=1e-3, abs=1e-4), k
    # the seeds really differ: their own initial parameters and data
    a, _ = state_of(tmp_path / "sw" / "seed_0", program)
    b, _ = state_of(tmp_path / "sw" / "seed_3", program.replace(seed=3))
    for x, y in zip(jax.tree.leaves(a[0]), jax.tree.leaves(b[0])):
        assert x.shape == y.shape and not np.allclose(x, y)


def scripted_evaluation(monkeypatch, scores):
    """``scores[(seed, step)]`` replaces the main metric of that evaluation (default 9.0)."""

    def fake(eval_fn, params, task, data_seeds, samples):
        return [{"loss": 1.0, task.main_metric: scores.get(d, 9.0)} for d in data_seeds]

    monkeypatch.setattr(sweep_mod, "evaluate_seeds", fake)


TARGETED = "\n".join(
    line + ("\n    target=0.5," if "log_every" in line else "")
    for line in write_program.__globals__["TINY"].splitlines()
)


def test_a_solved_seed_is_frozen_and_interruption_then_resume_loses_nothing(tmp_path, monkeypatch):
    """Seed 1 meets the target at step 10 (scripted evaluation; the data seed of seed s at step
    t is s + t) and stays as it was then; SIGTERM at step 13 saves every seed, --resume
    finishes them, and every checkpoint equals the uninterrupted sweep's, bit for bit."""
    path = write_program(tmp_path / "p.py", steps=20, text=TARGETED)
    scripted_evaluation(monkeypatch, {1 + 10: 0.0})
    whole = sweep(path, [0, 1, 2], tmp_path / "whole", console=quiet())
    assert whole["summary"]["solved_seeds"] == [1]
    assert whole["records"]["1"]["solved_step"] == 10 and whole["records"]["0"]["step"] == 20

    real_rng = sweep_mod.batch_rng

    def interrupting_rng(seed, step, stream=0):
        if (seed, step, stream) == (0, 12, 0):
            os.kill(os.getpid(), signal.SIGTERM)
        return real_rng(seed, step, stream)

    monkeypatch.setattr(sweep_mod, "batch_rng", interrupting_rng)
    cut = sweep(path, [0, 1, 2], tmp_path / "cut", console=quiet())
    assert cut["interrupted"] and cut["status"] == "interrupted"
    assert [cut["records"][s]["step"] for s in "012"] == [13, 10, 13]
    monkeypatch.setattr(sweep_mod, "batch_rng", real_rng)
    with pytest.raises(DifmachineError, match="--resume"):
        sweep(path, [0, 1, 2], tmp_path / "cut", console=quiet())
    done = sweep(path, None, tmp_path / "cut", resume=True, console=quiet())
    assert not done["interrupted"] and done["summary"]["solved_seeds"] == [1]
    program = load_program(path)
    for s in (0, 1, 2):
        p = program.replace(seed=s)
        a, ha = state_of(tmp_path / "whole" / f"seed_{s}", p)
        b, hb = state_of(tmp_path / "cut" / f"seed_{s}", p)
        assert ha["step"] == hb["step"] == (10 if s == 1 else 20)
        testing.assert_trees_close(a, b, rtol=0, atol=0, what=f"seed {s}")
    # the frozen seed is the single run that stopped at the target; seed 2, which moved from
    # position 2 to 1 when the group shrank to the seeds still training, is its single run too
    for s, score, steps in ((1, 0.0, 10), (2, 9.0, 20)):
        monkeypatch.setattr(
            "difmachine.training.evaluate", lambda *a, score=score, **k: {"bit_errors": score}
        )
        train(program.replace(seed=s), tmp_path / f"single{s}", console=quiet())
        a, ha = state_of(tmp_path / f"single{s}", program.replace(seed=s))
        b, hb = state_of(tmp_path / "whole" / f"seed_{s}", program.replace(seed=s))
        assert ha["step"] == hb["step"] == steps
        testing.assert_trees_close(a, b, rtol=1e-4, atol=1e-5, what=f"seed {s}")


def test_summary_of_a_scripted_sweep():
    records = [
        SeedRecord(0, step=100, eval=0.05, solved_step=100, solved_wall=10.0),
        SeedRecord(1, step=400, eval=0.08, solved_step=400, solved_wall=40.0),
        SeedRecord(2, step=200, eval=0.01, solved_step=200, solved_wall=20.0),
        SeedRecord(3, step=500, eval=3.0),
    ]
    s = summarize(records, target=0.1, main_metric="bit_errors")
    assert s["success_rate"] == 0.75 and s["solved"] == 3 and s["solved_seeds"] == [0, 1, 2]
    steps = s["steps_to_solve"]
    assert (steps["median"], steps["min"], steps["max"]) == (200, 100, 400)
    assert (steps["q1"], steps["q3"]) == (150, 300)
    assert s["wall_time_to_solve"]["median"] == 20.0
    final = s["final_metric"]
    assert final["n"] == 4 and final["min"] == 0.01 and final["max"] == 3.0
    assert final["median"] == pytest.approx(0.065)
    none = summarize([SeedRecord(0, eval=1.0)], target=None, main_metric="error")
    assert none["success_rate"] is None and none["steps_to_solve"] is None


def test_seed_directories_work_with_eval_and_trace_and_the_cli_prints_the_summary(tmp_path):
    path = write_program(tmp_path / "p.py", steps=4)
    out = tmp_path / "sw"
    result = runner.invoke(app, ["sweep", str(path), "--seeds", "2", "--out", str(out)])
    assert result.exit_code == 0, result.output
    assert "summary" in result.output and "2 seeds (the program has no target" in result.output
    assert "step 4  eval bit_errors  seed 0 " in result.output  # not a terminal: a line per eval
    saved = json.loads((out / "sweep.json").read_text())
    assert saved["status"] == "done" and saved["seeds"] == [0, 1]
    assert (out / "seed_1" / BEST).exists()
    result = runner.invoke(app, ["eval", str(out / "seed_1"), "--lengths", "2", "--samples", "8"])
    assert result.exit_code == 0, result.output
    assert "at step 4" in result.output
    result = runner.invoke(app, ["trace", str(out / "seed_1"), "--length", "2"])
    assert result.exit_code == 0, result.output
    assert "write head" in result.output
    # eval of the sweep: every seed's own eval, then each length's median and range over seeds
    args = ["--lengths", "2,3", "--samples", "8", "--json", "-"]
    whole = json.loads(runner.invoke(app, ["eval", str(out), *args]).stdout)
    assert whole["metric"] == "bit_errors" and sorted(whole["seeds"]) == ["0", "1"]
    alone = [
        json.loads(runner.invoke(app, ["eval", str(out / f"seed_{s}"), *args]).stdout)
        for s in (0, 1)
    ]
    for i, row in enumerate(whole["summary"][:-1]):  # the lengths; then their mean
        values = [run["rows"][i]["bit_errors"] for run in alone]
        for s, run in enumerate(alone):  # the same numbers as each seed's own eval
            got = {k: v for k, v in whole["seeds"][str(s)]["rows"][i].items() if k != "seconds"}
            assert got == {k: v for k, v in run["rows"][i].items() if k != "seconds"}
        assert row["median"] == pytest.approx(np.median(values))
        assert (row["min"], row["max"]) == pytest.approx((min(values), max(values)))
    mean = whole["summary"][-1]  # each seed's mean over the lengths, then over the seeds
    per_seed = [np.mean([r["bit_errors"] for r in run["rows"]]) for run in alone]
    assert mean["length"] == "mean" and mean["median"] == pytest.approx(np.median(per_seed))
    assert "at_target" not in whole["summary"][0]  # the program has no target
    targeted = write_program(
        tmp_path / "t.py", steps=4, text=TINY.replace("log_every=2,", "log_every=2, target=1e9,")
    )
    result = runner.invoke(app, ["eval", str(out), *args[:-2], "--program", str(targeted)])
    assert result.exit_code == 0 and "2/2 (bit_errors <= 1000000000.0)" in result.output, (
        result.output
    )
    for bad, needle in (
        (["--metric", "colour"], "--metric colour: the task reports bit_accuracy, bit_errors"),
        (["--png", str(tmp_path / "x.png")], "--png plots one run"),
    ):
        result = runner.invoke(app, ["eval", str(out), "--lengths", "2", *bad])
        assert result.exit_code == 2 and needle in result.output, result.output
    result = runner.invoke(app, ["eval", str(out / "seed_0"), "--metric", "perfect"])
    assert result.exit_code == 2 and "give a sweep directory" in result.output


@pytest.mark.parametrize(
    "text, seeds", [("3", [0, 1, 2]), ("4,7", [4, 7]), ("10-12", [10, 11, 12]), (" 2 ", [0, 1])]
)
def test_seed_lists(text, seeds):
    assert parse_seeds(text) == seeds


@pytest.mark.parametrize(
    "text, needle",
    [
        ("0", "at least 1"),
        ("-2", "at least 1"),
        ("abc", "not a seed count"),
        ("5-3", "empty"),
        ("1,1", "repeats"),
        ("2,-1", "non-negative"),
    ],
)
def test_bad_seeds_are_a_one_line_error(tmp_path, text, needle):
    path = write_program(tmp_path / "p.py", steps=4)
    result = runner.invoke(app, ["sweep", str(path), "--seeds", text, "--out", str(tmp_path)])
    assert result.exit_code == 2, result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1 and lines[0].startswith("error:") and needle in lines[0], lines
    assert "--seeds N" in lines[0]


def test_a_step_that_does_not_vmap_falls_back_to_one_process_per_seed(tmp_path, monkeypatch):
    """The processes path: each seed a `difmachine run` child (2 at a time), the same files."""

    class NoBatchingRule:
        def trace(self, *args):
            raise NotImplementedError("Batching rule for 'custom_thing' not implemented")

    monkeypatch.setattr(sweep_mod, "_functions", lambda *a: (NoBatchingRule(), None))
    monkeypatch.setenv("PYTHONPATH", os.pathsep.join([str(Path(sweep_mod.__file__).parents[1])]))
    path = write_program(tmp_path / "p.py", steps=3)
    out = io.StringIO()
    result = sweep(path, [0, 2], tmp_path / "sw", console=Console(file=out, width=200))
    assert "does not vmap over seeds" in out.getvalue() and "custom_thing" in out.getvalue()
    assert result["mode"] == "processes" and not result["interrupted"]
    for s in ("0", "2"):
        record = result["records"][s]
        assert record["step"] == 3 and record["done"] and record["eval"] is not None, record
        header = checkpoint.read_header(tmp_path / "sw" / f"seed_{s}" / CHECKPOINT)
        assert header["settings"]["seed"] == int(s) and header["step"] == 3
    # resuming a finished sweep starts nothing and keeps the records
    again = sweep(path, None, tmp_path / "sw", resume=True, console=quiet())
    assert [again["records"][s]["step"] for s in ("0", "2")] == [3, 3]
    assert [again["records"][s]["eval"] for s in "02"] == [
        result["records"][s]["eval"] for s in "02"
    ]


class _Child:
    """A stand-in for a seed's `difmachine run`: trains until it gets SIGTERM, then exits 143
    as train() does after saving. The first child's first poll delivers two signals to the sweep
    at once."""

    started: list = []

    def __init__(self, cmd, **kwargs):
        self.cmd, self.signals, self.polls = cmd, [], 0
        _Child.started.append(self)

    def send_signal(self, sig):
        self.signals.append(sig)

    def poll(self):
        self.polls += 1
        if self.polls == 1 and self is _Child.started[0]:
            os.kill(os.getpid(), signal.SIGTERM)
            os.kill(os.getpid(), signal.SIGTERM)
        return 128 + signal.SIGTERM if self.signals else None

    def wait(self):
        assert self.signals, "the sweep waits on a child it never told to stop"
        return 128 + signal.SIGTERM


def test_signals_to_a_sweep_of_processes_reach_every_running_child(tmp_path, monkeypatch):
    """Two signals in quick succession (before the loop passes the first on) still stop every
    running child, and a child that saved and exited on SIGTERM (143) is interrupted, not
    failed: it is not done and resumes."""
    _Child.started = []
    fake = types.SimpleNamespace(Popen=_Child, STDOUT=subprocess.STDOUT)
    monkeypatch.setattr(sweep_mod, "subprocess", fake)  # only the sweep's children are fakes
    path = write_program(tmp_path / "p.py", steps=3)
    result = sweep(path, [0, 1, 2], tmp_path / "sw", processes=True, console=quiet())
    assert result["interrupted"] and len(_Child.started) == 2  # 2 jobs at a time; seed 2 waits
    assert all(child.signals == [signal.SIGTERM] for child in _Child.started)
    for s in ("0", "1"):
        assert result["records"][s]["status"] == "interrupted" and not result["records"][s]["done"]
    assert result["records"]["2"]["status"] == "waiting"
