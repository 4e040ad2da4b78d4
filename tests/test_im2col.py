"""Im2Col / Col2Im: against numpy loops, adjointness, gradients, shapes, Numba kernels."""

import importlib.util
import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne.ops.im2col import Col2Im, Im2Col, col2im, im2col


def patches_by_loops(x, kernel, stride, dilation):
    """cols[c * taps + t, b * P + p] = x[b, c, p * stride + t * dilation], written out."""
    batch, channels, *spatial = x.shape
    out = [
        (s - d * (k - 1) - 1) // st + 1 for s, k, st, d in zip(spatial, kernel, stride, dilation)
    ]
    taps = list(itertools.product(*(range(k) for k in kernel)))
    positions = list(itertools.product(*(range(m) for m in out)))
    cols = np.zeros((channels * len(taps), batch * len(positions)), x.dtype)
    for b in range(batch):
        for c in range(channels):
            for t, tap in enumerate(taps):
                for p, pos in enumerate(positions):
                    index = tuple(q * s + o * d for q, o, s, d in zip(pos, tap, stride, dilation))
                    cols[c * len(taps) + t, b * len(positions) + p] = x[(b, c) + index]
    return cols


@st.composite
def configs(draw):
    n = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 4)) for k, d in zip(kernel, dilation))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3))) + spatial
    return shape, kernel, stride, dilation


@given(configs(), st.integers(0, 2**16))
def test_im2col_and_col2im_match_loops_and_are_adjoint(config, seed):
    shape, kernel, stride, dilation = config
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    xs = pt.tensor(dtype="float64", shape=(None,) * len(shape))
    cols_expr = im2col(xs, kernel, stride, dilation)
    cols = cols_expr.eval({xs: x})
    np.testing.assert_array_equal(cols, patches_by_loops(x, kernel, stride, dilation))
    # the symbolic shape (infer_shape) agrees with the computed one
    assert tuple(cols_expr.shape.eval({xs: x})) == cols.shape
    c = rng.normal(size=cols.shape)
    back = col2im(pt.constant(c), shape, kernel, stride, dilation).eval()
    assert back.shape == shape
    np.testing.assert_allclose((cols * c).sum(), (x * back).sum(), rtol=1e-10)


NUMBA_CASES = [
    ((2, 3, 9, 8), (3, 2), (2, 1), (1, 2)),
    ((3, 2, 11), (4,), (3,), (2,)),
    ((2, 2, 5, 6, 7), (2, 3, 2), (1, 2, 3), (2, 1, 1)),
    ((4, 32, 12, 12), (5, 5), (1, 1), (1, 1)),
]


@pytest.mark.parametrize("shape, kernel, stride, dilation", NUMBA_CASES)
def test_numba_kernels_match_loops(shape, kernel, stride, dilation):
    rng = np.random.default_rng(1)
    x = rng.normal(size=shape).astype("float32")
    xs = pt.tensor(dtype="float32", shape=(None,) * len(shape))
    cols = im2col(xs, kernel, stride, dilation)
    weights = pt.tensor(dtype="float32", shape=(None, None))
    loss = (cols * weights).sum()
    fn = pytensor.function([xs, weights], [cols, pt.grad(loss, xs)], mode="NUMBA")
    w = rng.normal(size=patches_by_loops(x, kernel, stride, dilation).shape).astype("float32")
    got_cols, got_grad = fn(x, w)
    np.testing.assert_array_equal(got_cols, patches_by_loops(x, kernel, stride, dilation))
    # d/dx sum(cols * w) = col2im(w): each input gathers the weights of its copies
    expected = np.zeros_like(x, dtype="float64")
    ref = patches_by_loops(np.arange(x.size).reshape(shape), kernel, stride, dilation)
    np.add.at(expected.reshape(-1), ref.reshape(-1), w.reshape(-1))
    np.testing.assert_allclose(got_grad, expected, rtol=1e-5, atol=1e-5)


def test_gradients_verify():
    rng = np.random.default_rng(2)
    op_args = ((1, 2, 3), (1, 2, 1), (1, 1, 2))
    x = rng.normal(size=(2, 2, 1, 7, 9))
    verify_grad(lambda v: Im2Col(*op_args)(v) ** 2, [x], rng=rng)
    cols = Im2Col(*op_args)(pt.constant(x)).eval()
    verify_grad(
        lambda c: Col2Im(*op_args)(c, pt.constant(x)) ** 2,
        [rng.normal(size=cols.shape)],
        rng=rng,
    )


def test_bad_inputs_are_named():
    with pytest.raises(ValueError, match="Im2Col: kernel"):
        Im2Col((0, 1, 1), (1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="5-d"):
        Im2Col((1, 1, 1), (1, 1, 1), (1, 1, 1))(pt.matrix())
    small = pt.constant(np.zeros((1, 1, 1, 2, 2)))
    with pytest.raises(ValueError, match="smaller than the dilated kernel"):
        Im2Col((1, 3, 3), (1, 1, 1), (1, 1, 1))(small).eval()
    with pytest.raises(ValueError, match="shape must be"):
        col2im(pt.matrix(), (1, 2), (2,))


@pytest.mark.backend
@pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax not installed (extra 'jax')"
)
def test_jax_implementations_match_with_static_shapes():
    """JAX traces with static shapes: the kernels agree with the numpy ones there."""
    rng = np.random.default_rng(3)
    shape, kernel, stride, dilation = (2, 3, 9, 8), (3, 2), (2, 1), (1, 2)
    x = rng.normal(size=shape).astype("float32")
    xs = pt.tensor(dtype="float32", shape=shape)
    cols = im2col(xs, kernel, stride, dilation)
    loss = (pt.sin(cols) * pt.arange(cols.shape[1], dtype="float32")).sum()
    outputs = [cols, pt.grad(loss, xs)]
    want = pytensor.function([xs], outputs, mode="FAST_COMPILE")(x)
    got = pytensor.function([xs], outputs, mode="JAX")(x)
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-5, atol=1e-5)
