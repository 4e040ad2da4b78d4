"""Pooling layers against explicit numpy window loops; shapes by hypothesis; gradients."""

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne.layers import (
    FeaturePoolLayer,
    FeatureWTALayer,
    GlobalPoolLayer,
    InputLayer,
    MaxPool2DLayer,
    Pool1DLayer,
    Pool2DLayer,
    Pool3DLayer,
    SpatialPyramidPoolingLayer,
    Upscale1DLayer,
    Upscale2DLayer,
    Upscale3DLayer,
    get_output,
    get_output_shape,
)
from plasagne.ops.pool import pool_nd

POOL = {1: Pool1DLayer, 2: Pool2DLayer, 3: Pool3DLayer}


def run(layer, x):
    return pytensor.function([layer.input_layer.input_var], get_output(layer))(x)


def reference_pool(x, size, stride, pad, ignore_border, mode):
    """Loop over output positions; each window is clipped to the padded or real input."""
    spatial = x.shape[2:]
    outs = []
    for L, s, st_, p in zip(spatial, size, stride, pad):
        if ignore_border:
            outs.append((L + 2 * p - s) // st_ + 1)
        elif st_ >= s:
            outs.append((L + st_ - 1) // st_)
        else:
            outs.append(max(0, (L - s + st_ - 1) // st_) + 1)
    out = np.zeros(x.shape[:2] + tuple(outs))
    for pos in np.ndindex(*outs):
        starts = [o * st_ - p for o, st_, p in zip(pos, stride, pad)]
        real = tuple(slice(max(a, 0), min(a + s, L)) for a, s, L in zip(starts, size, spatial))
        window = x[(slice(None), slice(None)) + real].reshape(x.shape[:2] + (-1,))
        if mode == "max":
            out[(slice(None), slice(None)) + pos] = window.max(-1)
        elif mode == "average_exc_pad":
            out[(slice(None), slice(None)) + pos] = window.mean(-1)
        else:
            count = np.prod(
                [min(a + s, L + p) - max(a, -p) for a, s, L, p in zip(starts, size, spatial, pad)]
            )
            out[(slice(None), slice(None)) + pos] = window.sum(-1) / count
    return out


CASES = [
    (1, (2, 3, 9), (2,), None, (0,), True),
    (1, (2, 2, 9), (3,), (2,), (1,), True),
    (1, (1, 2, 7), (3,), (2,), (0,), False),
    (2, (2, 2, 8, 8), (2, 2), None, (0, 0), True),
    (2, (2, 2, 7, 9), (2, 3), None, (0, 0), True),
    (2, (1, 2, 7, 9), (2, 3), None, (0, 0), False),
    (2, (1, 3, 7, 6), (3, 3), (2, 1), (1, 1), True),
    (2, (1, 1, 5, 6), (3, 2), (1, 3), (0, 0), False),
    (3, (1, 2, 5, 4, 6), (2, 2, 3), (1, 2, 2), (1, 0, 1), True),
    (3, (1, 1, 5, 5, 3), (2, 2, 2), None, (0, 0, 0), False),
]


@pytest.mark.parametrize("n, shape, size, stride, pad, ignore", CASES)
@pytest.mark.parametrize("mode", ["max", "average_inc_pad", "average_exc_pad"])
def test_pool_matches_numpy(n, shape, size, stride, pad, ignore, mode):
    layer = POOL[n](
        InputLayer(shape), size, stride=stride, pad=pad, ignore_border=ignore, mode=mode
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    expected = reference_pool(x, size, stride or size, pad, ignore, mode)
    np.testing.assert_allclose(out, expected, rtol=1e-12)
    assert out.shape == layer.output_shape


@given(n=st.integers(1, 3), data=st.data())
def test_pool_shape_inference_matches_output(n, data):
    spatial = tuple(data.draw(st.lists(st.integers(1, 7), min_size=n, max_size=n)))
    size = tuple(data.draw(st.integers(1, L)) for L in spatial)
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    ignore = data.draw(st.booleans())
    pad = tuple(data.draw(st.integers(0, s - 1)) for s in size) if ignore else (0,) * n
    mode = data.draw(st.sampled_from(["max", "average_inc_pad", "average_exc_pad"]))
    shape = (2, 1) + spatial
    layer = POOL[n](
        InputLayer((None, 1) + spatial),
        size,
        stride=stride,
        pad=pad,
        ignore_border=ignore,
        mode=mode,
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    assert get_output_shape(layer, shape) == out.shape
    np.testing.assert_allclose(out, reference_pool(x, size, stride, pad, ignore, mode), rtol=1e-12)


def test_pool_gradients():
    rng = np.random.RandomState(0)
    x = rng.permutation(48).reshape(1, 2, 4, 6).astype("float64") / 10  # no ties
    verify_grad(lambda v: pool_nd(v, (2, 2)), [x], rng=rng)
    verify_grad(lambda v: pool_nd(v, (3, 2), (1, 2), (1, 0), True, "max"), [x], rng=rng)
    verify_grad(lambda v: pool_nd(v, (3, 3), (2, 2), (1, 1), True, "average_inc_pad"), [x], rng=rng)
    verify_grad(lambda v: pool_nd(v, (2, 3), None, None, False, "average_exc_pad"), [x], rng=rng)


def test_pool_errors_name_the_layer():
    with pytest.raises(ValueError, match="MaxPool2DLayer 'p'.*larger than the padded input"):
        MaxPool2DLayer(InputLayer((None, 1, 3, 3)), 4, name="p")
    with pytest.raises(ValueError, match="padding requires ignore_border"):
        Pool2DLayer(InputLayer((None, 1, 6, 6)), 3, pad=1, ignore_border=False)
    with pytest.raises(ValueError, match="mode"):
        Pool2DLayer(InputLayer((None, 1, 6, 6)), 2, mode="median")
    with pytest.raises(ValueError, match="expected 4 dimensions"):
        Pool2DLayer(InputLayer((None, 6, 6)), 2)


@pytest.mark.parametrize("mode", ["repeat", "dilate"])
def test_upscale_matches_numpy(mode):
    for cls, shape, factor in [
        (Upscale1DLayer, (2, 3, 4), (3,)),
        (Upscale2DLayer, (1, 2, 3, 2), (2, 3)),
        (Upscale3DLayer, (1, 1, 2, 3, 2), (2, 1, 3)),
    ]:
        layer = cls(InputLayer(shape), factor, mode=mode)
        x = np.random.randn(*shape)
        if mode == "repeat":
            expected = x
            for i, f in enumerate(factor):
                expected = np.repeat(expected, f, axis=2 + i)
        else:
            expected = np.zeros(shape[:2] + tuple(s * f for s, f in zip(shape[2:], factor)))
            expected[(slice(None), slice(None)) + tuple(slice(None, None, f) for f in factor)] = x
        out = run(layer, x)
        np.testing.assert_array_equal(out, expected)
        assert out.shape == layer.output_shape


def test_global_feature_and_wta_pooling():
    x = np.random.randn(2, 6, 3, 4)
    np.testing.assert_allclose(run(GlobalPoolLayer(InputLayer(x.shape)), x), x.mean(axis=(2, 3)))
    np.testing.assert_allclose(
        run(GlobalPoolLayer(InputLayer(x.shape), pt.max), x), x.max(axis=(2, 3))
    )
    fp = FeaturePoolLayer(InputLayer(x.shape), 3)
    np.testing.assert_allclose(run(fp, x), x.reshape(2, 2, 3, 3, 4).max(axis=2))
    assert fp.output_shape == (2, 2, 3, 4)
    fp2 = FeaturePoolLayer(InputLayer(x.shape), 2, axis=3, pool_function=pt.mean)
    np.testing.assert_allclose(run(fp2, x), x.reshape(2, 6, 3, 2, 2).mean(axis=4))
    wta = FeatureWTALayer(InputLayer(x.shape), 3)
    g = x.reshape(2, 2, 3, 3, 4)
    expected = (g * (g == g.max(axis=2, keepdims=True))).reshape(x.shape)
    np.testing.assert_allclose(run(wta, x), expected)
    with pytest.raises(ValueError, match="not a multiple"):
        FeaturePoolLayer(InputLayer((None, 5)), 2)


@pytest.mark.parametrize("rows, cols", [(7, 9), (4, 4), (13, 5)])
def test_spatial_pyramid_pooling_matches_numpy(rows, cols):
    layer = SpatialPyramidPoolingLayer(InputLayer((None, 2, None, None)), pool_dims=[3, 2, 1])
    x = np.random.randn(2, 2, rows, cols)
    out = run(layer, x)
    expected = []
    for n in (3, 2, 1):
        for i, j in itertools.product(range(n), range(n)):
            r0, r1 = int(np.floor(i * rows / n)), int(np.ceil((i + 1) * rows / n))
            c0, c1 = int(np.floor(j * cols / n)), int(np.ceil((j + 1) * cols / n))
            expected.append(x[:, :, r0:r1, c0:c1].max(axis=(2, 3)))
    np.testing.assert_allclose(out, np.stack(expected, axis=2))
    assert get_output_shape(layer, x.shape) == out.shape


@pytest.mark.backend
def test_pool_compiles_with_numba():
    layer = Pool2DLayer(InputLayer((2, 2, 7, 7)), 3, stride=2, pad=1, mode="average_exc_pad")
    x = np.random.randn(2, 2, 7, 7)
    f = pytensor.function([layer.input_layer.input_var], get_output(layer), mode="NUMBA")
    np.testing.assert_allclose(
        f(x), reference_pool(x, (3, 3), (2, 2), (1, 1), True, "average_exc_pad")
    )
