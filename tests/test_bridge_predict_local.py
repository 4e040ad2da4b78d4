"""Prediction with ``reparameterization="local"``: per-example moments against numpy.

The reference moments come from weights sampled by PyMC's own ``approximation.sample``
(independent of the closed forms the implementation uses): for a dense layer
``x @ W + b`` with independent Gaussian weights, an example's output has mean
``x @ E[W] + E[b]`` and variance ``x**2 @ Var[W] + Var[b]``. Tolerances are several
standard errors of the Monte Carlo estimates.
"""

import numpy as np
import pytensor.tensor as pt
import pytest
from backend_params import NUMBA_AND_JAX
from hypothesis import given, settings
from hypothesis import strategies as st

from plasagne.layers import Conv2DLayer, DenseLayer, InputLayer, get_output
from plasagne.nonlinearities import identity, softmax, tanh
from plasagne.pymc_bridge import GaussWeights, HierarchicalGaussWeights, build_model, fit
from plasagne.pymc_bridge.predict import PosteriorPredictive, predict, predict_proba
from plasagne.pymc_bridge.reparam import WeightMoments, marginal_products, pull_out_column_scales

S = 3000  # Monte Carlo draws


@pytest.fixture(scope="module")
def regression():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(90, 3))
    y = X @ np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.2]]) + 0.3 * rng.normal(size=(90, 2))

    def net(prior):
        layer = InputLayer((None, 3))
        return DenseLayer(layer, 2, W=prior, b=prior, nonlinearity=identity, name="lin")

    bnet = build_model(net, X, y, "normal", priors=GaussWeights(1.0), batch_size=30)
    result = fit(bnet, X, y, n=150, learning_rate=0.05, progressbar=False, random_seed=1)
    posterior = result.approximation.sample(S, random_seed=5).posterior
    W = posterior["lin.W"].values.reshape(-1, 3, 2)
    b = posterior["lin.b"].values.reshape(-1, 2)
    return bnet, result, X, W, b


@pytest.mark.parametrize("max_moment_bytes", [2**28, 1])  # one group; one per chunk
def test_local_draws_have_each_examples_exact_moments(regression, max_moment_bytes):
    bnet, result, X, W, b = regression
    pp = PosteriorPredictive(
        bnet,
        result,
        reparameterization="local",
        draws_per_call=50,
        random_seed=2,
        max_moment_bytes=max_moment_bytes,
    )
    assert pp.reparameterized == {"lin.W": "local", "lin.b": "weights", "noise.sigma": "weights"}
    out = pp.draws(X[:12], draws=S, chunk_size=5)
    assert out.shape == (S, 12, 2)
    mean_ref = X[:12] @ W.mean(0) + b.mean(0)
    var_ref = X[:12] ** 2 @ W.var(0) + b.var(0)
    # the reference's own Monte Carlo error plus the draws'
    assert np.all(np.abs(out.mean(0) - mean_ref) < 5 * np.sqrt(2 * var_ref / S))
    np.testing.assert_allclose(out.var(0), var_ref, rtol=5 * np.sqrt(2 * 2 / S))


def test_examples_share_only_the_weights_sampled_as_weights(regression):
    """Two copies of one input: identical in every draw with ``"weights"``; with
    ``"local"`` they share only the bias draw, so their correlation is
    ``Var[b] / (x**2 @ Var[W] + Var[b])``."""
    bnet, result, X, W, b = regression
    twins = np.repeat(X[:4], 2, axis=0)
    shared = PosteriorPredictive(bnet, result, draws_per_call=20, random_seed=3)
    same = shared.draws(twins, draws=40)
    np.testing.assert_array_equal(same[:, ::2], same[:, 1::2])
    local = PosteriorPredictive(
        bnet, result, reparameterization="local", draws_per_call=20, random_seed=3
    )
    out = local.draws(twins, draws=S)
    first, second = out[:, ::2], out[:, 1::2]
    assert not np.allclose(first, second)
    centred = (first - first.mean(0)) * (second - second.mean(0))
    corr = centred.mean(0) / np.sqrt(first.var(0) * second.var(0))
    corr_ref = b.var(0) / (X[:4] ** 2 @ W.var(0) + b.var(0))
    np.testing.assert_allclose(corr, corr_ref, atol=5 / np.sqrt(S))


