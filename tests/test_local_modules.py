"""A program imports modules beside it; a run directory carries copies of them, signed."""

import json
import sys

import pytest
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app

runner = CliRunner()

MODULE = """
import difmachine as dm

HIDDEN = {hidden}


def machine():
    return dm.Machine(dm.LSTM(HIDDEN))
"""

PROGRAM = """
import optax
import difmachine as dm
from mymodule import machine
from helpers.sizes import BITS

program = dm.Program(
    machine=machine(), task=dm.Copy(bits=BITS, min_length=1, max_length=2),
    optimizer=optax.adam(1e-2), batch_size=2, steps=2, eval_every=2, eval_samples=4, log_every=1,
)
"""


def invoke(*args):
    return runner.invoke(app, [str(a) for a in args])


def write_project(directory, hidden=8):
    directory.mkdir(parents=True)
    (directory / "mymodule.py").write_text(MODULE.format(hidden=hidden))
    (directory / "helpers").mkdir()
    (directory / "helpers" / "__init__.py").write_text("")
    (directory / "helpers" / "sizes.py").write_text("BITS = 3\n")
    (directory / "prog.py").write_text(PROGRAM)
    return directory / "prog.py"


def hidden_of(program):
    return program.machine.controller.hidden


def test_a_run_carries_its_local_modules_and_works_from_anywhere(tmp_path, monkeypatch):
    program = write_project(tmp_path / "project")
    elsewhere = tmp_path / "elsewhere"
    elsewhere.mkdir()
    monkeypatch.chdir(elsewhere)
    path_before, modules_before = list(sys.path), set(sys.modules)
    out = tmp_path / "run"
    result = invoke("run", program, "--out", out)
    assert result.exit_code == 0, result.output
    assert sys.path == path_before  # nothing left behind
    assert not {"mymodule", "helpers", "helpers.sizes"} & (set(sys.modules) - modules_before)
    manifest = json.loads((out / "program.json").read_text())
    assert sorted(manifest["modules"]) == ["helpers/__init__.py", "helpers/sizes.py", "mymodule.py"]
    assert (out / "mymodule.py").read_text() == (tmp_path / "project" / "mymodule.py").read_text()

    # the copies are used, even once the project is gone
    (tmp_path / "project" / "mymodule.py").write_text("raise ImportError('the original')\n")
    for command in ("eval", "trace", "show"):
        result = invoke(command, out, *(["--samples", 2] if command == "eval" else []))
        assert result.exit_code == 0, result.output
    assert not list(out.rglob("__pycache__"))  # the signed sources are compiled, no cache
    result = invoke("run", out / "program.py", "--out", out, "--resume", "--steps", 3)
    assert result.exit_code == 0, result.output
    assert json.loads((out / "program.json").read_text()) == manifest

    # a changed module is refused like a changed program
    (out / "helpers" / "sizes.py").write_text("BITS = 3  # changed\n")
    for command in ("eval", "show"):
        result = invoke(command, out, *(["--samples", 2] if command == "eval" else []))
        assert result.exit_code == 2 and "--trust" in result.stderr, result.output
    assert invoke("eval", out, "--samples", 2, "--trust").exit_code == 0


def test_two_runs_with_different_modules_in_one_process_each_get_their_own(tmp_path):
    loaded = []
    for hidden in (8, 12):
        program = write_project(tmp_path / f"p{hidden}", hidden=hidden)
        assert hidden_of(dm.load_program(program)) == hidden
        out = tmp_path / f"run{hidden}"
        assert invoke("run", program, "--out", out).exit_code == 0
        loaded.append(out)
    for out, hidden in zip(loaded, (8, 12)):
        program, model, _ = dm.load_run(out)
        assert hidden_of(program) == hidden
    assert "mymodule" not in sys.modules


def test_a_module_imported_before_does_not_stand_in_for_the_programs(tmp_path, monkeypatch):
    other = tmp_path / "other"
    other.mkdir()
    (other / "mymodule.py").write_text("def machine():\n    raise RuntimeError('wrong one')\n")
    monkeypatch.syspath_prepend(str(other))
    import mymodule  # noqa: F401 - the user's own module of the same name

    program = write_project(tmp_path / "project")
    assert hidden_of(dm.load_program(program)) == 8
    assert sys.modules["mymodule"].__file__.startswith(str(other))  # put back
    del sys.modules["mymodule"]


def test_a_manifest_names_only_module_files(tmp_path):
    program = write_project(tmp_path / "project")
    out = tmp_path / "run"
    assert invoke("run", program, "--out", out).exit_code == 0
    (out / "program.json").write_text(json.dumps({"modules": ["../evil.py"]}))
    with pytest.raises(dm.DifmachineError, match="not a module file|signature"):
        dm.load_run(out, trust=False)
    with pytest.raises(dm.ProgramError, match="not a module file"):
        dm.load_run(out)
