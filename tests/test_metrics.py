"""Uncertainty metrics against values computed by hand (loops, scipy)."""

import numpy as np
import pytest
import scipy.stats

from plasagne.pymc_bridge import metrics as m

rng = np.random.default_rng(0)


def per_draw(draws=7, n=11, k=4, zeros=True):
    p = rng.dirichlet(np.ones(k) * 0.5, size=(draws, n))
    if zeros:
        p[0, 0] = np.eye(k)[1]  # a draw with exact zeros
    return p


def test_entropies_and_mutual_information():
    p = per_draw()
    mean = p.mean(0)
    for i in range(p.shape[1]):
        assert np.isclose(m.predictive_entropy(p)[i], scipy.stats.entropy(mean[i]))
        expected = np.mean([scipy.stats.entropy(p[d, i]) for d in range(p.shape[0])])
        assert np.isclose(m.expected_entropy(p)[i], expected)
        assert np.isclose(m.mutual_information(p)[i], scipy.stats.entropy(mean[i]) - expected)
    assert np.all(m.mutual_information(p) >= -1e-12)
    np.testing.assert_allclose(m.predictive_entropy(mean), m.predictive_entropy(p))


def test_label_statistics():
    labels = rng.integers(0, 3, size=(9, 6))
    for i in range(6):
        counts = np.bincount(labels[:, i], minlength=3)
        assert np.isclose(m.variation_ratio(labels, 3)[i], 1 - counts.max() / 9)
        stat, p = scipy.stats.chisquare(counts)
        got_stat, got_p = m.chi2_uniformity(labels, 3)
        assert np.isclose(got_stat[i], stat) and np.isclose(got_p[i], p)
        assert m.mode_prediction(labels, 3)[i] == np.argmax(counts)
    probs = per_draw(5, 4, 3, zeros=False)
    votes = probs.argmax(-1)
    np.testing.assert_array_equal(m.mode_prediction(probs, 3), m.mode_prediction(votes, 3))
    with pytest.raises(ValueError, match="labels must lie"):
        m.chi2_uniformity(np.array([[0, 5]]), 3)


def test_nll_brier_accuracy():
    p = per_draw()
    y = rng.integers(0, 4, size=p.shape[1])
    mean = p.mean(0)
    assert np.isclose(m.nll(p, y), -np.mean([np.log(mean[i, y[i]]) for i in range(len(y))]))
    brier = np.mean([sum((mean[i, k] - (k == y[i])) ** 2 for k in range(4)) for i in range(len(y))])
    assert np.isclose(m.brier_score(p, y), brier)
    assert m.accuracy(m.mean_prediction(p), y) == np.mean(mean.argmax(1) == y)
    assert np.isfinite(m.nll(np.array([[1.0, 0.0]]), np.array([1])))


def test_ece_against_a_loop():
    p = rng.dirichlet(np.ones(3), size=200)
    y = rng.integers(0, 3, size=200)
    ece, bins = m.expected_calibration_error(p, y, n_bins=10)
    conf, pred = p.max(1), p.argmax(1)
    total = 0.0
    for b in range(10):
        lo, hi = b / 10, (b + 1) / 10
        inside = (conf > lo) & (conf <= hi) if b else (conf >= 0) & (conf <= hi)
        assert bins["count"][b] == inside.sum()
        if inside.any():
            acc, c = np.mean(pred[inside] == y[inside]), conf[inside].mean()
            assert np.isclose(bins["accuracy"][b], acc) and np.isclose(bins["confidence"][b], c)
            total += inside.sum() * abs(acc - c)
    assert np.isclose(ece, total / 200)


def test_auroc_by_pair_counting():
    scores = rng.integers(0, 5, size=40).astype(float)  # many ties
    err = rng.random(40) < 0.4
    pairs = [(1.0 if s > t else 0.5 if s == t else 0.0) for s in scores[err] for t in scores[~err]]
    assert np.isclose(m.auroc(scores, err), np.mean(pairs))
    with pytest.warns(UserWarning, match="needs both"):
        assert np.isnan(m.auroc(scores, np.zeros(40, bool)))


def test_mode_ties_variation_ratio_from_probs_and_bad_input():
    labels = np.array([[2, 1], [1, 0], [2, 1], [1, 0]])  # ties 1-2 and 0-1: lowest wins
    np.testing.assert_array_equal(m.mode_prediction(labels, 3), [1, 0])
    p = per_draw(6, 5, 3, zeros=False)
    votes = p.argmax(-1)
    for i in range(5):
        counts = np.bincount(votes[:, i], minlength=3)
        assert np.isclose(m.variation_ratio(p, 3)[i], 1 - counts.max() / 6)
    probs = np.full((2, 3), 1 / 3)
    for fn in (m.nll, m.brier_score, m.expected_calibration_error):
        with pytest.raises(ValueError, match="labels must lie"):
            fn(probs, np.array([0, 3]))
        with pytest.raises(ValueError, match=r"expected labels of shape \(2,\)"):
            fn(probs, np.array([0, 1, 2]))
    with pytest.raises(ValueError, match="n_bins"):
        m.expected_calibration_error(probs, np.array([0, 1]), n_bins=0)
    with pytest.raises(ValueError, match="per-draw"):
        m.expected_entropy(probs)
