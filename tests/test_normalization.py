"""Normalization layers (LRN, batch norm, standardization, instance/layer norm) against numpy."""

import warnings

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad

import plasagne
from plasagne.layers import (
    BatchNormLayer,
    BiasLayer,
    Conv2DLayer,
    DenseLayer,
    InputLayer,
    LocalResponseNormalization2DLayer,
    NonlinearityLayer,
    ScaleLayer,
    StandardizationLayer,
    batch_norm,
    get_all_layers,
    get_all_params,
    get_output,
    get_output_shape,
    instance_norm,
    layer_norm,
)

RNG = np.random.RandomState(42)


def compile_net(layer, **kw):
    """Compile a network from its input to ``layer`` (a layer built from a shape tuple
    gets a fresh float64 input variable)."""
    first = get_all_layers(layer)[0]
    if isinstance(first, InputLayer):
        return pytensor.function([first.input_var], get_output(layer, **kw))
    v = pt.tensor("x", dtype="float64", shape=(None,) * len(first.input_shape))
    return pytensor.function([v], get_output(layer, {first: first.get_output_for(v, **kw)}, **kw))


# ----------------------------------------------------------------------------- references


def lrn_reference(x, alpha, k, beta, n):
    """Loop over channels and positions: sum squares of the n centred channels."""
    out = np.empty_like(x)
    half = n // 2
    N, C, H, W = x.shape
    for b in range(N):
        for c in range(C):
            for i in range(H):
                for j in range(W):
                    s = 0.0
                    for cc in range(c - half, c + half + 1):
                        if 0 <= cc < C:
                            s += x[b, cc, i, j] ** 2
                    out[b, c, i, j] = x[b, c, i, j] / (k + alpha * s) ** beta
    return out


def keep_shape(shape, axes):
    return [1 if a in axes else s for a, s in enumerate(shape)]


def standardize_reference(x, axes, eps):
    mean = x.mean(axis=axes, keepdims=True)
    var = ((x - mean) ** 2).mean(axis=axes, keepdims=True)
    return (x - mean) / np.sqrt(var + eps)


# ----------------------------------------------------------------------------- LRN


@pytest.mark.parametrize(
    "shape, alpha, k, beta, n",
    [
        ((2, 7, 3, 3), 1e-4, 2, 0.75, 5),
        ((1, 4, 2, 3), 0.3, 1.0, 0.5, 3),
        ((2, 3, 2, 2), 0.5, 0.5, 1.2, 7),  # window wider than the channels
        ((1, 5, 1, 2), 0.2, 1.5, 0.6, 1),
    ],
)
def test_lrn_matches_numpy_loop(shape, alpha, k, beta, n):
    x = RNG.randn(*shape) * 2
    layer = LocalResponseNormalization2DLayer(
        InputLayer((None,) + shape[1:]), alpha=alpha, k=k, beta=beta, n=n
    )
    np.testing.assert_allclose(
        compile_net(layer)(x), lrn_reference(x, alpha, k, beta, n), rtol=1e-10
    )
    # identical with deterministic=True: LRN has no training behaviour
    np.testing.assert_allclose(
        compile_net(layer, deterministic=True)(x), lrn_reference(x, alpha, k, beta, n)
    )


@pytest.mark.parametrize("n", [1, 3])
def test_lrn_gradient(n):
    layer = LocalResponseNormalization2DLayer((None, 4, 2, 2), alpha=0.3, k=1.0, n=n)
    verify_grad(layer.get_output_for, [RNG.randn(2, 4, 2, 2)], rng=np.random.RandomState(0))


def test_lrn_errors_name_the_layer():
    with pytest.raises(NotImplementedError, match="'lrn'.*odd n.*n=4"):
        LocalResponseNormalization2DLayer((None, 3, 4, 4), n=4, name="lrn")
    with pytest.raises(ValueError, match="LocalResponseNormalization2DLayer.*4-dimensional"):
        LocalResponseNormalization2DLayer((None, 3, 4))
    with pytest.raises(ValueError, match="positive odd integer.*-1"):
        LocalResponseNormalization2DLayer((None, 3, 4, 4), n=-1)


