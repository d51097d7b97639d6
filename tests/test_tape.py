"""RL-NTM tapes: discrete heads over an input tape and a memory tape, and the tape task."""

import functools
import json
import textwrap

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.devices.tape import move_head
from difmachine.tasks import Context
from difmachine.testing import check_device


@settings(max_examples=10, deadline=None)
@given(
    position=st.integers(0, 5),
    logits=st.lists(st.floats(-3, 3, width=32, allow_subnormal=False), min_size=3, max_size=3),
)
def test_greedy_move_is_the_likeliest_and_stays_on_the_tape(position, logits):
    new, choice = move_head(jnp.int32(position), jnp.asarray(logits, jnp.float32), (-1, 0, 1), 6)
    expected = min(max(position + (-1, 0, 1)[int(np.argmax(np.float32(logits)))], 0), 5)
    assert int(new) == expected and float(choice.log_prob) <= 0


def test_input_tape_reads_the_cell_under_the_head():
    tape = Context(np.eye(4, dtype=np.float32)[[2, 0, 3]], np.array([1, 1, 0], np.float32))
    device = dm.InputTape(width=4)
    state = device.init_state({}, tape)
    right = {"move": jnp.array([0.0, 0.0, 5.0])}
    reads = []
    for _ in range(3):
        out = device.sample_step({}, state, right, None)
        state = out.state
        reads.append(np.asarray(out.read))
    np.testing.assert_array_equal(reads[0], np.eye(4)[0])  # moved to cell 1
    np.testing.assert_array_equal(reads[1], np.zeros(4))  # cell 2 is padding
    assert int(state["position"]) == 2  # clipped at the tape's end


def test_the_first_step_reads_the_first_cell_and_other_devices_start_at_zero():
    """Before it first moves, the input head is over cell 0, and the controller's first input
    holds it (the paper's controller sees the cell under the head, then moves); a device
    without a first read contributes zeros."""
    tape = Context(np.eye(4, dtype=np.float32)[[2, 0, 3]], np.array([1, 1, 0], np.float32))
    device = dm.InputTape(width=4)
    np.testing.assert_array_equal(device.first_read({}, device.init_state({}, tape)), np.eye(4)[2])
    machine = dm.Machine(
        controller=dm.LSTM(4),
        devices={"memory": dm.MemoryTape(cells=3, width=2), "input": device},
    )
    compiled = machine.compile(1, 2, key=jax.random.key(0))
    _, _, reads = compiled.init_carry({"tape": tape})
    np.testing.assert_array_equal(reads, np.concatenate([np.zeros(2), np.eye(4)[2]]))


def test_check_devices():
    tape = Context(np.eye(3, dtype=np.float32)[[0, 2, 1, 1]], np.ones(4, np.float32))
    check_device(dm.InputTape(width=3), context=tape, steps=3, batch=2, max_examples=3)
    check_device(dm.MemoryTape(cells=5, width=2), steps=3, batch=2, max_examples=3)


def _decode(task, batch, b):
    """``(count, source, scored classes)`` of example ``b``, read back from its tape."""
    tape = batch.context["tape"]
    cells = np.argmax(tape.values[b], axis=-1)[: int(tape.mask[b].sum())]
    assert cells[-1] == task.symbols  # the end marker
    count = None
    if task.transform == "repeat_copy":
        count, cells = int(cells[0]) - task.symbols, cells[1:]
    per = 2 if task.transform == "duplicate" else 1
    source = cells[:-1:per]
    if per == 2:
        np.testing.assert_array_equal(cells[:-1:2], cells[1::2])
    scored = batch.loss_mask[b] > 0
    return count, source, np.argmax(batch.targets[b][scored], axis=-1)


