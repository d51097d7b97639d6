import json
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_programs import OTHER, write_program
from typer.testing import CliRunner

from difmachine.cli import app
from difmachine.program import load_program

runner = CliRunner()


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def one_line_error(result, *needles):
    assert result.exit_code == 2, result.output
    assert "Traceback" not in result.output
    lines = result.stderr.strip().splitlines()
    assert len(lines) == 1, f"expected one error line, got {result.stderr!r}"
    text = lines[0]
    assert text.startswith("error:"), result.output
    for needle in needles:
        assert needle in text, f"{needle!r} not in {text!r}"


def test_happy_path_run_show_eval_resume(tmp_path):
    program = write_program(tmp_path / "tiny.py", steps=6)
    out = tmp_path / "run"
    result = invoke("run", program, "--out", out)
    assert result.exit_code == 0, result.output
    assert "done: step 6" in result.output and str(out) in " ".join(result.output.split())
    assert (out / "checkpoint.eqx").exists() and (out / "metrics.jsonl").exists()
    assert (out / "program.py").read_text() == program.read_text()
    assert (out / "best.eqx").exists()  # its one evaluation, at the last step

    result = invoke("show", program)
    assert result.exit_code == 0, result.output
    assert (
        "write_shift" in result.output and "softmax" in result.output and "total" in result.output
    )
    # every parameter, defaults included, each part on one line even though not a terminal
    task_line = next(x for x in result.output.splitlines() if x.startswith("task "))
    assert "min_length=" in task_line and "max_length=" in task_line, task_line
    assert "batch_size=" in result.output and "seed=" in result.output

    result = invoke("eval", out, "--length", 2, "--length", 5, "--samples", 8)
    assert result.exit_code == 0, result.output
    assert "bit_errors" in result.output and "5" in result.output

    js = tmp_path / "gen.json"
    result = invoke(
        "eval", out, "--lengths", "1,4", "--samples", 4, "--json", js, "--png", tmp_path / "g.png"
    )
    assert result.exit_code == 0, result.output
    payload = json.loads(js.read_text())
    rows = payload["rows"]
    assert [r["length"] for r in rows] == [1, 4]
    assert {"bit_errors", "bit_accuracy", "perfect"} <= set(rows[0])
    assert payload["mean"]["perfect"] == (rows[0]["perfect"] + rows[1]["perfect"]) / 2
    assert (tmp_path / "g.png").read_bytes()[:4] == b"\x89PNG"
    one_line_error(invoke("eval", out, "--lengths", "4,x"), "comma-separated integers")
    result = invoke("eval", out, "--length", 3, "--samples", 4, "--json", "-")
    assert result.exit_code == 0, result.output
    assert [r["length"] for r in json.loads(result.stdout)["rows"]] == [3]  # stdout: only JSON
    assert "bit_errors" in result.stderr and not Path("-").exists()  # the table: stderr
    result = invoke("eval", out, "--best", "--length", 2, "--samples", 4)
    assert result.exit_code == 0 and "at step 6" in result.output, result.output
    (out / "best.eqx").unlink()
    one_line_error(invoke("trace", out, "--best"), "no best.eqx", "leave out --best")

    result = invoke("run", program, "--out", out)
    one_line_error(result, "already holds a run", "--resume")

    result = invoke("run", program, "--out", out, "--resume", "--steps", 8)
    assert result.exit_code == 0, result.output
    assert "resuming" in result.output and "done: step 8" in result.output
    assert "(steps 6-8, this session)" in result.output  # not the run's whole wall time


def test_version():
    from importlib.metadata import version

    result = invoke("--version")
    assert result.exit_code == 0 and result.output.strip() == f"difmachine {version('difmachine')}"


@pytest.mark.parametrize(
    "text, lengths",
    [("10,20", [10, 20]), ("1-4", [1, 2, 3, 4]), ("1-3, 7", [1, 2, 3, 7]), ("5-5", [5])],
)
def test_lengths_take_lists_and_ranges(text, lengths):
    from difmachine.cli import _parse_lengths

    assert _parse_lengths(text, None) == lengths


@pytest.mark.parametrize("text", ["4,x", "5-2", "1-", "0-3"])
def test_bad_lengths_are_one_line_errors(tmp_path, text):
    one_line_error(
        invoke("eval", tmp_path, "--lengths", text), "--lengths" if text != "0-3" else "between 1"
    )


def test_overrides_are_validated(tmp_path):
    program = write_program(tmp_path / "tiny.py")
    one_line_error(
        invoke("run", program, "--steps", 0, "--out", tmp_path / "r"), "steps must be a positive"
    )
    one_line_error(
        invoke("run", program, "--batch-size", -2, "--out", tmp_path / "r"), "batch_size"
    )