@settings(max_examples=15)
@given(
    shape=st.tuples(*[st.integers(1, 4)] * 4),
    n=st.sampled_from([1, 3, 5]),
)
def test_lrn_shape_inference(shape, n):
    layer = LocalResponseNormalization2DLayer(InputLayer((None, None, None, None)), n=n)
    out = compile_net(layer)(RNG.randn(*shape))
    assert get_output_shape(layer, shape) == out.shape


# ----------------------------------------------------------------------------- BatchNorm

BN_CONFIGS = [
    # input shape, axes argument, resolved axes
    ((6, 3, 4, 4), "auto", (0, 2, 3)),
    ((8, 5), "auto", (0,)),
    ((8, 5), 0, (0,)),
    ((4, 3, 2), (0, 1), (0, 1)),
    ((4, 3, 2), (0, -1), (0, 2)),
    ((5, 2, 3), (0,), (0,)),
]


def bn_layer(shape, axes, **kw):
    kw.setdefault("beta", plasagne.init.Normal(1.0))
    kw.setdefault("gamma", plasagne.init.Normal(1.0, 1.0))
    return BatchNormLayer(InputLayer((None,) + shape[1:]), axes=axes, **kw)


@pytest.mark.parametrize("shape, axes, resolved", BN_CONFIGS)
def test_batchnorm_training_uses_batch_statistics(shape, axes, resolved):
    x = RNG.randn(*shape) * 3 + 1
    layer = bn_layer(shape, axes, epsilon=1e-3)
    assert layer.axes == resolved
    keep = keep_shape(shape, resolved)
    beta = layer.beta.get_value().reshape(keep)
    gamma = layer.gamma.get_value().reshape(keep)
    expected = standardize_reference(x, resolved, 1e-3) * gamma + beta
    np.testing.assert_allclose(compile_net(layer)(x), expected, rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("shape, axes, resolved", BN_CONFIGS)
def test_batchnorm_running_averages_follow_the_formula(shape, axes, resolved):
    alpha, eps = 0.3, 1e-4
    layer = bn_layer(shape, axes, alpha=alpha, epsilon=eps)
    pshape = layer.mean.get_value().shape
    m0, s0 = RNG.randn(*pshape), RNG.rand(*pshape) + 0.5
    layer.mean.set_value(m0)
    layer.inv_std.set_value(s0)
    train = compile_net(layer)  # a plain pytensor.function: no explicit updates
    m, s = m0, s0
    for _ in range(2):
        x = RNG.randn(*shape) * 2 - 1
        train(x)
        batch_mean = x.mean(axis=resolved)
        batch_inv_std = 1 / np.sqrt(x.var(axis=resolved) + eps)
        m = (1 - alpha) * m + alpha * batch_mean
        s = (1 - alpha) * s + alpha * batch_inv_std
        np.testing.assert_allclose(layer.mean.get_value(), m, rtol=1e-10)
        np.testing.assert_allclose(layer.inv_std.get_value(), s, rtol=1e-10)


@pytest.mark.parametrize("shape, axes, resolved", BN_CONFIGS)
def test_batchnorm_deterministic_uses_stored_statistics(shape, axes, resolved):
    layer = bn_layer(shape, axes)
    pshape = layer.mean.get_value().shape
    layer.mean.set_value(RNG.randn(*pshape))
    layer.inv_std.set_value(RNG.rand(*pshape) + 0.5)
    keep = keep_shape(shape, resolved)
    m, s = layer.mean.get_value().reshape(keep), layer.inv_std.get_value().reshape(keep)
    beta, gamma = layer.beta.get_value().reshape(keep), layer.gamma.get_value().reshape(keep)
    x = RNG.randn(*shape)
    before = layer.mean.get_value().copy(), layer.inv_std.get_value().copy()
    test = compile_net(layer, deterministic=True)
    np.testing.assert_allclose(test(x), (x - m) * (gamma * s) + beta, rtol=1e-10)
    np.testing.assert_array_equal(layer.mean.get_value(), before[0])
    np.testing.assert_array_equal(layer.inv_std.get_value(), before[1])


@pytest.mark.parametrize(
    "kw, uses_stored, updates",
    [
        ({}, False, True),
        ({"deterministic": True}, True, False),
        ({"batch_norm_use_averages": True}, True, True),
        ({"batch_norm_update_averages": False}, False, False),
        ({"deterministic": True, "batch_norm_use_averages": False}, False, False),
        ({"deterministic": True, "batch_norm_update_averages": True}, True, True),
    ],
)
def test_batchnorm_keyword_overrides(kw, uses_stored, updates):
    shape, alpha, eps = (6, 2), 0.25, 1e-4
    layer = BatchNormLayer((None, 2), alpha=alpha, epsilon=eps, beta=None, gamma=None)
    m0, s0 = np.array([0.5, -1.0]), np.array([2.0, 0.7])
    layer.mean.set_value(m0)
    layer.inv_std.set_value(s0)
    x = RNG.randn(*shape)
    batch_mean, batch_inv_std = x.mean(0), 1 / np.sqrt(x.var(0) + eps)
    out = pytensor.function([(v := pt.matrix())], layer.get_output_for(v, **kw))(x)
    if uses_stored:
        expected = (x - m0) * s0
    else:
        expected = (x - batch_mean) * batch_inv_std
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    if updates:
        np.testing.assert_allclose(layer.mean.get_value(), (1 - alpha) * m0 + alpha * batch_mean)
        np.testing.assert_allclose(
            layer.inv_std.get_value(), (1 - alpha) * s0 + alpha * batch_inv_std
        )
    else:
        np.testing.assert_array_equal(layer.mean.get_value(), m0)
        np.testing.assert_array_equal(layer.inv_std.get_value(), s0)


def test_batchnorm_update_survives_graph_rewriting_and_warns_nothing():
    """`0 * running_mean` is rewritten away by fast_run; the update must still happen."""
    layer = BatchNormLayer((None, 3), alpha=0.5)
    x = RNG.randn(5, 3)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        v = pt.matrix()
        f = pytensor.function(
            [v], layer.get_output_for(v), mode=Mode(linker="py", optimizer="fast_run")
        )
        f(x)
    np.testing.assert_allclose(layer.mean.get_value(), 0.5 * x.mean(0))
    np.testing.assert_allclose(layer.inv_std.get_value(), 0.5 + 0.5 / np.sqrt(x.var(0) + 1e-4))


def test_batchnorm_keeps_float32_averages_float32():
    layer = BatchNormLayer((None, 3), mean=pytensor.shared(np.zeros(3, "float32")))
    v = pt.fmatrix()
    x = RNG.randn(4, 3).astype("float32")
    pytensor.function([v], layer.get_output_for(v))(x)
    assert layer.mean.get_value().dtype == np.float32
    np.testing.assert_allclose(layer.mean.get_value(), 0.1 * x.mean(0), rtol=1e-5)


def test_batchnorm_without_beta_and_gamma_and_param_tags():
    layer = BatchNormLayer((None, 4), beta=None, gamma=None, name="bn")
    assert layer.beta is None and layer.gamma is None
    assert [p.name for p in layer.get_params()] == ["bn.mean", "bn.inv_std"]
    assert layer.get_params(trainable=True) == []
    x = RNG.randn(5, 4)
    np.testing.assert_allclose(compile_net(layer)(x), standardize_reference(x, (0,), 1e-4))
    full = BatchNormLayer((None, 4), name="bn")
    assert [p.name for p in full.get_params(trainable=True)] == ["bn.beta", "bn.gamma"]
    assert full.get_params(regularizable=True) == []


def test_batchnorm_expression_gamma_is_used():
    log_gamma = pytensor.shared(np.log(np.array([0.5, 2.0])))
    layer = BatchNormLayer((None, 2), gamma=pt.exp(log_gamma))
    x = RNG.randn(6, 2)
    np.testing.assert_allclose(
        compile_net(layer)(x), standardize_reference(x, (0,), 1e-4) * np.array([0.5, 2.0])
    )
    assert log_gamma in get_all_params(layer, trainable=True)


def test_batchnorm_expression_mean_cannot_be_updated():
    layer = BatchNormLayer(InputLayer((None, 2)), mean=pt.zeros((2,)) + 1, name="bn")
    with pytest.raises(ValueError, match="'bn'.*'mean'.*batch_norm_update_averages=False"):
        get_output(layer)
    x = RNG.randn(3, 2)
    np.testing.assert_allclose(compile_net(layer, deterministic=True)(x), x - 1)


@pytest.mark.parametrize(
    "shape, axes", [((4, 3), "auto"), ((3, 2, 2, 2), "auto"), ((3, 2, 3), (0, 2))]
)
def test_batchnorm_gradient_in_training_mode(shape, axes):
    layer = bn_layer(shape, axes)
    verify_grad(layer.get_output_for, [RNG.randn(*shape)], rng=np.random.RandomState(0))


def test_batchnorm_errors_name_the_layer():
    with pytest.raises(ValueError, match="'bn'.*fixed input sizes.*axes=\\(0,\\)"):
        BatchNormLayer((None, None, 3), axes=0, name="bn")
    with pytest.raises(ValueError, match="BatchNormLayer.*integers in \\[-2, 2\\).*5"):
        BatchNormLayer((None, 3), axes=5)
    with pytest.raises(ValueError, match="BatchNormLayer.*'auto', 'spatial'.*'batch'"):
        BatchNormLayer((None, 3), axes="batch")
    with pytest.raises(ValueError, match="repeated axis"):
        BatchNormLayer((None, 3), axes=(0, -2))
    with pytest.raises(plasagne.utils.ParameterError, match="BatchNormLayer.*beta.*\\(3,\\)"):
        BatchNormLayer((None, 3), beta=np.zeros(4))


@settings(max_examples=15)
@given(
    shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple),
    data=st.data(),
)
def test_batchnorm_shape_inference(shape, data):
    ndim = len(shape)
    axes = data.draw(
        st.one_of(
            st.just("auto"),
            st.lists(st.integers(0, ndim - 1), min_size=1, max_size=ndim, unique=True).map(tuple),
        )
    )
    resolved = (0,) + tuple(range(2, ndim)) if axes == "auto" else axes
    in_shape = tuple(None if a in resolved else s for a, s in enumerate(shape))
    layer = BatchNormLayer(InputLayer(in_shape), axes=axes)
    out = compile_net(layer)(RNG.randn(*shape))
    assert get_output_shape(layer, shape) == out.shape == shape


