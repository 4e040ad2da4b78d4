"""Merge layers and autocrop against numpy, with cropping."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne.layers import (
    ConcatLayer,
    ElemwiseMergeLayer,
    ElemwiseSumLayer,
    InputLayer,
    autocrop,
    autocrop_array_shapes,
    concat,
    get_output,
    get_output_shape,
)


def numpy_crop(arrays, cropping):
    """Crop numpy arrays to common sizes, written out axis by axis."""
    if cropping is None:
        return list(arrays)
    out = list(arrays)
    for axis in range(arrays[0].ndim):
        mode = cropping[axis] if axis < len(cropping) else None
        if mode is None:
            continue
        m = min(a.shape[axis] for a in arrays)
        cropped = []
        for a in out:
            n = a.shape[axis]
            if mode == "lower":
                keep = np.arange(0, m)
            elif mode == "upper":
                keep = np.arange(n - m, n)
            else:
                keep = np.arange((n - m) // 2, (n - m) // 2 + m)
            cropped.append(np.take(a, keep, axis=axis))
        out = cropped
    return out


def inputs_for(shapes, unknown=()):
    return [
        InputLayer(tuple(None if (i, a) in unknown else s for a, s in enumerate(shape)))
        for i, shape in enumerate(shapes)
    ]


def run(layer, l_ins, xs):
    f = pytensor.function([l.input_var for l in l_ins], get_output(layer))
    return f(*xs)


def check_shapes(layer, l_ins, xs, out):
    real = {l: x.shape for l, x in zip(l_ins, xs)}
    assert get_output_shape(layer, real) == out.shape
    assert all(d is None or d == o for d, o in zip(layer.output_shape, out.shape))


def cropped_shapes(cropping):
    """Three shapes that differ exactly on the cropped axes (odd and even surpluses)."""
    shapes = []
    for i in range(3):
        s = [2, 3, 4]
        for a, mode in enumerate(cropping or []):
            if mode is not None:
                s[a] += (0, 3, 2)[i] + a
        shapes.append(tuple(s))
    return shapes


CROPPINGS = [
    None,
    [None, None, "lower"],
    [None, "upper", "upper"],
    ["center", "center", "center"],
    [None, "center"],  # shorter than ndim: the rest is not cropped
]


@pytest.mark.parametrize("cropping", CROPPINGS)
def test_autocrop_matches_numpy(cropping):
    shapes = cropped_shapes(cropping)
    xs = [np.random.randn(*s) for s in shapes]
    out = autocrop([pt.constant(x) for x in xs], cropping)
    expected = numpy_crop(xs, cropping)
    for o, e in zip(out, expected):
        np.testing.assert_array_equal(o.eval(), e)
    assert autocrop_array_shapes(shapes, cropping) == [e.shape for e in expected]


def test_autocrop_array_shapes_unknown_and_errors():
    shapes = [(None, 5, 4), (3, None, 2)]
    assert autocrop_array_shapes(shapes, ["lower", None, "center"]) == [
        (None, 5, 2),
        (None, None, 2),
    ]
    with pytest.raises(ValueError, match="unknown crop mode 'middle'"):
        autocrop_array_shapes(shapes, ["middle"])
    with pytest.raises(ValueError, match="same number of dimensions"):
        autocrop_array_shapes([(1, 2), (1, 2, 3)], ["lower"])
    with pytest.raises(ValueError, match="same number of dimensions"):
        autocrop([pt.matrix(), pt.tensor3()], ["lower"])
    with pytest.raises(ValueError, match="3 entries for 2-dimensional"):
        autocrop([pt.matrix(), pt.matrix()], ["lower"] * 3)


@pytest.mark.parametrize("axis", [0, 1, 2, -1, -2])
@pytest.mark.parametrize("cropping", CROPPINGS)
def test_concat_matches_numpy(axis, cropping):
    base = [(2, 3, 4), (2, 3, 4), (2, 3, 4)]
    shapes = []
    for i, s in enumerate(base):
        s = list(s)
        s[axis] += i  # sizes differ on the concatenation axis
        if cropping is not None:
            for a, mode in enumerate(cropping):
                if mode is not None and a != axis % 3:
                    s[a] += (2 * i) % 3  # and on cropped axes
        shapes.append(tuple(s))
    xs = [np.random.randn(*s) for s in shapes]
    l_ins = inputs_for(shapes, unknown={(0, 0), (1, 2)})
    layer = ConcatLayer(l_ins, axis=axis, cropping=cropping)
    out = run(layer, l_ins, xs)
    cropping_np = None
    if cropping is not None:
        cropping_np = list(cropping) + [None] * (3 - len(cropping))
        cropping_np[axis] = None
    np.testing.assert_array_equal(out, np.concatenate(numpy_crop(xs, cropping_np), axis=axis))
    check_shapes(layer, l_ins, xs, out)


@pytest.mark.parametrize(
    "function, reference",
    [(pt.mul, np.multiply), (pt.maximum, np.maximum), (pt.sub, np.subtract)],
)
@pytest.mark.parametrize("cropping", CROPPINGS)
def test_elemwise_merge_matches_numpy(function, reference, cropping):
    shapes = cropped_shapes(cropping)
    xs = [np.random.randn(*s) for s in shapes]
    l_ins = inputs_for(shapes, unknown={(0, 0), (2, 1)})
    layer = ElemwiseMergeLayer(l_ins, function, cropping=cropping)
    out = run(layer, l_ins, xs)
    c = numpy_crop(xs, cropping)
    np.testing.assert_allclose(out, reference(reference(c[0], c[1]), c[2]))
    check_shapes(layer, l_ins, xs, out)


@pytest.mark.parametrize("coeffs", [1, 0.5, [1, -1, 2], (0.0, 3.0, -0.25)])
@pytest.mark.parametrize("cropping", [None, ["upper", "lower", "center"]])
def test_elemwise_sum_matches_numpy(coeffs, cropping):
    shapes = cropped_shapes(cropping)
    xs = [np.random.randn(*s) for s in shapes]
    l_ins = inputs_for(shapes)
    layer = ElemwiseSumLayer(l_ins, coeffs=coeffs, cropping=cropping)
    out = run(layer, l_ins, xs)
    cs = list(coeffs) if isinstance(coeffs, (list, tuple)) else [coeffs] * 3
    expected = sum(c * x for c, x in zip(cs, numpy_crop(xs, cropping)))
    np.testing.assert_allclose(out, expected)
    check_shapes(layer, l_ins, xs, out)


def test_elemwise_sum_symbolic_coeffs_and_gradient():
    c = pytensor.shared(np.float64(1.5), name="c")
    l_ins = inputs_for([(2, 3), (2, 3)])
    layer = ElemwiseSumLayer(l_ins, coeffs=[c, 1])
    xs = [np.random.randn(2, 3) for _ in range(2)]
    np.testing.assert_allclose(run(layer, l_ins, xs), 1.5 * xs[0] + xs[1])
    c.set_value(np.float64(-2.0))
    np.testing.assert_allclose(run(layer, l_ins, xs), -2.0 * xs[0] + xs[1])
    verify_grad(
        lambda a, b: ElemwiseSumLayer([(2, 3), (2, 3)], coeffs=[0.5, -3.0]).get_output_for([a, b]),
        xs,
        rng=np.random.default_rng(0),
    )


def test_concat_cropping_gradient():
    layer = ConcatLayer([(1, 2, 5), (1, 3, 3)], axis=1, cropping=[None, None, "center"])
    verify_grad(
        lambda a, b: layer.get_output_for([a, b]) ** 2,
        [np.random.randn(1, 2, 5), np.random.randn(1, 3, 3)],
        rng=np.random.default_rng(0),
    )


def test_merge_shape_inference_with_unknown_sizes():
    a, b = InputLayer((None, 3, None)), InputLayer((4, 3, 5))
    assert ElemwiseMergeLayer([a, b], pt.add).output_shape == (4, 3, 5)
    assert ConcatLayer([a, b], axis=2).output_shape == (4, 3, None)
    assert ConcatLayer([b, b], axis=-1).output_shape == (4, 3, 10)
    assert concat is ConcatLayer


def test_merge_errors_name_layer():
    with pytest.raises(ValueError, match="ConcatLayer 'c'.*disagree on axis 2.*all axes but 1"):
        ConcatLayer([InputLayer((None, 3, 4)), InputLayer((None, 2, 5))], name="c")
    with pytest.raises(ValueError, match="ConcatLayer 'c'.*same number of dimensions"):
        ConcatLayer([InputLayer((1, 3, 4)), InputLayer((1, 3))], name="c")
    with pytest.raises(ValueError, match="ConcatLayer 'c'.*axis.*=3 is out of range"):
        ConcatLayer([InputLayer((1, 3, 4)), InputLayer((1, 3, 4))], axis=3, name="c")
    with pytest.raises(ValueError, match="ConcatLayer 'c'.*unknown crop mode 'side'"):
        ConcatLayer([InputLayer((1, 3)), InputLayer((1, 3))], cropping=["side"], name="c")
    with pytest.raises(ValueError, match="ElemwiseMergeLayer 'm'.*disagree on axis 1"):
        ElemwiseMergeLayer([InputLayer((1, 3)), InputLayer((1, 4))], pt.mul, name="m")
    with pytest.raises(TypeError, match="ElemwiseMergeLayer 'm'.*merge_function"):
        ElemwiseMergeLayer([InputLayer((1, 3)), InputLayer((1, 3))], "mul", name="m")
    with pytest.raises(ValueError, match="ElemwiseSumLayer 's'.*3 `coeffs` for 2 inputs"):
        ElemwiseSumLayer([InputLayer((1, 3)), InputLayer((1, 3))], coeffs=[1, 2, 3], name="s")
    # cropping resolves the mismatch
    ok = ElemwiseSumLayer([InputLayer((1, 3)), InputLayer((1, 4))], cropping=[None, "lower"])
    assert ok.output_shape == (1, 3)


modes = st.sampled_from([None, "lower", "upper", "center"])


@given(
    shapes=st.lists(st.lists(st.integers(1, 4), min_size=3, max_size=3), min_size=2, max_size=3),
    cropping=st.lists(modes, min_size=3, max_size=3),
    axis=st.integers(-3, 2),
    unknown=st.sets(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=3),
)
def test_merge_shapes_property(shapes, cropping, axis, unknown):
    # make the shapes agree wherever no cropping happens (but on the concat axis)
    shapes = [list(s) for s in shapes]
    for a in range(3):
        if cropping[a] is None:
            for s in shapes:
                s[a] = shapes[0][a]
    xs = [np.random.randn(*s) for s in shapes]
    l_ins = inputs_for([tuple(s) for s in shapes], unknown=unknown)
    merged = ElemwiseMergeLayer(l_ins, pt.add, cropping=cropping)
    out = run(merged, l_ins, xs)
    np.testing.assert_allclose(out, sum(numpy_crop(xs, cropping)))
    check_shapes(merged, l_ins, xs, out)
    # concatenation: the concat axis may differ, it is never cropped
    concat_xs = [
        np.random.randn(*s[: axis % 3], i + 1, *s[axis % 3 + 1 :]) for i, s in enumerate(shapes)
    ]
    l_ins = inputs_for([x.shape for x in concat_xs], unknown=unknown)
    layer = ConcatLayer(l_ins, axis=axis, cropping=cropping)
    out = run(layer, l_ins, concat_xs)
    crop_np = list(cropping)
    crop_np[axis] = None
    np.testing.assert_array_equal(out, np.concatenate(numpy_crop(concat_xs, crop_np), axis=axis))
    check_shapes(layer, l_ins, concat_xs, out)
