"""Posterior prediction: compiled draws against numpy on the approximation's own samples."""

import numpy as np
import pytest

from plasagne.layers import DenseLayer, InputLayer
from plasagne.nonlinearities import softmax
from plasagne.pymc_bridge import GaussWeights, build_model, fit
from plasagne.pymc_bridge.predict import PosteriorPredictive, predict, predict_proba, sample_labels


@pytest.fixture(scope="module")
def fitted():
    rng = np.random.default_rng(0)
    X = rng.normal(size=(120, 3))
    y = (X @ np.array([2.0, -1.0, 0.5]) > 0).astype("int64")

    def net(prior):
        return DenseLayer(
            InputLayer((None, 3)), 2, W=prior, b=prior, nonlinearity=softmax, name="out"
        )

    bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=40)
    result = fit(bnet, X, y, n=300, learning_rate=0.05, progressbar=False, random_seed=1)
    return bnet, result, X, y


def test_probabilities_sum_to_one_and_match_numpy_monte_carlo(fitted):
    bnet, result, X, y = fitted
    probs = predict_proba(bnet, result, X[:20], draws=400, draws_per_call=50, random_seed=3)
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, rtol=1e-6)
    # independent reference: numpy softmax over weights sampled by PyMC itself
    idata = result.approximation.sample(2000, random_seed=4)
    W = idata.posterior["out.W"].values.reshape(-1, 3, 2)
    b = idata.posterior["out.b"].values.reshape(-1, 2)
    logits = np.einsum("nf,sfk->snk", X[:20], W) + b[:, None, :]
    ref = np.exp(logits - logits.max(-1, keepdims=True))
    ref = (ref / ref.sum(-1, keepdims=True)).mean(0)
    np.testing.assert_allclose(probs, ref, atol=0.05)


def test_chunking_does_not_change_results(fitted):
    bnet, result, X, _ = fitted
    a = PosteriorPredictive(bnet, result, draws_per_call=5, random_seed=7).draws(
        X, 15, chunk_size=1000
    )
    b = PosteriorPredictive(bnet, result, draws_per_call=5, random_seed=7)
    mean = b.mean(X, 15, chunk_size=1000)
    assert a.shape == (15, len(X), 2)
    np.testing.assert_allclose(mean, a.mean(axis=0), rtol=1e-6)
    # weights are drawn once per draw, so input chunks of 7 rows give the same draws
    c = PosteriorPredictive(bnet, result, draws_per_call=5, random_seed=7).draws(
        X, 15, chunk_size=7
    )
    np.testing.assert_allclose(c, a, rtol=1e-6)


@pytest.mark.parametrize("draws_per_call", [1, 4])
def test_each_draw_is_one_weight_set_for_all_inputs(fitted, draws_per_call):
    """log(p1 / p0) is exactly linear in x within a draw (one W, b), across input chunks."""
    bnet, result, X, _ = fitted
    pp = PosteriorPredictive(bnet, result, draws_per_call=draws_per_call, random_seed=11)
    per_draw = pp.draws(X, draws=6, chunk_size=9)
    assert per_draw.shape == (6, len(X), 2)
    design = np.hstack([X, np.ones((len(X), 1))])
    coefs = []
    for p in per_draw:
        target = np.log(p[:, 1]) - np.log(p[:, 0])
        coef, *_ = np.linalg.lstsq(design, target, rcond=None)
        np.testing.assert_allclose(design @ coef, target, atol=1e-6)
        coefs.append(coef)
    # ... and the draws differ from each other (the weights really are sampled)
    assert np.ptp(np.array(coefs), axis=0).min() > 1e-3