@pytest.fixture(scope="module")
def classifier():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(120, 4))
    y = (np.sin(2 * X[:, 0]) + X[:, 1] * X[:, 2] > 0).astype("int64")

    def net(prior):
        hidden = DenseLayer(InputLayer((None, 4)), 6, W=prior, b=prior, nonlinearity=tanh, name="h")
        return DenseLayer(hidden, 2, W=prior, b=prior, nonlinearity=softmax, name="out")

    bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=40)
    result = fit(bnet, X, y, n=200, learning_rate=0.05, progressbar=False, random_seed=1)
    return bnet, result, X, y


def test_only_products_of_the_inputs_are_marginalised(classifier):
    bnet, result, _, _ = classifier
    pp = PosteriorPredictive(bnet, result, reparameterization="local")
    assert pp.reparameterized == {
        "h.W": "local",
        "h.b": "weights",
        "out.W": "weights",  # multiplies a random hidden layer: it keeps shared draws
        "out.b": "weights",
    }


def test_local_and_weight_draws_give_the_same_predictive_probabilities(classifier):
    bnet, result, X, _ = classifier
    kwargs = dict(draws=S, draws_per_call=100)
    weights = predict_proba(bnet, result, X[:30], random_seed=4, **kwargs)
    local = predict_proba(bnet, result, X[:30], random_seed=5, reparameterization="local", **kwargs)
    # per-draw probabilities lie in [0, 1]: the mean's standard error is at most 0.5 / sqrt(S)
    np.testing.assert_allclose(local, weights, atol=5 * 0.5 * np.sqrt(2 / S))
    np.testing.assert_allclose(local.sum(axis=1), 1.0, rtol=1e-6)


@pytest.mark.parametrize("draws_per_call", [1, 4])
def test_every_draw_is_fresh_noise(classifier, draws_per_call):
    bnet, result, X, _ = classifier
    pp = PosteriorPredictive(
        bnet, result, reparameterization="local", draws_per_call=draws_per_call, random_seed=6
    )
    out = pp.draws(X[:5], draws=8, chunk_size=3)
    assert out.shape == (8, 5, 2)
    flat = out[..., 1].reshape(8, -1)
    distinct = {tuple(np.round(row, 12)) for row in flat}
    assert len(distinct) == 8
    # the running mean agrees with the mean of explicit draws from the same seed
    again = PosteriorPredictive(
        bnet, result, reparameterization="local", draws_per_call=draws_per_call, random_seed=6
    )
    np.testing.assert_allclose(again.mean(X[:5], draws=8, chunk_size=3), out.mean(0), rtol=1e-6)


def test_mode_rule_predictions_accept_local(classifier):
    bnet, result, X, y = classifier
    labels = predict(bnet, result, X, draws=50, kind="mode", reparameterization="local")
    reference = predict(bnet, result, X, draws=200, random_seed=1)
    assert labels.shape == y.shape
    assert (labels == reference).mean() > 0.9


