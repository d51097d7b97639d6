"""The language is open: a machine kind and a halting policy written in one file (here, a program
file this test writes) run through Program, training, eval and trace with no edit elsewhere."""

import io
import textwrap

import numpy as np
from rich.console import Console
from typer.testing import CliRunner

import difmachine as dm
from difmachine.cli import app
from difmachine.rundir import load_run
from difmachine.trace import render, run_example
from difmachine.training import evaluate, train

SOURCE = textwrap.dedent(
    '''
    """A new halting policy and a new machine kind, defined here and nowhere else."""
    from typing import ClassVar

    import equinox as eqx
    import jax
    import jax.numpy as jnp
    import optax

    import difmachine as dm


    class Twice(dm.AbstractHalting):
        """Runs the cell twice per input step and keeps the mean of the two outputs; reports the
        statistic "gap" (how far apart they were) and penalises it by `weight`."""

        statistics: ClassVar[tuple[str, ...]] = ("gap",)
        weight: float = eqx.field(static=True, default=0.1)

        @property
        def inner_steps(self):
            return 2

        def run(self, params, cell, carry, z):
            carry, first = cell(carry, z)
            carry, second = cell(carry, z)
            out = jax.tree.map(lambda a, b: (a + b) / 2, first, second)
            gap = jnp.mean(jnp.abs(first.h - second.h))
            return dm.Halted(carry, out, losses={"gap_cost": self.weight * gap},
                             stats={"gap": gap}, trace={"gap": gap})

        def trace_spec(self):
            return {"gap": dm.TraceField("scalars", "inner-step gap")}


    class Window(dm.AbstractMachine):
        """A feed-forward machine kind: each output sees a window of the last `width` inputs."""

        width: int = eqx.field(static=True, default=3)
        hidden: int = eqx.field(static=True, default=16)

        def compile(self, input_size, output_size, *, key, remat=False, contexts=None):
            k1, k2 = jax.random.split(key)
            params = {
                "W": jax.random.normal(k1, (self.width * input_size, self.hidden)) * 0.3,
                "V": jax.random.normal(k2, (self.hidden, output_size)) * 0.3,
            }
            return CompiledWindow(self, input_size, output_size, params)


    class CompiledWindow(dm.AbstractCompiledMachine):
        spec: Window
        input_size: int = eqx.field(static=True)
        output_size: int = eqx.field(static=True)
        params: dict

        def __call__(self, xs, mask=None, *, trace=False, context=None, probes=None):
            T = xs.shape[0]
            padded = jnp.concatenate([jnp.zeros((self.spec.width - 1, xs.shape[1])), xs])
            windows = jnp.stack([padded[i : i + T] for i in range(self.spec.width)], axis=1)
            h = jnp.tanh(windows.reshape(T, -1) @ self.params["W"])
            aux = {"trace": {"window": {"hidden": h[:, None, :]}} if trace else {},
                   "losses": {}, "stats": {}}
            return h @ self.params["V"], aux

        def generate(self, first, steps, feedback, stop=None, *, trace=False, context=None):
            raise NotImplementedError("Window decodes nothing")

        def param_counts(self):
            return {"window": sum(x.size for x in jax.tree.leaves(self.params))}

        def components(self):
            return [dm.Component("window", self.spec)]

        def summary(self):
            return [("window", ["width", "hidden"], [[str(self.spec.width), str(self.spec.hidden)]])]

    Window.trace_spec = lambda self: {"hidden": dm.TraceField("heatmap", "hidden units", axis="unit")}

    kind = dm.param("kind", "window")
    task = dm.Copy(bits=3, min_length=1, max_length=3)
    if kind == "window":
        machine = Window()
    else:
        machine = dm.Machine(dm.LSTM(8), dm.NTMMemory(slots=6, width=4), halting=Twice())
    program = dm.Program(
        machine=machine, task=task, optimizer=optax.adam(1e-2), batch_size=4, steps=6,
        eval_every=3, eval_samples=8, checkpoint_every=3, log_every=2,
    )
    '''
)


def _quiet():
    return Console(file=io.StringIO(), width=100)


def _roundtrip(tmp_path, kind):
    source = tmp_path / f"{kind}.py"
    source.write_text(SOURCE)
    program = dm.load_program(source, {"kind": kind})
    run_dir = tmp_path / f"run_{kind}"
    result = train(program, run_dir, program_file=source, console=_quiet(), name=kind)
    assert result.step == 6 and np.isfinite(result.metrics["loss"])
    loaded, model, header = load_run(run_dir, {"kind": kind})
    assert header["step"] == 6
    metrics = evaluate(model, loaded.task, samples=8, seed=1)
    assert np.isfinite(metrics["bit_errors"])
    example = run_example(model, loaded.task, seed=0)
    console = _quiet()
    console.print(render(example, model))
    return result, console.file.getvalue(), run_dir


def test_a_new_machine_kind_trains_evaluates_and_traces(tmp_path):
    _, text, run_dir = _roundtrip(tmp_path, "window")
    assert "hidden units" in text
    runner = CliRunner()
    shown = runner.invoke(app, ["show", str(tmp_path / "window.py")])
    assert shown.exit_code == 0 and "window" in shown.output, shown.output
    traced = runner.invoke(app, ["trace", str(run_dir), "--set", "kind=window"])
    assert traced.exit_code == 0 and "hidden units" in traced.output, traced.output


def test_a_new_halting_policy_trains_reports_its_statistic_and_traces(tmp_path):
    result, text, run_dir = _roundtrip(tmp_path, "twice")
    assert "gap" in result.metrics and "gap_cost" in result.metrics
    assert "inner-step gap" in text
    evaluated = CliRunner().invoke(app, ["eval", str(run_dir), "--samples", "8"])
    assert evaluated.exit_code == 0 and "gap" in evaluated.output, evaluated.output