@settings(max_examples=5, deadline=None)
@given(
    transform=st.sampled_from(["copy", "reverse", "duplicate", "forward_reverse", "repeat_copy"]),
    length=st.integers(1, 6),
    seed=st.integers(0, 10**6),
)
def test_tape_task_layout(transform, length, seed):
    task = dm.TapeTransduce(transform=transform, symbols=5, min_length=1, max_length=6)
    batch = task.sample(np.random.default_rng(seed), 3, length=length)
    for b in range(3):
        count, source, scored = _decode(task, batch, b)
        assert len(source) == length
        expected = {
            "reverse": source[::-1],
            "forward_reverse": source[::-1],
            "repeat_copy": np.tile(source, count or 1),
        }.get(transform, source)
        np.testing.assert_array_equal(scored, [*expected, 5])
        # the flag marks exactly the scored steps, which come after the tape is read
        np.testing.assert_array_equal(batch.inputs[b, :, 0], batch.loss_mask[b])
        first = int(np.argmax(batch.loss_mask[b]))
        assert first == length + (2 if transform == "repeat_copy" else 1)
        steps = int(batch.mask[b].sum())
        assert steps == task.steps(length, count or 1) and batch.loss_mask[b, steps - 1] == 1
        if transform == "repeat_copy":  # the paper's 2 or 3 copies, rewind gaps between them
            assert count in (2, 3) and steps == 2 * count * length + 3
        else:
            assert steps == 2 * length + 2


def test_tape_task_checks_its_settings():
    for bad, match in (
        ({"transform": "sort"}, "transform must be one of"),
        ({"min_repeats": 3, "max_repeats": 2}, "repeats"),
        ({"adaptive": 1.0}, "adaptive must be an error rate"),
        ({"level": 7}, "level must be a difficulty 0..6"),
    ):
        with pytest.raises(ValueError, match=match):
            dm.TapeTransduce(**bad)


def test_the_curriculum_orders_difficulties_and_mixes_in_others_as_the_paper():
    task = dm.TapeTransduce(min_length=1, max_length=10, adaptive=0.2)
    assert task.curriculum_start() == 0
    assert task.next_level(3, 0.1) == 4 and task.next_level(3, 0.3) == 3
    assert task.next_level(9, 0.0) == 9  # the hardest
    assert dm.TapeTransduce(min_length=1, max_length=10).curriculum_start() is None
    lengths = task.at_level(3).sample(np.random.default_rng(0), 2000).context["tape"].mask.sum(1)
    lengths = lengths - 1  # the end marker
    counts = np.bincount(lengths.astype(int), minlength=11)
    assert counts.argmax() == 4  # level 3 = length 4 dominates (~40%) ...
    assert 0.3 < np.mean(lengths == 4) < 0.5 and np.mean(lengths == 5) > 0.1  # ... then D + e
    assert np.mean(lengths < 4) > 0.1 and np.mean(lengths > 7) > 0.02  # easier, and anywhere
    repeat = dm.TapeTransduce(transform="repeat_copy", min_length=1, max_length=3)
    assert repeat.difficulties() == [(2, 1), (2, 2), (2, 3), (3, 1), (3, 2), (3, 3)]
    batch = repeat.at_level(3).sample(np.random.default_rng(1), 400)
    tape = batch.context["tape"]
    counts = np.argmax(tape.values[:, 0], axis=-1) - repeat.symbols
    assert np.mean(counts == 3) > 0.5 and np.mean((counts == 3) & (tape.mask.sum(1) == 3)) > 0.3


ADAPTIVE = textwrap.dedent(
    """
    import optax
    import difmachine as dm

    program = dm.Program(
        machine=dm.Machine(
            controller=dm.LSTM(8),
            devices={"input": dm.InputTape(), "memory": dm.MemoryTape(cells=4, width=2)},
        ),
        task=dm.TapeTransduce(symbols=2, min_length=1, max_length=4, adaptive=0.999),
        optimizer=optax.adam(1e-2),
        batch_size=4, steps=dm.param("steps", 14), eval_every=100, eval_samples=4,
        checkpoint_every=100, log_every=2,
        reinforce=dm.Reinforce(),
    )
    """
)