# ----------------------------------------------------------------------------- batch_norm()


def test_batch_norm_wiring_dense():
    l_in = InputLayer((None, 5))
    dense = DenseLayer(l_in, 4, nonlinearity=plasagne.nonlinearities.tanh, name="d")
    top = batch_norm(dense, alpha=0.4)
    assert isinstance(top, NonlinearityLayer) and top.name == "d_bn_nonlin"
    bn = top.input_layer
    assert isinstance(bn, BatchNormLayer) and bn.name == "d_bn" and bn.input_layer is dense
    assert bn.alpha == 0.4 and bn.axes == (0,)
    assert dense.b is None and dense.nonlinearity is plasagne.nonlinearities.identity
    assert top.nonlinearity is plasagne.nonlinearities.tanh
    assert [p.name for p in get_all_params(top)] == [
        "d.W",
        "d_bn.beta",
        "d_bn.gamma",
        "d_bn.mean",
        "d_bn.inv_std",
    ]
    assert [p.name for p in get_all_params(top, trainable=True)] == [
        "d.W",
        "d_bn.beta",
        "d_bn.gamma",
    ]
    assert [p.name for p in get_all_params(top, regularizable=True)] == ["d.W"]
    x = RNG.randn(7, 5)
    h = x @ dense.W.get_value()
    np.testing.assert_allclose(compile_net(top)(x), np.tanh(standardize_reference(h, (0,), 1e-4)))


