"""Every shipped program loads and builds; each machine family trains a couple of steps in one
program's smoke run, and programs differing from it only in the task trace a training step and an
evaluation step (`pytest -m slow` trains every program)."""

import os
from pathlib import Path

import equinox as eqx
import jax
import numpy as np
import pytest
from rich.console import Console

import difmachine as dm
from difmachine.stochastic import sample_key
from difmachine.training import make_eval_step, make_train_step, train

PROGRAMS = sorted((Path(__file__).parent.parent / "programs").glob("*.py"))


def test_there_are_programs():
    assert {p.stem for p in PROGRAMS} >= {"ntm_copy", "lstm_copy", "ntm_repeat_copy"}


# families whose own test file already trains, evaluates and traces a program through the CLI
# (tests/test_neural_gpu.py): their smoke runs here are slow (a 41-position grid) and add nothing
COVERED = {"neural_gpu_add", "neural_gpu_mul"}
# ham_reverse's machine on other tasks (tests/test_tasks_algorithms.py tests the tasks): their
# smoke runs (about 20 s each, compiling the hard HAM's tree) train nothing new, so here they
# are built and given a batch; `pytest -m slow` trains them too
SAME_MACHINE = {"ham_add", "ham_merge", "ham_search", "ham_sort"}
# the improved Neural GPU: its options are tested cell by cell in tests/test_neural_gpu.py and the
# machine kind trains through the CLI there; a smoke run would compile one step per length
SAME_MACHINE |= {"dngpu_add", "dngpu_mul", "dngpu_reverse"}
# the NTM in the paper's priority-sort size (5 heads, 2x100) and the NTM under ACT: ntm_copy's
# smoke run trains the NTM, act_parity's ACT, tests/test_halting.py checks an NTM under ACT
# (gradients, padding, vmap) and tests/test_tasks_graves.py the priority sort task; their smoke
# runs took 14 s and 10 s in CI
SAME_MACHINE |= {"ntm_priority_sort", "ntm_act_copy"}
# the LSTM baselines: a device-free Machine trains in lstm_copy's smoke run, and each of these
# tasks trains in its NTM or DNC program's, so here they are built and given a batch (keeps the
# suite under 10 minutes on 2 cores)
SAME_MACHINE |= {
    "lstm_associative_recall",
    "lstm_babi",
    "lstm_binary_addition",
    "lstm_copy_symbols",
    "lstm_graph_traversal",
    "lstm_repeat_copy",
    "lstm_reverse",
}
# one smoke run trains each machine family (ntm_copy, dnc_copy, sparse_copy, seq2seq_reverse,
# neural_programmer_arith, data_reverse_bits); the family's other programs differ in the task,
# and a task's batches are tested in tests/test_tasks*.py: here they trace a training step and
# an evaluation step on a real batch (every shape and dtype checked, nothing compiled), 0.5-3 s
# each where their smoke runs took 5-9 s in CI
SAME_MACHINE |= {
    "data_svo_sov",
    "dnc_associative_recall",
    "dnc_babi",
    "dnc_graph_traversal",
    "dnc_repeat_copy",
    "neural_programmer_table",
    "ntm_associative_recall",
    "ntm_babi",
    "ntm_binary_addition",
    "ntm_graph_traversal",
    "ntm_repeat_copy",
    "seq2seq_addition",
    "seq2seq_dates",
    "sparse_associative_recall",
}


@pytest.mark.parametrize(
    "path",
    [
        pytest.param(p, marks=pytest.mark.slow) if p.stem in COVERED | SAME_MACHINE else p
        for p in PROGRAMS
    ],
    ids=lambda p: p.stem,
)
def test_program_trains_a_few_steps(path, tmp_path):
    program = dm.load_program(path).replace(steps=2, batch_size=2, eval_samples=2, eval_every=2)
    result = train(program, tmp_path / "run", console=Console(file=open(os.devnull, "w")))
    assert result.step == 2 and not result.interrupted
    assert np.isfinite(result.metrics["loss"])
    assert (tmp_path / "run" / "checkpoint.eqx").exists()


@pytest.mark.parametrize("name", sorted(SAME_MACHINE))
def test_programs_on_a_tested_machine_build_and_trace_a_step(name):
    program = dm.load_program(Path(__file__).parent.parent / "programs" / f"{name}.py")
    model = dm.build(program)
    batch = program.task.sample(np.random.default_rng(0), 2)
    assert batch.inputs.shape[-1] == program.task.input_size
    assert model.param_counts()
    task, optimizer = program.task, program.optimizer
    key = sample_key(0, 0) if model.stochastic() else None  # as training passes it
    opt_state = optimizer.init(eqx.filter(model, eqx.is_array))
    step = make_train_step(task, optimizer, program.chunk, program.reinforce)
    new_model, _, metrics = jax.eval_shape(step, model, opt_state, batch, key)
    assert metrics["loss"].shape == () and metrics["loss"].dtype == np.float32
    assert jax.tree.structure(new_model) == jax.tree.structure(model)
    metrics = jax.eval_shape(make_eval_step(task), model, batch, key)
    assert task.main_metric in metrics, sorted(metrics)
