"""Convolution layers against scipy.signal references, shapes by hypothesis, gradients."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne import init
from plasagne.layers import (
    Conv1DLayer,
    Conv2DLayer,
    Conv3DLayer,
    DilatedConv2DLayer,
    InputLayer,
    TransposedConv2DLayer,
    TransposedConv3DLayer,
    get_output,
    get_output_shape,
)
from plasagne.ops.conv import corr_nd
from plasagne.utils import ParameterError

CONV = {1: Conv1DLayer, 2: Conv2DLayer, 3: Conv3DLayer}


def run(layer, x):
    l_in = layer.input_layer
    return pytensor.function([l_in.input_var], get_output(layer))(x)


def reference_conv(x, W, stride, pad, flip):
    """scipy reference: pad, correlate (or convolve) each channel pair, subsample."""
    n = x.ndim - 2
    k = W.shape[2:]
    if pad == "valid":
        pads = [0] * n
    elif pad == "full":
        pads = [s - 1 for s in k]
    elif pad == "same":
        pads = [s // 2 for s in k]
    else:
        pads = list(pad)
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pads])
    fn = scipy.signal.convolve if flip else scipy.signal.correlate
    out = np.array(
        [
            [
                sum(fn(xp[b, c], W[f, c], mode="valid") for c in range(x.shape[1]))
                for f in range(W.shape[0])
            ]
            for b in range(x.shape[0])
        ]
    )
    return out[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]


CASES = [
    (1, (2, 3, 9), 4, (3,), (1,), "valid", True),
    (1, (2, 2, 8), 3, (2,), (2,), "full", False),
    (2, (2, 3, 7, 6), 4, (3, 2), (1, 1), "valid", True),
    (2, (1, 2, 8, 9), 3, (3, 3), (2, 1), "same", False),
    (2, (2, 1, 6, 5), 2, (2, 3), (1, 2), "full", True),
    (2, (2, 2, 7, 7), 3, (3, 1), (3, 2), (1, 2), True),
    (3, (1, 2, 5, 4, 6), 2, (3, 2, 3), (1, 2, 1), "valid", True),
    (3, (2, 1, 4, 5, 4), 2, (3, 3, 3), (2, 1, 1), "same", False),
]


@pytest.mark.parametrize("n, shape, nf, k, stride, pad, flip", CASES)
@pytest.mark.parametrize("untie", [False, True])
def test_conv_matches_scipy(n, shape, nf, k, stride, pad, flip, untie):
    layer = CONV[n](
        InputLayer(shape),
        nf,
        k,
        stride=stride,
        pad=pad,
        flip_filters=flip,
        untie_biases=untie,
        b=init.Normal(1.0),
        nonlinearity=None,
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    W, b = layer.W.get_value(), layer.b.get_value()
    expected = reference_conv(x, W, stride, pad, flip)
    expected = expected + (b[None] if untie else b.reshape((1, -1) + (1,) * n))
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
    assert out.shape == layer.output_shape


@given(
    n=st.integers(1, 3),
    data=st.data(),
)
def test_conv_shape_inference_matches_output(n, data):
    spatial = tuple(data.draw(st.lists(st.integers(1, 7), min_size=n, max_size=n)))
    pad = data.draw(st.sampled_from(["valid", "full", "same", "int"]))
    odd = st.sampled_from([1, 3])
    k = tuple(data.draw(odd if pad == "same" else st.integers(1, 3)) for _ in range(n))
    if pad == "int":
        pad = tuple(data.draw(st.integers(0, 2)) for _ in range(n))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))) + spatial
    pads = {"valid": (0,) * n, "full": tuple(f - 1 for f in k), "same": tuple(f // 2 for f in k)}
    amounts = pads.get(pad, pad) if isinstance(pad, str) else pad
    if any(s + 2 * p - f + 1 <= 0 for s, p, f in zip(spatial, amounts, k)):
        with pytest.raises(ValueError, match="does not fit the input"):
            CONV[n](InputLayer((None,) + shape[1:]), 2, k, stride=stride, pad=pad)
        return
    layer = CONV[n](InputLayer((None,) + shape[1:]), 2, k, stride=stride, pad=pad)
    out = run(layer, np.random.randn(*shape))
    assert get_output_shape(layer, shape) == out.shape
    assert layer.output_shape == (None,) + out.shape[1:]


def test_corr_nd_gradients():
    rng = np.random.RandomState(0)
    verify_grad(
        lambda x, w: corr_nd(x, w, (2, 2), stride=(2, 1), pad=(1, 0)),
        [rng.randn(2, 2, 4, 3), rng.randn(3, 2, 2, 2)],
        rng=rng,
    )
    verify_grad(
        lambda x, w: corr_nd(x, w, (2,), dilation=(2,)),
        [rng.randn(1, 2, 6), rng.randn(2, 2, 2)],
        rng=rng,
    )


def scatter_transposed(x, W, stride, crop):
    """numpy reference for transposed convolution: scatter-add every input pixel's filter."""
    k = W.shape[2:]
    full = [(i - 1) * s + f for i, s, f in zip(x.shape[2:], stride, k)]
    out = np.zeros((x.shape[0], W.shape[1], *full))
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            for pos in np.ndindex(*x.shape[2:]):
                idx = tuple(slice(p * s, p * s + f) for p, s, f in zip(pos, stride, k))
                out[(b, slice(None)) + idx] += x[(b, c) + pos] * W[c]
    return out[(slice(None), slice(None)) + tuple(slice(c, f - c) for c, f in zip(crop, full))]


