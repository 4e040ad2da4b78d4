"""Parameters given as arbitrary PyTensor expressions (Lasagne PR #404 / #695 semantics)."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from pytensor.graph.traversal import ancestors

from plasagne import nonlinearities
from plasagne.layers import DenseLayer, InputLayer, get_all_params, get_output
from plasagne.utils import ParameterError, floatX


def test_positive_weights_from_exp_of_log_weights():
    log_w = pytensor.shared(floatX(np.random.randn(3, 2)), name="log_w")
    layer = DenseLayer(InputLayer((None, 3)), 2, W=pt.exp(log_w), nonlinearity=None, name="pos")
    assert layer.get_params() == [log_w, layer.b]
    assert layer.get_params(unwrap_shared=False)[0] is layer.W  # the expression itself
    x = np.random.randn(4, 3)
    out = pytensor.function([layer.input_layer.input_var], get_output(layer))(x)
    np.testing.assert_allclose(out, x @ np.exp(log_w.get_value()) + layer.b.get_value())
    # the expression's parameters keep the tags of the parameter they build
    assert get_all_params(layer, regularizable=True) == [log_w]


def test_low_rank_weights_are_found_and_trained():
    rng = np.random.RandomState(0)
    U = pytensor.shared(floatX(rng.randn(6, 2) * 0.1), name="U")
    V = pytensor.shared(floatX(rng.randn(2, 3) * 0.1), name="V")
    l_in = InputLayer((None, 6))
    layer = DenseLayer(l_in, 3, W=U @ V, nonlinearity=None, name="lowrank")
    params = get_all_params(layer, trainable=True)
    assert params == [U, V, layer.b]

    x = rng.randn(20, 6)
    target = x @ rng.randn(6, 3)
    y = pt.matrix("y")
    loss = pt.mean((get_output(layer) - y) ** 2)
    grads = pytensor.grad(loss, params)
    step = pytensor.function(
        [l_in.input_var, y], loss, updates=[(p, p - 0.05 * g) for p, g in zip(params, grads)]
    )
    before_u, before_v = U.get_value().copy(), V.get_value().copy()
    losses = [step(x, target) for _ in range(50)]
    assert losses[-1] < losses[0]
    assert not np.allclose(U.get_value(), before_u)
    assert not np.allclose(V.get_value(), before_v)


def test_tied_autoencoder_lists_the_shared_weight_once():
    l_in = InputLayer((None, 5))
    encoder = DenseLayer(l_in, 2, nonlinearity=nonlinearities.tanh, name="enc")
    decoder = DenseLayer(encoder, 5, W=encoder.W.T, nonlinearity=None, name="dec")
    params = get_all_params(decoder)
    assert params == [encoder.W, encoder.b, decoder.b]
    x = np.random.randn(3, 5)
    W, b1, b2 = encoder.W.get_value(), encoder.b.get_value(), decoder.b.get_value()
    out = pytensor.function([l_in.input_var], get_output(decoder))(x)
    np.testing.assert_allclose(out, np.tanh(x @ W + b1) @ W.T + b2)


def test_pymc_random_variable_as_weight():
    l_in = InputLayer((None, 3))
    with pm.Model() as model:
        w = pm.Normal("hidden.W", 0.0, 1.0, shape=(3, 2))
        layer = DenseLayer(l_in, 2, W=w, b=None, nonlinearity=None, name="hidden")
    assert layer.get_params() == []  # an RV holds no shared variable parameter
    assert "hidden.W" in model.named_vars
    out = get_output(layer)
    assert w in set(ancestors([out]))
    # evaluating with a concrete weight value gives the plain matrix product
    x = np.random.randn(4, 3)
    w_value = np.random.randn(3, 2)
    f = pytensor.function([l_in.input_var, w], out, on_unused_input="ignore")
    np.testing.assert_allclose(f(x, w_value), x @ w_value)


@pytest.mark.parametrize(
    "W, message",
    [
        (
            lambda: pt.exp(pytensor.shared(np.zeros((2, 3)))),
            r"expected shape \(3, 2\), found expression of shape \(2, 3\)",
        ),
        (lambda: pt.vector(), "expected an expression with 2 dimensions"),
    ],
)
def test_expression_shape_mismatch_names_layer_and_param(W, message):
    with pytest.raises(ParameterError, match=r"DenseLayer 'h': parameter 'h\.W': " + message):
        DenseLayer(InputLayer((None, 3)), 2, W=W(), name="h")
