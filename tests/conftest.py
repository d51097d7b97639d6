import os
import shutil
import tempfile

# The suite compiles hundreds of small functions and runs each a few times, so compile time is
# most of its time. For the suite (and the CLI subprocesses it starts, which inherit XLA_FLAGS):
# LLVM at -O0, and XLA's older elemental fusion emitters instead of the MLIR ones, which compile
# a scanned machine's gradient 2.7x faster here (4.5 s -> 1.7 s). Both change compile time, not
# semantics (no fast-math either way). A flag given in XLA_FLAGS already wins.
_FAST_COMPILE = {
    "xla_backend_optimization_level": "0",
    "xla_cpu_use_fusion_emitters": "false",
}
_flags = os.environ.get("XLA_FLAGS", "")
os.environ["XLA_FLAGS"] = " ".join(
    [_flags] + [f"--{k}={v}" for k, v in _FAST_COMPILE.items() if k not in _flags]
).strip()

import jax  # noqa: E402  (after XLA_FLAGS: the backend reads it when it starts)
from hypothesis import HealthCheck, settings  # noqa: E402

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

# One persistent compilation cache for the session (this process and the CLI subprocesses
# share it, so a program compiled by one test is not compiled again by the next); a fresh
# directory each session, so a run of the suite never depends on an earlier one, and never
# the user's own cache. DIFMACHINE_NO_CACHE=1 turns it off.
_CACHE = tempfile.mkdtemp(prefix="difmachine-test-cache-")
os.environ["DIFMACHINE_CACHE_DIR"] = _CACHE
from difmachine.cache import enable_compilation_cache  # noqa: E402

enable_compilation_cache(_CACHE)


def pytest_sessionfinish(session, exitstatus):
    shutil.rmtree(_CACHE, ignore_errors=True)
