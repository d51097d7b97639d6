"""Fault injection: real signals, kill -9, a full disk, concurrent runs, damaged and crafted
run directories, non-finite numbers. Whatever happens, the checkpoint loads, a resume equals the
uninterrupted run, and every failure is one line with a non-zero exit."""

import io
import json
import os
import random
import resource
import signal
import subprocess
import sys
import time
from pathlib import Path

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest_programs import TINY, write_program
from rich.console import Console
from test_cli import invoke, one_line_error

import difmachine as dm
from difmachine import checkpoint, rundir, testing
from difmachine.program import build
from difmachine.training import make_train_step, train

ROOT = Path(__file__).resolve().parent.parent
# TINY with a --set-able learning rate and a budget long enough to be interrupted
LONG = TINY.replace("optax.adam(1e-2)", 'optax.adam(dm.param("lr", 1e-2))').replace(
    "steps={steps}", 'steps=dm.param("steps", {steps})'
)


@pytest.fixture(autouse=True, scope="module")
def compile_cache(tmp_path_factory):
    """One persistent compilation cache for this module's processes and train() calls: the
    same tiny machine compiles once, not once per run (minutes on a loaded machine)."""
    from jax._src import compilation_cache

    cache = tmp_path_factory.mktemp("jax-cache")
    names = ("jax_compilation_cache_dir", "jax_persistent_cache_min_compile_time_secs")
    old = {name: getattr(jax.config, name) for name in names}
    jax.config.update("jax_compilation_cache_dir", str(cache))
    jax.config.update("jax_persistent_cache_min_compile_time_secs", 0)
    compilation_cache.reset_cache()
    yield cache
    for name, value in old.items():
        jax.config.update(name, value)
    compilation_cache.reset_cache()


@pytest.fixture(autouse=True)
def own_key(tmp_path, monkeypatch):
    """Each test signs runs with its own key (not the user's)."""
    monkeypatch.setenv("XDG_CONFIG_HOME", str(tmp_path / "config"))


def quiet():
    return Console(file=open(os.devnull, "w"))


def state_of(path, program):
    model = build(program)
    like = (model, program.optimizer.init(eqx.filter(model, eqx.is_array)))
    return checkpoint.load(path, like, program.fingerprint())


def cli(*args, **kwargs):
    """``difmachine ARGS`` in a new process, sharing this module's compilation cache."""
    env = {
        **os.environ,
        "PYTHONPATH": str(ROOT),
        "JAX_COMPILATION_CACHE_DIR": jax.config.jax_compilation_cache_dir,
        "JAX_PERSISTENT_CACHE_MIN_COMPILE_TIME_SECS": "0",
    }
    command = [sys.executable, "-m", "difmachine.cli", *map(str, args)]
    return subprocess.Popen(
        command, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, **kwargs
    )


