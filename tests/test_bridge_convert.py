"""Swapping between deterministic, MAP and Bayesian versions of one network."""

import numpy as np
import pytensor
import pytest

import plasagne
from plasagne.layers import DenseLayer, InputLayer, get_all_params, get_output
from plasagne.nonlinearities import softmax, tanh
from plasagne.pymc_bridge import GaussWeights, build_model, fit
from plasagne.pymc_bridge.convert import (
    paired_params,
    posterior_draws,
    to_deterministic,
    warm_start,
)
from plasagne.pymc_bridge.predict import predict_proba


def build(init):
    l_in = InputLayer((None, 4))
    hid = DenseLayer(l_in, 6, W=init, b=init, nonlinearity=tanh, name="hid")
    return DenseLayer(hid, 3, W=init, b=init, nonlinearity=softmax, name="out")


def data(n=150, seed=0):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    y = np.argmax(X[:, :3] + 0.1 * rng.normal(size=(n, 3)), axis=1)
    return X, y


def det_init(shape):
    return plasagne.init.GlorotUniform()(shape) if len(shape) > 1 else np.zeros(shape)


def train_deterministic(X, y, steps=300):
    net = build(det_init)
    x = pytensor.tensor.matrix()
    t = pytensor.tensor.lvector()
    loss = plasagne.objectives.categorical_crossentropy(get_output(net, x), t).mean()
    step = pytensor.function(
        [x, t], loss, updates=plasagne.updates.adam(loss, get_all_params(net), 0.05)
    )
    for _ in range(steps):
        step(X, y)
    return net


def test_warm_start_sets_initial_means_to_the_deterministic_values():
    X, y = data()
    det = train_deterministic(X, y)
    bnet = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=50)
    names = warm_start(bnet, det)
    assert names == ["hid.W", "hid.b", "out.W", "out.b"]
    start = bnet.model.initial_point()
    for b, d in paired_params(bnet.network, det):
        np.testing.assert_array_equal(start[b.name], d.get_value())
    # the ADVI fit starts near the deterministic optimum: the first losses are far lower
    warm = fit(bnet, X, y, n=5, progressbar=False, random_seed=0, start_sigma=1e-3)
    cold_net = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=50)
    cold = fit(cold_net, X, y, n=5, progressbar=False, random_seed=0, start_sigma=1e-3)
    assert warm.losses[:5].mean() < cold.losses[:5].mean()


def test_to_deterministic_holds_posterior_means_and_predicts_like_the_posterior():
    X, y = data()
    bnet = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=50)
    result = fit(bnet, X, y, n=400, learning_rate=0.05, progressbar=False, random_seed=1)
    det = to_deterministic(bnet, result, build, draws=500, random_seed=2)
    idata = posterior_draws(result, draws=2000, random_seed=3)
    for name, layer_param in [("hid.W", det.input_layer.W), ("out.b", det.b)]:
        post = idata.posterior[name].values.reshape((-1,) + layer_param.get_value().shape)
        # Monte Carlo error of both estimates: 500 and 2000 draws
        se = post.std(0) * np.sqrt(1 / 500 + 1 / 2000)
        assert np.all(np.abs(layer_param.get_value() - post.mean(0)) < 5 * se + 1e-6)
    f = pytensor.function([det.input_layer.input_layer.input_var], get_output(det))
    det_pred = f(X).argmax(1)
    bayes_pred = predict_proba(bnet, result, X, draws=100, random_seed=4).argmax(1)
    assert (det_pred == bayes_pred).mean() > 0.9
    assert (det_pred == y).mean() > 0.8


def test_map_of_the_same_model_and_its_draws():
    X, y = data()
    bnet = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=50)
    result = fit(
        bnet, X, y, n=300, method="map", learning_rate=0.05, progressbar=False, random_seed=1
    )
    idata = posterior_draws(result)
    assert idata.posterior["out.W"].shape == (1, 1, 6, 3)
    det = to_deterministic(bnet, result, build)
    np.testing.assert_allclose(det.W.get_value(), idata.posterior["out.W"].values[0, 0])
    probs = predict_proba(bnet, result, X, draws=10)
    f = pytensor.function([det.input_layer.input_layer.input_var], get_output(det))
    np.testing.assert_allclose(probs, f(X), rtol=1e-6)


def test_networks_of_different_structure_are_refused():
    X, y = data()
    bnet = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=50)
    other = DenseLayer(InputLayer((None, 4)), 3)
    with pytest.raises(ValueError, match="networks differ"):
        warm_start(bnet, other)


@pytest.mark.parametrize("method", ["advi", "map"])
def test_bayesian_last_layer_trains_the_point_estimate_layers_too(method):
    from plasagne.pymc_bridge import PriorMap
    from plasagne.pymc_bridge.fit import point_estimate_params

    X, y = data(n=200)
    plasagne.random.set_rng(np.random.RandomState(0))
    priors = PriorMap({"out.*": GaussWeights(1.0)}, default=det_init)
    bnet = build_model(build, X, y, priors=priors, batch_size=50)
    assert sorted(v.name for v in bnet.model.free_RVs) == ["out.W", "out.b"]
    hidden = point_estimate_params(bnet)
    assert [p.name for p in hidden] == ["hid.W", "hid.b"]
    before = [p.get_value().copy() for p in hidden]
    result = fit(
        bnet, X, y, n=300, method=method, learning_rate=0.05, progressbar=False, random_seed=0
    )
    assert all(not np.allclose(b, p.get_value()) for b, p in zip(before, hidden))
    probs = predict_proba(bnet, result, X, draws=20, random_seed=1)
    assert (probs.argmax(1) == y).mean() > 0.85
