"""Penalties over layers and networks equal numpy sums over the regularizable weights."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasagne.layers import DenseLayer, InputLayer
from plasagne.regularization import (
    apply_penalty,
    l1,
    l2,
    regularize_layer_params,
    regularize_layer_params_weighted,
    regularize_network_params,
)


def value(expr):
    return pytensor.function([], expr)()


def np_l1(x):
    return np.sum(np.abs(x))


def np_l2(x):
    return np.sum(x * x)


def network(sizes, rng):
    """Input of sizes[0] features, then a dense layer per further size, random biases."""
    layer = InputLayer((None, sizes[0]))
    layers = []
    for i, units in enumerate(sizes[1:]):
        layer = DenseLayer(layer, units, name=f"d{i}", b=rng.normal(size=units))
        layers.append(layer)
    return layers


@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 5), min_size=2, max_size=4),
)
def test_l1_l2_apply_penalty_match_numpy(seed, sizes):
    rng = np.random.default_rng(seed)
    arrays = [rng.normal(size=(s, 2)) for s in sizes]
    for penalty, reference in [(l1, np_l1), (l2, np_l2)]:
        assert np.isclose(value(penalty(pt.constant(arrays[0]))), reference(arrays[0]))
        total = value(apply_penalty([pt.constant(a) for a in arrays], penalty))
        assert np.isclose(total, sum(reference(a) for a in arrays))
        # a generator is an iterable of tensors too; a numpy array is one tensor
        gen = value(apply_penalty((pt.constant(a) for a in arrays), penalty))
        assert np.isclose(gen, sum(reference(a) for a in arrays))
        assert np.isclose(value(apply_penalty(arrays[0], penalty)), reference(arrays[0]))


def test_apply_penalty_passes_keyword_arguments_and_handles_empty_lists():
    def lp(x, p):
        return pt.sum(pt.abs(x) ** p)

    x = np.array([1.0, -2.0, 3.0])
    assert np.isclose(value(apply_penalty([pt.constant(x)], lp, p=3)), np.sum(np.abs(x) ** 3))
    assert value(apply_penalty([], l2)) == 0
    with pytest.raises(TypeError, match="penalty must be callable"):
        apply_penalty([pt.constant(x)], "l2")


@given(
    seed=st.integers(0, 2**31 - 1),
    sizes=st.lists(st.integers(1, 5), min_size=3, max_size=4),
)
def test_network_penalties_use_weights_only(seed, sizes):
    rng = np.random.default_rng(seed)
    layers = network(sizes, rng)
    Ws = [lay.W.get_value() for lay in layers]
    bs = [lay.b.get_value() for lay in layers]
    out = layers[-1]
    for penalty, ref in [(l1, np_l1), (l2, np_l2)]:
        assert np.isclose(value(regularize_network_params(out, penalty)), sum(map(ref, Ws)))
        assert np.isclose(value(regularize_layer_params(out, penalty)), ref(Ws[-1]))
        assert np.isclose(value(regularize_layer_params(layers, penalty)), sum(map(ref, Ws)))
        coeffs = rng.random(len(layers))
        weighted = regularize_layer_params_weighted(dict(zip(layers, coeffs)), penalty)
        assert np.isclose(value(weighted), sum(c * ref(W) for c, W in zip(coeffs, Ws)))
    # other tag filters: everything, or the non-regularizable biases only
    everything = sum(map(np_l2, Ws)) + sum(map(np_l2, bs))
    assert np.isclose(value(regularize_network_params(out, l2, tags={})), everything)
    biases = value(regularize_network_params(out, l2, tags={"regularizable": False}))
    assert np.isclose(biases, sum(map(np_l2, bs)))
    assert np.isclose(
        value(regularize_layer_params(out, l1, tags={"trainable": True})),
        np_l1(Ws[-1]) + np_l1(bs[-1]),
    )


def test_weighted_coefficients_may_be_symbolic():
    rng = np.random.default_rng(3)
    hidden, out = network([3, 4, 2], rng)
    lam = pt.dscalar("lam")
    f = pytensor.function([lam], regularize_layer_params_weighted({hidden: lam, out: 2.0}, l2))
    expected = 0.3 * np_l2(hidden.W.get_value()) + 2.0 * np_l2(out.W.get_value())
    assert np.isclose(f(0.3), expected)


def test_penalty_gradient_is_the_numpy_derivative():
    rng = np.random.default_rng(4)
    hidden, out = network([3, 4, 2], rng)
    penalty = regularize_network_params(out, l2)
    grads = pytensor.grad(
        penalty,
        [hidden.W, hidden.b, out.W],
        disconnected_inputs="ignore",  # the bias is not in the penalty
        return_disconnected="zero",
    )
    grads = pytensor.function([], grads)()
    np.testing.assert_allclose(grads[0], 2 * hidden.W.get_value())
    np.testing.assert_allclose(grads[1], np.zeros(4))
    np.testing.assert_allclose(grads[2], 2 * out.W.get_value())


def test_expression_parameters_are_penalised_on_their_shared_variables():
    rng = np.random.default_rng(5)
    log_w = pytensor.shared(rng.normal(size=(3, 2)), name="log_w")
    layer = DenseLayer(InputLayer((None, 3)), 2, W=pt.exp(log_w))
    lw = log_w.get_value()
    assert np.isclose(value(regularize_network_params(layer, l2)), np_l2(lw))
    assert np.isclose(value(regularize_layer_params(layer, l1)), np_l1(lw))
    # the expression itself, as the layer uses it, through apply_penalty
    assert np.isclose(value(apply_penalty(layer.W, l2)), np_l2(np.exp(lw)))


def test_tied_weights_count_once():
    l_in = InputLayer((None, 3))
    enc = DenseLayer(l_in, 2)
    dec = DenseLayer(enc, 3, W=enc.W.T)
    W = enc.W.get_value()
    assert np.isclose(value(regularize_network_params(dec, l2)), np_l2(W))
    # per layer, each layer contributes its own (here shared) weight
    assert np.isclose(value(regularize_layer_params([enc, dec], l2)), 2 * np_l2(W))


def test_float32_weights_give_a_float32_penalty():
    l_in = InputLayer((None, 3))
    W = pytensor.shared(np.ones((3, 2), dtype="float32"))
    V = pytensor.shared(np.ones((2, 2), dtype="float32"))
    out = DenseLayer(DenseLayer(l_in, 2, W=W), 2, W=V)
    assert regularize_network_params(out, l2).dtype == "float32"
    assert regularize_layer_params(out, l1).dtype == "float32"


def test_bad_layers_are_named_in_the_error():
    with pytest.raises(TypeError, match="expected a Layer, got str"):
        regularize_layer_params(["not a layer"], l2)
    with pytest.raises(TypeError, match=r"dict \{layer: coefficient\}"):
        regularize_layer_params_weighted([DenseLayer(InputLayer((None, 2)), 1)], l2)