def test_the_curriculum_moves_up_and_is_logged(tmp_path, monkeypatch):
    """A run's level rises window by window and is logged. (Resuming mid-window is the
    training loop's, not the task's: tests/test_neural_gpu.py checks it once for every task.)"""

    def read_metrics(path):
        return [json.loads(line) for line in path.read_text().splitlines()]

    monkeypatch.setattr(dm.TapeTransduce, "curriculum_window", 4)
    source = tmp_path / "adaptive.py"
    source.write_text(ADAPTIVE)
    whole = tmp_path / "whole"
    result = CliRunner().invoke(app, ["run", str(source), "--out", str(whole)])
    assert result.exit_code == 0, result.output
    rows = [r for r in read_metrics(whole / "metrics.jsonl") if "loss" in r]
    levels = {r["step"]: r["level"] for r in rows}
    assert levels[2] == 0 and levels[4] == 1 and levels[8] == 2 and levels[12] == 2


# -- the output tape ---------------------------------------------------------------------------


def _output_context(cells, steps, padded=None):
    padded = padded or steps
    values = (np.arange(padded) < steps).astype(np.float32)[:, None]
    return Context(values, (np.arange(padded) < cells).astype(np.float32))


@settings(max_examples=10, deadline=None)
@given(
    # float32 without subnormals, which XLA on the CPU flushes to zero (1e-44 > 0 in numpy, not
    # in the device's greedy choice)
    logits=st.lists(st.floats(-4, 4, width=32, allow_subnormal=False), min_size=8, max_size=8),
    cells=st.integers(1, 8),
    seed=st.integers(0, 2**16),
    greedy=st.booleans(),
)
def test_output_tape_writes_each_cell_once_within_the_episode(logits, cells, seed, greedy):
    """The paper's constraints: no write once every cell is written, a forced write when the
    steps left equal the cells left; a free choice is the sample (greedy: logit > 0)."""
    device = dm.OutputTape(classes=3)
    state = device.init_state({}, _output_context(cells, 8))
    key = jax.random.PRNGKey(seed)
    writes = []
    for t, logit in enumerate(np.float32(logits)):
        k = None if greedy else jax.random.fold_in(key, t)
        symbol = jnp.arange(3.0) * t
        out = device.sample_step({}, state, {"symbol": symbol, "write": jnp.array([logit])}, k)
        left, steps_left = cells - sum(writes), 8 - t
        write = int(out.read[-1])
        np.testing.assert_array_equal(out.read[:3], symbol)
        if left == 0 or steps_left <= left:  # forced: no choice, no log-probability
            assert write == (left > 0) and float(out.log_prob) == 0.0
        else:
            assert float(out.log_prob) < 0 and float(out.entropy) > 0
            if greedy:
                assert write == (logit > 0)
        writes.append(write)
        state = out.state
    assert sum(writes) == cells == int(state["position"])


def test_check_output_tape():
    def exactly_its_cells(state, reads, traces):
        assert int(reads[:, -1].sum()) == 2 == int(state["position"])

    check_device(
        dm.OutputTape(classes=3),
        context=_output_context(2, 4),
        steps=4,
        batch=2,
        max_examples=3,
        invariants=exactly_its_cells,
    )
    with pytest.raises(ValueError, match="context 'output'"):
        dm.OutputTape(classes=3).init_state({}, None)


def _scored(task, batch, b, writes, symbols):
    """Outputs of example ``b`` that write ``symbols`` (classes) at steps ``writes``."""
    T, C = batch.inputs.shape[1], task.classes
    ys = np.zeros((T, C + 1), np.float32)
    for t, c in zip(writes, symbols):
        ys[t, c], ys[t, C] = 10.0, 1.0
    loss, metrics = _score(task, jnp.asarray(ys), batch.targets[b], batch.loss_mask[b])
    return float(loss), {k: float(v) for k, v in metrics.items()}


@functools.partial(jax.jit, static_argnums=0)
def _score(task, ys, targets, loss_mask):
    return task.loss(ys, targets, loss_mask), task.metrics(ys, targets, loss_mask)


