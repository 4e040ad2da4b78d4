"""JAX-compiled float32 graphs compute and return float32 (plasagne.ops.jax_dtypes)."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from backend_params import requires_jax

from plasagne.ops.jax_dtypes import keep_declared_dtypes

pytestmark = [pytest.mark.backend, requires_jax]


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_outputs_keep_the_declared_dtype_and_numpy_values(dtype):
    assert keep_declared_dtypes()
    x = pt.matrix("x", dtype=dtype)
    outputs = [
        pt.switch(x > 0, 3.0, 1.0),  # Python-float branches
        x.sum(axis=1),  # accumulates in float64, declared float32
        pt.zeros((2, 1), dtype=dtype) + x[:, :1],  # Alloc of a scalar constant
        pt.exp(x).mean(),
    ]
    f = pytensor.function([x], outputs, mode="JAX")
    value = np.array([[0.5, -1.0, 2.0], [-0.25, 1.5, -3.0]], dtype=dtype)
    got = f(value)
    want = [
        np.where(value > 0, 3.0, 1.0),
        value.sum(axis=1),
        np.zeros((2, 1)) + value[:, :1],
        np.exp(value).mean(),
    ]
    assert [o.dtype for o in outputs[1:]] == [dtype] * 3
    for g, w, out in zip(got, want, outputs):
        assert g.dtype == np.dtype(out.dtype)
        np.testing.assert_allclose(g, w, rtol=1e-6)


def test_float32_gradients_through_indexing_stay_float32():
    """The gradient of ``x[idx]`` is a scatter into a float32 buffer; what is scattered
    depends on a float64-accumulated sum and a Switch of Python floats."""
    x = pt.vector("x", dtype="float32")
    idx = pt.lvector("idx")
    total = x.sum()
    loss = (x[idx] * pt.switch(total > 0, 3.0, 1.0) * total).sum()
    f = pytensor.function([x, idx], pytensor.grad(loss, x), mode="JAX")
    value = np.array([1.0, -2.0, 2.5], dtype="float32")
    picks = np.array([0, 2, 2])
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        g = f(value, picks)
    assert g.dtype == np.float32
    scale = 3.0 if value.sum() > 0 else 1.0
    counts = np.bincount(picks, minlength=3)
    want = scale * value.sum() * counts + scale * value[picks].sum()
    np.testing.assert_allclose(g, want, rtol=1e-6)


@pytest.fixture
def jax_without_x64():
    """64-bit types off, as NumPyro leaves them, restored afterwards."""
    import jax

    before = jax.config.jax_enable_x64
    jax.config.update("jax_enable_x64", False)
    yield
    jax.config.update("jax_enable_x64", before)


def test_no_truncation_warnings_with_64_bit_types_off(jax_without_x64):
    """PyTensor's kernels ask for float64/int64 accumulators; the wrapped kernels cast to
    the 32-bit dtypes themselves, so JAX's "truncated" warning is not shown."""
    x = pt.vector("x", dtype="float32")
    f = pytensor.function([x], [x.sum(), pt.argmax(x), pt.switch(x > 0, x, 0.5)], mode="JAX")
    value = np.array([0.5, 2.0, -1.0], dtype="float32")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        total, index, clipped = f(value)
    assert (total.dtype, index.dtype, clipped.dtype) == (np.float32, np.int32, np.float32)
    assert (float(total), int(index)) == (1.5, 1)
    np.testing.assert_array_equal(clipped, [0.5, 2.0, 0.5])


def test_jax_prediction_means_accumulate_in_float64_with_64_bit_types_off(jax_without_x64):
    from plasagne.layers import DenseLayer, InputLayer
    from plasagne.nonlinearities import softmax
    from plasagne.pymc_bridge import GaussWeights, build_model, fit
    from plasagne.pymc_bridge.predict import PosteriorPredictive

    rng = np.random.default_rng(0)
    X, y = rng.normal(size=(40, 3)).astype("float32"), rng.integers(0, 2, 40)

    def build(p):
        return DenseLayer(InputLayer((None, 3)), 2, W=p, b=p, nonlinearity=softmax)

    with pytensor.config.change_flags(floatX="float32"):
        bnet = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=20)
        result = fit(bnet, X, y, n=5, mode="JAX", progressbar=False, random_seed=0)
        pp = PosteriorPredictive(bnet, result, mode="JAX", random_seed=1)
        with warnings.catch_warnings():
            warnings.simplefilter("error", UserWarning)
            mean = pp.mean(X, draws=7, chunk_size=16)
        per_draw = PosteriorPredictive(bnet, result, mode="JAX", random_seed=1).draws(
            X, draws=7, chunk_size=16
        )
    assert mean.dtype == np.float32
    want = per_draw.astype(np.float64).mean(axis=0)
    np.testing.assert_allclose(mean, want, rtol=1e-6)
