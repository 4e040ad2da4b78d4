"""Penalties over layers and networks equal numpy sums over the regularizable weights."""

import numpy as np
import pytensor
import pytensor.tensor as pt

from plasagne.layers import DenseLayer, InputLayer
from plasagne.regularization import (
    apply_penalty,
    l1,
    l2,
    regularize_layer_params,
    regularize_layer_params_weighted,
    regularize_network_params,
)


def net():
    l_in = InputLayer((None, 3))
    h = DenseLayer(l_in, 4, name="h", b=np.random.randn(4))
    o = DenseLayer(h, 2, name="o", b=np.random.randn(2))
    return h, o


def test_l1_l2_and_apply_penalty():
    x = np.random.randn(3, 4)
    assert np.isclose(l1(pt.constant(x)).eval(), np.abs(x).sum())
    assert np.isclose(l2(pt.constant(x)).eval(), (x**2).sum())
    assert np.isclose(
        apply_penalty([pt.constant(x), pt.constant(2 * x)], l2).eval(), 5 * (x**2).sum()
    )


def test_network_penalty_uses_weights_only():
    h, o = net()
    Wh, Wo = h.W.get_value(), o.W.get_value()
    assert np.isclose(regularize_network_params(o, l2).eval(), (Wh**2).sum() + (Wo**2).sum())
    assert np.isclose(regularize_layer_params(o, l1).eval(), np.abs(Wo).sum())
    assert np.isclose(
        regularize_layer_params([h, o], l1).eval(), np.abs(Wh).sum() + np.abs(Wo).sum()
    )
    weighted = regularize_layer_params_weighted({h: 0.1, o: 0.5}, l2).eval()
    assert np.isclose(weighted, 0.1 * (Wh**2).sum() + 0.5 * (Wo**2).sum())


def test_expression_parameters_are_penalised_on_their_shared_variables():
    log_w = pytensor.shared(np.random.randn(3, 2))
    layer = DenseLayer(InputLayer((None, 3)), 2, W=pt.exp(log_w))
    assert np.isclose(regularize_network_params(layer, l2).eval(), (log_w.get_value() ** 2).sum())
    assert np.isclose(regularize_layer_params(layer, l1).eval(), np.abs(log_w.get_value()).sum())
    # the expression itself, as the layer uses it, through apply_penalty
    assert np.isclose(apply_penalty(layer.W, l2).eval(), (np.exp(log_w.get_value()) ** 2).sum())


def test_tied_weights_count_once():
    l_in = InputLayer((None, 3))
    enc = DenseLayer(l_in, 2)
    dec = DenseLayer(enc, 3, W=enc.W.T)
    assert np.isclose(regularize_network_params(dec, l2).eval(), (enc.W.get_value() ** 2).sum())
