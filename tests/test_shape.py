"""Shape layers (reshape, flatten, dimshuffle, pad, slice) against numpy."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasagne.layers import (
    DimshuffleLayer,
    FlattenLayer,
    InputLayer,
    PadLayer,
    ReshapeLayer,
    SliceLayer,
    dimshuffle,
    flatten,
    get_output,
    get_output_shape,
    pad,
    reshape,
)


def compile_layer(layer, l_in):
    return pytensor.function([l_in.input_var], get_output(layer))


def check_shapes(layer, x, out):
    """Declared shapes agree with the real one: exact for the real input shape,
    and wherever known for the layer's own (possibly partly unknown) input."""
    assert get_output_shape(layer, x.shape) == out.shape
    declared = layer.output_shape
    assert len(declared) == out.ndim
    assert all(d is None or d == o for d, o in zip(declared, out.shape))


def masked(shape, mask):
    return tuple(None if m else s for s, m in zip(shape, mask))


small_shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


# --- ReshapeLayer ---------------------------------------------------------------------


def numpy_target(x, spec):
    return tuple(x.shape[e[0]] if isinstance(e, list) else e for e in spec)


@pytest.mark.parametrize(
    "in_shape, spec, unknown",
    [
        ((4, 6, 5), ([0], 3, -1, [2]), (True, False, False)),
        ((4, 6, 5), ([0], -1), (True, False, False)),
        ((4, 6, 5), (-1,), (False, False, False)),
        ((4, 6, 5), (2, 2, 30), (False, False, False)),
        ((4, 6, 5), ([2], [0], 6), (True, False, True)),
        ((3, 4, 8), ([0], 2, [2], 2, -1), (True, True, False)),
        ((2, 12), (-1, 4, 3), (True, False)),
    ],
)
def test_reshape_matches_numpy(in_shape, spec, unknown):
    x = np.random.randn(*in_shape)
    l_in = InputLayer(masked(in_shape, unknown))
    layer = ReshapeLayer(l_in, spec)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, x.reshape(numpy_target(x, spec)))
    check_shapes(layer, x, out)


def test_reshape_infers_minus_one_despite_unknown_copied_axis():
    layer = ReshapeLayer(InputLayer((None, 6, 5)), ([0], 3, -1))
    assert layer.output_shape == (None, 3, 10)
    # an unknown axis not copied one-to-one leaves -1 unknown
    assert ReshapeLayer(InputLayer((None, 6)), (-1, 3)).output_shape == (None, 3)
    assert ReshapeLayer(InputLayer((None, 6)), ([0], [0], -1)).output_shape == (None, None, None)
    assert reshape is ReshapeLayer


def test_reshape_symbolic_entry():
    n = pt.lscalar("n")
    l_in = InputLayer((2, 12))
    layer = ReshapeLayer(l_in, (n, -1))
    assert layer.output_shape == (None, None)
    f = pytensor.function([l_in.input_var, n], get_output(layer))
    x = np.random.randn(2, 12)
    for k in (1, 3, 4):
        np.testing.assert_array_equal(f(x, k), x.reshape(k, -1))


@given(
    shape=small_shapes,
    keep=st.integers(0, 4),
    split=st.booleans(),
    unknown=st.lists(st.booleans(), min_size=4, max_size=4),
)
def test_reshape_shape_inference_property(shape, keep, split, unknown):
    keep = min(keep, len(shape))
    spec = [[i] for i in range(keep)]
    rest = int(np.prod(shape[keep:]))
    if split and rest % 2 == 0:
        spec += [2, -1]
    else:
        spec += [-1]
    x = np.random.randn(*shape)
    l_in = InputLayer(masked(shape, unknown))
    layer = ReshapeLayer(l_in, tuple(spec))
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, x.reshape(numpy_target(x, spec)))
    check_shapes(layer, x, out)


@pytest.mark.parametrize(
    "spec, message",
    [
        ((0, 6), "positive or -1"),
        ((-2, 6), "positive or -1"),
        ((-1, -1), "-1 only once"),
        (([0, 1], 6), "one-element"),
        ((["a"], 6), "one-element"),
        (("a", 6), "ints, -1"),
        (([3], -1), "refers to input axis 3"),
        ((5, 5), "total size changes from 12 to 25"),
        ((5, -1), "do not divide"),
    ],
)
def test_reshape_errors_name_layer(spec, message):
    with pytest.raises(ValueError, match=f"ReshapeLayer 'r'.*{message}"):
        ReshapeLayer(InputLayer((2, 6)), spec, name="r")


def test_reshape_rejects_non_scalar_expression_and_non_tuple():
    with pytest.raises(ValueError, match="scalar"):
        ReshapeLayer(InputLayer((2, 6)), (pt.vector(), 2))
    with pytest.raises(TypeError, match="ReshapeLayer.*tuple"):
        ReshapeLayer(InputLayer((2, 6)), 12)


