import io
import json
import os

import equinox as eqx
import jax
import jax.numpy as jnp
import numpy as np
import pytest
from conftest_programs import OTHER, write_program
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import difmachine as dm
from difmachine import checkpoint, testing
from difmachine.program import build
from difmachine.rundir import CHECKPOINT
from difmachine.training import batch_rng, better, make_train_step, train


def quiet():
    return Console(file=open(os.devnull, "w"))


def params_of(run_dir, program):
    model = build(program)
    opt = program.optimizer.init(eqx.filter(model, eqx.is_array))
    (model, opt), header = checkpoint.load(
        run_dir / CHECKPOINT, (model, opt), program.fingerprint()
    )
    return model, opt, header


def test_short_training_lowers_the_loss(tmp_path):
    program = dm.load_program(write_program(tmp_path / "p.py", steps=150))
    before = dm.evaluate(build(program), program.task, samples=128, seed=99)
    result = train(program, tmp_path / "run", console=quiet())
    after = dm.evaluate(params_of(tmp_path / "run", program)[0], program.task, samples=128, seed=99)
    assert result.step == 150 and not result.interrupted
    assert after["loss"] < 0.75 * before["loss"], (before, after)
    assert (tmp_path / "run" / "metrics.jsonl").read_text().count("\n") >= 150 // 2


def test_resume_gives_the_same_result_as_an_uninterrupted_run(tmp_path):
    full = dm.load_program(write_program(tmp_path / "full.py", steps=8))
    train(full, tmp_path / "a", console=quiet())
    train(full.replace(steps=3), tmp_path / "b", console=quiet())
    train(full, tmp_path / "b", resume=True, console=quiet())
    a, opt_a, ha = params_of(tmp_path / "a", full)
    b, opt_b, hb = params_of(tmp_path / "b", full)
    assert ha["step"] == hb["step"] == 8
    testing.assert_trees_close((a, opt_a), (b, opt_b), rtol=0, atol=0)


def test_the_best_evaluation_keeps_its_checkpoint_through_a_later_collapse(tmp_path, monkeypatch):
    """best.eqx holds the step of the lowest evaluated main metric, also across --resume, and
    load_run(best=True) gives that step's parameters."""
    import difmachine.rundir as rundir
    import difmachine.training as training

    program = dm.load_program(write_program(tmp_path / "p.py", steps=40))
    scores = {10: 0.5, 20: 0.2, 30: 0.9, 40: 0.1}  # the main metric evaluated at each step
    real = training.evaluate

    def scripted(model, task, **kwargs):
        step = kwargs["seed"] - program.seed  # train() evaluates with seed + step
        return {**real(model, task, **kwargs), task.main_metric: scores[step]}

    monkeypatch.setattr(training, "evaluate", scripted)
    out = io.StringIO()
    console = Console(file=out, width=200)
    train(
        program.replace(steps=30), tmp_path / "run", program_file=tmp_path / "p.py", console=console
    )
    header = checkpoint.read_header(tmp_path / "run" / training.BEST)
    assert header["step"] == 20 and header["eval"][program.task.main_metric] == 0.2
    assert "worse than step 20's" in out.getvalue() and "--best" in out.getvalue()

    train(program.replace(steps=20), tmp_path / "to20", console=quiet())  # same data, same seed
    _, best_model, best_header = rundir.load_run(tmp_path / "run", best=True)
    _, last_model, _ = rundir.load_run(tmp_path / "run")
    assert best_header["step"] == 20
    testing.assert_trees_close(best_model, params_of(tmp_path / "to20", program)[0], 0, 0)
    assert not all(
        np.array_equal(a, b)
        for a, b in zip(jax.tree.leaves(best_model), jax.tree.leaves(last_model))
    )

    train(program, tmp_path / "run", resume=True, console=quiet())  # step 40 scores 0.1 < 0.2
    assert checkpoint.read_header(tmp_path / "run" / training.BEST)["step"] == 40


