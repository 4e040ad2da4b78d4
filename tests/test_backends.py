"""Each real backend compiles a small CNN's training step and agrees with the reference mode."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from backend_params import JAX

import plasagne
from plasagne.layers import get_all_params, get_output
from plasagne.models import build_cnn, build_mlp

BACKENDS = ["NUMBA", "CVM", JAX]


def step_outputs(mode, cnn=True):
    plasagne.random.set_rng(np.random.RandomState(0))
    if not cnn:  # the C backend compiles every op to C: keep its graph small
        net = build_mlp(
            lambda shape: np.full(shape, 0.05) if len(shape) > 1 else np.zeros(shape),
            input_shape=(None, 1, 16, 16),
            n_hidden=6,
        )
    else:
        net = build_cnn(  # positive biases keep the ReLUs alive: every gradient non-zero
            lambda shape: (
                plasagne.init.GlorotUniform()(shape) if len(shape) > 1 else np.full(shape, 0.1)
            ),
            input_shape=(None, 1, 16, 16),
            n_filters=3,
            n_dense=8,
        )
    # static shapes, as fit gives its step (JAX cannot trace shapes computed from a
    # symbolic batch size)
    x, y = pt.tensor("x", shape=(4, 1, 16, 16)), pt.tensor("y", shape=(4,), dtype="int32")
    loss = plasagne.objectives.categorical_crossentropy(get_output(net, x), y).mean()
    params = get_all_params(net, trainable=True)
    grads = pytensor.grad(loss, params)
    f = pytensor.function([x, y], [loss, *grads], mode=mode)
    rng = np.random.default_rng(1)
    xb = rng.random((4, 1, 16, 16)).astype(pytensor.config.floatX)
    return f(xb, rng.integers(0, 10, 4).astype("int32"))


@pytest.mark.backend
@pytest.mark.parametrize("mode", BACKENDS)
def test_backend_matches_reference(mode):
    cnn = mode != "CVM"
    reference = step_outputs("FAST_COMPILE", cnn)
    assert all(np.abs(want).max() > 0 for want in reference)  # nothing compared trivially
    for got, want in zip(step_outputs(mode, cnn), reference):
        np.testing.assert_allclose(got, want, rtol=1e-6, atol=1e-9)


@pytest.mark.backend
@pytest.mark.parametrize("mode", ["NUMBA", JAX])
def test_backend_matches_reference_in_float32(mode):
    """float32, the dtype fits are fast in: the Numba kernels (chunked correlation, pooling)
    and XLA's convolution sum in other orders than the reference, so agreement is to
    float32 rounding of the largest terms."""
    with pytensor.config.change_flags(floatX="float32"):
        reference = step_outputs("FAST_COMPILE")
        got = step_outputs(mode)
    assert all(np.abs(want).max() > 0 for want in reference)
    for value, want in zip(got, reference):
        assert value.dtype == want.dtype == np.float32
        scale = np.abs(want).max()
        np.testing.assert_allclose(value, want, rtol=1e-4, atol=1e-5 * scale)
