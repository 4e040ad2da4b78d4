"""Normalization, embedding and noise layers against numpy."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

import plasagne
from plasagne.layers import (
    BatchNormLayer,
    DenseLayer,
    DropoutLayer,
    EmbeddingLayer,
    GaussianNoiseLayer,
    InputLayer,
    LocalResponseNormalization2DLayer,
    NonlinearityLayer,
    StandardizationLayer,
    batch_norm,
    dropout_channels,
    dropout_locations,
    get_all_params,
    get_output,
    instance_norm,
    layer_norm,
)


def compile_layer(layer, **kw):
    l_in = layer
    while getattr(l_in, "input_layer", None) is not None:
        l_in = l_in.input_layer
    return pytensor.function([l_in.input_var], get_output(layer, **kw))


def test_lrn_matches_numpy_loop():
    x = np.random.randn(2, 7, 3, 3)
    layer = LocalResponseNormalization2DLayer(InputLayer(x.shape), alpha=0.1, k=1.5, beta=0.6, n=3)
    expected = np.zeros_like(x)
    for c in range(7):
        lo, hi = max(0, c - 1), min(7, c + 2)
        expected[:, c] = x[:, c] / (1.5 + 0.1 * (x[:, lo:hi] ** 2).sum(1)) ** 0.6
    np.testing.assert_allclose(compile_layer(layer)(x), expected)
    verify_grad(layer.get_output_for, [np.random.randn(1, 4, 2, 2)], rng=np.random.RandomState(0))


@pytest.mark.parametrize(
    "axes, shape", [("auto", (6, 3, 4, 4)), ((0,), (8, 5)), ((0, 1), (4, 3, 2))]
)
def test_batchnorm_training_inference_and_running_averages(axes, shape):
    x = np.random.randn(*shape) * 3 + 1
    layer = BatchNormLayer(
        InputLayer(shape),
        axes=axes,
        alpha=0.2,
        beta=plasagne.init.Normal(1.0),
        gamma=plasagne.init.Normal(1.0, 1.0),
    )
    red = layer.axes
    keep = [s if a not in red else 1 for a, s in enumerate(shape)]
    beta, gamma = layer.beta.get_value().reshape(keep), layer.gamma.get_value().reshape(keep)
    mean, var = x.mean(axis=red, keepdims=True), x.var(axis=red, keepdims=True)
    train = compile_layer(layer)
    np.testing.assert_allclose(train(x), (x - mean) * gamma / np.sqrt(var + 1e-4) + beta, rtol=1e-8)
    # one training call moved the running averages by alpha
    np.testing.assert_allclose(layer.mean.get_value().reshape(keep), 0.2 * mean)
    np.testing.assert_allclose(
        layer.inv_std.get_value().reshape(keep), 0.8 + 0.2 / np.sqrt(var + 1e-4)
    )
    test = compile_layer(layer, deterministic=True)
    m, s = layer.mean.get_value().reshape(keep), layer.inv_std.get_value().reshape(keep)
    np.testing.assert_allclose(test(x), (x - m) * gamma * s + beta, rtol=1e-8)
    before = layer.mean.get_value().copy()
    test(x)
    np.testing.assert_array_equal(layer.mean.get_value(), before)  # inference leaves them alone


def test_batchnorm_gradient_and_batch_norm_wiring():
    layer = BatchNormLayer(InputLayer((4, 3)))
    verify_grad(
        lambda v: layer.get_output_for(v, batch_norm_update_averages=False),
        [np.random.randn(4, 3)],
        rng=np.random.RandomState(0),
    )
    dense = DenseLayer(InputLayer((None, 5)), 4, name="d")
    top = batch_norm(dense)
    assert isinstance(top, NonlinearityLayer) and isinstance(top.input_layer, BatchNormLayer)
    assert dense.b is None
    names = [p.name for p in get_all_params(top)]
    assert names == ["d.W", "d_bn.beta", "d_bn.gamma", "d_bn.mean", "d_bn.inv_std"]
    assert [p.name for p in get_all_params(top, trainable=True)] == [
        "d.W",
        "d_bn.beta",
        "d_bn.gamma",
    ]


@pytest.mark.parametrize("axes", ["auto", "features", (1,)])
def test_standardization_matches_numpy(axes):
    x = np.random.randn(3, 4, 5, 2)
    layer = StandardizationLayer(InputLayer(x.shape), axes=axes, beta=None, gamma=None)
    ax = {"auto": (2, 3), "features": (1, 2, 3)}.get(axes, axes)
    expected = (x - x.mean(ax, keepdims=True)) / np.sqrt(x.var(ax, keepdims=True) + 1e-4)
    np.testing.assert_allclose(compile_layer(layer)(x), expected, rtol=1e-8)
    verify_grad(layer.get_output_for, [np.random.randn(2, 3, 2, 2)], rng=np.random.RandomState(0))


def test_instance_and_layer_norm_wrappers():
    x = np.random.randn(3, 6)
    dense = DenseLayer(InputLayer((None, 6)), 4, nonlinearity=plasagne.nonlinearities.tanh)
    top = layer_norm(dense)
    h = x @ dense.W.get_value()
    h = (h - h.mean(1, keepdims=True)) / np.sqrt(h.var(1, keepdims=True) + 1e-4)
    np.testing.assert_allclose(compile_layer(top)(x), np.tanh(h), rtol=1e-8)
    conv = plasagne.layers.Conv2DLayer(InputLayer((None, 1, 5, 5)), 2, 3)
    inst = instance_norm(conv)
    assert conv.b is None and inst.output_shape == (None, 2, 3, 3)


def test_embedding_matches_indexing():
    idx = np.random.randint(0, 10, size=(3, 4)).astype("int32")
    l_in = InputLayer((None, 4), input_var=pt.imatrix())
    layer = EmbeddingLayer(l_in, 10, 5)
    out = compile_layer(layer)(idx)
    np.testing.assert_array_equal(out, layer.W.get_value()[idx])
    assert out.shape == (3, 4, 5) and layer.output_shape == (None, 4, 5)
    with pytest.raises(TypeError, match="integer indices"):
        get_output(EmbeddingLayer(InputLayer((None, 4)), 10, 5))


@given(p=st.sampled_from([0.1, 0.5, 0.8]))
def test_dropout_statistics_and_rescaling(p):
    x = np.ones((200, 50))
    layer = DropoutLayer(InputLayer(x.shape), p=p)
    f = compile_layer(layer)
    out = f(x)
    kept = out != 0
    n = kept.size
    assert abs(kept.mean() - (1 - p)) < 4 * np.sqrt(p * (1 - p) / n)
    np.testing.assert_allclose(out[kept], 1 / (1 - p))
    assert not np.array_equal(f(x), out)  # fresh mask on every call
    np.testing.assert_array_equal(compile_layer(layer, deterministic=True)(x), x)


def test_dropout_shared_axes_variants_and_symbolic_p():
    x = np.ones((4, 6, 5, 5))
    ch = compile_layer(dropout_channels(InputLayer(x.shape), p=0.5))(x)
    assert np.all(ch == ch[:, :, :1, :1])
    loc = compile_layer(dropout_locations(InputLayer(x.shape), p=0.5))(x)
    assert np.all(loc == loc[:, :1])
    p = pt.scalar("p")
    l_in = InputLayer((100, 100))
    out = get_output(DropoutLayer(l_in, p=p, rescale=False))
    vals = pytensor.function([l_in.input_var, p], out)(np.ones((100, 100)), 0.25)
    assert abs((vals == 0).mean() - 0.25) < 0.02


def test_noise_is_reproducible_from_the_seed():
    def draw():
        plasagne.random.set_rng(np.random.RandomState(7))
        return compile_layer(DropoutLayer(InputLayer((10, 10))))(np.ones((10, 10)))

    np.testing.assert_array_equal(draw(), draw())


def test_gaussian_noise_statistics():
    x = np.zeros((300, 100))
    layer = GaussianNoiseLayer(InputLayer(x.shape), sigma=0.3)
    out = compile_layer(layer)(x)
    assert abs(out.mean()) < 4 * 0.3 / np.sqrt(out.size)
    assert abs(out.std() - 0.3) < 0.01
    np.testing.assert_array_equal(compile_layer(layer, deterministic=True)(x), x)