def test_ctrl_c_saves_the_last_completed_step_and_resume_matches(tmp_path, monkeypatch):
    program = dm.load_program(write_program(tmp_path / "p.py", steps=7))
    train(program, tmp_path / "a", console=quiet())
    task_type = type(program.task)
    original = task_type.sample
    calls = {"n": 0}

    def interrupting(self, rng, batch_size, length=None):
        calls["n"] += 1
        if calls["n"] == 5:  # during step 5 (index 4): steps 0..3 are done
            raise KeyboardInterrupt
        return original(self, rng, batch_size, length)

    monkeypatch.setattr(task_type, "sample", interrupting)
    result = train(program, tmp_path / "b", console=quiet())
    monkeypatch.setattr(task_type, "sample", original)
    assert result.interrupted and result.step == 4
    assert checkpoint.read_header(tmp_path / "b" / CHECKPOINT)["step"] == 4
    train(program, tmp_path / "b", resume=True, console=quiet())
    a = params_of(tmp_path / "a", program)[:2]
    b = params_of(tmp_path / "b", program)[:2]
    testing.assert_trees_close(a, b, rtol=0, atol=0)


def test_existing_run_needs_resume(tmp_path):
    program = dm.load_program(write_program(tmp_path / "p.py", steps=2))
    train(program, tmp_path / "run", console=quiet())
    with pytest.raises(dm.DifmachineError, match="--resume"):
        train(program, tmp_path / "run", console=quiet())


def test_a_non_finite_step_is_refused_and_keeps_the_parameters(tmp_path):
    program = dm.load_program(write_program(tmp_path / "p.py"))
    model = build(program)
    opt = program.optimizer.init(eqx.filter(model, eqx.is_array))
    step = make_train_step(program.task, program.optimizer)
    batch = program.task.sample(batch_rng(0, 0), 4)
    bad = batch._replace(inputs=np.full_like(batch.inputs, np.nan))
    new_model, new_opt, metrics = step(model, opt, bad)
    assert float(metrics["refused"]) == 1.0
    testing.assert_trees_close((new_model, new_opt), (model, opt), rtol=0, atol=0)
    new_model, _, metrics = step(model, opt, batch)
    assert float(metrics["refused"]) == 0.0
    assert not np.allclose(new_model.params["W_o"], model.params["W_o"])


def test_the_second_train_step_compiles_nothing(tmp_path):
    program = dm.load_program(write_program(tmp_path / "p.py"))
    model = build(program)
    opt = program.optimizer.init(eqx.filter(model, eqx.is_array))
    step = make_train_step(program.task, program.optimizer)
    model, opt, m = step(model, opt, program.task.sample(batch_rng(0, 0), 4))
    with testing.count_compiles() as counter:
        for i in range(1, 4):  # new data, new lengths, same padded shape
            model, opt, m = step(model, opt, program.task.sample(batch_rng(0, i), 4))
        jax.block_until_ready(m)
    assert counter.compiles == 0


def test_a_batch_in_chunks_has_the_gradient_of_the_whole_batch(tmp_path):
    """With Program(chunk=...), a batch runs forward and backward chunk by chunk; loss, metrics
    and gradients must be the whole batch's."""
    from difmachine.training import _gradients

    program = dm.load_program(write_program(tmp_path / "p.py"))
    model = build(program)
    batch = program.task.sample(batch_rng(0, 0), 12)
    grads = jax.jit(_gradients, static_argnums=(1, 3))
    (total, metrics), whole = grads(model, program.task, batch, None)
    (total_c, metrics_c), chunked = grads(model, program.task, batch, 4)
    np.testing.assert_allclose(total_c, total, rtol=1e-5)
    assert metrics.keys() == metrics_c.keys()
    for k in metrics:
        np.testing.assert_allclose(metrics_c[k], metrics[k], rtol=1e-5, atol=1e-6)
    whole, chunked = jax.tree.leaves(whole), jax.tree.leaves(chunked)
    assert len(whole) == len(chunked) > 0
    for a, b in zip(whole, chunked, strict=True):
        np.testing.assert_allclose(b, a, atol=1e-5 * float(jnp.max(jnp.abs(a))) + 1e-9)


def test_the_train_step_takes_in_loop_weight_gradients_after_the_scan_with_the_same_result(
    tmp_path,
):
    """The train step's gradient (probes, weight gradients assembled after the backward scan)
    equals plain autodiff through the model, on a padded batch of mixed lengths."""
    from difmachine.training import _value_and_grad, loss_and_metrics

    program = dm.load_program(write_program(tmp_path / "p.py"))
    model, task = build(program), program.task
    batch = task.sample(batch_rng(0, 0), 6)
    assert model.probes(batch.inputs.shape[1]) is not None
    plain_fn = eqx.filter_jit(eqx.filter_value_and_grad(loss_and_metrics, has_aux=True))
    (total, metrics), plain = plain_fn(model, task, batch)
    (total_h, metrics_h), hoisted = eqx.filter_jit(_value_and_grad)(model, task, batch)
    np.testing.assert_allclose(total_h, total, rtol=1e-6)
    assert metrics_h.keys() == metrics.keys()
    plain, hoisted = plain.params, hoisted.params
    for name in ("W_r", "W_i", "b_i"):
        assert float(jnp.max(jnp.abs(plain[name]))) > 0, name
    testing.assert_trees_close(hoisted, plain, rtol=1e-4, atol=1e-6, what="hoisted vs plain")


