"""build_model: minibatch scaling against scipy, likelihood choice by graph inspection, errors."""

import numpy as np
import pymc as pm
import pytest
from scipy import special, stats

from plasagne.layers import DenseLayer, InputLayer
from plasagne.nonlinearities import sigmoid, softmax, tanh
from plasagne.pymc_bridge import GaussWeights, build_model, sigmoid_logits, softmax_logits


def _mlp(n_in, n_hidden, n_out, out_nl):
    def build(prior):
        in_shape = n_in if isinstance(n_in, tuple) else (n_in,)
        h = DenseLayer(
            InputLayer((None, *in_shape)), n_hidden, W=prior, b=prior, nonlinearity=tanh, name="h"
        )
        return DenseLayer(h, n_out, W=prior, b=prior, nonlinearity=out_nl, name="out")

    return build


def _random_point(model, rng):
    point = model.initial_point()
    return {k: rng.normal(size=np.shape(v)) for k, v in point.items()}


def _forward(point, X):
    h = np.tanh(X.reshape(len(X), -1) @ point["h.W"] + point["h.b"])
    return h @ point["out.W"] + point["out.b"]


def _prior_logp(point, sigma):
    return sum(
        stats.norm(0, sigma).logpdf(point[k]).sum() for k in ("h.W", "h.b", "out.W", "out.b")
    )


def test_categorical_minibatch_logp_is_scaled_batch_loglik_plus_prior():
    rng = np.random.default_rng(0)
    N, B = 60, 8
    X = rng.normal(size=(N, 2, 2))  # any ndim: flattened by the dense layer
    y = rng.integers(0, 3, N)
    bnet = build_model(_mlp((2, 2), 5, 3, softmax), X, y, priors=GaussWeights(0.7), batch_size=B)
    assert bnet.logits is not None  # softmax found in the graph
    idx = rng.choice(N, B, replace=False)
    bnet.set_batch(X[idx], y[idx])
    point = _random_point(bnet.model, rng)
    logp = bnet.model.compile_logp()(point)
    logits = _forward(point, X[idx])
    loglik = (logits - special.logsumexp(logits, axis=1, keepdims=True))[np.arange(B), y[idx]]
    expected = N / B * loglik.sum() + _prior_logp(point, 0.7)
    assert np.isclose(logp, expected, rtol=1e-10)


def test_categorical_without_softmax_uses_probabilities():
    rng = np.random.default_rng(1)
    N, B = 20, 5
    X = rng.normal(size=(N, 3))
    y = rng.integers(0, 2, N)

    def normalised(x):
        e = np.exp(x) if isinstance(x, np.ndarray) else __import__("pytensor").tensor.exp(x)
        return e / e.sum(axis=-1, keepdims=True)

    bnet = build_model(_mlp(3, 4, 2, normalised), X, y, priors=GaussWeights(1.0), batch_size=B)
    assert bnet.logits is None
    point = _random_point(bnet.model, rng)
    logp = bnet.model.compile_logp()(point)
    p = normalised(_forward(point, X[:B]))
    expected = N / B * np.log(p[np.arange(B), y[:B]]).sum() + _prior_logp(point, 1.0)
    assert np.isclose(logp, expected, rtol=1e-8)


def test_bernoulli_and_normal_scaling():
    rng = np.random.default_rng(2)
    N, B = 30, 6
    X = rng.normal(size=(N, 3))
    yb = rng.integers(0, 2, N)
    bnet = build_model(
        _mlp(3, 4, 1, sigmoid), X, yb, "bernoulli", priors=GaussWeights(1.0), batch_size=B
    )
    assert bnet.logits is not None
    point = _random_point(bnet.model, rng)
    z = _forward(point, X[:B])[:, 0]
    loglik = stats.bernoulli(special.expit(z)).logpmf(yb[:B]).sum()
    assert np.isclose(bnet.model.compile_logp()(point), N / B * loglik + _prior_logp(point, 1.0))

    yr = rng.normal(size=N)
    bnet = build_model(_mlp(3, 4, 1, None), X, yr, "normal", priors=GaussWeights(1.0), batch_size=B)
    assert "noise.sigma" in bnet.model.named_vars
    point = _random_point(bnet.model, rng)
    sigma = np.exp(point["noise.sigma_log__"])
    mu = _forward(point, X[:B])[:, 0]
    expected = (
        N / B * stats.norm(mu, sigma).logpdf(yr[:B]).sum()
        + _prior_logp(point, 1.0)
        + stats.halfnorm(scale=1.0).logpdf(sigma)
        + np.log(sigma)  # log-transform Jacobian
    )
    assert np.isclose(bnet.model.compile_logp()(point), expected)