def test_batch_norm_wiring_conv_and_names():
    conv = Conv2DLayer(InputLayer((None, 2, 5, 5)), 3, 3, nonlinearity=None)
    top = batch_norm(conv, name="mine")
    # DenseLayer/Conv2DLayer always hold a nonlinearity (identity for None), so Lasagne adds
    # a NonlinearityLayer even then
    assert isinstance(top, NonlinearityLayer) and top.name == "mine_nonlin"
    assert top.input_layer.name == "mine" and top.input_layer.axes == (0, 2, 3)
    assert conv.b is None and conv.b not in conv.params
    x = RNG.randn(3, 2, 5, 5)
    h = compile_net(conv)(x)
    np.testing.assert_allclose(compile_net(top)(x), standardize_reference(h, (0, 2, 3), 1e-4))
    unnamed = batch_norm(DenseLayer((None, 3), 2))
    assert unnamed.name is None and unnamed.input_layer.name is None
    # a layer without nonlinearity or bias just gets the BatchNormLayer
    plain = batch_norm(InputLayer((None, 3)))
    assert isinstance(plain, BatchNormLayer)


def test_batch_norm_without_bias():
    dense = DenseLayer((None, 3), 2, b=None, name="d")
    top = batch_norm(dense, beta=None)
    assert [p.name for p in get_all_params(top)] == [
        "d.W",
        "d_bn.gamma",
        "d_bn.mean",
        "d_bn.inv_std",
    ]


