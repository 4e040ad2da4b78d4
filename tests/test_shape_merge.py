"""Shape and merge layers against numpy; shape inference by hypothesis."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasagne.layers import (
    ConcatLayer,
    DimshuffleLayer,
    ElemwiseMergeLayer,
    ElemwiseSumLayer,
    FlattenLayer,
    InputLayer,
    PadLayer,
    ReshapeLayer,
    SliceLayer,
    get_output,
    get_output_shape,
)
from plasagne.layers.merge import autocrop_array_shapes


def run(layer, *xs):
    ins = layer.input_layers if hasattr(layer, "input_layers") else [layer.input_layer]
    return pytensor.function([i.input_var for i in ins], get_output(layer))(*xs)


def test_reshape_with_references_and_inference():
    x = np.random.randn(4, 6, 5)
    layer = ReshapeLayer(InputLayer((None, 6, 5)), ([0], 3, -1, [2]))
    out = run(layer, x)
    np.testing.assert_array_equal(out, x.reshape(4, 3, 2, 5))
    assert layer.output_shape == (None, 3, 2, 5)
    assert get_output_shape(layer, x.shape) == out.shape
    with pytest.raises(ValueError, match="ReshapeLayer 'r'.*size mismatch"):
        ReshapeLayer(InputLayer((2, 6)), (5, -1, 7), name="r")
    with pytest.raises(ValueError, match="more than one -1"):
        ReshapeLayer(InputLayer((2, 6)), (-1, -1))


@given(dims=st.lists(st.integers(1, 4), min_size=1, max_size=4), outdim=st.integers(1, 4))
def test_flatten_matches_numpy(dims, outdim):
    if outdim > len(dims):
        outdim = len(dims)
    x = np.random.randn(*dims)
    layer = FlattenLayer(InputLayer(x.shape), outdim)
    out = run(layer, x)
    np.testing.assert_array_equal(out, x.reshape(dims[: outdim - 1] + [-1]))
    assert layer.output_shape == out.shape


def test_dimshuffle():
    x = np.random.randn(2, 1, 3)
    layer = DimshuffleLayer(InputLayer((None, 1, 3)), (2, "x", 0))
    out = run(layer, x)
    np.testing.assert_array_equal(out, x[:, 0].T[:, None, :])
    assert get_output_shape(layer, x.shape) == out.shape
    with pytest.raises(ValueError, match="drops a dimension of size 3"):
        DimshuffleLayer(InputLayer((2, 3)), (0,))


@pytest.mark.parametrize(
    "width, val, batch_ndim", [(1, 0, 2), ([(1, 2), 0], 3.5, 2), ([1, (0, 2), 3], -1, 1)]
)
def test_pad_matches_numpy(width, val, batch_ndim):
    x = np.random.randn(2, 3, 4, 5)
    layer = PadLayer(InputLayer(x.shape), width, val=val, batch_ndim=batch_ndim)
    n = 4 - batch_ndim
    widths = (
        [(width, width)] * n
        if isinstance(width, int)
        else [(w, w) if isinstance(w, int) else w for w in width]
    )
    expected = np.pad(x, [(0, 0)] * batch_ndim + widths, constant_values=val)
    out = run(layer, x)
    np.testing.assert_array_equal(out, expected)
    assert layer.output_shape == out.shape


@given(
    start=st.integers(-5, 5),
    stop=st.integers(-5, 5),
    step=st.sampled_from([1, 2, -1]),
    axis=st.sampled_from([1, -1]),
)
def test_slice_matches_numpy(start, stop, step, axis):
    x = np.random.randn(2, 5, 5)
    sl = slice(start, stop, step)
    out = run(SliceLayer(InputLayer(x.shape), sl, axis=axis), x)
    expected = x[:, sl] if axis == 1 else x[..., sl]
    np.testing.assert_array_equal(out, expected)
    assert SliceLayer(InputLayer(x.shape), sl, axis=axis).output_shape == expected.shape
    idx = run(SliceLayer(InputLayer(x.shape), 3, axis=axis), x)
    np.testing.assert_array_equal(idx, x[:, 3] if axis == 1 else x[..., 3])


@pytest.mark.parametrize(
    "cropping", [None, [None, None, "lower", "upper"], [None, None, "center", "center"]]
)
def test_concat_and_merges_with_cropping(cropping):
    a = np.random.randn(2, 3, 5, 6)
    b = np.random.randn(2, 2, 5, 6) if cropping is None else np.random.randn(2, 2, 4, 3)

    def crop(x, shape):
        if cropping is None:
            return x
        sl = [slice(None), slice(None)]
        for dim, mode in enumerate(cropping[2:], start=2):
            n, m = x.shape[dim], shape[dim]
            start = {"lower": 0, "upper": n - m, "center": (n - m) // 2}[mode]
            sl.append(slice(start, start + m))
        return x[tuple(sl)]

    small = (2, 2) + tuple(min(p, q) for p, q in zip(a.shape[2:], b.shape[2:]))
    la, lb = InputLayer(a.shape), InputLayer(b.shape)
    cat = ConcatLayer([la, lb], axis=1, cropping=cropping)
    out = run(cat, a, b)
    np.testing.assert_array_equal(out, np.concatenate([crop(a, small), crop(b, small)], axis=1))
    assert cat.output_shape == out.shape
    c = np.random.randn(*b.shape)
    lc = InputLayer(c.shape)
    a2 = a[:, :2]
    la2 = InputLayer(a2.shape)
    summed = ElemwiseSumLayer([la2, lc], coeffs=[2, -0.5], cropping=cropping)
    np.testing.assert_allclose(run(summed, a2, c), 2 * crop(a2, small) - 0.5 * crop(c, small))
    prod = ElemwiseMergeLayer([la2, lc], pt.mul, cropping=cropping)
    np.testing.assert_allclose(run(prod, a2, c), crop(a2, small) * crop(c, small))
    assert prod.output_shape == crop(c, small).shape


def test_merge_shape_errors_and_unknown_sizes():
    with pytest.raises(ValueError, match="ConcatLayer 'c'.*mismatch"):
        ConcatLayer([InputLayer((None, 3, 4)), InputLayer((None, 2, 5))], name="c").output_shape
    assert ConcatLayer([InputLayer((None, 3)), InputLayer((None, None))]).output_shape == (
        None,
        None,
    )
    assert autocrop_array_shapes([(1, None), (1, 3)], [None, "lower"]) == [(1, None), (1, None)]
    with pytest.raises(ValueError, match="must be equal"):
        ElemwiseSumLayer([InputLayer((None, 3)), InputLayer((None, 4))]).output_shape
