import jax.numpy as jnp
import numpy as np
from hypothesis import given
from hypothesis import strategies as st

import difmachine as dm


@given(
    seed=st.integers(0, 2**32 - 1),
    bits=st.integers(1, 8),
    lo=st.integers(1, 6),
    extra=st.integers(0, 6),
    batch=st.integers(1, 5),
)
def test_copy_batches_are_well_formed(seed, bits, lo, extra, batch):
    task = dm.Copy(bits=bits, min_length=lo, max_length=lo + extra)
    b = task.sample(np.random.default_rng(seed), batch)
    T = 2 * task.max_length + 1
    assert b.inputs.shape == (batch, T, bits + 1) and b.targets.shape == (batch, T, bits)
    for x, y, m, lm in zip(*b[:4]):
        L = int(lm.sum())
        assert lo <= L <= lo + extra
        assert m.sum() == 2 * L + 1 and np.all(m[: 2 * L + 1] == 1)
        np.testing.assert_array_equal(x[L], np.eye(bits + 1)[bits])  # the delimiter alone
        assert np.all(x[:L, bits] == 0) and np.all(x[L + 1 :] == 0)
        np.testing.assert_array_equal(y[L + 1 : 2 * L + 1], x[:L, :bits])
        assert np.all(y[: L + 1] == 0) and np.all(lm[: L + 1] == 0) and np.all(lm[2 * L + 1 :] == 0)
        assert set(np.unique(x[:L, :bits])) <= {0.0, 1.0}


# a few lengths: each new length compiles the metric's eager ops again
@given(seed=st.integers(0, 2**32 - 1), length=st.sampled_from([1, 2, 5, 30]))
def test_fixed_length_sampling_and_metric(seed, length):
    task = dm.Copy(bits=4, max_length=5)
    b = task.sample(np.random.default_rng(seed), 2, length=length)
    assert b.inputs.shape[1] == 2 * length + 1 and np.all(b.loss_mask.sum(1) == length)
    perfect = jnp.asarray(np.where(b.targets[0] > 0.5, 5.0, -5.0))
    assert float(task.metrics(perfect, b.targets[0], b.loss_mask[0])["bit_errors"]) == 0.0
    flipped = -perfect
    assert float(task.metrics(flipped, b.targets[0], b.loss_mask[0])["bit_errors"]) == 4 * length
    assert float(task.loss(perfect, b.targets[0], b.loss_mask[0])) < float(
        task.loss(flipped, b.targets[0], b.loss_mask[0])
    )


def test_copy_rejects_bad_lengths():
    import pytest

    with pytest.raises(ValueError, match="min_length <= max_length"):
        dm.Copy(min_length=5, max_length=2)
