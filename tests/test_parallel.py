"""Data parallelism (difmachine.parallel): sharded training equals unsharded training.

The sharded runs need JAX split into several CPU devices before it starts, so they run in a
fresh process (tests/parallel_worker.py); the errors a user can make are checked in-process.
"""

import json
import os
import socket
import subprocess
import sys
from pathlib import Path

import pytest
from conftest_programs import write_program
from test_cli import invoke, one_line_error

from difmachine import parallel
from difmachine.errors import DifmachineError

HERE = Path(__file__).parent
TOLERANCE = 1e-5  # float32 sums in a different order (per-device partial sums, then all-reduce)


def python(*args, **kwargs):
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    return subprocess.run(
        [sys.executable, *map(str, args)], env=env, capture_output=True, text=True, **kwargs
    )


def test_split_training_equals_single_device_training(tmp_path):
    result = python(HERE / "parallel_worker.py", tmp_path, timeout=600)
    assert result.returncode == 0, result.stderr[-3000:]
    report = json.loads((tmp_path / "report.json").read_text())
    assert report["devices"] == 2
    assert report["batch_rows"] == 4 and report["shard_rows"] == [2]  # each device holds half
    assert report["split_vs_single"] < TOLERANCE
    assert report["resumed_vs_single"] < TOLERANCE  # a sharded checkpoint resumes on 1 device
    assert "batch size 5 does not split over 2 devices" in report["odd_batch_error"]


def _free_port():
    with socket.socket() as s:
        s.bind(("localhost", 0))
        return s.getsockname()[1]


def test_two_processes_train_like_one(tmp_path):
    """Multi-host, as on a cluster but on localhost: two processes of one CPU device each join
    through jax.distributed (gloo collectives) and train the same parameters as one process."""
    program = write_program(tmp_path / "tiny.py", steps=4)
    port = _free_port()
    common = ["-m", "difmachine.cli", "run", program, "--out", tmp_path / "multi"]
    hosts = ["--coordinator", f"localhost:{port}", "--num-processes", "2"]
    env = {**os.environ, "PYTHONPATH": str(HERE)}
    workers = [
        subprocess.Popen(
            [sys.executable, *map(str, common + hosts + ["--process-id", str(rank)])],
            env=env,
            stdout=subprocess.PIPE,
            stderr=subprocess.PIPE,
            text=True,
        )
        for rank in (1, 0)
    ]
    outputs = [w.communicate(timeout=600) for w in workers]
    for w, (out, err) in zip(workers, outputs, strict=True):
        assert w.returncode == 0, (out + err)[-3000:]
    assert "split over 2 cpu devices on 2 processes" in " ".join(outputs[1][0].split())
    single = python("-m", "difmachine.cli", "run", program, "--out", tmp_path / "single")
    assert single.returncode == 0, single.stderr[-3000:]

    import equinox as eqx
    import jax
    import numpy as np

    from difmachine import checkpoint
    from difmachine.program import build, load_program

    prog = load_program(program)
    model = build(prog)
    like = (model, prog.optimizer.init(eqx.filter(model, eqx.is_array)))

    def leaves(run):
        tree, header = checkpoint.load(tmp_path / run / "checkpoint.eqx", like, prog.fingerprint())
        assert header["step"] == 4
        return jax.tree.leaves(eqx.filter(tree, eqx.is_array))

    for a, b in zip(leaves("multi"), leaves("single"), strict=True):
        np.testing.assert_allclose(a, b, atol=TOLERANCE)


def test_devices_beyond_what_jax_sees_is_a_clear_error(tmp_path):
    import jax

    program = write_program(tmp_path / "tiny.py", steps=2)
    jax.devices()  # this process runs JAX on one CPU device now: it cannot be split any more
    one_line_error(
        invoke("run", program, "--out", tmp_path / "r", "--devices", 64), "JAX sees", "--devices"
    )
    one_line_error(invoke("run", program, "--out", tmp_path / "r", "--devices", 0), "at least 1")


@pytest.mark.parametrize(
    "kwargs, needle",
    [
        ({"coordinator": "localhost:1234"}, "needs all of --coordinator"),
        ({"num_processes": 2, "process_id": 0}, "needs all of --coordinator"),
        ({"coordinator": "h:1", "num_processes": 2, "process_id": 2}, "--process-id must be"),
    ],
)
def test_incomplete_multi_host_settings_are_refused(kwargs, needle):
    with pytest.raises(DifmachineError, match=needle.replace("-", r"\-")):
        parallel.initialize(**kwargs)


def test_a_bad_environment_setting_is_a_clear_error(monkeypatch):
    monkeypatch.setenv("DIFMACHINE_NUM_PROCESSES", "two")
    with pytest.raises(DifmachineError, match="DIFMACHINE_NUM_PROCESSES must be an integer"):
        parallel.initialize(coordinator="localhost:1")