@pytest.mark.parametrize(
    "text, needles",
    [
        (None, ["no such program file"]),
        ("program = (\n", ["syntax error", "line"]),
        ("import difmachine\nx = 1\n", ["defines no `program`"]),
        ("program = 3\n", ["must be a difmachine.Program"]),
        (
            "import difmachine as dm\nm = dm.NTMMemory(slots=0, width=4)\n",
            ["slots must be a positive integer", "line 2"],
        ),
        (
            "import difmachine as dm\nm = dm.NTMMemory(slots=8, width=4, shifts=(-1, 1))\n",
            ["shifts must contain 0"],
        ),
        (
            "import difmachine as dm\nm = dm.NTMMemory(slots=8, width=4, read_heads=-1)\n",
            ["read_heads"],
        ),
        (
            "import difmachine as dm\nprogram = dm.Program(machine=dm.Machine(dm.LSTM(8), "
            "devices=dm.GRU(8)), task=dm.Copy(bits=4))\n",
            ["devices must be a device", "got GRU"],
        ),
        (
            "import difmachine as dm\nprogram = dm.Program(machine=dm.Machine(dm.LSTM(8), "
            "devices=[dm.Attention(size=8)]), task=dm.Copy(bits=4))\n",
            ["reads the context 'source', which nothing provides"],
        ),
        (
            "import difmachine as dm\nprogram = dm.Program(machine=dm.Machine(dm.LSTM(8), "
            "devices=[dm.NTMMemory(slots=4, width=3)], readout='ntmmemory'), "
            "task=dm.Copy(bits=4))\n",
            ["readout device 'ntmmemory' reads 3 values", "output_size is 4"],
        ),
    ],
    ids=[
        "missing",
        "syntax",
        "no-program",
        "not-a-program",
        "zero-slots",
        "shifts",
        "negative-heads",
        "controller-as-devices",
        "attention-without-source",
        "readout-width",
    ],
)
def test_bad_program_files(tmp_path, text, needles):
    path = tmp_path / "bad.py"
    if text is not None:
        path.write_text(text)
    one_line_error(invoke("run", path, "--out", tmp_path / "r"), *needles)
    one_line_error(invoke("show", path), *needles)