def test_map_estimate_gives_one_deterministic_draw():
    rng = np.random.default_rng(1)
    X = rng.normal(size=(60, 2))
    y = (X[:, 0] - X[:, 1] > 0).astype("int64")

    def net(prior):
        return DenseLayer(
            InputLayer((None, 2)), 2, W=prior, b=prior, nonlinearity=softmax, name="o"
        )

    bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=30)
    result = fit(bnet, X, y, n=100, method="map", learning_rate=0.05, progressbar=False)
    pp = PosteriorPredictive(bnet, result, draws_per_call=3)
    per_draw = pp.draws(X, draws=10, chunk_size=16)
    assert per_draw.shape == (1, len(X), 2)
    point = result.point_estimate()
    logits = X @ point["o.W"] + point["o.b"]
    ref = np.exp(logits - logits.max(1, keepdims=True))
    ref /= ref.sum(1, keepdims=True)
    np.testing.assert_allclose(per_draw[0], ref, rtol=1e-5, atol=1e-7)
    np.testing.assert_allclose(pp.mean(X, draws=10, chunk_size=16), ref, rtol=1e-5, atol=1e-7)


def test_bad_chunk_and_draw_settings_are_named(fitted):
    bnet, result, X, _ = fitted
    with pytest.raises(ValueError, match="draws_per_call"):
        PosteriorPredictive(bnet, result, draws_per_call=0)
    with pytest.raises(ValueError, match="chunk_size"):
        PosteriorPredictive(bnet, result).mean(X, draws=2, chunk_size=0)


def test_predictions_are_accurate_and_mode_rule_agrees(fitted):
    bnet, result, X, y = fitted
    mean_pred = predict(bnet, result, X, draws=50, random_seed=5)
    mode_pred = predict(bnet, result, X, draws=50, kind="mode", random_seed=5)
    assert (mean_pred == y).mean() > 0.9
    assert (mode_pred == mean_pred).mean() > 0.9
    with pytest.raises(ValueError, match="kind"):
        predict(bnet, result, X, kind="median")


def test_sample_labels_follow_the_probabilities():
    p = np.tile(np.array([0.2, 0.5, 0.3]), (20000, 1))[None]
    labels = sample_labels(p, random_seed=0)[0]
    freq = np.bincount(labels, minlength=3) / labels.size
    np.testing.assert_allclose(freq, [0.2, 0.5, 0.3], atol=0.015)


def test_inputs_of_the_wrong_shape_are_named(fitted):
    bnet, result, X, _ = fitted
    pp = PosteriorPredictive(bnet, result)
    with pytest.raises(ValueError, match=r"shape \(n, 3\).*found \(5, 4\)"):
        pp.mean(np.zeros((5, 4)), draws=2)


def test_no_rows_give_empty_outputs_of_the_right_shape(fitted):
    bnet, result, X, _ = fitted
    pp = PosteriorPredictive(bnet, result, draws_per_call=2, random_seed=0)
    assert pp.draws(X[:0], 3).shape == (3, 0, 2)
    mean = pp.mean(X[:0], 3)
    assert mean.shape == (0, 2) and mean.dtype == pp.draws(X[:1], 1).dtype


@pytest.mark.parametrize("draws_per_call", [1, 3])
def test_progress_counts_every_draw_of_every_chunk(fitted, monkeypatch, draws_per_call):
    import contextlib
    import importlib

    predict_module = importlib.import_module("plasagne.pymc_bridge.predict")
    seen = {}

    @contextlib.contextmanager
    def recording(enabled, total):
        seen.update(enabled=enabled, total=total, advanced=[])
        yield seen["advanced"].append

    monkeypatch.setattr(predict_module, "_progress", recording)
    bnet, result, X, _ = fitted
    pp = PosteriorPredictive(bnet, result, draws_per_call=draws_per_call, random_seed=0)
    out = pp.draws(X, draws=7, chunk_size=50, progressbar=True)  # 3 chunks of 120 rows
    assert out.shape[:2] == (7, 120)
    assert seen["enabled"] and seen["total"] == 7 * 3
    assert sum(seen["advanced"]) == 7 * 3
    pp.mean(X, draws=4, chunk_size=200)
    assert not seen["enabled"] and sum(seen["advanced"]) == 4


def test_progress_bar_runs_with_rich(fitted):
    bnet, result, X, _ = fitted
    pp = PosteriorPredictive(bnet, result, random_seed=0)
    quiet = pp.draws(X[:10], draws=3)
    shown = PosteriorPredictive(bnet, result, random_seed=0).draws(
        X[:10], draws=3, progressbar=True
    )
    np.testing.assert_array_equal(quiet, shown)