def test_convolutions_keep_weight_draws_and_flattened_images_do_not():
    rng = np.random.default_rng(2)
    X = rng.normal(size=(40, 1, 5, 5))
    y = (X[:, 0, 2, 2] > 0).astype("int64")

    def conv_net(prior):
        conv = Conv2DLayer(InputLayer((None, 1, 5, 5)), 2, 3, W=prior, b=prior, name="c")
        return DenseLayer(conv, 2, W=prior, b=prior, nonlinearity=softmax, name="out")

    def dense_on_images(prior):  # the dense layer flattens each image to one row
        return DenseLayer(
            InputLayer((None, 1, 5, 5)), 2, W=prior, b=prior, nonlinearity=softmax, name="out"
        )

    for net, expected in ((conv_net, set()), (dense_on_images, {"out.W"})):
        bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=20)
        result = fit(bnet, X, y, n=20, progressbar=False, random_seed=1)
        pp = PosteriorPredictive(bnet, result, reparameterization="local", random_seed=2)
        assert {k for k, v in pp.reparameterized.items() if v == "local"} == expected
        assert pp.draws(X[:3], draws=4).shape == (4, 3, 2)


def test_moments_in_memory_are_bounded(classifier):
    """Chunks are prepared group by group: with room for one chunk's moments, each
    group is one chunk, drawn from before the chunk after the next is prepared (at most
    the budget plus one chunk's moments at once)."""
    bnet, result, X, _ = classifier
    pp = PosteriorPredictive(bnet, result, reparameterization="local", max_moment_bytes=1)
    calls = []
    prepare = pp._prepare
    pp._prepare = lambda chunk: calls.append(len(chunk)) or prepare(chunk)
    network = pp._network
    pp._network = lambda *args: calls.append("draw") or network(*args)
    out = pp.mean(X[:25], draws=2, chunk_size=10)
    assert calls == [10, 10, "draw", "draw", 5, "draw", "draw", "draw", "draw"]
    np.testing.assert_allclose(out.sum(axis=1), 1.0, rtol=1e-6)
    with pytest.raises(ValueError, match="max_moment_bytes must be >= 1"):
        PosteriorPredictive(bnet, result, reparameterization="local", max_moment_bytes=0)


def test_local_needs_a_mean_field_fit_and_a_known_name(classifier):
    bnet, _, X, y = classifier
    point = fit(bnet, X, y, n=10, method="map", progressbar=False)
    with pytest.raises(ValueError, match="mean-field ADVI"):
        PosteriorPredictive(bnet, point, reparameterization="local")
    with pytest.raises(ValueError, match="reparameterization must be one of"):
        PosteriorPredictive(bnet, point, reparameterization="flipout")


@pytest.mark.parametrize("mode", NUMBA_AND_JAX)
def test_backends_sample_the_same_local_predictive(regression, mode):
    bnet, result, X, W, b = regression
    pp = PosteriorPredictive(
        bnet, result, mode=mode, reparameterization="local", draws_per_call=100, random_seed=8
    )
    out = pp.draws(X[:6], draws=S)
    mean_ref = X[:6] @ W.mean(0) + b.mean(0)
    var_ref = X[:6] ** 2 @ W.var(0) + b.var(0)
    assert np.all(np.abs(out.mean(0) - mean_ref) < 5 * np.sqrt(2 * var_ref / S))
    np.testing.assert_allclose(out.var(0), var_ref, rtol=5 * np.sqrt(2 * 2 / S))


