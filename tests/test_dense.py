"""DenseLayer and NINLayer against numpy, including shape inference."""

import numpy as np
import pytensor
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasagne import init, nonlinearities
from plasagne.layers import (
    DenseLayer,
    InputLayer,
    NINLayer,
    get_output,
    get_output_shape,
)
from plasagne.utils import ParameterError


def _run(layer, x):
    f = pytensor.function([layer_input(layer).input_var], get_output(layer))
    return f(x)


def layer_input(layer):
    while getattr(layer, "input_layer", None) is not None:
        layer = layer.input_layer
    return layer


@given(
    batch=st.integers(1, 3),
    features=st.lists(st.integers(1, 3), min_size=1, max_size=3),
    lead=st.integers(1, 2),
    units=st.integers(1, 4),
)
def test_dense_matches_numpy_and_shape(batch, features, lead, units):
    shape = (batch,) + tuple(features)
    if lead >= len(shape):
        lead = len(shape) - 1
    l_in = InputLayer((None,) + shape[1:])
    layer = DenseLayer(l_in, units, num_leading_axes=lead, nonlinearity=nonlinearities.tanh)
    x = np.random.RandomState(0).randn(*shape)
    out = _run(layer, x)
    W, b = layer.W.get_value(), layer.b.get_value()
    lead_shape = shape[:lead]
    expected = np.tanh(x.reshape(lead_shape + (-1,)) @ W + b)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    assert get_output_shape(layer, shape) == out.shape
    assert layer.output_shape == (None,) + out.shape[1:]


def test_dense_negative_leading_axes_and_no_bias():
    l_in = InputLayer((2, 3, 4))
    layer = DenseLayer(l_in, 5, num_leading_axes=-1, b=None, nonlinearity=None)
    x = np.random.randn(2, 3, 4)
    np.testing.assert_allclose(_run(layer, x), x @ layer.W.get_value())
    assert layer.get_params() == [layer.W]


@pytest.mark.parametrize("lead", [3, -4])
def test_dense_bad_leading_axes(lead):
    with pytest.raises(ValueError, match="num_leading_axes"):
        DenseLayer(InputLayer((2, 3, 4)), 5, num_leading_axes=lead)


def test_dense_needs_fixed_feature_size():
    with pytest.raises(ValueError, match="DenseLayer 'd'.*fixed input size"):
        DenseLayer(InputLayer((None, None)), 3, name="d")


def test_dense_wrong_weight_shape_names_layer_and_param():
    with pytest.raises(
        ParameterError, match=r"DenseLayer 'hidden1'.*'hidden1\.W'.*\(4, 3\).*\(3, 4\)"
    ):
        DenseLayer(InputLayer((None, 4)), 3, W=np.zeros((3, 4)), name="hidden1")


@pytest.mark.parametrize("untie", [False, True])
def test_nin_matches_numpy(untie):
    l_in = InputLayer((2, 3, 4, 5))
    layer = NINLayer(l_in, 6, untie_biases=untie, b=init.Normal(1.0))
    x = np.random.randn(2, 3, 4, 5)
    W, b = layer.W.get_value(), layer.b.get_value()
    expected = np.einsum("nchw,cu->nuhw", x, W)
    expected = expected + (b[None] if untie else b[None, :, None, None])
    np.testing.assert_allclose(_run(layer, x), np.maximum(expected, 0), rtol=1e-10)
    assert layer.output_shape == (2, 6, 4, 5)


def test_params_are_tagged_like_lasagne():
    layer = DenseLayer(InputLayer((None, 3)), 2, name="d")
    assert layer.get_params(trainable=True) == [layer.W, layer.b]
    assert layer.get_params(regularizable=True) == [layer.W]
    assert layer.get_params(regularizable=False) == [layer.b]
    assert layer.W.name == "d.W" and layer.b.name == "d.b"


def test_flattened_length_stays_static_so_the_weight_gradient_needs_no_shape_check():
    """An input whose type knows no lengths (a ``pm.Data`` container) is flattened to the
    declared trailing length: with weights of static shape (a PyMC prior's), the product
    and the weight gradient keep static shapes, so PyTensor adds no ``SpecifyShape``
    (which Numba compiles for seconds); values equal numpy's."""
    import pytensor.tensor as pt
    from pytensor.tensor.shape import SpecifyShape

    W = pt.tensor("W", shape=(24, 5))
    layer = DenseLayer(InputLayer((None, 2, 3, 4)), num_units=5, W=W, nonlinearity=None)
    x = pt.tensor4("x")  # shape (?, ?, ?, ?)
    out = get_output(layer, x)
    assert out.type.shape == (None, 5)
    grad = pytensor.grad(out.sum(), W)
    assert grad.type.shape == (24, 5)
    f = pytensor.function([x, W], [out, grad])
    assert not any(isinstance(n.op, SpecifyShape) for n in f.maker.fgraph.apply_nodes)
    rng = np.random.default_rng(0)
    data = rng.standard_normal((6, 2, 3, 4)).astype(pytensor.config.floatX)
    w = rng.standard_normal((24, 5)).astype(pytensor.config.floatX)
    value, dw = f(data, w)
    flat = data.reshape(6, -1)
    np.testing.assert_allclose(value, flat @ w + layer.b.get_value(), rtol=1e-5, atol=1e-5)
    np.testing.assert_allclose(dw, flat.T @ np.ones((6, 5)), rtol=1e-5, atol=1e-5)
