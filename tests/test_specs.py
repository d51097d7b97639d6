"""check_spec: a hyperparameter left non-static is one line naming the class, field and fix;
the protocol's validators of hyperparameters."""

import equinox as eqx
import jax.numpy as jnp
import pytest
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm
from difmachine import testing
from difmachine.errors import SpecError
from difmachine.protocol import Field, check_non_negative
from difmachine.specs import check_spec


class Register(dm.AbstractDevice):
    """A gated register of ``slots`` values (the hyperparameter under test is ``slots``)."""

    slots: int = eqx.field(static=True)

    def interface(self):
        return {"write": Field((self.slots,), "tanh"), "gate": Field((1,), "sigmoid")}

    @property
    def read_size(self):
        return self.slots

    def init_params(self, key):
        return {}

    def init_state(self, params, context=None):
        return {"value": jnp.zeros((self.slots,), jnp.float32)}

    def step(self, params, state, iface):
        g = iface["gate"]
        value = (1.0 - g) * state["value"] + g * iface["write"]
        return value, {"value": value}, {}


class LeakyRegister(Register):
    """The same device with its hyperparameter left non-static (the mistake)."""

    slots: int


def test_sound_specs_pass():
    check_spec(Register(3))
    check_spec(dm.Machine(dm.LSTM(4), [dm.NTMMemory(4, 3), Register(2)], dm.ACT(max_ponder=2)))


def test_a_non_static_hyperparameter_is_one_line_naming_class_field_and_fix():
    with pytest.raises(SpecError) as e:
        check_spec(LeakyRegister(128))
    message = str(e.value)
    assert "\n" not in message
    assert message == (
        "LeakyRegister field 'slots' holds 128, a hyperparameter: "
        "declare it `slots: int = eqx.field(static=True)`"
    )


def test_a_nested_spec_is_found_and_its_place_named():
    machine = dm.Machine(dm.LSTM(4), {"mem": dm.NTMMemory(4, 3), "reg": LeakyRegister(2)})
    with pytest.raises(SpecError, match=r"LeakyRegister field 'slots' \(at Machine.devices\[1\]\)"):
        check_spec(machine)


def test_a_static_list_is_refused_with_the_tuple_to_use():
    class Shifty(Register):
        shifts: list = eqx.field(static=True, default=None)

    with pytest.raises(SpecError, match=r"'shifts' is static but holds \[-1, 0, 1\].*\(-1, 0, 1\)"):
        check_spec(Shifty(2, [-1, 0, 1]))
    with pytest.raises(SpecError, match="expected a spec"):
        check_spec(3)


def test_the_kit_checks_the_spec_first():
    with pytest.raises(SpecError, match="LeakyRegister field 'slots'"):
        testing.check_device(LeakyRegister(3), max_examples=1)


def test_the_kit_passes_the_spec_through_jit_so_it_would_catch_it_anyway(monkeypatch):
    monkeypatch.setattr(testing, "check_spec", lambda spec: None)
    with pytest.raises(testing.PropertyFailed, match="runs under jax.jit with the spec"):
        testing.check_device(LeakyRegister(3), max_examples=1)
    monkeypatch.undo()
    testing.check_device(Register(3), steps=2, batch=2, max_examples=2)


def test_a_failure_names_the_leaf_that_differs():
    a = {"state": {"memory": jnp.zeros((2, 3))}, "reads": jnp.ones(2)}
    b = {"state": {"memory": jnp.zeros((2, 3)).at[1, 2].set(1.0)}, "reads": jnp.ones(2)}
    with pytest.raises(AssertionError, match=r"leaf \['state'\]\['memory'\] differs at \(1, 2\)"):
        testing.assert_trees_close(a, b, what="vmap vs loop")
    with pytest.raises(AssertionError, match=r"leaf \['reads'\] is .*nan.* at \(0,\)"):
        testing.assert_finite({"reads": jnp.array([jnp.nan, 1.0])})


@given(
    st.floats(allow_nan=True, allow_infinity=True)
    | st.integers(-5, 5)
    | st.booleans()
    | st.text(max_size=3)
    | st.none()
)
def test_check_non_negative_takes_finite_numbers_from_zero_up_and_names_the_rest(value):
    ok = (
        isinstance(value, (int, float))
        and not isinstance(value, bool)
        and value == value
        and 0 <= value < float("inf")
    )
    if ok:
        check_non_negative("Owner", "weight", value)
        return
    with pytest.raises(ValueError) as info:
        check_non_negative("Owner", "weight", value, " (0: off)")
    message = str(info.value)
    assert "\n" not in message and message.startswith("Owner weight must be a number >= 0 (0: off)")
