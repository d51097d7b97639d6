import pytest

import difmachine as dm
from difmachine import testing

CONTROLLERS = [dm.LSTM(6), dm.GRU(5), dm.RNN(4), dm.MLP(7), dm.MLP((6, 3))]


@pytest.mark.parametrize("controller", CONTROLLERS, ids=repr)
def test_controller_protocol(controller):
    testing.check_controller(controller)


@pytest.mark.parametrize("cls", [dm.LSTM, dm.GRU, dm.RNN, dm.MLP])
@pytest.mark.parametrize("bad", [0, -3])
def test_bad_sizes_are_rejected(cls, bad):
    with pytest.raises(ValueError, match="positive integer"):
        cls(bad)
