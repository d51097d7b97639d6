import os

import jax
from hypothesis import HealthCheck, settings

# Small example counts keep jit-heavy properties fast; CI uses the smallest profile.
settings.register_profile(
    "ci",
    max_examples=10,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
    derandomize=True,
)
settings.register_profile(
    "dev", max_examples=25, deadline=None, suppress_health_check=[HealthCheck.too_slow]
)
settings.register_profile("thorough", max_examples=300, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "ci" if os.environ.get("CI") else "dev"))

# Strictness that catches silent broadcasting bugs in the library.
jax.config.update("jax_numpy_rank_promotion", "raise")
