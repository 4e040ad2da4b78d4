"""Pooling layers against explicit numpy window loops; shapes by hypothesis; gradients."""

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
    MaxPool1DLayer,
    MaxPool2DLayer,
    MaxPool3DLayer,
    Pool1DLayer,
    Pool2DLayer,
    Pool3DLayer,
    SpatialPyramidPoolingLayer,
    Upscale1DLayer,
    Upscale2DLayer,
    Upscale3DLayer,
    get_output,
    get_output_shape,
    pool_output_length,
)
from plasagne.ops.pool import pool_nd

POOL = {1: Pool1DLayer, 2: Pool2DLayer, 3: Pool3DLayer}
MAXPOOL = {1: MaxPool1DLayer, 2: MaxPool2DLayer, 3: MaxPool3DLayer}
UPSCALE = {1: Upscale1DLayer, 2: Upscale2DLayer, 3: Upscale3DLayer}
MODES = ["max", "average_inc_pad", "average_exc_pad"]


def run(layer, x, mode=None):
    f = pytensor.function([layer.input_layer.input_var], get_output(layer), mode=mode)
    return f(x)


def reference_length(L, s, st_, p, ignore_border):
    """Number of windows, counted by walking window starts over the (padded) axis."""
    count, start = 0, -p
    while True:
        if ignore_border and start + s > L + p:
            break
        if not ignore_border and start >= L:
            break
        count += 1
        if not ignore_border and start + s >= L:
            break  # this window already reaches the end
        start += st_
    return count


def reference_pool(x, size, stride, pad, ignore_border, mode):
    """Loop over every output position and every element of its window."""
    spatial = x.shape[2:]
    outs = [reference_length(*a, ignore_border) for a in zip(spatial, size, stride, pad)]
    out = np.zeros(x.shape[:2] + tuple(outs))
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            for pos in np.ndindex(*outs):
                starts = [o * st_ - p for o, st_, p in zip(pos, stride, pad)]
                best, total, real, padded = -np.inf, 0.0, 0, 0
                for offs in np.ndindex(*size):
                    idx = [a + o for a, o in zip(starts, offs)]
                    if any(i >= L + p for i, L, p in zip(idx, spatial, pad)):
                        continue  # past the padded end: outside the window (partial window)
                    padded += 1
                    if all(0 <= i < L for i, L in zip(idx, spatial)):
                        v = x[(b, c) + tuple(idx)]
                        best, total, real = max(best, v), total + v, real + 1
                if mode == "max":
                    out[(b, c) + pos] = best
                elif mode == "average_inc_pad":
                    out[(b, c) + pos] = total / padded
                else:
                    out[(b, c) + pos] = total / real
    return out


# (n, input shape, pool_size, stride, pad, ignore_border)
CASES = [
    (1, (2, 3, 9), (2,), None, (0,), True),
    (1, (2, 2, 9), (3,), (2,), (1,), True),
    (1, (1, 2, 7), (3,), (2,), (0,), False),
    (1, (1, 2, 7), (2,), (3,), (0,), False),
    (2, (2, 2, 8, 8), (2, 2), None, (0, 0), True),
    (2, (2, 2, 7, 9), (2, 3), None, (0, 0), True),
    (2, (1, 2, 7, 9), (2, 3), None, (0, 0), False),
    (2, (1, 3, 7, 6), (3, 3), (2, 1), (1, 1), True),
    (2, (1, 1, 5, 6), (3, 2), (1, 3), (0, 0), False),
    (2, (1, 1, 6, 5), (4, 3), (2, 2), (2, 1), True),
    (3, (1, 2, 5, 4, 6), (2, 2, 3), (1, 2, 2), (1, 0, 1), True),
    (3, (1, 1, 5, 5, 3), (2, 2, 2), None, (0, 0, 0), False),
    (3, (2, 1, 4, 4, 4), (2, 2, 2), None, (0, 0, 0), True),
]


