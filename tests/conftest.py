"""Test configuration: cheap PyTensor compilation and a seeded generator per test."""

import os

# PyTensor reads its flags once, on first import: set them before anything imports it.
# FAST_COMPILE keeps small graphs cheap; the backend tests compile with real modes explicitly.
_flags = os.environ.get("PYTENSOR_FLAGS", "")
if "mode=" not in _flags:
    os.environ["PYTENSOR_FLAGS"] = ",".join(f for f in (_flags, "mode=FAST_COMPILE") if f)

# The test processes already use every core: kernels compile in the process that asks for
# them, not in a kernel worker per compiled function (tests/test_kernel_worker.py turns it
# on where it is the subject).
os.environ.setdefault("PLASAGNE_KERNEL_WORKER", "0")

# as a user should: plasagne first, so its idle-thread settings precede SciPy's BLAS
import plasagne  # noqa: E402, F401, I001

import numpy as np  # noqa: E402
import pytest  # noqa: E402
from hypothesis import HealthCheck, settings  # noqa: E402

settings.register_profile(
    "default",
    max_examples=25,
    deadline=None,
    suppress_health_check=[HealthCheck.too_slow],
)
settings.register_profile("thorough", max_examples=200, deadline=None)
settings.load_profile(os.environ.get("HYPOTHESIS_PROFILE", "default"))


@pytest.fixture(autouse=True)
def _seeded_plasagne_rng():
    """Every test starts from the same plasagne generator state."""
    from plasagne.random import get_rng, set_rng

    previous = get_rng()
    set_rng(np.random.RandomState(1234))
    yield
    set_rng(previous)


@pytest.fixture(params=[False, True], ids=["serial", "parallel"])
def kernel_threads(request):
    """Numba kernels compiled serial, then parallel (``blas_threads.PARALLEL_KERNELS``)."""
    from plasagne.ops import blas_threads

    if request.param and blas_threads.blas_thread_functions() is None:
        pytest.skip("Numba's BLAS is not OpenBLAS: no parallel kernels")
    previous = blas_threads.PARALLEL_KERNELS
    blas_threads.PARALLEL_KERNELS = request.param
    yield request.param
    blas_threads.PARALLEL_KERNELS = previous
