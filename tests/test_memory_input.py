"""MemoryInput: the input phase handed to the machine whole, the episode only the answer."""

import jax.numpy as jnp
import numpy as np
import optax
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from rich.console import Console

import difmachine as dm
from difmachine.errors import ProgramError

TASKS = {
    "reverse": dm.Reverse(symbols=4, min_length=1, max_length=5),
    "search": dm.SearchPairs(keys=16, symbols=4, min_length=2, max_length=4),
    "add": dm.BinaryAddition(min_bits=1, max_bits=4, answer_after=True),
}


@settings(max_examples=8, deadline=None)
@given(
    name=st.sampled_from(sorted(TASKS)),
    seed=st.integers(0, 2**16),
    fixed=st.booleans(),
    cue=st.integers(0, 3),
)
def test_the_input_phase_moves_to_the_context_and_the_answers_to_step_0(name, seed, fixed, cue):
    """... and with ``cue``, its last ``cue`` steps are also the episode's first inputs (as many
    as the answer has steps), every other input blank."""
    task = TASKS[name]
    length = 3 if fixed else None
    plain = task.sample(np.random.default_rng(seed), 6, length)
    moved = dm.MemoryInput(task, cue=cue).sample(np.random.default_rng(seed), 6, length)
    xs, x_mask = moved.context["inputs"]
    T = plain.inputs.shape[1]
    # the task's padded length, whatever the batch holds: a run compiles once
    assert moved.inputs.shape == plain.inputs.shape and xs.shape == plain.inputs.shape
    for b in range(6):
        start = int(np.argmax(plain.loss_mask[b] > 0))
        end = int(plain.mask[b].sum())
        k = min(cue, start, end - start)  # the controller sees only the cue
        np.testing.assert_array_equal(moved.inputs[b, :k], plain.inputs[b, start - k : start])
        assert not moved.inputs[b, k:].any()
        np.testing.assert_array_equal(xs[b, :start], plain.inputs[b, :start])
        np.testing.assert_array_equal(x_mask[b], np.arange(T) < start)
        assert not xs[b, start:].any()
        n = end - start
        np.testing.assert_array_equal(moved.targets[b, :n], plain.targets[b, start:end])
        np.testing.assert_array_equal(moved.loss_mask[b, :n], plain.loss_mask[b, start:end])
        np.testing.assert_array_equal(moved.mask[b], np.arange(T) < n)
        assert not moved.targets[b, n:].any() and not moved.loss_mask[b, n:].any()


def test_memory_input_keeps_the_tasks_scoring_and_names():
    task = dm.MemoryInput(TASKS["reverse"])
    assert task.contexts == {"inputs": 6} and task.input_size == 6 and task.output_size == 5
    assert task.main_metric == "errors" and task.length_name == "length"
    adaptive = dm.MemoryInput(dm.BinaryAddition(max_bits=6, answer_after=True, adaptive=0.1))
    level = adaptive.curriculum_start()
    assert level is not None and isinstance(adaptive.at_level(level), dm.MemoryInput)
    cued = dm.MemoryInput(dm.BinaryAddition(max_bits=6, answer_after=True, adaptive=0.1), cue=1)
    assert cued.at_level(level).cue == 1 and cued.evaluation_source().cue == 1


def test_memory_input_errors_are_one_line():
    with pytest.raises(dm.DifmachineError, match="inputs end before its first scored step"):
        dm.MemoryInput(dm.AnBn(max_n=4)).sample(np.random.default_rng(0), 2)
    with pytest.raises(dm.DifmachineError, match="wraps a task"):
        dm.MemoryInput("reverse")
    with pytest.raises(dm.DifmachineError, match="cue must be a whole number"):
        dm.MemoryInput(TASKS["search"], cue=-1)
    with pytest.raises(ProgramError, match="HAMMemory\\(input_leaves=True\\)"):
        dm.build(_program(input_leaves=False))


def _program(input_leaves=True, mode="soft"):
    device = dm.HAMMemory(leaves=16, width=4, hidden=8, mode=mode, input_leaves=input_leaves)
    return dm.Program(
        machine=dm.Machine(dm.LSTM(8), {"ham": device}),
        task=dm.MemoryInput(TASKS["reverse"]),
        optimizer=optax.adam(1e-2),
        batch_size=4,
        steps=2,
        eval_every=2,
        eval_samples=4,
        reinforce=dm.Reinforce(credit="to_go") if mode == "hard" else None,
    )


def test_the_device_embeds_the_tasks_input_phase_not_the_blank_episode():
    """The task's context named "inputs" wins over the machine's own input sequence: the
    first output depends on the input phase although every input step is blank."""
    model = dm.build(_program())
    batch = dm.MemoryInput(TASKS["reverse"]).sample(np.random.default_rng(0), 1, 4)
    xs, x_mask = (jnp.asarray(v[0]) for v in batch.context["inputs"])
    inputs, mask = jnp.asarray(batch.inputs[0]), jnp.asarray(batch.mask[0])
    first = [
        model(inputs, mask, context={"inputs": dm.Context(v, x_mask)})[0][0] for v in (xs, -xs)
    ]
    assert not np.allclose(first[0], first[1])


def test_a_hard_ham_trains_on_memory_input_with_reward_to_go(tmp_path):
    result = dm.train(_program(mode="hard"), tmp_path / "run", console=Console(quiet=True))
    assert result.step == 2 and not result.refused
    assert np.isfinite(result.metrics["loss"]) and np.isfinite(result.metrics["reinforce"])