# --- FlattenLayer ---------------------------------------------------------------------


@given(shape=small_shapes, outdim=st.integers(1, 4), unknown=st.lists(st.booleans(), min_size=4))
def test_flatten_matches_numpy(shape, outdim, unknown):
    outdim = min(outdim, len(shape))
    x = np.random.randn(*shape)
    l_in = InputLayer(masked(shape, unknown))
    layer = FlattenLayer(l_in, outdim=outdim)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, x.reshape(x.shape[: outdim - 1] + (-1,)))
    check_shapes(layer, x, out)


def test_flatten_default_and_errors():
    assert FlattenLayer(InputLayer((None, 2, 3, 4))).output_shape == (None, 24)
    assert FlattenLayer(InputLayer((None, None, 3))).output_shape == (None, None)
    assert flatten is FlattenLayer
    with pytest.raises(ValueError, match="FlattenLayer 'f'.*outdim.*>= 1"):
        FlattenLayer(InputLayer((2, 3)), outdim=0, name="f")
    with pytest.raises(ValueError, match="FlattenLayer 'f'.*outdim.*=3 exceeds"):
        FlattenLayer(InputLayer((2, 3)), outdim=3, name="f")


# --- DimshuffleLayer ------------------------------------------------------------------


def numpy_dimshuffle(x, pattern):
    kept = [p for p in pattern if p != "x"]
    dropped = tuple(a for a in range(x.ndim) if a not in kept)
    y = np.squeeze(x, axis=dropped) if dropped else x
    # positions of kept axes after squeezing
    remap = {a: i for i, a in enumerate(a for a in range(x.ndim) if a in kept)}
    y = np.transpose(y, [remap[p] for p in kept])
    for pos, p in enumerate(pattern):
        if p == "x":
            y = np.expand_dims(y, pos)
    return y


@pytest.mark.parametrize(
    "shape, pattern, unknown",
    [
        ((2, 3, 5), (2, "x", 0, 1), (True, False, False)),
        ((2, 1, 5), (2, 0), (False, False, False)),
        ((2, 1, 5), (2, 0), (False, True, False)),  # unknown size 1 at run time
        ((4,), ("x", 0, "x"), (True,)),
        ((1, 3), (1,), (True, False)),
    ],
)
def test_dimshuffle_matches_numpy(shape, pattern, unknown):
    x = np.random.randn(*shape)
    l_in = InputLayer(masked(shape, unknown))
    layer = DimshuffleLayer(l_in, pattern)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, numpy_dimshuffle(x, pattern))
    check_shapes(layer, x, out)


@given(
    shape=small_shapes,
    perm_seed=st.integers(0, 10**6),
    inserts=st.lists(st.integers(0, 4), max_size=2),
    unknown=st.lists(st.booleans(), min_size=4),
)
def test_dimshuffle_property(shape, perm_seed, inserts, unknown):
    pattern = list(np.random.RandomState(perm_seed).permutation(len(shape)))
    for pos in inserts:
        pattern.insert(min(pos, len(pattern)), "x")
    x = np.random.randn(*shape)
    l_in = InputLayer(masked(shape, unknown))
    layer = dimshuffle(l_in, pattern)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, numpy_dimshuffle(x, pattern))
    check_shapes(layer, x, out)


def test_dimshuffle_errors():
    with pytest.raises(ValueError, match="DimshuffleLayer 'd'.*axis 1 more than once"):
        DimshuffleLayer(InputLayer((2, 3)), (1, 1), name="d")
    with pytest.raises(ValueError, match="DimshuffleLayer 'd'.*ints or 'x'"):
        DimshuffleLayer(InputLayer((2, 3)), (0, "y"), name="d")
    with pytest.raises(ValueError, match="DimshuffleLayer 'd'.*refers to axis 2"):
        DimshuffleLayer(InputLayer((2, 3)), (0, 2), name="d")
    with pytest.raises(ValueError, match="DimshuffleLayer 'd'.*drops input axis 1 of size 3"):
        DimshuffleLayer(InputLayer((2, 3)), (0,), name="d")
    # an unknown dropped axis must be 1 when the graph runs
    l_in = InputLayer((2, None))
    f = compile_layer(DimshuffleLayer(l_in, (0,)), l_in)
    with pytest.raises(Exception):  # noqa: B017 - PyTensor's runtime shape assertion
        f(np.zeros((2, 3)))


# --- PadLayer -------------------------------------------------------------------------


def numpy_pad(x, width, val, batch_ndim):
    n = x.ndim - batch_ndim
    if isinstance(width, int):
        pairs = [(width, width)] * n
    else:
        pairs = [(w, w) if isinstance(w, int) else tuple(w) for w in width]
        pairs += [(0, 0)] * (n - len(pairs))
    return np.pad(x, [(0, 0)] * batch_ndim + pairs, mode="constant", constant_values=val)


