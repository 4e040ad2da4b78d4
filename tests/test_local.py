"""LocallyConnected2DLayer against explicit numpy loops."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne import init
from plasagne.layers import (
    Conv2DLayer,
    InputLayer,
    LocallyConnected2DLayer,
    get_output,
    get_output_shape,
)
from plasagne.utils import ParameterError


def pad_amounts(pad, k):
    if pad == "same":
        return [f // 2 for f in k]
    if pad == "valid":
        return [0, 0]
    if pad == "full":
        return [f - 1 for f in k]
    return list(pad)


def reference(x, W, pad, stride, flip, channelwise):
    """out[b, f, y, z] = sum over the (flipped) patch at (y*s, z*s) times W[f, ..., y, z]."""
    n, c, h, w = x.shape
    f = W.shape[0]
    kh, kw = W.shape[-4:-2]
    oh, ow = W.shape[-2:]
    ph, pw = pad_amounts(pad, (kh, kw))
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, f, oh, ow))
    for b in range(n):
        for k in range(f):
            for y in range(oh):
                for z in range(ow):
                    y0, z0 = y * stride[0], z * stride[1]
                    patch = xp[b, :, y0 : y0 + kh, z0 : z0 + kw]
                    if flip:
                        patch = patch[:, ::-1, ::-1]
                    if channelwise:
                        out[b, k, y, z] = (patch[k] * W[k, :, :, y, z]).sum()
                    else:
                        out[b, k, y, z] = (patch * W[k, :, :, :, y, z]).sum()
    return out


@pytest.mark.parametrize(
    "shape, nf, k, pad, stride, flip, channelwise, untie",
    [
        ((2, 3, 5, 6), 4, (3, 3), "same", (1, 1), True, False, False),
        ((2, 3, 5, 6), 3, (3, 3), "same", (1, 1), False, True, False),
        ((1, 2, 6, 5), 2, (3, 1), "valid", (1, 1), False, False, True),
        ((2, 2, 4, 5), 2, (1, 3), "same", (1, 1), True, True, True),
        ((1, 2, 7, 6), 3, (2, 3), (1, 0), (2, 1), True, False, False),
        ((1, 1, 4, 4), 2, (2, 2), "full", (1, 2), False, False, True),
    ],
)
def test_locally_connected_matches_numpy(shape, nf, k, pad, stride, flip, channelwise, untie):
    layer = LocallyConnected2DLayer(
        InputLayer(shape),
        nf,
        k,
        stride=stride,
        pad=pad,
        flip_filters=flip,
        channelwise=channelwise,
        untie_biases=untie,
        b=init.Normal(1.0),
        nonlinearity=None,
    )
    x = np.random.randn(*shape)
    out = pytensor.function([layer.input_layer.input_var], get_output(layer))(x)
    b = layer.b.get_value()
    expected = reference(x, layer.W.get_value(), pad, stride, flip, channelwise)
    expected = expected + (b[None] if untie else b[None, :, None, None])
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out.shape == layer.output_shape == get_output_shape(layer, shape)


def test_shared_weights_reduce_to_a_convolution():
    """With the same filter at every position, the layer is a Conv2DLayer."""
    conv = Conv2DLayer(InputLayer((2, 3, 5, 5)), 2, 3, pad="same", nonlinearity=None, b=None)
    Wc = conv.W.get_value()
    W = np.broadcast_to(Wc[..., None, None], Wc.shape + (5, 5)).copy()
    local = LocallyConnected2DLayer(InputLayer((2, 3, 5, 5)), 2, 3, W=W, nonlinearity=None, b=None)
    x = np.random.randn(2, 3, 5, 5)
    f = pytensor.function([conv.input_layer.input_var], get_output(conv))
    g = pytensor.function([local.input_layer.input_var], get_output(local))
    np.testing.assert_allclose(g(x), f(x), atol=1e-12)
    assert isinstance(local, Conv2DLayer)


@given(
    size=st.tuples(st.integers(1, 6), st.integers(1, 6)),
    k=st.tuples(st.sampled_from([1, 3]), st.sampled_from([1, 3])),
    pad=st.sampled_from(["same", "valid", "full"]),
    channelwise=st.booleans(),
    batch=st.integers(1, 2),
)
def test_shape_inference_matches_output(size, k, pad, channelwise, batch):
    if pad == "valid" and any(s < f for s, f in zip(size, k)):
        with pytest.raises(ValueError, match="does not fit"):
            LocallyConnected2DLayer(InputLayer((None, 2, *size)), 2, k, pad=pad)
        return
    layer = LocallyConnected2DLayer(
        InputLayer((None, 2, *size)), 2, k, pad=pad, channelwise=channelwise
    )
    x = np.random.randn(batch, 2, *size)
    out = pytensor.function([layer.input_layer.input_var], get_output(layer))(x)
    assert get_output_shape(layer, x.shape) == out.shape
    assert layer.output_shape == (None,) + out.shape[1:]
    assert layer.W.get_value().shape[-2:] == out.shape[2:]


def test_gradients_wrt_input_and_weights():
    rng = np.random.RandomState(0)
    layer = LocallyConnected2DLayer(
        InputLayer((1, 2, 3, 3)), 2, 3, nonlinearity=None, untie_biases=True
    )
    verify_grad(layer.get_output_for, [rng.randn(1, 2, 3, 3)], rng=rng)
    x = rng.randn(1, 2, 3, 4)

    def through_weights(w):
        l_ = LocallyConnected2DLayer(
            InputLayer((1, 2, 3, 4)), 2, (1, 3), W=w, channelwise=True, nonlinearity=None
        )
        return l_.get_output_for(pt.constant(x))

    verify_grad(through_weights, [rng.randn(2, 1, 3, 3, 4)], rng=rng)


def test_weight_expression():
    log_w = pytensor.shared(np.random.randn(2, 1, 3, 3, 4, 4) * 0.1)
    layer = LocallyConnected2DLayer(
        InputLayer((1, 1, 4, 4)), 2, 3, W=pt.exp(log_w), nonlinearity=None, b=None
    )
    x = np.random.randn(1, 1, 4, 4)
    out = pytensor.function([layer.input_layer.input_var], get_output(layer))(x)
    expected = reference(x, np.exp(log_w.get_value()), "same", (1, 1), True, False)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert layer.get_params() == [log_w]


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="LocallyConnected2DLayer 'lc'.*channelwise"):
        LocallyConnected2DLayer(InputLayer((1, 2, 3, 3)), 3, 3, channelwise=True, name="lc")
    with pytest.raises(ValueError, match="LocallyConnected2DLayer 'u'.*fixed input shape"):
        LocallyConnected2DLayer(InputLayer((None, 2, None, 3)), 3, 3, name="u")
    with pytest.raises(ParameterError, match=r"LocallyConnected2DLayer 'w'.*\(3, 2, 3, 3, 3, 3\)"):
        LocallyConnected2DLayer(InputLayer((1, 2, 3, 3)), 3, 3, W=np.zeros((3, 2, 3, 3)), name="w")
    with pytest.raises(NotImplementedError, match="LocallyConnected2DLayer.*odd filter"):
        LocallyConnected2DLayer(InputLayer((1, 2, 4, 4)), 3, 2)
    with pytest.raises(ValueError, match="LocallyConnected2DLayer.*expected 4 input dimensions"):
        LocallyConnected2DLayer(InputLayer((1, 2, 4)), 3, 3)
