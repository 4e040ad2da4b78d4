"""Special layers against numpy; gradients by verify_grad."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from plasagne import init
from plasagne.layers import (
    BiasLayer,
    Conv2DLayer,
    DenseLayer,
    ExpressionLayer,
    InputLayer,
    InverseLayer,
    MaxPool2DLayer,
    NonlinearityLayer,
    ParametricRectifierLayer,
    RandomizedRectifierLayer,
    ScaleLayer,
    TPSTransformerLayer,
    TransformerLayer,
    get_output,
    prelu,
    rrelu,
    standardize,
)


def run(layer, x, **kw):
    l_in = layer
    while getattr(l_in, "input_layer", None) is not None or hasattr(l_in, "input_layers"):
        l_in = l_in.input_layers[0] if hasattr(l_in, "input_layers") else l_in.input_layer
    return pytensor.function([l_in.input_var], get_output(layer, **kw))(x)


@pytest.mark.parametrize(
    "shared_axes, pshape", [("auto", (3,)), ((0,), (3, 4, 5)), ((0, 2, 3), (3,)), ("all", ())]
)
def test_bias_scale_prelu_broadcast_like_numpy(shared_axes, pshape):
    x = np.random.randn(2, 3, 4, 5)
    keep = [
        a
        for a in range(4)
        if a
        not in (
            (0, 1, 2, 3)
            if shared_axes == "all"
            else ((0, 2, 3) if shared_axes == "auto" else shared_axes)
        )
    ]
    bshape = [x.shape[a] if a in keep else 1 for a in range(4)]
    b = BiasLayer(InputLayer(x.shape), b=init.Normal(1.0), shared_axes=shared_axes)
    assert b.b.get_value().shape == pshape
    np.testing.assert_allclose(run(b, x), x + b.b.get_value().reshape(bshape))
    s = ScaleLayer(InputLayer(x.shape), scales=init.Normal(1.0), shared_axes=shared_axes)
    np.testing.assert_allclose(run(s, x), x * s.scales.get_value().reshape(bshape))
    p = ParametricRectifierLayer(
        InputLayer(x.shape), alpha=init.Uniform((0.1, 0.5)), shared_axes=shared_axes
    )
    alpha = p.alpha.get_value().reshape(bshape)
    np.testing.assert_allclose(run(p, x), np.where(x > 0, x, alpha * x))


def test_gradients_of_bias_scale_prelu():
    rng = np.random.RandomState(0)
    x = rng.randn(2, 3, 2)
    for layer in (
        BiasLayer(InputLayer(x.shape)),
        ScaleLayer(InputLayer(x.shape)),
        ParametricRectifierLayer(InputLayer(x.shape)),
    ):
        verify_grad(lambda v, layer=layer: layer.get_output_for(v), [x], rng=rng)


def test_standardize_and_nonlinearity():
    x = np.random.randn(5, 2)
    offset, scale = x.mean(0), x.std(0)
    layer = standardize(InputLayer(x.shape), offset, scale, shared_axes=0)
    np.testing.assert_allclose(run(layer, x), (x - offset) / scale)
    assert layer.get_params(trainable=True) == []
    np.testing.assert_allclose(run(NonlinearityLayer(InputLayer(x.shape), pt.tanh), x), np.tanh(x))


def test_expression_layer_shapes():
    x = np.random.randn(4, 6)
    for spec, expected_shape in [
        (None, (None, 6)),
        ("auto", (None, 3)),
        ((None, 3), (None, 3)),
        (lambda s: (s[0], s[1] // 2), (None, 3)),
    ]:
        f = (lambda v: v) if spec is None else (lambda v: v[:, ::2])
        layer = ExpressionLayer(InputLayer((None, 6)), f, spec)
        assert layer.output_shape == expected_shape
        np.testing.assert_allclose(run(layer, x), f(x))


def test_inverse_of_dense_is_transposed_weights():
    l_in = InputLayer((None, 5))
    enc = DenseLayer(l_in, 3, nonlinearity=None)
    inv = InverseLayer(enc, enc)
    x = np.random.randn(4, 5)
    out = run(inv, x)
    np.testing.assert_allclose(
        out, (x @ enc.W.get_value() + enc.b.get_value()) @ enc.W.get_value().T
    )
    assert inv.output_shape == (None, 5)


def test_inverse_of_maxpool_routes_to_the_maxima():
    l_in = InputLayer((1, 1, 4, 4))
    pool = MaxPool2DLayer(l_in, 2)
    inv = InverseLayer(pool, pool)
    x = np.random.permutation(16).reshape(1, 1, 4, 4).astype(float)
    out = run(inv, x)
    expected = np.zeros_like(x)
    for i in range(2):
        for j in range(2):
            win = x[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            r, c = np.unravel_index(win.argmax(), (2, 2))
            expected[0, 0, 2 * i + r, 2 * j + c] = win.max()
    np.testing.assert_allclose(out, expected)
    conv = Conv2DLayer(InputLayer((1, 2, 5, 5)), 3, 3)
    assert InverseLayer(conv, conv).output_shape == (1, 2, 5, 5)


def test_rrelu_deterministic_and_random_slopes():
    x = -np.abs(np.random.randn(50, 4)) - 0.1
    layer = RandomizedRectifierLayer(InputLayer(x.shape), lower=0.2, upper=0.6)
    np.testing.assert_allclose(run(layer, x, deterministic=True), x * 0.4)
    out = run(layer, x)
    slopes = out / x
    assert slopes.min() >= 0.2 and slopes.max() <= 0.6 and slopes.std() > 0.05
    shared = RandomizedRectifierLayer(InputLayer(x.shape), shared_axes=(0,))
    s = run(shared, x) / x
    np.testing.assert_allclose(s, np.broadcast_to(s[:1], s.shape))


def test_prelu_and_rrelu_take_the_nonlinearity():
    dense = DenseLayer(InputLayer((None, 3)), 4)
    top = prelu(dense)
    assert isinstance(top, ParametricRectifierLayer) and top.input_layer is dense
    x = np.random.randn(2, 3)
    lin = x @ dense.W.get_value()
    np.testing.assert_allclose(run(top, x), np.where(lin > 0, lin, 0.25 * lin))
    assert isinstance(rrelu(DenseLayer(InputLayer((None, 3)), 4)), RandomizedRectifierLayer)


def bilinear_reference(img, xs, ys):
    """Sample img (H, W) at pixel coordinates with clamped borders."""
    H, W = img.shape
    out = np.zeros(len(xs))
    for k, (x, y) in enumerate(zip(xs, ys)):
        x0, y0 = int(np.floor(x)), int(np.floor(y))
        val = 0.0
        for dx, dy in ((0, 0), (1, 0), (0, 1), (1, 1)):
            xi, yi = min(max(x0 + dx, 0), W - 1), min(max(y0 + dy, 0), H - 1)
            w = (1 - abs(x - (x0 + dx))) * (1 - abs(y - (y0 + dy)))
            val += w * img[yi, xi]
        out[k] = val
    return out


def test_affine_transformer_identity_and_translation():
    x = np.random.randn(2, 2, 5, 6)
    l_in = InputLayer(x.shape)
    theta = pytensor.shared(np.array([1.0, 0, 0, 0, 1, 0]))
    loc = DenseLayer(l_in, 6, W=np.zeros((60, 6)), b=theta, nonlinearity=None)
    layer = TransformerLayer(l_in, loc)
    np.testing.assert_allclose(run(layer, x), x, atol=1e-10)
    theta.set_value(np.array([1.0, 0, 0.3, 0, 1, -0.2]))  # shift in normalised coordinates
    out = run(layer, x)
    gx, gy = np.meshgrid(np.linspace(-1, 1, 6), np.linspace(-1, 1, 5))
    px = ((gx.ravel() + 0.3) + 1) / 2 * 5
    py = ((gy.ravel() - 0.2) + 1) / 2 * 4
    for b in range(2):
        for c in range(2):
            np.testing.assert_allclose(
                out[b, c].ravel(), bilinear_reference(x[b, c], px, py), atol=1e-10
            )


def test_transformer_gradient():
    rng = np.random.RandomState(1)
    x = rng.randn(1, 1, 4, 4)

    def f(img, th):
        return TransformerLayer(InputLayer((1, 1, 4, 4)), InputLayer((1, 6))).get_output_for(
            [img, th]
        )

    verify_grad(f, [x, np.array([[0.9, 0.1, 0.05, -0.1, 1.1, 0.07]])], rng=rng, eps=1e-6)


def test_tps_identity_reproduces_input():
    x = np.random.randn(2, 1, 6, 6)
    l_in = InputLayer(x.shape)
    loc = DenseLayer(l_in, 32, W=np.zeros((36, 32)), b=np.zeros(32), nonlinearity=None)
    np.testing.assert_allclose(run(TPSTransformerLayer(l_in, loc), x), x, atol=1e-8)
    with pytest.raises(ValueError, match="perfect square"):
        TPSTransformerLayer(l_in, loc, control_points=15)