# ----------------------------------------------------------------------------- Standardization

STD_CONFIGS = [
    ((3, 6), "auto", (1,)),
    ((3, 4, 5, 2), "auto", (2, 3)),
    ((3, 4, 5), "auto", (2,)),
    ((3, 4, 5, 2), "spatial", (2, 3)),
    ((3, 4, 5, 2), "features", (1, 2, 3)),
    ((3, 4, 5), 1, (1,)),
    ((3, 4, 5), (0, 2), (0, 2)),
    ((3, 4, 5), (-1, 1), (2, 1)),
]


@pytest.mark.parametrize("shape, axes, resolved", STD_CONFIGS)
def test_standardization_matches_numpy(shape, axes, resolved):
    x = RNG.randn(*shape) * 2 + 3
    layer = StandardizationLayer(InputLayer(shape), axes=axes, epsilon=1e-3)
    assert layer.axes == resolved
    pshape = tuple(s for a, s in enumerate(shape) if a != 0 and a not in resolved)
    assert layer.beta.get_value().shape == pshape == layer.gamma.get_value().shape
    layer.beta.set_value(RNG.randn(*pshape))
    layer.gamma.set_value(RNG.randn(*pshape))
    keep = keep_shape(shape, (0,) + resolved)
    expected = standardize_reference(x, resolved, 1e-3) * layer.gamma.get_value().reshape(
        keep
    ) + layer.beta.get_value().reshape(keep)
    np.testing.assert_allclose(compile_net(layer)(x), expected, rtol=1e-9, atol=1e-12)
    # no training behaviour: deterministic gives the same
    np.testing.assert_allclose(compile_net(layer, deterministic=True)(x), expected, rtol=1e-9)


def test_standardization_without_params():
    layer = StandardizationLayer((None, 3, 4), beta=None, gamma=None)
    assert layer.get_params() == []
    x = RNG.randn(2, 3, 4)
    np.testing.assert_allclose(compile_net(layer)(x), standardize_reference(x, (2,), 1e-4))
    # unknown sizes are fine without parameters
    StandardizationLayer((None, None, None), beta=None, gamma=None)


@pytest.mark.parametrize(
    "shape, axes", [((2, 5), "auto"), ((2, 3, 2, 2), "auto"), ((2, 3, 2), "features")]
)
def test_standardization_gradient(shape, axes):
    layer = StandardizationLayer(shape, axes=axes, beta=plasagne.init.Normal(1.0))
    verify_grad(layer.get_output_for, [RNG.randn(*shape)], rng=np.random.RandomState(0))


def test_standardization_errors_name_the_layer():
    with pytest.raises(ValueError, match="'s'.*at least 2 dimensions"):
        StandardizationLayer((None,), name="s")
    with pytest.raises(ValueError, match="StandardizationLayer.*beta=None, gamma=None"):
        StandardizationLayer((None, None, 3))
    with pytest.raises(ValueError, match="StandardizationLayer.*integers in"):
        StandardizationLayer((None, 3), axes=(2,))


@settings(max_examples=15)
@given(shape=st.lists(st.integers(1, 4), min_size=2, max_size=4).map(tuple), data=st.data())
def test_standardization_shape_inference(shape, data):
    axes = data.draw(st.sampled_from(["auto", "features", -1]))
    layer = StandardizationLayer(InputLayer((None,) + shape[1:]), axes=axes)
    out = compile_net(layer)(RNG.randn(*shape))
    assert get_output_shape(layer, shape) == out.shape == shape


# ----------------------------------------------------------------------------- instance/layer norm


