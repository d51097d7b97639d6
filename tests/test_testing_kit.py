"""The testing kit works outside this repository: no project conftest, hypothesis's own
defaults (its 200 ms deadline included), a device written by a user in a directory of their own."""

import os
import re
import subprocess
import sys
import textwrap
from pathlib import Path

import difmachine

DEVICE = '''
import equinox as eqx
import jax.numpy as jnp
import difmachine as dm


class Accumulator(dm.AbstractDevice):
    """A leaky sum of ``width`` written values: ``v <- (1 - g) v + g w``; reads ``v``."""

    width: int = eqx.field(static=True)
    broken: bool = eqx.field(static=True, default=False)

    def interface(self):
        return {"write": dm.Field((self.width,), "tanh"), "gate": dm.Field((1,), "sigmoid")}

    @property
    def read_size(self):
        return self.width

    def init_params(self, key):
        return {"decay": jnp.full((self.width,), 0.9, jnp.float32)}

    def init_state(self, params, context=None):
        return {"value": jnp.zeros((self.width,), jnp.float32)}

    def step(self, params, state, iface):
        g = iface["gate"]
        value = (1.0 - g) * params["decay"] * state["value"] + g * iface["write"]
        read = value / (value - value) if self.broken else value  # broken: 0 / 0
        return read, {"value": value}, {"gate": g}
'''

TESTS = """
import pytest
from difmachine.testing import PropertyFailed, check_device
from my_device import Accumulator


def test_my_device():
    check_device(Accumulator(width=4))


def test_a_broken_device_says_which_property_broke():
    with pytest.raises(PropertyFailed) as e:
        check_device(Accumulator(width=4, broken=True), max_examples=3)
    print("MESSAGE:", str(e.value).splitlines()[0])
"""


REPO = Path(difmachine.__file__).resolve().parent.parent


def readme_files() -> dict[str, str]:
    """The README's "Your own device" code blocks, by the file name on their first line."""
    blocks = re.findall(r"```python\n# (\S+\.py)\n(.*?)```", (REPO / "README.md").read_text(), re.S)
    return {name: f"# {name}\n{body}" for name, body in blocks}


def test_the_readme_device_is_proven_trained_evaluated_and_traced_outside_the_repo(tmp_path):
    """The README's device, program and test, written into a directory of one's own (no
    project conftest, hypothesis's own defaults): the kit proves it (and names the property a
    broken device breaks), `difmachine run` trains it, and the run evaluates and traces from
    another directory once the module beside the program is gone."""
    project, elsewhere = tmp_path / "project", tmp_path / "elsewhere"
    project.mkdir()
    elsewhere.mkdir()
    files = readme_files()
    assert {"my_memory.py", "my_program.py", "test_my_memory.py"} <= set(files), sorted(files)
    for name, text in files.items():
        (project / name).write_text(text)
    (project / "my_device.py").write_text(textwrap.dedent(DEVICE))
    (project / "test_my_device.py").write_text(textwrap.dedent(TESTS))
    env = {**os.environ, "PYTHONPATH": str(REPO)}  # difmachine itself, as if installed
    env.pop("HYPOTHESIS_PROFILE", None)

    def run(*args, cwd):
        result = subprocess.run(
            [sys.executable, *map(str, args)],
            cwd=cwd,
            env=env,
            capture_output=True,
            text=True,
            timeout=600,
        )
        out = result.stdout + result.stderr
        assert result.returncode == 0, out
        return out

    out = run("-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", ".", cwd=project)
    assert "3 passed" in out and "conftest" not in out, out
    assert (
        "MESSAGE: Accumulator: property 'outputs are finite' broke: "
        "batch item 0: leaf ['reads'] is nan at (0, 0)"
    ) in out, out

    out = run(
        "-m", "difmachine", "run", "my_program.py", "--steps", "2", "--batch-size", "2", cwd=project
    )
    assert "done: step 2" in out, out
    (project / "my_memory.py").unlink()  # the run directory carries its own copy
    run_dir = project / "runs" / "my_program"
    out = run("-m", "difmachine", "eval", run_dir, "--length", "3", "--samples", "2", cwd=elsewhere)
    assert "bit_errors" in out, out
    out = run("-m", "difmachine", "trace", run_dir, "--length", "3", cwd=elsewhere)
    assert "write weighting" in out and "read weighting" in out, out