def wait_for_step(run, metrics: Path, step: int, timeout=300.0):
    """Until the run has logged ``step`` (it is then past compilation, in the training loop)."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline and run.poll() is None:
        if metrics.exists():
            for line in metrics.read_text().splitlines():
                if line.endswith("}") and json.loads(line).get("step", 0) >= step:
                    return
        time.sleep(0.05)
    run.kill()
    raise AssertionError(f"the run did not reach step {step}: {run.communicate()}")


def strict_json_lines(path: Path) -> list[dict]:
    text = path.read_text()
    assert text == "" or text.endswith("\n"), "torn last line"

    def refuse(name):
        raise ValueError(f"non-standard JSON constant {name}")

    return [json.loads(line, parse_constant=refuse) for line in text.splitlines()]


def test_signals_and_kill_9_then_resume_equals_the_uninterrupted_run(tmp_path, monkeypatch):
    """One run stopped three ways: SIGTERM (a process; exit 143), kill -9 at a random moment
    (a process), SIGINT (a real signal to this process). Meanwhile a second run is refused by
    the lock; after each stop the checkpoint loads; the kill's leftovers (a stale lock,
    temporaries) are cleaned and the final resume is bit-identical to an uninterrupted run,
    with a metrics log that has each step once, in standard JSON."""
    rng = random.Random()
    seed = rng.randrange(1 << 30)
    rng.seed(seed)
    path = write_program(tmp_path / "p.py", steps=100_000, text=LONG)  # never reached
    program = dm.load_program(path)
    out = tmp_path / "run"
    metrics = out / "metrics.jsonl"
    done = 0
    for how, code in ((signal.SIGTERM, 143), (signal.SIGKILL, -9)):
        run = cli("run", path, "--out", out, *(["--resume"] if done else []))
        wait_for_step(run, metrics, done + 2)
        if how == signal.SIGTERM:  # meanwhile, a second run on the same directory
            with pytest.raises(dm.DifmachineError, match=f"in use by another run .pid {run.pid}"):
                train(program, out, resume=True, console=quiet())
        time.sleep(rng.uniform(0, 0.3))
        run.send_signal(how)
        stdout, stderr = run.communicate(timeout=120)
        assert run.returncode == code, (seed, how, stdout, stderr)
        assert "Traceback" not in stderr, stderr
        _, header = state_of(out / "checkpoint.eqx", program)
        assert header["step"] >= done, seed
        done = header["step"]
    # the kill left a stale lock (and perhaps temporaries); add one for certain
    (out / ".checkpoint.eqx.deadbeef.tmp").write_bytes(b"half a checkpoint")
    task_type, calls = type(program.task), {"n": 0}
    original = task_type.sample

    def interrupted_by_a_signal(self, *args):
        # count training batches only: an evaluation (every 10 steps, 8 sequences) samples too,
        # and counting its batch made this test fail whenever the kill left the run at step 8-9
        if args[1] == program.batch_size:
            calls["n"] += 1
            if calls["n"] == 4:
                os.kill(os.getpid(), signal.SIGINT)
        return original(self, *args)

    monkeypatch.setattr(task_type, "sample", interrupted_by_a_signal)
    # a suite started in the background (`pytest &` in a script) inherits SIGINT ignored, and
    # Python then installs no handler: the signal would be lost and the run go on for 100k steps
    sigint = signal.signal(signal.SIGINT, signal.default_int_handler)
    try:
        result = train(program, out, resume=True, console=quiet())
    finally:
        signal.signal(signal.SIGINT, sigint)
    monkeypatch.setattr(task_type, "sample", original)
    assert result.interrupted and result.signal == signal.SIGINT
    assert not list(out.glob(".*.tmp")), seed
    _, header = state_of(out / "checkpoint.eqx", program)
    assert header["step"] == result.step >= done + 3
    target = result.step + 3
    train(program.replace(steps=target), out, resume=True, console=quiet())
    train(program.replace(steps=target), tmp_path / "reference", console=quiet())
    resumed, _ = state_of(out / "checkpoint.eqx", program)
    uninterrupted, _ = state_of(tmp_path / "reference" / "checkpoint.eqx", program)
    testing.assert_trees_close(resumed, uninterrupted, rtol=0, atol=0)
    logged = [r["step"] for r in strict_json_lines(metrics) if rundir.record_eval(r) is None]
    assert logged == sorted(set(logged)) and logged[-1] == target, seed


def test_a_full_disk_stops_the_run_and_keeps_the_last_checkpoint(tmp_path):
    path = write_program(tmp_path / "p.py", steps=5, text=LONG)
    program = dm.load_program(path)
    out = tmp_path / "run"
    train(program, out, program_file=path, console=quiet())
    good = (out / "checkpoint.eqx").read_bytes()
    limit = len(good) - 100  # the next checkpoint cannot be written; the log can

    def small_disk():
        resource.setrlimit(resource.RLIMIT_FSIZE, (limit, limit))
        signal.signal(signal.SIGXFSZ, signal.SIG_IGN)

    run = cli("run", path, "--out", out, "--resume", "--steps", 10, preexec_fn=small_disk)
    _, stderr = run.communicate(timeout=120)
    assert run.returncode == 2 and "Traceback" not in stderr, stderr
    errors = [line for line in stderr.splitlines() if line.startswith("error:")]
    assert len(errors) == 1 and "could not write" in errors[0] and "step 5" in errors[0], stderr
    assert (out / "checkpoint.eqx").read_bytes() == good
    assert not list(out.glob(".*.tmp"))
    strict_json_lines(out / "metrics.jsonl")


def test_a_failed_log_write_leaves_no_partial_line(tmp_path):
    log = rundir.MetricsLog(tmp_path / "m.jsonl")
    log.write({"step": 1, "loss": float("nan"), "x": float("inf")})
    size = (tmp_path / "m.jsonl").stat().st_size
    soft, hard = resource.getrlimit(resource.RLIMIT_FSIZE)
    old = signal.signal(signal.SIGXFSZ, signal.SIG_IGN)
    resource.setrlimit(resource.RLIMIT_FSIZE, (size + 10, hard))
    try:
        with pytest.raises(OSError):
            log.write({"step": 2, "padding": "x" * 100})
    finally:
        resource.setrlimit(resource.RLIMIT_FSIZE, (soft, hard))
        signal.signal(signal.SIGXFSZ, old)
    log.write({"step": 3})
    log.close()
    records = strict_json_lines(tmp_path / "m.jsonl")
    assert records[0]["loss"] == "nan" and records[0]["x"] == "inf"
    assert [r["step"] for r in records] == [1, 3]


def test_the_metrics_log_is_reconciled_with_the_checkpoint(tmp_path):
    path = tmp_path / "m.jsonl"
    path.write_text('{"step": 2}\n{"step": 4, "eval": {}}\n{"step": 6}\n{"step": 8, "to')
    rundir.MetricsLog(path, resume_step=4).close()
    assert [r["step"] for r in strict_json_lines(path)] == [2, 4]
    rundir.MetricsLog(path).close()  # a fresh run: its own log
    assert path.read_text() == ""


def test_the_lock_names_its_holder_and_a_dead_holder_is_stale(tmp_path):
    with rundir.locked(tmp_path):
        with pytest.raises(dm.DifmachineError, match=f"pid {os.getpid()}"):
            with rundir.locked(tmp_path):
                pass
    (tmp_path / ".lock").write_text("999999\n")  # a killed run's lock file, nobody holds it
    with rundir.locked(tmp_path):
        assert (tmp_path / ".lock").read_text() == f"{os.getpid()}\n"


def test_resume_without_flags_continues_the_run_as_it_was_started(tmp_path):
    path = write_program(tmp_path / "p.py", steps=6, text=LONG)
    out = tmp_path / "run"
    started = ("--seed", 7, "--batch-size", 2, "--set", "lr=0.02")
    assert invoke("run", path, "--out", out, "--steps", 3, *started).exit_code == 0
    result = invoke("run", path, "--out", out, "--resume", "--steps", 6)
    assert result.exit_code == 0, result.output
    settings = checkpoint.read_header(out / "checkpoint.eqx")["settings"]
    # --steps also sets the program's own `steps` parameter (what it derives from it follows)
    assert (settings["seed"], settings["batch_size"], settings["overrides"]) == (
        7,
        2,
        {"lr": "0.02", "steps": "6"},
    )
    program = dm.load_program(path, {"lr": "0.02"}, steps=6).replace(seed=7, batch_size=2)
    train(program, tmp_path / "reference", console=quiet())
    a, _ = state_of(out / "checkpoint.eqx", program)
    b, _ = state_of(tmp_path / "reference" / "checkpoint.eqx", program)
    testing.assert_trees_close(a, b, rtol=0, atol=0)
    one_line_error(invoke("run", path, "--out", out, "--resume", "--seed", 8), "--seed 8", "7")
    one_line_error(
        invoke("run", path, "--out", out, "--resume", "--set", "lr=0.5"), "conflicts", "lr=0.02"
    )
    result = invoke("run", path, "--out", out, "--resume")  # as started: nothing left to do
    assert result.exit_code == 0 and "step 6" in result.output, result.output


def test_non_finite_updates_are_refused_and_never_saved(tmp_path):
    path = write_program(tmp_path / "p.py", steps=4, text=LONG)
    one_line_error(invoke("run", path, "--out", tmp_path / "x", "--set", "lr=inf"), "lr=inf")
    one_line_error(invoke("run", path, "--out", tmp_path / "x", "--set", "lr=nan"), "finite")
    # 1e39 is finite, but not in float32: finite loss and gradient, non-finite update
    program = dm.load_program(path, {"lr": "1e39"})
    model = build(program)
    opt = program.optimizer.init(eqx.filter(model, eqx.is_array))
    step = make_train_step(program.task, program.optimizer)
    new, new_opt, metrics = step(model, opt, program.task.sample(np.random.default_rng(0), 4))
    assert float(metrics["refused"]) == 1.0
    testing.assert_trees_close((new, new_opt), (model, opt), rtol=0, atol=0)
    out = tmp_path / "run"
    with pytest.raises(dm.DifmachineError, match="4 steps in a row refused"):
        train(program, out, console=quiet())  # every step refused
    (saved, _), header = state_of(out / "checkpoint.eqx", program)
    assert all(bool(jnp.all(jnp.isfinite(x))) for x in jax.tree.leaves(saved))
    testing.assert_trees_close(saved, model, rtol=0, atol=0)
    with pytest.raises(dm.DifmachineError, match="2 steps in a row refused"):
        train(program.replace(steps=50), tmp_path / "r2", console=quiet(), max_refused=2)
    assert checkpoint.read_header(tmp_path / "r2" / "checkpoint.eqx")["step"] == 2


def test_checkpoint_is_written_before_best_and_a_lone_best_is_never_deleted(tmp_path, monkeypatch):
    import difmachine.training as training

    program = dm.load_program(write_program(tmp_path / "p.py", steps=10))
    written = []
    real = checkpoint.save
    monkeypatch.setattr(
        training.checkpoint, "save", lambda p, *a: (written.append(Path(p).name), real(p, *a))
    )
    out = tmp_path / "run"
    train(program, out, console=quiet())
    assert written == ["checkpoint.eqx", "checkpoint.eqx", "best.eqx"]  # steps 5, 10, 10
    (out / "checkpoint.eqx").unlink()  # as if killed between the two writes of an old version
    with pytest.raises(dm.DifmachineError, match="only best.eqx .*--best"):
        train(program, out, resume=True, console=quiet())
    with pytest.raises(dm.DifmachineError, match="holds best.eqx .*--best"):
        train(program, out, console=quiet())
    assert (out / "best.eqx").exists()


def test_a_second_ctrl_c_while_saving_says_what_it_abandoned(tmp_path, monkeypatch):
    import difmachine.training as training

    program = dm.load_program(write_program(tmp_path / "p.py", steps=9))
    calls = {"sample": 0}
    original = type(program.task).sample

    def interrupting(self, *args):
        calls["sample"] += 1
        if calls["sample"] == 8:  # during step 8: steps 1..7 are done, step 5 saved
            raise KeyboardInterrupt
        return original(self, *args)

    real = checkpoint.save

    def interrupted_save(path, *args):
        if calls["sample"] == 8:
            raise KeyboardInterrupt
        return real(path, *args)

    monkeypatch.setattr(type(program.task), "sample", interrupting)
    monkeypatch.setattr(training.checkpoint, "save", interrupted_save)
    buffer = io.StringIO()
    result = train(program, tmp_path / "run", console=Console(file=buffer, width=300))
    assert result.interrupted and result.signal == signal.SIGINT
    assert "abandoned saving step 7" in buffer.getvalue()
    assert "still holds step 5" in buffer.getvalue()
    assert checkpoint.read_header(tmp_path / "run" / "checkpoint.eqx")["step"] == 5


def test_ctrl_c_during_start_up_exits_130(tmp_path, monkeypatch):
    import difmachine.program as program_module

    def interrupted(*args, **kwargs):
        raise KeyboardInterrupt

    monkeypatch.setattr(program_module, "load_program", interrupted)
    result = invoke("run", write_program(tmp_path / "p.py"), "--out", tmp_path / "run")
    assert result.exit_code == 130


def _flip(path: Path, offset_from_end: int) -> None:
    data = bytearray(path.read_bytes())
    data[-offset_from_end] ^= 0x10
    path.write_bytes(bytes(data))


def test_a_flipped_bit_is_reported_as_corruption(tmp_path):
    tree = {"w": jnp.arange(64.0, dtype=jnp.float32)}
    path = tmp_path / "checkpoint.eqx"
    checkpoint.save(path, tree, {"step": 1})
    _flip(path, 40)
    with pytest.raises(dm.CheckpointError, match="corrupt .*checksum.*--best"):
        checkpoint.load(path, tree)


@pytest.mark.parametrize(
    "edit, needle",
    [
        (lambda h: h.pop("step"), "step"),
        (lambda h: h.update(step="abc"), "step"),
        (lambda h: h.update(step=-3), "step"),
        (lambda h: h.update(step=True), "step"),
        (lambda h: h.update(settings=[1]), "settings"),
        (lambda h: h["settings"].update(overrides="x"), "overrides"),
        (lambda h: h["settings"].update(seed=1.5), "seed"),
        (lambda h: h.update(eval=[]), "eval"),
        ("1e999", "step must be a non-negative integer"),
        ("NaN", "not a difmachine checkpoint"),
        ("deep", "not a difmachine checkpoint"),
    ],
    ids=[
        "no-step",
        "step-str",
        "step-neg",
        "step-bool",
        "settings-list",
        "overrides-str",
        "seed-float",
        "eval-list",
        "1e999",
        "nan",
        "deep",
    ],
)
def test_header_fields_of_the_wrong_type_are_one_line_errors(tmp_path, edit, needle):
    tree = {"w": jnp.ones(3)}
    path = tmp_path / "c.eqx"
    checkpoint.save(path, tree, {"step": 3, "settings": {"overrides": {}, "seed": 0}})
    head, body = path.read_bytes().split(b"\n", 1)
    if edit == "1e999":
        head = head.replace(b'"step": 3', b'"step": 1e999')
    elif edit == "NaN":
        head = head.replace(b'"step": 3', b'"step": NaN')
    elif edit == "deep":
        head = head[:-1] + b', "x": ' + b"[" * 100_000 + b"]" * 100_000 + b"}"
    else:
        header = json.loads(head)
        edit(header)
        head = json.dumps(header).encode()
    path.write_bytes(head + b"\n" + body)
    with pytest.raises(dm.CheckpointError, match=needle) as error:
        checkpoint.load(path, tree)
    assert "\n" not in str(error.value)


def test_a_crafted_run_directory_runs_no_code_without_trust(tmp_path):
    original = write_program(tmp_path / "p.py", steps=2)
    out = tmp_path / "run"
    assert invoke("run", original, "--out", out).exit_code == 0
    assert invoke("eval", out, "--samples", 2).exit_code == 0  # made here: signed
    marker = tmp_path / "ran"
    (out / "program.py").write_text(f"open({str(marker)!r}, 'w')\n" + original.read_text())
    for command in ("eval", "trace"):
        one_line_error(invoke(command, out), "--trust", "--program")
    assert not marker.exists()
    result = invoke("eval", out, "--samples", 2, "--program", original)
    assert result.exit_code == 0 and not marker.exists(), result.output
    result = invoke("eval", out, "--samples", 2, "--trust")
    assert result.exit_code == 0 and marker.exists(), result.output


def test_bad_values_and_places_are_one_line_errors(tmp_path):
    path = write_program(tmp_path / "p.py")
    blocker = tmp_path / "file"
    blocker.write_text("")
    one_line_error(invoke("run", path, "--out", blocker / "run"), "cannot write")
    one_line_error(invoke("run", path, "--seed", 2**70, "--out", tmp_path / "r"), "--seed")
    one_line_error(invoke("run", path, "--batch-size", 10**12), "--batch-size")
    one_line_error(invoke("eval", tmp_path / "r", "--length", 10**9), "lengths")
    one_line_error(invoke("trace", tmp_path / "r", "--length", 10**9), "--length")
    with pytest.raises(dm.ProgramError, match="target must be a number"):
        dm.load_program(path).replace(target="low")