def test_machines_with_inner_steps_take_plain_autodiff():
    act = dm.compile(
        dm.Machine(dm.LSTM(4), halting=dm.ACT(max_ponder=3)), 2, 1, key=jax.random.PRNGKey(0)
    )
    hops = dm.compile(dm.Machine(dm.LSTM(4), halting=dm.Fixed(2)), 2, 1, key=jax.random.PRNGKey(0))
    assert act.probes(5) is None and hops.probes(5) is None
    probes = {"z": jnp.zeros((5, 16)), "iface": jnp.zeros((5, 0))}
    with pytest.raises(ValueError, match="once per input step"):
        act(jnp.zeros((5, 2)), probes=probes)


# -- checkpoints -------------------------------------------------------------------------------


def _tree():
    return {"w": jnp.arange(6.0, dtype=jnp.float32).reshape(2, 3), "b": jnp.ones(3, jnp.float32)}


def test_checkpoint_round_trip(tmp_path):
    path = tmp_path / "c.eqx"
    checkpoint.save(path, _tree(), {"step": 3, "fingerprint": "abc"})
    like = jax.tree.map(jnp.zeros_like, _tree())
    tree, header = checkpoint.load(path, like, "abc")
    testing.assert_trees_close(tree, _tree(), rtol=0, atol=0)
    assert header["step"] == 3


def test_a_crash_while_saving_keeps_the_last_good_checkpoint(tmp_path, monkeypatch):
    path = tmp_path / "c.eqx"
    checkpoint.save(path, _tree(), {"step": 1, "fingerprint": "abc"})
    before = path.read_bytes()

    def crash(*args):
        raise OSError("disk full")

    monkeypatch.setattr(os, "replace", crash)
    with pytest.raises(OSError):
        checkpoint.save(
            path, jax.tree.map(lambda x: x + 1, _tree()), {"step": 2, "fingerprint": "abc"}
        )
    assert path.read_bytes() == before
    assert sorted(p.name for p in tmp_path.iterdir()) == ["c.eqx"]  # no temporary left behind


@pytest.mark.parametrize(
    "damage, message",
    [
        (lambda b: b"garbage\n" + b, "not a difmachine checkpoint"),
        (lambda b: b[: len(b) - 7], "corrupt \\(checksum mismatch\\)"),
        (lambda b: b + b"extra", "corrupt \\(checksum mismatch\\)"),
        (lambda b: b"", "not a difmachine checkpoint"),
    ],
    ids=["header", "truncated", "trailing", "empty"],
)
def test_damaged_checkpoints_are_reported(tmp_path, damage, message):
    path = tmp_path / "c.eqx"
    checkpoint.save(path, _tree(), {"step": 1, "fingerprint": "abc"})
    path.write_bytes(damage(path.read_bytes()))
    with pytest.raises(dm.CheckpointError, match=message):
        checkpoint.load(path, _tree(), "abc")


def test_checkpoint_from_a_different_program_is_refused(tmp_path):
    program = dm.load_program(write_program(tmp_path / "p.py", steps=2))
    other = dm.load_program(write_program(tmp_path / "o.py", steps=2, text=OTHER))
    train(program, tmp_path / "run", console=quiet())
    with pytest.raises(dm.CheckpointError, match="holds another machine"):
        train(other, tmp_path / "run", resume=True, console=quiet())


@pytest.mark.parametrize("chunk", [0, -4, 2.5, True])
def test_a_bad_chunk_is_refused(tmp_path, chunk):
    program = dm.load_program(write_program(tmp_path / "p.py"))
    with pytest.raises(dm.ProgramError, match="chunk must be a positive integer or None"):
        program.replace(chunk=chunk)


