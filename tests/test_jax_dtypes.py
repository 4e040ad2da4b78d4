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
