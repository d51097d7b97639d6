"""metrics.jsonl has flat columns (pandas reads it as it is); optional TensorBoard events."""

import json
import os
import struct
import sys

import pytest
from conftest_programs import TINY, write_program
from rich.console import Console
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.rundir import METRICS, eval_record, record_eval
from difmachine.sweep import _last_eval
from difmachine.training import train


def quiet():
    return Console(file=open(os.devnull, "w"))


def test_evaluation_rows_are_flat_and_old_nested_rows_still_read(tmp_path):
    row = eval_record(10, 1.5, {"loss": 0.5, "bit_errors": 2.0})
    assert row == {"step": 10, "time": 1.5, "eval/loss": 0.5, "eval/bit_errors": 2.0}
    assert record_eval(row) == {"loss": 0.5, "bit_errors": 2.0}
    old = {"step": 10, "time": 1.5, "eval": {"loss": 0.5}}
    assert record_eval(old) == {"loss": 0.5}
    assert record_eval({"step": 3, "loss": 1.0}) is None
    # the sweep's summary reads logs of either kind
    (tmp_path / METRICS).write_text(
        "\n".join(json.dumps(r) for r in (old, eval_record(20, 2.0, {"loss": 0.25}))) + "\n"
    )
    assert _last_eval(tmp_path, "loss", 30) == (20, 0.25)
    assert _last_eval(tmp_path, "loss", 15) == (10, 0.5)


def events(path):
    """The scalars of a TensorBoard event file: ``[(step, tag, value)]`` (TFRecord framing)."""
    from tensorboardX.proto.event_pb2 import Event

    data, i, out = path.read_bytes(), 0, []
    while i < len(data):
        (n,) = struct.unpack("<Q", data[i : i + 8])
        event = Event()
        event.ParseFromString(data[i + 12 : i + 12 + n])
        out += [(event.step, v.tag, v.simple_value) for v in event.summary.value]
        i += 12 + n + 4
    return out


def test_a_run_log_is_flat_and_tensorboard_gets_the_same_scalars(tmp_path):
    pytest.importorskip("tensorboardX")
    lstm = TINY.replace(
        "dm.Machine(dm.LSTM(8), dm.NTMMemory(slots=6, width=4))", "dm.Machine(dm.LSTM(8))"
    )
    assert lstm != TINY
    path = write_program(tmp_path / "p.py", steps=4, text=lstm)
    program = dm.load_program(path).replace(eval_every=2)
    train(program, tmp_path / "run", console=quiet(), tensorboard=True)
    rows = [json.loads(x) for x in (tmp_path / "run" / METRICS).read_text().splitlines()]
    for row in rows:  # one column per metric: pandas.read_json(path, lines=True) as it is
        assert all(isinstance(v, (int, float)) for v in row.values()), row
    evaluated = [r for r in rows if "eval/bit_errors" in r]
    assert [r["step"] for r in evaluated] == [2, 4]
    (file,) = (tmp_path / "run" / "tensorboard").iterdir()
    scalars = events(file)
    assert [(s, v) for s, t, v in scalars if t == "eval/bit_errors"] == [
        (r["step"], pytest.approx(r["eval/bit_errors"])) for r in evaluated
    ]
    assert {t for _, t, _ in scalars} >= {"train/loss", "train/bit_errors", "eval/loss"}


def test_tensorboard_without_the_extra_is_one_line(tmp_path, monkeypatch):
    monkeypatch.setitem(sys.modules, "tensorboardX", None)  # as if not installed
    result = CliRunner().invoke(
        app,
        [
            "run",
            str(write_program(tmp_path / "p.py")),
            "--tensorboard",
            "--out",
            str(tmp_path / "r"),
        ],
    )
    assert result.exit_code == 2, result.output
    (line,) = result.stderr.strip().splitlines()
    assert "tensorboardX" in line and "pip install -e '.[tensorboard]'" in line
