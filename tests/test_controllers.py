import jax
import jax.numpy as jnp
import numpy as np
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import difmachine as dm
from difmachine import testing

CONTROLLERS = [dm.LSTM(6), dm.LSTM(5, layers=2), dm.GRU(5), dm.RNN(4), dm.MLP(7), dm.MLP((6, 3))]


@pytest.mark.parametrize("controller", CONTROLLERS, ids=repr)
def test_controller_protocol(controller):
    testing.check_controller(controller)


@pytest.mark.parametrize("cls", [dm.LSTM, dm.GRU, dm.RNN, dm.MLP])
@pytest.mark.parametrize("bad", [0, -3])
def test_bad_sizes_are_rejected(cls, bad):
    with pytest.raises(ValueError, match="positive integer"):
        cls(bad)


def _np_lstm(gates, c):
    sig = lambda x: 1 / (1 + np.exp(-x))
    i, f, g, o = np.split(gates, 4)
    c = sig(f) * c + sig(i) * np.tanh(g)
    return sig(o) * np.tanh(c), c


@settings(max_examples=10)
@given(seed=st.integers(0, 2**31 - 1), layers=st.integers(1, 3))
def test_stacked_lstm_feeds_each_layers_new_output_to_the_next(seed, layers):
    lstm = dm.LSTM(4, layers=layers)
    k_p, k_z = jax.random.split(jax.random.PRNGKey(seed))
    params = lstm.init_params(k_p)
    # one layer is the single LSTM, drawn from the same key: old checkpoints and runs unchanged
    single = dm.LSTM(4).init_params(k_p)
    np.testing.assert_array_equal(params["U"], single["U"])
    assert (layers > 1) == ("upper" in params)
    state = lstm.init_state(params)
    hs = [np.zeros(4)] * layers
    cs = [np.zeros(4)] * layers
    for z in np.asarray(jax.random.normal(k_z, (3, 16))):
        out, state = lstm.step(params, state, jnp.asarray(z))
        x = z + hs[0] @ np.asarray(params["U"]) + np.asarray(params["b"])
        hs[0], cs[0] = _np_lstm(x, cs[0])
        for n, layer in enumerate(params.get("upper", []), start=1):
            layer = {k: np.asarray(v) for k, v in layer.items()}
            x = hs[n - 1] @ layer["W"] + hs[n] @ layer["U"] + layer["b"]
            hs[n], cs[n] = _np_lstm(x, cs[n])
        np.testing.assert_allclose(out, hs[-1], rtol=1e-5, atol=1e-6)
    with pytest.raises(ValueError, match="number of layers"):
        dm.LSTM(4, layers=0)
