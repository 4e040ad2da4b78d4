"""Matrix products as one BLAS call on Numba: numpy's products, only under our linker."""

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.gradient import verify_grad
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

from plasagne.ops import blas_dot
from plasagne.ops.blas_dot import gemm_operand, register_numba
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.lowering_scope import plasagne_lowerings

register_numba()


def _compiled(dtype):
    x = pt.matrix("x", dtype=dtype)
    y = pt.matrix("y", dtype=dtype)
    node = pt.dot(x, y).owner
    assert blas_dot._lowerable(node)
    product, key = blas_dot._lower(node.op, node)
    assert isinstance(key, str) and len(key) == 64
    return numba.njit(lambda a, b: product(a, b))


_COMPILED = {dtype: _compiled(dtype) for dtype in ("float32", "float64")}


def _arrange(value, layout):
    if layout == "F":
        return np.asfortranarray(value)
    if layout == "strided":  # neither C- nor F-contiguous: copied before the call
        return np.repeat(value, 2, axis=1)[:, ::2]
    return np.ascontiguousarray(value)


@settings(max_examples=30, deadline=None)
@given(
    m=st.integers(0, 6),
    k=st.integers(0, 6),
    n=st.integers(0, 6),
    layouts=st.tuples(*[st.sampled_from(["C", "F", "strided"])] * 2),
    dtype=st.sampled_from(["float32", "float64"]),
)
def test_product_equals_numpy(m, k, n, layouts, dtype):
    rng = np.random.default_rng(m * 49 + k * 7 + n)
    x = _arrange(rng.normal(size=(m, k)).astype(dtype), layouts[0])
    y = _arrange(rng.normal(size=(k, n)).astype(dtype), layouts[1])
    got = _COMPILED[dtype](x, y)
    want = x.astype(np.float64) @ y.astype(np.float64)
    assert got.dtype == np.dtype(dtype) and got.shape == (m, n) and got.flags.c_contiguous
    np.testing.assert_allclose(got, want, rtol=1e-5 if dtype == "float32" else 1e-12, atol=1e-5)


def test_inner_lengths_must_agree():
    with pytest.raises(ValueError, match="inner lengths"):
        _COMPILED["float64"](np.ones((2, 3)), np.ones((4, 2)))


def test_operand_flags():
    assert gemm_operand("C", (3, 5)) == ("n", 5)
    assert gemm_operand("F", (3, 5)) == ("t", 3)


def test_only_float_matrix_products_of_one_dtype_are_lowered():
    def lowerable(x, y):
        return blas_dot._lowerable(pt.dot(x, y).owner)

    matrix = pt.matrix
    assert lowerable(matrix(dtype="float32"), matrix(dtype="float32"))
    assert not lowerable(matrix(dtype="float32"), matrix(dtype="float64"))
    assert not lowerable(matrix(dtype="int64"), matrix(dtype="int64"))


def test_dispatch_applies_only_inside_plasagne_lowerings():
    x = pt.matrix("x")
    node = pt.dot(x, x).owner
    outside, _ = numba_funcify_and_cache_key(node.op, node=node)
    with plasagne_lowerings():
        inside, _ = numba_funcify_and_cache_key(node.op, node=node)
    assert inside.py_func.__name__ == "blas_dot" and outside.py_func.__name__ != "blas_dot"


def test_compiled_function_and_gradient(monkeypatch):
    x = pt.matrix("x", dtype="float64")
    w = pt.matrix("w", dtype="float64")
    lowered = []
    original = blas_dot._lower

    def lower(op, node):
        lowered.append(node)
        return original(op, node)

    monkeypatch.setattr(blas_dot, "_lower", lower)
    mode = fast_math_mode("NUMBA")
    loss = pt.tanh(x @ w).sum()
    f = pytensor.function([x, w], [x @ w, *pytensor.grad(loss, [x, w])], mode=mode)
    rng = np.random.default_rng(3)
    xv, wv = rng.normal(size=(4, 3)), rng.normal(size=(3, 2))
    product, grad_x, grad_w = f(xv, wv)
    back = 1.0 - np.tanh(xv @ wv) ** 2
    np.testing.assert_allclose(product, xv @ wv, rtol=1e-12)
    np.testing.assert_allclose(grad_x, back @ wv.T, rtol=1e-12)
    np.testing.assert_allclose(grad_w, xv.T @ back, rtol=1e-12)
    assert len(lowered) >= 3  # the product and both gradient products
    verify_grad(lambda a, b: pt.tanh(a @ b), [xv, wv], rng=rng, mode=mode)