def test_bad_run_directories_and_checkpoints(tmp_path):
    one_line_error(invoke("eval", tmp_path / "nowhere"), "no such run directory")
    one_line_error(invoke("eval", tmp_path), "not a run directory")
    program = write_program(tmp_path / "tiny.py", steps=2)
    one_line_error(invoke("eval", program), "is a program, not a run directory", "difmachine run")

    out = tmp_path / "run"
    assert invoke("run", program, "--out", out).exit_code == 0
    ckpt = out / "checkpoint.eqx"
    good = ckpt.read_bytes()

    ckpt.write_bytes(good[: len(good) // 2])
    one_line_error(invoke("eval", out), "corrupt")
    one_line_error(invoke("run", program, "--out", out, "--resume"), "corrupt")

    ckpt.write_bytes(b"\x00\x01binary junk")
    one_line_error(invoke("eval", out), "not a difmachine checkpoint")

    ckpt.write_bytes(good)
    other = write_program(tmp_path / "other.py", steps=4, text=OTHER)
    one_line_error(invoke("run", other, "--out", out, "--resume"), "holds another machine")


def test_console_script_reports_errors_without_traceback(tmp_path):
    path = tmp_path / "bad.py"
    path.write_text("x = 1\n")
    proc = subprocess.run(
        [sys.executable, "-m", "difmachine.cli", "run", str(path)],
        capture_output=True,
        text=True,
        timeout=120,
    )
    assert proc.returncode == 2
    assert "Traceback" not in proc.stderr + proc.stdout
    assert "defines no `program`" in proc.stderr


PARAM_PROGRAM = """
import optax
import difmachine as dm

program = dm.Program(
    machine=dm.Machine(dm.RNN(dm.param("hidden", 4)), halting=dm.ACT(max_ponder=3)),
    task=dm.Parity(bits=dm.param("bits", 3)),
    optimizer=optax.adam(1e-2),
    batch_size=4, steps=2, eval_every=2, eval_samples=4,
)
"""


def test_program_parameters_with_set(tmp_path):
    path = tmp_path / "p.py"
    path.write_text(PARAM_PROGRAM)
    out = tmp_path / "run"
    result = invoke("run", path, "--out", out, "--set", "bits=5", "--set", "hidden=6")
    assert result.exit_code == 0, result.output
    # eval and trace rebuild the machine with the same parameters (from the checkpoint)
    result = invoke("eval", out, "--lengths", "1,5", "--samples", 4)
    assert result.exit_code == 0, result.output
    assert "nonzeros" in result.output and "ponder" in result.output
    result = invoke("trace", out)
    assert result.exit_code == 0, result.output
    assert "halting weights" in result.output
    # resuming without --set keeps them
    result = invoke("run", path, "--out", out, "--resume", "--steps", 3)
    assert result.exit_code == 0, result.output
    one_line_error(invoke("show", path, "--set", "bits=x"), "expected a int")
    one_line_error(
        invoke("show", path, "--set", "colour=red"), "no parameter colour", "bits, hidden"
    )
    one_line_error(invoke("show", path, "--set", "bits"), "name=value")
    # a parameter with choices refuses any other value, naming them
    structure = Path(__file__).parent.parent / "programs" / "stack_reverse.py"
    one_line_error(
        invoke("show", structure, "--set", "structure=heap"), "structure=heap", "stack, queue"
    )
    result = invoke("show", structure, "--set", "structure=queue")
    assert result.exit_code == 0 and "NeuralQueue" in result.output, result.output
    # an optional parameter (a program's target) also takes `none`; a plain one does not
    copy = structure.parent / "ntm_copy.py"
    assert load_program(copy).target == 0.1
    assert load_program(copy, {"target": "NONE"}).target is None
    assert load_program(copy, {"target": "0.25"}).target == 0.25
    one_line_error(invoke("show", copy, "--set", "target=low"), "target=low", "(or none)")
    one_line_error(invoke("show", path, "--set", "bits=none"), "expected a int like 3")
    # `target=none` on a program without a target is the no-op it says; a fixed target refuses it
    assert load_program(structure, {"target": "none"}).target is None
    fixed = tmp_path / "fixed.py"
    fixed.write_text(PARAM_PROGRAM.replace("steps=2,", "steps=2, target=0.5,"))
    one_line_error(invoke("show", fixed, "--set", "target=none"), "no parameter target")


SCHEDULED = """
import optax
import difmachine as dm

steps = dm.param("steps", 100)
program = dm.Program(
    machine=dm.Machine(dm.RNN(4)),
    task=dm.Parity(bits=3),
    optimizer=optax.adam(optax.cosine_decay_schedule(1e-2, steps)),
    steps=steps, eval_every=steps // 2,
)
"""


def test_steps_moves_what_a_program_derives_from_its_steps_parameter(tmp_path):
    """--steps N on a file that reads a `steps` parameter (a schedule over the run) sets the
    parameter too, so the schedule follows the budget; a file without one keeps its own."""
    from difmachine.program import load_program

    path = tmp_path / "scheduled.py"
    path.write_text(SCHEDULED)
    program = load_program(path, {"steps": "60"}, steps=40)
    assert program.steps == 40 and program.eval_every == 20
    assert program.overrides == {"steps": "40"}
    assert load_program(path).eval_every == 50
    plain = load_program(write_program(tmp_path / "plain.py", steps=10), steps=30)
    assert plain.steps == 30 and plain.overrides == {}


def test_error_messages_keep_their_brackets(tmp_path):
    # rich markup must not eat "[plot]"-like text in an error message
    path = tmp_path / "bad.py"
    path.write_text(
        "import difmachine as dm\nraise dm.ProgramError(\"pip install -e '.[plot]'\")\n"
    )
    one_line_error(invoke("show", path), "'.[plot]'")


def test_eval_and_trace_take_parameters_on_top_of_the_run(tmp_path):
    """`--set` on a run directory: a setting the checkpoint fits is used (the Neural
    Programmer's selection=hard), one that makes another machine is refused in one line."""
    from pathlib import Path

    from difmachine.rundir import load_run

    program = Path(__file__).parent.parent / "programs" / "neural_programmer_arith.py"
    out = tmp_path / "run"
    result = invoke("run", program, "--out", out, "--steps", 2, "--set", "batch_size=4")
    assert result.exit_code == 0, result.output
    _, model, _ = load_run(out, {"selection": "hard"})
    selections = {d.selection for d in model.machine.devices if hasattr(d, "selection")}
    assert selections == {"hard"}
    hard = invoke("eval", out, "--samples", 8, "--set", "selection=hard")
    assert hard.exit_code == 0, hard.output
    result = invoke("trace", out, "--set", "selection=hard")
    assert result.exit_code == 0, result.output
    one_line_error(invoke("eval", out, "--set", "hidden=7"), "holds another machine")


def test_every_benchmark_imports_and_parses_its_options():
    """`difmachine bench NAME` / `python -m bench NAME`: each registered benchmark module loads
    and builds its options (running them is bench/'s job, not the suite's)."""
    from pathlib import Path

    root = str(Path(__file__).resolve().parent.parent)
    sys.path.insert(0, root)
    try:
        from bench.__main__ import BENCHMARKS, build_parser

        parser = build_parser()
        required = {"addition_probe": ["runs/dngpu_add"]}  # a benchmark's positional arguments
        for name in BENCHMARKS:
            args = parser.parse_args([name, *required.get(name, []), "--json", "out.json"])
            assert args.name == name and args.json == "out.json" and callable(args._run)
        with pytest.raises(SystemExit):
            parser.parse_args(["no_such_benchmark"])
    finally:
        sys.path.remove(root)
