"""The testing kit works outside this repository: no project conftest, hypothesis's own
defaults (its 200 ms deadline included), a device written by a user in a directory of their own."""

import os
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


def test_check_device_from_a_directory_of_ones_own(tmp_path: Path):
    (tmp_path / "my_device.py").write_text(textwrap.dedent(DEVICE))
    (tmp_path / "test_my_device.py").write_text(textwrap.dedent(TESTS))
    repo = str(Path(difmachine.__file__).resolve().parent.parent)
    env = {**os.environ, "PYTHONPATH": os.pathsep.join([repo, str(tmp_path)])}
    env.pop("HYPOTHESIS_PROFILE", None)
    result = subprocess.run(
        [sys.executable, "-m", "pytest", "-q", "-s", "-p", "no:cacheprovider", str(tmp_path)],
        cwd=tmp_path,
        env=env,
        capture_output=True,
        text=True,
        timeout=600,
    )
    out = result.stdout + result.stderr
    assert result.returncode == 0, out
    assert "2 passed" in out, out
    assert "conftest" not in out
    assert (
        "MESSAGE: Accumulator: property 'outputs are finite' broke: "
        "batch item 0: leaf ['reads'] is nan at (0, 0)"
    ) in out, out
