import jax
import jax.numpy as jnp
import numpy as np
import pytest

import difmachine as dm
from difmachine import testing
from difmachine.protocol import activate


def ntm_invariants(final, reads, traces):
    for key in ("read_weights", "write_weights"):
        if key in traces:
            w = np.asarray(traces[key])
            assert np.all(w >= -1e-7), f"{key} has negative entries"
            np.testing.assert_allclose(w.sum(-1), 1.0, atol=1e-5, err_msg=f"{key} must sum to 1")
    np.testing.assert_allclose(np.asarray(final["read_w"]).sum(-1), 1.0, atol=1e-5)


@pytest.mark.parametrize(
    "device",
    [
        dm.NTMMemory(slots=8, width=4),
        dm.NTMMemory(slots=6, width=3, read_heads=2, write_heads=2, shifts=(-2, -1, 0, 1, 2)),
        dm.NTMMemory(slots=5, width=2, read_heads=1, write_heads=0, memory_init="learned"),
    ],
    ids=["1r1w", "2r2w-5shifts", "readonly-learned"],
)
def test_ntm_memory_protocol(device):
    testing.check_device(device, invariants=ntm_invariants)


def test_interface_fields_and_read_size():
    dev = dm.NTMMemory(slots=16, width=5, read_heads=2, write_heads=1, shifts=(-1, 0, 1))
    fields = dev.interface()
    assert fields["read_key"].shape == (2, 5) and fields["read_key"].activation == "tanh"
    assert fields["write_shift"].shape == (1, 3) and fields["write_shift"].activation == "softmax"
    assert fields["read_gamma"].activation == "oneplus"
    assert fields["erase"].activation == "sigmoid" and fields["add"].activation == "tanh"
    assert dev.read_size == 10


def test_constant_memory_init_is_float32_and_small():
    dev = dm.NTMMemory(slots=4, width=3)
    state = dev.init_state(dev.init_params(jax.random.PRNGKey(0)))
    assert state["memory"].dtype == jnp.float32
    assert not state["memory"].weak_type
    np.testing.assert_allclose(state["memory"], 1e-6)


def _iface(dev, raw):
    fields = dev.interface()
    return {n: activate(f.activation, jnp.asarray(raw[n], jnp.float32)) for n, f in fields.items()}


def test_reads_see_this_steps_write():
    """A write head focused on slot 0 writes a pattern; the read head at slot 0 reads it back."""
    dev = dm.NTMMemory(slots=4, width=3)
    params = dev.init_params(jax.random.PRNGKey(0))
    state = dev.init_state(params)
    big = 50.0
    stay = [[-big, big, -big]]  # shift distribution one-hot on offset 0
    raw = {
        "write_key": [[0.0, 0.0, 0.0]],
        "write_beta": [0.0],
        "write_gate": [-big],
        "write_shift": stay,
        "write_gamma": [0.0],
        "erase": [[big] * 3],
        "add": [[big, -big, big]],
        "read_key": [[0.0, 0.0, 0.0]],
        "read_beta": [0.0],
        "read_gate": [-big],
        "read_shift": stay,
        "read_gamma": [big],
    }
    read, new_state, _ = dev.step(params, state, _iface(dev, raw))
    np.testing.assert_allclose(read, [1.0, -1.0, 1.0], atol=1e-3)
    np.testing.assert_allclose(new_state["memory"][:, 1:], 1e-6, atol=1e-6)


def test_write_heads_erase_before_add():
    """Two heads on the same slot: one erases fully, the other adds; the add survives."""
    dev = dm.NTMMemory(slots=3, width=2, read_heads=1, write_heads=2)
    params = dev.init_params(jax.random.PRNGKey(0))
    state = dev.init_state(params)
    big = 50.0
    raw = {
        "write_key": [[0, 0], [0, 0]],
        "write_beta": [0, 0],
        "write_gate": [-big, -big],
        "write_shift": [[-big, big, -big]] * 2,
        "write_gamma": [big, big],
        "erase": [[big, big], [-big, -big]],
        "add": [[-big, -big], [big, big]],
        "read_key": [[0, 0]],
        "read_beta": [0],
        "read_gate": [-big],
        "read_shift": [[-big, big, -big]],
        "read_gamma": [big],
    }
    read, _, _ = dev.step(params, state, _iface(dev, raw))
    # head 0 erases and adds -1, head 1 adds +1: erase-all-then-add-all gives -1 + 1 = 0
    np.testing.assert_allclose(read, [0.0, 0.0], atol=1e-3)


@pytest.mark.parametrize(
    "kwargs, message",
    [
        ({"slots": 0, "width": 4}, "slots must be a positive integer"),
        ({"slots": 8, "width": -1}, "width must be a positive integer"),
        ({"slots": 8, "width": 4, "read_heads": -1}, "read_heads must be a non-negative"),
        ({"slots": 8, "width": 4, "read_heads": 0, "write_heads": 0}, "at least one head"),
        ({"slots": 8, "width": 4, "shifts": (-1, 1)}, "must contain 0"),
        ({"slots": 8, "width": 4, "shifts": (0, 0)}, "distinct"),
        ({"slots": 2, "width": 4, "shifts": (-2, 0, 2)}, "smaller in size than slots"),
        ({"slots": 8, "width": 4, "memory_init": "random"}, "memory_init must be one of"),
    ],
)
def test_invalid_specs_say_what_to_fix(kwargs, message):
    with pytest.raises(ValueError, match=message):
        dm.NTMMemory(**kwargs)