def test_graph_inspection_helpers():
    import pytensor.tensor as pt

    x = pt.matrix("x")
    assert softmax_logits(softmax(x)) is x
    assert softmax_logits(pt.special.softmax(x, axis=0)) is None
    assert sigmoid_logits(sigmoid(x)) is x and sigmoid_logits(tanh(x)) is None


def test_prebuilt_layer_in_given_model():
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    with pm.Model() as m:
        out = DenseLayer(
            InputLayer((None, 2)), 2, W=GaussWeights(), b=GaussWeights(), nonlinearity=softmax
        )
    bnet = build_model(out, X, y, model=m, batch_size=2)
    assert bnet.model is m and "y" in m.named_vars and bnet.n_data == 4


def test_errors_name_the_problem():
    X, y = np.zeros((4, 2)), np.array([0, 1, 0, 1])
    build = _mlp(2, 3, 2, softmax)
    with pytest.raises(ValueError, match="likelihood must be one of"):
        build_model(build, X, y, "poisson", priors=GaussWeights())
    with pytest.raises(ValueError, match="same number of rows"):
        build_model(build, X, y[:3], priors=GaussWeights())
    with pytest.raises(ValueError, match=r"labels in \[0, 2\)"):
        build_model(build, X, np.array([0, 1, 2, 0]), priors=GaussWeights())
    with pytest.raises(ValueError, match="expects targets y in"):
        build_model(
            _mlp(2, 3, 1, sigmoid), X, np.array([0, 1, 2, 0]), "bernoulli", priors=GaussWeights()
        )
    with pytest.raises(TypeError, match="must return the output Layer"):
        build_model(lambda p: None, X, y, priors=GaussWeights())


@pytest.mark.parametrize("noise", ["dropout", "gaussian"])
def test_noise_layers_are_refused_unless_deterministic(noise):
    """A dropout or Gaussian-noise layer draws noise that PyMC's log-density cannot hold:
    build_model names the layer and the way out; with deterministic=True they pass their
    input through and the model matches the network without them."""
    from plasagne.layers import DropoutLayer, GaussianNoiseLayer

    def build(init):
        hidden = DenseLayer(InputLayer((None, 2)), 3, W=init, b=init, nonlinearity=tanh, name="h")
        noisy = (
            DropoutLayer(hidden, p=0.5, name="drop")
            if noise == "dropout"
            else GaussianNoiseLayer(hidden, sigma=0.3, name="jitter")
        )
        return DenseLayer(noisy, 2, W=init, b=init, nonlinearity=softmax, name="out")

    X, y = np.random.default_rng(0).random((4, 2)), np.array([0, 1, 0, 1])
    name = "DropoutLayer 'drop'" if noise == "dropout" else "GaussianNoiseLayer 'jitter'"
    with pytest.raises(
        ValueError, match=f"build_model: {name} draws random noise.*deterministic=True"
    ):
        build_model(build, X, y, priors=GaussWeights())
    bnet = build_model(build, X, y, priors=GaussWeights(), deterministic=True)
    plain = build_model(_mlp(2, 3, 2, softmax), X, y, priors=GaussWeights())
    point = _random_point(bnet.model, np.random.default_rng(1))
    assert set(point) == set(plain.model.initial_point())  # the same names: h.*, out.*
    np.testing.assert_allclose(
        bnet.model.compile_logp()(point), plain.model.compile_logp()(point), rtol=1e-10
    )


def test_data_rows_must_fit_the_input_layer():
    """Rows of another shape than the input layer declares are refused by build_model
    and fit, with the layer's name, before any graph is built."""
    from plasagne.pymc_bridge import fit

    y = np.array([0, 1, 0, 1])
    build = _mlp((1, 2, 2), 3, 2, softmax)  # the input layer is unnamed: its class names it
    message = r"build_model: the input layer 'InputLayer' takes rows of shape \(1, 2, 2\), "
    for shape in [(4, 4), (4, 1, 2, 3), (4, 2, 2, 1)]:
        found = rf"found X of shape \({', '.join(map(str, shape))}\)"
        with pytest.raises(ValueError, match=message + found):
            build_model(build, np.zeros(shape), y, priors=GaussWeights())
    bnet = build_model(build, np.zeros((4, 1, 2, 2)), y, priors=GaussWeights(), batch_size=2)
    assert bnet.input_data.get_value().shape == (2, 1, 2, 2)
    with pytest.raises(ValueError, match=r"fit: the input layer 'InputLayer' takes rows"):
        fit(bnet, np.zeros((4, 1, 2, 3)), y, n=1, progressbar=False)