@settings(max_examples=8, deadline=None)
@given(seed=st.integers(0, 10**6), flaw=st.integers(0, 3))
def test_output_tape_scores_the_kth_write_against_the_kth_target(seed, flaw):
    task = dm.TapeTransduce(
        transform="reverse", symbols=4, min_length=1, max_length=5, output_tape=True
    )
    batch = task.sample(np.random.default_rng(seed), 1)  # padded to 5 symbols: one shape
    steps, cells = int(batch.mask[0].sum()), int(batch.loss_mask[0].sum())
    length = cells - 1
    assert steps == 2 * length + 3 and cells == length + 1
    assert np.all(batch.inputs[0, :, 0] == batch.mask[0])
    ctx = batch.context["output"]
    assert ctx.values[0, :, 0].sum() == steps and ctx.mask[0].sum() == cells
    target = list(np.argmax(batch.targets[0, :cells, : task.classes], axis=-1))
    assert target[-1] == 4
    rng = np.random.default_rng(seed)
    writes = sorted(rng.choice(steps, size=cells, replace=False))  # any steps, in order
    loss, metrics = _scored(task, batch, 0, writes, target)
    assert metrics["errors"] == 0 and metrics["token_accuracy"] == 1 and loss < 0.1
    if flaw == 1:  # a wrong symbol
        wrong = [*target[:-1], (target[-1] + 1) % 5]
        loss, metrics = _scored(task, batch, 0, writes, wrong)
        assert metrics["errors"] == 1
        assert metrics["token_accuracy"] == pytest.approx(1 - 1 / cells)
    elif flaw == 2:  # the last write missing
        loss, metrics = _scored(task, batch, 0, writes[:-1], target[:-1])
        assert metrics["errors"] == 1 and loss >= np.log(5) - 0.1
    elif flaw == 3 and max(writes) + 1 < steps:  # one write too many
        extra = [*writes, max(writes) + 1]
        loss, metrics = _scored(task, batch, 0, extra, [*target, 0])
        assert metrics["errors"] == 1 and metrics["token_accuracy"] == 1 and loss >= np.log(5)


def test_rlntm_machine_runs_and_samples():
    program = dm.load_program("programs/rlntm_copy.py").replace(batch_size=2)
    model = dm.build(program)
    assert model.stochastic()
    batch = program.task.sample(np.random.default_rng(0), 2)
    ctx = jax.tree.map(lambda x: x[0], batch.context)
    run = jax.jit(lambda m, x, mk, c, k: m(x, mk, context=c, key=k, trace=True)[1])
    aux = run(model, batch.inputs[0], batch.mask[0], ctx, jax.random.PRNGKey(0))
    assert np.isfinite(aux["log_prob"]) and float(aux["log_prob"]) < 0
    assert aux["trace"]["input"]["position"].shape == (batch.inputs.shape[1],)


def test_an_output_tape_machine_trains_and_traces(tmp_path):
    import io

    from rich.console import Console

    from difmachine.trace import print_trace, run_example
    from difmachine.training import train

    program = dm.load_program(
        "programs/rlntm_copy.py",
        overrides={"transform": "repeat_copy", "output_tape": "true", "max_length": "3"},
    ).replace(batch_size=2, steps=2, eval_every=2, eval_samples=2)
    assert program.task.output_tape and program.task.transform == "repeat_copy"
    result = train(program, tmp_path / "run", console=Console(file=io.StringIO()))
    assert result.step == 2 and np.isfinite(result.metrics["loss"])
    model = dm.build(program)
    example = run_example(model, program.task, length=2)
    out = io.StringIO()
    print_trace(example, model, Console(file=out, width=120))
    text = out.getvalue()
    assert "target" in text and "output written" in text
    target, output = example.labels["target"], example.labels["output"]
    assert target[-1] == "$" and len(target) in (5, 7)  # 2 or 3 copies of 2 symbols, the end
    assert len(output) == len(target)  # every cell written once


def test_an_output_tape_task_without_an_output_tape_is_a_clear_error():
    """Scored by what an OutputTape writes, the task would otherwise train on nothing."""
    with pytest.raises(
        dm.ProgramError, match=r"no part of the machine reads.*OutputTape\(classes=3\)"
    ):
        dm.Program(
            machine=dm.Machine(controller=dm.LSTM(4), devices={"input": dm.InputTape()}),
            task=dm.TapeTransduce(symbols=2, max_length=3, output_tape=True),
        )