@pytest.mark.parametrize("n, shape, size, stride, pad, ignore", CASES)
@pytest.mark.parametrize("mode", MODES)
def test_pool_matches_numpy(n, shape, size, stride, pad, ignore, mode):
    layer = POOL[n](
        InputLayer(shape), size, stride=stride, pad=pad, ignore_border=ignore, mode=mode
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    expected = reference_pool(x, size, stride or size, pad, ignore, mode)
    assert out.shape == expected.shape == layer.output_shape
    np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
    if mode == "max":
        maxlayer = MAXPOOL[n](InputLayer(shape), size, stride=stride, pad=pad, ignore_border=ignore)
        np.testing.assert_array_equal(run(maxlayer, x), out)


@pytest.mark.parametrize("mode", MODES)
def test_pool_with_unknown_spatial_sizes(mode):
    """Symbolic lengths take the same graph with symbolic window counts."""
    layer = Pool2DLayer(
        InputLayer((None, None, None, None)), (3, 2), (2, 1), ignore_border=False, mode=mode
    )
    assert layer.output_shape == (None, None, None, None)
    f = pytensor.function([layer.input_layer.input_var], get_output(layer))
    for shape in [(1, 2, 7, 5), (2, 1, 4, 3), (1, 1, 3, 2)]:
        x = np.random.randn(*shape)
        np.testing.assert_allclose(
            f(x), reference_pool(x, (3, 2), (2, 1), (0, 0), False, mode), rtol=1e-12
        )


@pytest.mark.parametrize("mode", MODES)
def test_pool_nd_with_extra_leading_axes(mode):
    x = np.random.randn(2, 3, 2, 7)
    out = pool_nd(pt.constant(x), (3,), (2,), (1,), True, mode).eval()
    expected = reference_pool(x.reshape(6, 2, 7), (3,), (2,), (1,), True, mode)
    np.testing.assert_allclose(out, expected.reshape(2, 3, 2, -1), rtol=1e-12, atol=1e-12)


@given(
    L=st.integers(1, 12),
    s=st.integers(1, 5),
    st_=st.integers(1, 4),
    p=st.integers(0, 4),
    ignore=st.booleans(),
)
def test_pool_output_length_counts_windows(L, s, st_, p, ignore):
    if ignore and (p >= s or L + 2 * p < s):
        return
    if not ignore:
        p = 0
    assert pool_output_length(L, s, st_, p, ignore) == reference_length(L, s, st_, p, ignore)


@given(n=st.integers(1, 3), data=st.data())
def test_pool_shape_inference_matches_output(n, data):
    spatial = tuple(data.draw(st.lists(st.integers(1, 6), min_size=n, max_size=n)))
    ignore = data.draw(st.booleans())
    size = tuple(data.draw(st.integers(1, L if ignore else L + 2)) for L in spatial)
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    pad = tuple(data.draw(st.integers(0, s - 1)) for s in size) if ignore else (0,) * n
    mode = data.draw(st.sampled_from(MODES))
    batch = data.draw(st.integers(1, 2))
    free = data.draw(st.booleans())
    shape = (batch, 2) + spatial
    layer = POOL[n](
        InputLayer(((None,) if free else (batch,)) + shape[1:]),
        size,
        stride=stride,
        pad=pad,
        ignore_border=ignore,
        mode=mode,
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    assert get_output_shape(layer, shape) == out.shape
    assert layer.output_shape == (None if free else batch,) + out.shape[1:]
    np.testing.assert_allclose(
        out, reference_pool(x, size, stride, pad, ignore, mode), rtol=1e-12, atol=1e-12
    )


def tie_free(shape, seed=0):
    rng = np.random.RandomState(seed)
    return rng.permutation(int(np.prod(shape))).reshape(shape) / 10.0 + 0.05


@pytest.mark.parametrize(
    "shape, size, stride, pad, ignore",
    [
        ((1, 2, 4, 6), (2, 2), None, None, True),
        ((1, 2, 5, 6), (3, 2), (1, 2), (1, 0), True),
        ((1, 1, 5, 4), (2, 3), None, None, False),
        ((2, 1, 7), (3,), (2,), (1,), True),
        ((1, 1, 3, 4, 3), (2, 2, 2), (1, 2, 1), None, False),
    ],
)
@pytest.mark.parametrize("mode", MODES)
def test_pool_gradients(shape, size, stride, pad, ignore, mode):
    x = tie_free(shape)
    rng = np.random.RandomState(1)
    verify_grad(lambda v: pool_nd(v, size, stride, pad, ignore, mode), [x], rng=rng)


def test_pool_errors_name_the_layer():
    with pytest.raises(ValueError, match=r"MaxPool2DLayer 'p'.*larger than the padded input"):
        MaxPool2DLayer(InputLayer((None, 1, 3, 3)), 4, name="p")
    with pytest.raises(ValueError, match=r"Pool2DLayer.*requires ignore_border=True"):
        Pool2DLayer(InputLayer((None, 1, 6, 6)), 3, pad=1, ignore_border=False)
    with pytest.raises(ValueError, match=r"Pool2DLayer.*mode must be.*'median'"):
        Pool2DLayer(InputLayer((None, 1, 6, 6)), 2, mode="median")
    with pytest.raises(ValueError, match=r"Pool2DLayer.*expected 4 dimensions"):
        Pool2DLayer(InputLayer((None, 6, 6)), 2)
    with pytest.raises(ValueError, match=r"Pool1DLayer.*pad must be.*smaller than pool_size"):
        Pool1DLayer(InputLayer((None, 1, 9)), 2, pad=2)
    with pytest.raises(ValueError, match=r"Pool3DLayer 'q': pool_size must be an int or 3 ints"):
        Pool3DLayer(InputLayer((None, 1, 4, 4, 4)), (2, 2), name="q")
    with pytest.raises(ValueError, match=r"MaxPool1DLayer.*stride must be positive"):
        MaxPool1DLayer(InputLayer((None, 1, 9)), 2, stride=0)
    with pytest.raises(ValueError, match=r"pool_nd: pad"):
        pool_nd(pt.tensor4(), (2, 2), None, (1, 1), False)


@pytest.mark.parametrize("n", [1, 2, 3])
@pytest.mark.parametrize("mode", ["repeat", "dilate"])
def test_upscale_matches_numpy(n, mode):
    shape = (2, 3, 3, 2, 2)[: n + 2]
    factor = (2, 3, 1)[:n]
    layer = UPSCALE[n](InputLayer(shape), factor, mode=mode)
    x = np.random.randn(*shape)
    expected = np.zeros(shape[:2] + tuple(s * f for s, f in zip(shape[2:], factor)))
    for pos in np.ndindex(*expected.shape):
        src = pos[:2] + tuple(p // f for p, f in zip(pos[2:], factor))
        if mode == "repeat" or all(p % f == 0 for p, f in zip(pos[2:], factor)):
            expected[pos] = x[src]
    out = run(layer, x)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == layer.output_shape
    free = UPSCALE[n](InputLayer((None, None) + (None,) * n), factor, mode=mode)
    assert get_output_shape(free, shape) == out.shape
    np.testing.assert_array_equal(run(free, x), expected)


def test_upscale_errors():
    with pytest.raises(ValueError, match=r"Upscale2DLayer 'u': scale_factor must be >= 1"):
        Upscale2DLayer(InputLayer((None, 1, 3, 3)), (2, 0), name="u")
    with pytest.raises(ValueError, match=r"Upscale1DLayer.*'repeat' or 'dilate'"):
        Upscale1DLayer(InputLayer((None, 1, 3)), 2, mode="nearest")
    with pytest.raises(ValueError, match=r"Upscale3DLayer.*at least 5 dimensions"):
        Upscale3DLayer(InputLayer((None, 1, 3, 3)), 2)


def test_global_pool_matches_numpy():
    for shape in [(2, 6, 3, 4), (3, 2, 5), (1, 2, 2, 3, 2)]:
        x = np.random.randn(*shape)
        for fn, ref in [(pt.mean, np.mean), (pt.max, np.max), (pt.sum, np.sum)]:
            layer = GlobalPoolLayer(InputLayer((None,) + shape[1:]), fn)
            expected = np.array([[ref(x[b, c]) for c in range(shape[1])] for b in range(shape[0])])
            out = run(layer, x)
            np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
            assert get_output_shape(layer, shape) == out.shape
    with pytest.raises(ValueError, match=r"GlobalPoolLayer.*at least 3 dimensions"):
        GlobalPoolLayer(InputLayer((None, 4)))


@pytest.mark.parametrize(
    "shape, size, axis",
    [((2, 6, 3, 4), 3, 1), ((2, 6, 3, 4), 2, 3), ((3, 8), 4, -1), ((2, 4, 5), 2, 1)],
)
def test_feature_pool_and_wta_match_numpy(shape, size, axis):
    x = np.random.randn(*shape)
    ax = axis % len(shape)
    tied = [0] * len(shape)
    x[tuple(tied)] = 5.0
    tied[ax] = 1
    x[tuple(tied)] = 5.0  # a tie for the maximum inside the first group
    for fn, ref in [(pt.max, np.max), (pt.mean, np.mean)]:
        layer = FeaturePoolLayer(InputLayer(shape), size, axis=axis, pool_function=fn)
        out_shape = list(shape)
        out_shape[ax] //= size
        expected = np.zeros(out_shape)
        for pos in np.ndindex(*out_shape):
            group = [x[pos[:ax] + (pos[ax] * size + k,) + pos[ax + 1 :]] for k in range(size)]
            expected[pos] = ref(group)
        out = run(layer, x)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        assert out.shape == layer.output_shape
    wta = FeatureWTALayer(InputLayer(shape), size, axis=axis)
    expected = np.zeros(shape)
    for pos in np.ndindex(*shape):
        first = pos[ax] - pos[ax] % size
        group = [x[pos[:ax] + (first + k,) + pos[ax + 1 :]] for k in range(size)]
        winner = first + int(np.argmax(group))  # first maximum wins ties, as in Lasagne
        expected[pos] = x[pos] if pos[ax] == winner else 0.0
    out = run(wta, x)
    np.testing.assert_array_equal(out, expected)
    assert out.shape == wta.output_shape


def test_feature_pool_errors():
    with pytest.raises(ValueError, match=r"FeaturePoolLayer 'f'.*\(5\).*pool_size=2"):
        FeaturePoolLayer(InputLayer((None, 5)), 2, name="f")
    with pytest.raises(ValueError, match=r"FeatureWTALayer.*\(6\).*pool_size=4"):
        FeatureWTALayer(InputLayer((None, 6)), 4)
    with pytest.raises(ValueError, match=r"FeaturePoolLayer.*axis 3 is out of range"):
        FeaturePoolLayer(InputLayer((None, 4)), 2, axis=3)


def reference_spp(x, pool_dims, mode, implementation):
    rows, cols = x.shape[2:]
    reduce = np.max if mode == "max" else np.mean
    out = []
    for n in pool_dims:
        if implementation == "kaiming":
            rbins = [
                (int(np.floor(i * rows / n)), int(np.ceil((i + 1) * rows / n))) for i in range(n)
            ]
            cbins = [
                (int(np.floor(j * cols / n)), int(np.ceil((j + 1) * cols / n))) for j in range(n)
            ]
        else:  # window ceil(L/n), stride floor(L/n)
            rbins = [(i * (rows // n), i * (rows // n) + int(np.ceil(rows / n))) for i in range(n)]
            cbins = [(j * (cols // n), j * (cols // n) + int(np.ceil(cols / n))) for j in range(n)]
        for r0, r1 in rbins:
            for c0, c1 in cbins:
                block = np.zeros(x.shape[:2])
                for b in range(x.shape[0]):
                    for c in range(x.shape[1]):
                        block[b, c] = reduce(x[b, c, r0:r1, c0:c1])
                out.append(block)
    return np.stack(out, axis=2)


def fast_fits(L, n):
    return L >= n and (L - int(np.ceil(L / n))) // (L // n) + 1 == n


@pytest.mark.parametrize("implementation", ["fast", "kaiming"])
@pytest.mark.parametrize("mode", MODES)
def test_spatial_pyramid_pooling_matches_numpy(implementation, mode):
    pool_dims = [3, 2, 1]
    free = SpatialPyramidPoolingLayer(
        InputLayer((None, 2, None, None)), pool_dims, mode=mode, implementation=implementation
    )
    f = pytensor.function([free.input_layer.input_var], get_output(free))
    for rows, cols in [(7, 9), (4, 4), (13, 5), (6, 3), (9, 12)]:
        x = np.random.randn(2, 2, rows, cols)
        if implementation == "fast" and not all(
            fast_fits(L, n) for L in (rows, cols) for n in pool_dims
        ):
            with pytest.raises(AssertionError, match="implementation='kaiming'"):
                f(x)
            with pytest.raises(ValueError, match=r"SpatialPyramidPoolingLayer.*'kaiming'"):
                SpatialPyramidPoolingLayer(InputLayer(x.shape), pool_dims, mode, implementation)
            continue
        expected = reference_spp(x, pool_dims, mode, implementation)
        out = f(x)
        np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
        assert get_output_shape(free, x.shape) == out.shape
        fixed = SpatialPyramidPoolingLayer(InputLayer(x.shape), pool_dims, mode, implementation)
        np.testing.assert_allclose(run(fixed, x), expected, rtol=1e-12, atol=1e-12)


def test_spatial_pyramid_pooling_errors():
    with pytest.raises(ValueError, match=r"SpatialPyramidPoolingLayer 's'.*4-D input"):
        SpatialPyramidPoolingLayer(InputLayer((None, 2, 5)), name="s")
    with pytest.raises(ValueError, match=r"SpatialPyramidPoolingLayer.*'fast' or 'kaiming'"):
        SpatialPyramidPoolingLayer(InputLayer((None, 2, 5, 5)), implementation="slow")
    with pytest.raises(ValueError, match=r"SpatialPyramidPoolingLayer.*pool_dims"):
        SpatialPyramidPoolingLayer(InputLayer((None, 2, 5, 5)), pool_dims=[2, 0])


@pytest.mark.backend
def test_pool_compiles_with_numba():
    for mode in MODES:
        for n, shape, size, stride, pad, ignore in [CASES[2], CASES[7], CASES[11]]:
            layer = POOL[n](
                InputLayer(shape), size, stride=stride, pad=pad, ignore_border=ignore, mode=mode
            )
            x = np.random.randn(*shape)
            expected = reference_pool(x, size, stride or size, pad, ignore, mode)
            out = run(layer, x, mode="NUMBA")
            np.testing.assert_allclose(out, expected, rtol=1e-12, atol=1e-12)