@pytest.mark.parametrize("centered", [False, True])
def test_hierarchical_weights_are_sampled_per_example(centered):
    """Non-centred ``raw * scale`` with one scale per unit: ``(x @ raw) * scale``, so the
    product of ``raw`` is sampled per example and ``scale`` keeps its draws."""
    rng = np.random.default_rng(3)
    X = rng.normal(size=(60, 3))
    y = X @ np.array([[1.0, -0.5], [0.3, 2.0], [-1.0, 0.2]]) + 0.3 * rng.normal(size=(60, 2))
    prior = HierarchicalGaussWeights(per_unit=True, centered=centered)

    def net():
        layer = InputLayer((None, 3))
        return DenseLayer(layer, 2, W=prior, b=GaussWeights(1.0), nonlinearity=identity, name="h")

    bnet = build_model(net, X, y, "normal", batch_size=20)
    result = fit(bnet, X, y, n=100, learning_rate=0.05, progressbar=False, random_seed=1)
    pp = PosteriorPredictive(
        bnet, result, reparameterization="local", draws_per_call=50, random_seed=2
    )
    local = {k for k, v in pp.reparameterized.items() if v == "local"}
    assert local == ({"h.W"} if centered else {"h.W.raw"})
    out = pp.draws(X[:8], draws=S)
    # reference: the network on weights PyMC samples from the approximation
    posterior = result.approximation.sample(S, random_seed=5).posterior
    b = posterior["h.b"].values.reshape(-1, 2)
    if centered:
        W = posterior["h.W"].values.reshape(-1, 3, 2)
    else:
        raw = posterior["h.W.raw"].values.reshape(-1, 3, 2)
        W = raw * posterior["h.W.scale"].values.reshape(-1, 1, 2)
    ref = np.einsum("nf,sfk->snk", X[:8], W) + b[:, None, :]
    se = np.sqrt(out.var(0) / S + ref.var(0) / S)
    assert np.all(np.abs(out.mean(0) - ref.mean(0)) < 5 * se)
    np.testing.assert_allclose(out.var(0), ref.var(0), rtol=5 * np.sqrt(4 / S))


def test_only_scales_constant_down_the_rows_are_pulled_out():
    X = pt.matrix("X")
    W = pt.matrix("W")
    per_column, per_row = pt.matrix("s", shape=(1, 2)), pt.matrix("r", shape=(3, 1))
    moments = {W: WeightMoments(pt.ones((3, 2)), pt.ones((3, 2)))}
    for factor, expected in ((per_column, [W]), (per_row, [])):
        out = pull_out_column_scales(pt.tanh(pt.dot(X, W * factor)), [W])
        assert [p.variable for p in marginal_products(out, moments, X)] == expected
        values = {
            X: np.ones((4, 3)),
            W: np.arange(6.0).reshape(3, 2),
            factor: np.full(factor.type.shape, 0.1),
        }
        want = np.tanh(values[X] @ (values[W] * values[factor]))
        np.testing.assert_allclose(out.eval(values), want)


@settings(max_examples=15)
@given(
    depth=st.integers(1, 3),
    image_input=st.booleans(),
    units=st.integers(1, 5),
    bias=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_marginal_moments_of_random_dense_stacks(depth, image_input, units, bias, seed):
    """Whatever the stack, only the first layer's product is marginal, and its moments
    are ``flat(x) @ mu`` and ``sqrt(flat(x)**2 @ sigma**2)``."""
    rng = np.random.default_rng(seed)
    shape = (None, 2, 2, 2) if image_input else (None, 3)
    features = int(np.prod(shape[1:]))
    layer = InputLayer(shape)
    weights, moments, values = [], {}, {}
    fan_in = features
    for i in range(depth):
        W = pt.matrix(f"W{i}")
        mu, sigma = rng.normal(size=(fan_in, units)), rng.uniform(0.1, 1.0, (fan_in, units))
        moments[W] = WeightMoments(pt.constant(mu), pt.constant(sigma))
        values[W] = (mu, sigma)
        b = pt.constant(rng.normal(size=units)) if bias else None
        layer = DenseLayer(layer, units, W=W, b=b, nonlinearity=tanh)
        weights.append(W)
        fan_in = units
    X = pt.tensor("X", shape=(None, *shape[1:]))
    out = get_output(layer, X)
    found = marginal_products(out, moments, X)
    assert [p.variable for p in found] == weights[:1]
    x = rng.normal(size=(4, *shape[1:]))
    flat = x.reshape(4, -1)
    mu, sigma = values[weights[0]]
    np.testing.assert_allclose(found[0].mean.eval({X: x}), flat @ mu, rtol=1e-10)
    want_std = np.sqrt(flat**2 @ sigma**2)
    np.testing.assert_allclose(found[0].std.eval({X: x}), want_std, rtol=1e-6)
