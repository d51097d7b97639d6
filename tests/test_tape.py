"""RL-NTM tapes: discrete heads over an input tape and a memory tape, and the tape task."""

import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm
from difmachine.devices.tape import move_head
from difmachine.tasks import Context
from difmachine.testing import check_device


@settings(max_examples=10, deadline=None)
@given(position=st.integers(0, 5), logits=st.lists(st.floats(-3, 3), min_size=3, max_size=3))
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


def test_check_devices():
    tape = Context(np.eye(3, dtype=np.float32)[[0, 2, 1, 1]], np.ones(4, np.float32))
    check_device(dm.InputTape(width=3), context=tape, steps=3, batch=2, max_examples=3)
    check_device(dm.MemoryTape(cells=5, width=2), steps=3, batch=2, max_examples=3)


@pytest.mark.parametrize("transform", ["copy", "reverse", "duplicate"])
def test_tape_task_layout(transform):
    task = dm.TapeTransduce(transform=transform, symbols=5, min_length=3, max_length=3)
    batch = task.sample(np.random.default_rng(0), 2)
    tape = batch.context["tape"]
    per = 2 if transform == "duplicate" else 1
    for b in range(2):
        symbols = np.argmax(tape.values[b], axis=-1)[: int(tape.mask[b].sum())]
        assert symbols[-1] == 5 and len(symbols) == 3 * per + 1
        source = symbols[:-1:per]
        target = np.argmax(batch.targets[b], axis=-1)[4:7]
        np.testing.assert_array_equal(target, source[::-1] if transform == "reverse" else source)
        assert batch.loss_mask[b].sum() == 4 and batch.inputs[b, :, 0].sum() == 4


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