@pytest.mark.parametrize(
    "learn_scale, learn_bias", [(True, True), (False, True), (True, False), (False, False)]
)
def test_instance_norm_matches_numpy(learn_scale, learn_bias):
    conv = Conv2DLayer(
        InputLayer((None, 2, 5, 5)), 3, 3, nonlinearity=plasagne.nonlinearities.rectify, name="c"
    )
    top = instance_norm(conv, learn_scale=learn_scale, learn_bias=learn_bias, epsilon=1e-3)
    assert conv.b is None and isinstance(top, NonlinearityLayer) and top.name == "c_bn_nonlin"
    kinds = [type(lay) for lay in get_all_layers(top)[2:]]
    expected_kinds = (
        [StandardizationLayer]
        + [ScaleLayer] * learn_scale
        + [BiasLayer] * learn_bias
        + [NonlinearityLayer]
    )
    assert kinds == expected_kinds
    names = ["c.W"] + ["c_bn_scale.scales"] * learn_scale + ["c_bn_bias.b"] * learn_bias
    assert [p.name for p in get_all_params(top)] == names
    scales, bias = RNG.randn(3), RNG.randn(3)
    layers = get_all_layers(top)
    if learn_scale:
        layers[3].scales.set_value(scales)
    if learn_bias:
        layers[-2].b.set_value(bias)
    x = RNG.randn(2, 2, 5, 5)
    h = standardize_reference(compile_net(conv)(x), (2, 3), 1e-3)
    if learn_scale:
        h = h * scales[None, :, None, None]
    if learn_bias:
        h = h + bias[None, :, None, None]
    np.testing.assert_allclose(compile_net(top)(x), np.maximum(h, 0), rtol=1e-9, atol=1e-12)


@pytest.mark.parametrize("conv", [False, True])
def test_layer_norm_matches_numpy(conv):
    if conv:
        base = Conv2DLayer(
            InputLayer((None, 2, 4, 4)), 3, 3, nonlinearity=plasagne.nonlinearities.tanh, name="h"
        )
        x, norm_axes, pattern = RNG.randn(3, 2, 4, 4), (1, 2, 3), (None, slice(None), None, None)
    else:
        base = DenseLayer(
            InputLayer((None, 6)), 4, nonlinearity=plasagne.nonlinearities.tanh, name="h"
        )
        x, norm_axes, pattern = RNG.randn(3, 6), (1,), (None, slice(None))
    top = layer_norm(base)
    assert base.b is None and top.name == "h_ln_nonlin"
    assert [p.name for p in get_all_params(top)] == ["h.W", "h_ln_scale.scales", "h_ln_bias.b"]
    scale_layer, bias_layer = top.input_layer.input_layer, top.input_layer
    scales, bias = RNG.randn(base.output_shape[1]), RNG.randn(base.output_shape[1])
    scale_layer.scales.set_value(scales)
    bias_layer.b.set_value(bias)
    h = standardize_reference(compile_net(base)(x), norm_axes, 1e-4)
    expected = np.tanh(h * scales[pattern] + bias[pattern])
    np.testing.assert_allclose(compile_net(top)(x), expected, rtol=1e-9, atol=1e-12)


def test_norm_wrappers_without_nonlinearity_attribute():
    assert isinstance(layer_norm(InputLayer((None, 3))), BiasLayer)
    assert isinstance(instance_norm(InputLayer((None, 3, 2, 2)), learn_bias=False), ScaleLayer)


@pytest.mark.parametrize("static", [(None, None, None), (4, 1, 3), (None, 1, None), (4, None, 3)])
def test_batchnorm_updates_whatever_static_shape_the_input_has(static):
    """A size-1 parameter axis and inputs with more or less static shape information."""
    layer = BatchNormLayer(InputLayer((None, 1, None)), axes=(0, 2), alpha=0.5, beta=None)
    x = RNG.randn(4, 1, 3)
    v = pt.tensor("x", dtype="float64", shape=static)
    out = pytensor.function([v], get_output(layer, v))(x)
    np.testing.assert_allclose(out, standardize_reference(x, (0, 2), 1e-4))
    np.testing.assert_allclose(layer.mean.get_value(), 0.5 * x.mean(axis=(0, 2)))


def test_axes_accept_numpy_integers_and_reject_other_types():
    layer = BatchNormLayer((None, 3, 2), axes=(np.int64(0), np.int32(-1)))
    assert layer.axes == (0, 2) and all(type(a) is int for a in layer.axes)
    assert StandardizationLayer((None, 3, 2), axes=np.int64(1)).axes == (1,)
    with pytest.raises(ValueError, match="'bn'.*integers in.*1.5"):
        BatchNormLayer((None, 3), axes=1.5, name="bn")
    with pytest.raises(ValueError, match="StandardizationLayer.*integers in.*'a'"):
        StandardizationLayer((None, 3), axes=("a",))
