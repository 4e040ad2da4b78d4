"""LocallyConnected2DLayer against an explicit numpy loop."""

import numpy as np
import pytensor
import pytest
from pytensor.gradient import verify_grad

from plasagne import init
from plasagne.layers import InputLayer, LocallyConnected2DLayer, get_output, get_output_shape


def reference(x, W, pad, flip, channelwise):
    n, c, h, w = x.shape
    f = W.shape[0]
    kh, kw = W.shape[-4:-2]
    oh, ow = W.shape[-2:]
    ph, pw = (kh // 2, kw // 2) if pad == "same" else (0, 0)
    xp = np.pad(x, ((0, 0), (0, 0), (ph, ph), (pw, pw)))
    out = np.zeros((n, f, oh, ow))
    for b in range(n):
        for k in range(f):
            for y in range(oh):
                for z in range(ow):
                    patch = xp[b, :, y : y + kh, z : z + kw]
                    if flip:
                        patch = patch[:, ::-1, ::-1]
                    if channelwise:
                        out[b, k, y, z] = (patch[k] * W[k, :, :, y, z]).sum()
                    else:
                        out[b, k, y, z] = (patch * W[k, :, :, :, y, z]).sum()
    return out


@pytest.mark.parametrize(
    "pad, flip, channelwise, untie",
    [
        ("same", True, False, False),
        ("valid", False, False, True),
        ("same", False, True, False),
        ("valid", True, True, True),
    ],
)
def test_locally_connected_matches_numpy(pad, flip, channelwise, untie):
    shape = (2, 3, 5, 6)
    layer = LocallyConnected2DLayer(
        InputLayer(shape),
        3,
        (3, 3),
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
    expected = reference(x, layer.W.get_value(), pad, flip, channelwise)
    expected = expected + (b[None] if untie else b[None, :, None, None])
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out.shape == layer.output_shape == get_output_shape(layer, shape)


def test_gradient_and_errors():
    layer = LocallyConnected2DLayer(InputLayer((1, 2, 3, 3)), 2, 3, nonlinearity=None)
    verify_grad(layer.get_output_for, [np.random.randn(1, 2, 3, 3)], rng=np.random.RandomState(0))
    with pytest.raises(ValueError, match="LocallyConnected2DLayer 'lc'.*channelwise"):
        LocallyConnected2DLayer(InputLayer((1, 2, 3, 3)), 3, 3, channelwise=True, name="lc")
    with pytest.raises(NotImplementedError, match="stride"):
        LocallyConnected2DLayer(InputLayer((1, 2, 3, 3)), 3, 3, stride=2)