@settings(max_examples=30, deadline=None)
@given(
    a=st.sampled_from([0.0, 0.25, 0.5]),
    b=st.sampled_from([0.0, 0.25, 0.5]),
    la=st.floats(0, 10),
    lb=st.floats(0, 10),
    sa=st.sampled_from([0.0, 0.5]),
    sb=st.sampled_from([0.0, 0.5]),
    sla=st.sampled_from([0.1, 0.2]),
    slb=st.sampled_from([0.1, 0.2]),
)
def test_the_best_checkpoint_is_the_lower_metric_then_the_lower_loss(
    a, b, la, lb, sa, sb, sla, slb
):
    new, old = {"errors": a, "loss": la}, {"errors": b, "loss": lb}
    assert better(new, None, "errors") and better(new, {"loss": 1.0}, "errors")
    assert better(new, old, "errors") == ((a, la) < (b, lb))
    assert not better(old, old, "errors")  # an equal evaluation does not replace the best
    # with a selection length: its main metric, the mix's, its loss, the mix's
    new = {**new, "select/errors": sa, "select/loss": sla}
    old = {**old, "select/errors": sb, "select/loss": slb}
    assert better(new, old, "errors", select=True) == ((sa, a, sla, la) < (sb, b, slb, lb))
    assert better(new, {"errors": 0.0}, "errors", select=True)  # a best from before selecting


def test_select_length_picks_the_best_checkpoint_on_longer_sequences(tmp_path, monkeypatch):
    """With Program(select_length=L) each evaluation also scores length L, logs it as select/*,
    and best.eqx follows it, even where the training mix ties."""
    import difmachine.training as training

    program = dm.load_program(write_program(tmp_path / "p.py", steps=20))
    program = program.replace(select_length=5)
    mix, longer = {10: 0.0, 20: 0.0}, {10: 0.25, 20: 0.5}
    real = training.evaluate

    def scripted(model, task, **kwargs):
        step = kwargs["seed"] - program.seed
        scores = mix if kwargs.get("length") is None else longer
        assert kwargs.get("length") in (None, 5)
        return {**real(model, task, **kwargs), task.main_metric: scores[step]}

    monkeypatch.setattr(training, "evaluate", scripted)
    out = io.StringIO()
    train(program, tmp_path / "run", console=Console(file=out, width=200))
    header = checkpoint.read_header(tmp_path / "run" / training.BEST)
    main = program.task.main_metric
    assert header["step"] == 10 and header["eval"][f"select/{main}"] == 0.25
    rows = [json.loads(line) for line in (tmp_path / "run" / "metrics.jsonl").open()]
    assert [r[f"select/{main}"] for r in rows if f"select/{main}" in r] == [0.25, 0.5]
    assert "length 5" in out.getvalue() and "worse than step 10's" in out.getvalue()
    with pytest.raises(dm.ProgramError, match="select_length must be a positive integer"):
        program.replace(select_length=0)


LINEAR_START = """
import optax
import difmachine as dm

task = dm.Babi(task=1, max_sentences=4, empty=0.5)
story = dm.StoryEmbedding(vocab=task.input_size, dim=8, sentences=8, words=task.words)
program = dm.Program(
    machine=dm.Machine(
        dm.RNN(8, activation="identity"),
        {{"story": dm.Attention("dot", story=story, linear_start=3)}},
        halting=dm.Fixed(2),
    ),
    task=task,
    optimizer=optax.adam(1e-2),
    batch_size=4,
    steps={steps},
    eval_every=10,
    eval_samples=8,
    checkpoint_every=2,
    log_every=2,
)
"""


def test_linear_start_switches_form_mid_run_and_resumes_exactly(tmp_path):
    """The softmax comes back at step 3: training carries the optimizer's state across the
    change of form, a run resumed before it ends where an uninterrupted one does, and a
    checkpoint loads in the form of its step."""
    source = write_program(tmp_path / "p.py", steps=6, text=LINEAR_START)
    full = dm.load_program(source)
    train(full, tmp_path / "a", console=quiet())
    train(full.replace(steps=2), tmp_path / "b", console=quiet())
    _, early, _ = dm.load_run(tmp_path / "b", program_file=source)
    assert early.machine.devices[0].linear
    train(full, tmp_path / "b", resume=True, console=quiet())
    a, opt_a, _ = params_of(tmp_path / "a", full)
    b, opt_b, _ = params_of(tmp_path / "b", full)
    testing.assert_trees_close((a, opt_a), (b, opt_b), rtol=0, atol=0)
    _, late, _ = dm.load_run(tmp_path / "b", program_file=source)
    assert not late.machine.devices[0].linear
    assert late.at_step(6) is late