@pytest.mark.parametrize(
    "cls, shape, k, stride, crop",
    [
        (TransposedConv2DLayer, (2, 3, 4, 3), (3, 2), (2, 2), (0, 0)),
        (TransposedConv2DLayer, (1, 2, 3, 5), (3, 3), (1, 3), (1, 1)),
        (TransposedConv3DLayer, (1, 2, 3, 2, 3), (2, 2, 3), (2, 1, 1), (0, 0, 1)),
    ],
)
def test_transposed_conv_matches_scatter_add(cls, shape, k, stride, crop):
    layer = cls(InputLayer(shape), 2, k, stride=stride, crop=crop, nonlinearity=None, b=None)
    x = np.random.randn(*shape)
    out = run(layer, x)
    np.testing.assert_allclose(
        out, scatter_transposed(x, layer.W.get_value(), stride, crop), atol=1e-12
    )
    assert out.shape == layer.output_shape


def test_transposed_conv_is_the_gradient_of_the_forward_conv():
    W = np.random.randn(3, 2, 3, 3)  # (in channels of transposed = forward filters, ...)
    up = TransposedConv2DLayer(
        InputLayer((2, 3, 4, 4)),
        2,
        3,
        stride=2,
        W=W,
        b=None,
        nonlinearity=None,
        output_size=(10, 10),
    )
    x = np.random.randn(2, 3, 4, 4)
    out = run(up, x)
    # forward correlation with W (filters=3, channels=2) maps (2, 2, 10, 10) -> (2, 3, 4, 4)
    z = pt.tensor4()
    fwd = corr_nd(z, pt.constant(W), (3, 3), stride=(2, 2))
    g = pytensor.grad(None, z, known_grads={fwd: pt.constant(x)})
    expected = pytensor.function([z], g)(np.zeros((2, 2, 10, 10)))
    np.testing.assert_allclose(out, expected, atol=1e-12)


def test_dilated_conv_matches_numpy():
    layer = DilatedConv2DLayer(
        InputLayer((2, 3, 9, 8)), 2, (2, 3), dilation=(3, 2), nonlinearity=None, b=None
    )
    x = np.random.randn(2, 3, 9, 8)
    W = layer.W.get_value()  # (channels, filters, kh, kw)
    Wd = np.zeros((3, 2, 4, 5))
    Wd[:, :, ::3, ::2] = W
    expected = reference_conv(x, Wd.transpose(1, 0, 2, 3), (1, 1), "valid", False)
    np.testing.assert_allclose(run(layer, x), expected, atol=1e-12)


def test_weight_expression_and_errors():
    log_w = pytensor.shared(np.random.randn(4, 2, 3, 3) * 0.1)
    layer = Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 3, W=pt.exp(log_w), nonlinearity=None)
    x = np.random.randn(1, 2, 5, 5)
    expected = reference_conv(x, np.exp(log_w.get_value()), (1, 1), "valid", True)
    np.testing.assert_allclose(run(layer, x), expected, atol=1e-12)
    assert layer.get_params() == [log_w, layer.b]
    with pytest.raises(ParameterError, match=r"Conv2DLayer 'c1'.*expected shape \(4, 2, 3, 3\)"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 3, W=np.zeros((4, 3, 3, 3)), name="c1")
    with pytest.raises(ValueError, match="Conv2DLayer 'c2'.*expected 4 input dimensions"):
        Conv2DLayer(InputLayer((1, 2, 5)), 4, 3, name="c2")
    with pytest.raises(NotImplementedError, match="odd filter"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 2, pad="same")


@pytest.mark.backend
def test_conv_compiles_with_numba():
    layer = Conv2DLayer(InputLayer((2, 2, 6, 6)), 3, 3, stride=2, pad=1, nonlinearity=None, b=None)
    x = np.random.randn(2, 2, 6, 6)
    f = pytensor.function([layer.input_layer.input_var], get_output(layer), mode="NUMBA")
    np.testing.assert_allclose(
        f(x), reference_conv(x, layer.W.get_value(), (2, 2), (1, 1), True), atol=1e-10
    )