@pytest.mark.parametrize(
    "shape, width, val, batch_ndim",
    [
        ((2, 3, 4, 5), 1, 0, 2),
        ((2, 3, 4, 5), 2, -1.5, 2),
        ((2, 3, 4, 5), (1, 0), 3.0, 2),
        ((2, 3, 4, 5), [(0, 2), (3, 1)], 0, 2),
        ((2, 3, 4, 5), [(1, 2)], 7.0, 2),  # fewer entries: later axes untouched
        ((2, 3, 4), (1, (0, 2)), 0.5, 1),
        ((3, 4), 2, 1.0, 0),
    ],
)
def test_pad_matches_numpy(shape, width, val, batch_ndim):
    x = np.random.randn(*shape)
    l_in = InputLayer((None,) + shape[1:])
    layer = PadLayer(l_in, width, val=val, batch_ndim=batch_ndim)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, numpy_pad(x, width, val, batch_ndim))
    check_shapes(layer, x, out)


@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple),
    widths=st.lists(st.tuples(st.integers(0, 2), st.integers(0, 2)), max_size=4),
    batch_ndim=st.integers(0, 2),
    unknown=st.lists(st.booleans(), min_size=4),
)
def test_pad_property(shape, widths, batch_ndim, unknown):
    widths = widths[: len(shape) - batch_ndim]
    x = np.random.randn(*shape)
    l_in = InputLayer(masked(shape, unknown))
    layer = pad(l_in, widths, val=2.0, batch_ndim=batch_ndim)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(out, numpy_pad(x, widths, 2.0, batch_ndim))
    check_shapes(layer, x, out)


def test_pad_errors():
    with pytest.raises(ValueError, match="PadLayer 'p'.*3 entries.*only 2 axes"):
        PadLayer(InputLayer((1, 2, 3, 4)), (1, 1, 1), name="p")
    with pytest.raises(ValueError, match="PadLayer 'p'.*int >= 0 or a pair"):
        PadLayer(InputLayer((1, 2, 3, 4)), (-1, 1), name="p")
    with pytest.raises(ValueError, match="PadLayer 'p'.*int >= 0 or a pair"):
        PadLayer(InputLayer((1, 2, 3, 4)), ((1, 2, 3),), name="p")
    with pytest.raises(ValueError, match="PadLayer 'p'.*batch_ndim"):
        PadLayer(InputLayer((1, 2)), 1, batch_ndim=3, name="p")
    with pytest.raises(TypeError, match="PadLayer 'p'.*width"):
        PadLayer(InputLayer((1, 2)), 1.5, name="p")


# --- SliceLayer -----------------------------------------------------------------------


@pytest.mark.parametrize(
    "indices, axis",
    [
        (slice(2, 8, 2), 1),
        (slice(None, None, -1), -1),
        (slice(-3, None), 2),
        (slice(5, 1), 1),
        (0, 0),
        (-1, -1),
        (3, 1),
    ],
)
def test_slice_matches_numpy(indices, axis):
    x = np.random.randn(3, 10, 4)
    l_in = InputLayer((None, 10, None))
    layer = SliceLayer(l_in, indices, axis=axis)
    out = compile_layer(layer, l_in)(x)
    index = (slice(None),) * (axis % 3) + (indices,)
    np.testing.assert_array_equal(out, x[index])
    check_shapes(layer, x, out)


@given(
    shape=small_shapes,
    axis_seed=st.integers(0, 100),
    start=st.none() | st.integers(-5, 5),
    stop=st.none() | st.integers(-5, 5),
    step=st.none() | st.sampled_from([-2, -1, 1, 2, 3]),
    unknown=st.lists(st.booleans(), min_size=4),
)
def test_slice_property(shape, axis_seed, start, stop, step, unknown):
    axis = axis_seed % len(shape) - len(shape) * (axis_seed % 2)  # mix negative axes
    x = np.random.randn(*shape)
    l_in = InputLayer(masked(shape, unknown))
    layer = SliceLayer(l_in, slice(start, stop, step), axis=axis)
    out = compile_layer(layer, l_in)(x)
    np.testing.assert_array_equal(
        out, x[(slice(None),) * (axis % x.ndim) + (slice(start, stop, step),)]
    )
    check_shapes(layer, x, out)


def test_slice_errors():
    with pytest.raises(
        ValueError, match="SliceLayer 's'.*index 4 is out of range for axis 1 of size 4"
    ):
        SliceLayer(InputLayer((2, 4)), 4, axis=1, name="s")
    with pytest.raises(ValueError, match="SliceLayer 's'.*axis.*=2 is out of range"):
        SliceLayer(InputLayer((2, 4)), 0, axis=2, name="s")
    with pytest.raises(TypeError, match="SliceLayer 's'.*indices"):
        SliceLayer(InputLayer((2, 4)), [0, 1], name="s")
    with pytest.raises(TypeError, match="SliceLayer 's'.*axis"):
        SliceLayer(InputLayer((2, 4)), 0, axis=1.0, name="s")
