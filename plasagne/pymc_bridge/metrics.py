"""Predictive uncertainty and calibration metrics (numpy and scipy only).

Inputs are per-draw class probabilities ``probs`` of shape ``(draws, n, classes)``, their
mean over draws ``(n, classes)``, labels sampled from the draws ``(draws, n)``, and integer
true labels ``(n,)``. Logarithms are natural (nats).
"""

from __future__ import annotations

import warnings

import numpy as np
from scipy import stats

__all__ = [
    "predictive_entropy",
    "expected_entropy",
    "mutual_information",
    "variation_ratio",
    "chi2_uniformity",
    "nll",
    "brier_score",
    "expected_calibration_error",
    "auroc",
    "mode_prediction",
    "mean_prediction",
    "accuracy",
]

_TINY = 1e-300


def _entropy(p: np.ndarray) -> np.ndarray:
    p = np.asarray(p, dtype=np.float64)
    h = -np.sum(np.where(p > 0, p * np.log(np.maximum(p, _TINY)), 0.0), axis=-1)
    return np.maximum(h, 0.0)


def _mean_probs(probs: np.ndarray) -> np.ndarray:
    probs = np.asarray(probs, dtype=np.float64)
    return probs.mean(axis=0) if probs.ndim == 3 else probs


def predictive_entropy(probs: np.ndarray) -> np.ndarray:
    """Entropy of the mean predictive distribution, per input: ``H[E_w p(y|x,w)]``.

    Accepts per-draw ``(draws, n, classes)`` or mean ``(n, classes)`` probabilities.

    Examples
    --------
    >>> predictive_entropy(np.array([[0.5, 0.5], [1.0, 0.0]])).round(4).tolist()
    [0.6931, 0.0]
    """
    return _entropy(_mean_probs(probs))


def expected_entropy(probs: np.ndarray) -> np.ndarray:
    """Mean over draws of each draw's entropy, per input: ``E_w H[p(y|x,w)]``.

    Examples
    --------
    >>> expected_entropy(np.array([[[1.0, 0.0]], [[0.0, 1.0]]])).tolist()
    [0.0]
    """
    probs = np.asarray(probs, dtype=np.float64)
    if probs.ndim != 3:
        raise ValueError(f"expected per-draw probabilities (draws, n, classes), got {probs.shape}")
    return _entropy(probs).mean(axis=0)


def mutual_information(probs: np.ndarray) -> np.ndarray:
    """BALD: predictive entropy minus expected entropy (the part due to weight uncertainty).

    Examples
    --------
    >>> mutual_information(np.array([[[1.0, 0.0]], [[0.0, 1.0]]])).round(4).tolist()
    [0.6931]
    """
    return predictive_entropy(probs) - expected_entropy(probs)


def _labels_from(samples: np.ndarray) -> np.ndarray:
    samples = np.asarray(samples)
    if samples.ndim == 3:  # per-draw probabilities: each draw votes for its argmax
        return samples.argmax(axis=-1)
    if samples.ndim != 2:
        raise ValueError(
            f"expected sampled labels (draws, n) or per-draw probabilities, got {samples.shape}"
        )
    return samples


def _counts(labels: np.ndarray, n_classes: int) -> np.ndarray:
    labels = np.asarray(labels)
    if labels.min(initial=0) < 0 or labels.max(initial=0) >= n_classes:
        raise ValueError(
            f"labels must lie in [0, {n_classes}), found {labels.min()}..{labels.max()}"
        )
    return np.stack([(labels == c).sum(axis=0) for c in range(n_classes)], axis=-1)


def variation_ratio(samples: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """``1 - (count of the most frequent label) / draws`` per input.

    ``samples``: sampled labels ``(draws, n)`` or per-draw probabilities (argmax votes).

    Examples
    --------
    >>> variation_ratio(np.array([[0, 1], [0, 2], [0, 1], [1, 1]])).tolist()
    [0.25, 0.25]
    """
    labels = _labels_from(samples)
    if n_classes is None:
        n_classes = int(labels.max()) + 1
    return 1.0 - _counts(labels, n_classes).max(axis=-1) / labels.shape[0]


def chi2_uniformity(samples: np.ndarray, n_classes: int) -> tuple[np.ndarray, np.ndarray]:
    """The 2016 post's uncertainty statistic: per input, Pearson's chi-square statistic of
    the label counts over draws against a uniform distribution over the classes, and its
    p-value (``classes - 1`` degrees of freedom).

    Large statistics mean the draws agree (certain); small ones, labels spread evenly
    (uncertain). ``samples``: labels ``(draws, n)`` or per-draw probabilities.

    Examples
    --------
    >>> stat, p = chi2_uniformity(np.array([[0, 0], [0, 1], [0, 0], [0, 1]]), 2)
    >>> stat.tolist(), p.round(4).tolist()
    ([4.0, 0.0], [0.0455, 1.0])
    """
    labels = _labels_from(samples)
    counts = _counts(labels, n_classes).astype(np.float64)
    expected = labels.shape[0] / n_classes
    statistic = ((counts - expected) ** 2 / expected).sum(axis=-1)
    return statistic, stats.chi2.sf(statistic, n_classes - 1)


def _probs_and_labels(probs: np.ndarray, labels: np.ndarray) -> tuple[np.ndarray, np.ndarray]:
    p = _mean_probs(probs)
    labels = np.asarray(labels)
    if p.ndim != 2:
        raise ValueError(
            f"expected probabilities (n, classes) or (draws, n, classes), got {p.shape}"
        )
    if labels.shape != (p.shape[0],):
        raise ValueError(f"expected labels of shape ({p.shape[0]},), got {labels.shape}")
    if not np.issubdtype(labels.dtype, np.integer):
        raise ValueError(f"expected integer labels, got dtype {labels.dtype}")
    if labels.size and (labels.min() < 0 or labels.max() >= p.shape[1]):
        raise ValueError(
            f"labels must lie in [0, {p.shape[1]}), found {labels.min()}..{labels.max()}"
        )
    return p, labels


def nll(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean negative log predictive probability of the true labels (probabilities are
    clipped at 1e-12, so a confident miss costs at most ~27.6 nats).

    Examples
    --------
    >>> round(nll(np.array([[0.25, 0.75]]), np.array([1])), 4)
    0.2877
    """
    p, labels = _probs_and_labels(probs, labels)
    picked = p[np.arange(len(labels)), labels]
    return float(-np.log(np.clip(picked, 1e-12, 1.0)).mean())


def brier_score(probs: np.ndarray, labels: np.ndarray) -> float:
    """Mean over inputs of ``sum_k (p_k - onehot_k)**2``.

    Examples
    --------
    >>> brier_score(np.array([[0.5, 0.5]]), np.array([0]))
    0.5
    """
    p, labels = _probs_and_labels(probs, labels)
    onehot = np.eye(p.shape[-1])[labels]
    return float(((p - onehot) ** 2).sum(axis=-1).mean())


def expected_calibration_error(
    probs: np.ndarray, labels: np.ndarray, n_bins: int = 15
) -> tuple[float, dict]:
    """ECE with equal-width confidence bins, and the bins of a reliability diagram.

    Confidence is the maximum mean probability; bin ``i`` holds confidences in
    ``(edges[i], edges[i + 1]]`` (the first also 0). ECE is the count-weighted mean of
    ``|accuracy - confidence|`` over non-empty bins.

    Returns
    -------
    ece : float
    bins : dict with ``edges`` (n_bins + 1), and per bin ``confidence``, ``accuracy``
        (NaN for empty bins) and ``count``.

    Examples
    --------
    >>> ece, bins = expected_calibration_error(np.array([[0.9, 0.1], [0.6, 0.4]]),
    ...                                        np.array([0, 1]), n_bins=2)
    >>> round(ece, 4), bins["count"].tolist()
    (0.25, [0, 2])
    """
    p, labels = _probs_and_labels(probs, labels)
    if not isinstance(n_bins, int | np.integer) or n_bins < 1:
        raise ValueError(f"n_bins must be a positive integer, got {n_bins!r}")
    confidence = p.max(axis=-1)
    correct = p.argmax(axis=-1) == labels
    edges = np.linspace(0.0, 1.0, n_bins + 1)
    index = np.clip(np.searchsorted(edges, confidence, side="left") - 1, 0, n_bins - 1)
    count = np.bincount(index, minlength=n_bins)
    conf_sum = np.bincount(index, weights=confidence, minlength=n_bins)
    acc_sum = np.bincount(index, weights=correct.astype(float), minlength=n_bins)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean_conf = np.where(count > 0, conf_sum / np.maximum(count, 1), np.nan)
        mean_acc = np.where(count > 0, acc_sum / np.maximum(count, 1), np.nan)
    nonempty = count > 0
    ece = float(
        (count[nonempty] * np.abs(mean_acc[nonempty] - mean_conf[nonempty])).sum() / len(labels)
    )
    return ece, {"edges": edges, "confidence": mean_conf, "accuracy": mean_acc, "count": count}


def auroc(scores: np.ndarray, is_error: np.ndarray) -> float:
    """Area under the ROC curve of an uncertainty score for telling errors from hits:
    the probability that a random error scores higher than a random hit (ties count 1/2).

    Returns NaN (with a warning) when there are no errors or no hits.

    Examples
    --------
    >>> auroc(np.array([0.9, 0.2, 0.4, 0.1]), np.array([True, False, True, False]))
    1.0
    """
    scores = np.asarray(scores, dtype=np.float64)
    is_error = np.asarray(is_error, dtype=bool)
    n_err, n_hit = int(is_error.sum()), int((~is_error).sum())
    if n_err == 0 or n_hit == 0:
        warnings.warn("auroc: needs both errors and hits; returning nan", stacklevel=2)
        return float("nan")
    ranks = stats.rankdata(scores)  # average ranks handle ties as 1/2
    return float((ranks[is_error].sum() - n_err * (n_err + 1) / 2) / (n_err * n_hit))


def mode_prediction(samples: np.ndarray, n_classes: int | None = None) -> np.ndarray:
    """The 2016 post's prediction: the most frequent sampled label (lowest on ties).

    Examples
    --------
    >>> mode_prediction(np.array([[2, 1], [2, 0], [1, 0]])).tolist()
    [2, 0]
    """
    labels = _labels_from(samples)
    if n_classes is None:
        n_classes = int(labels.max()) + 1
    return _counts(labels, n_classes).argmax(axis=-1)


def mean_prediction(probs: np.ndarray) -> np.ndarray:
    """Argmax of the mean predictive probabilities.

    Examples
    --------
    >>> mean_prediction(np.array([[[0.6, 0.4]], [[0.2, 0.8]]])).tolist()
    [1]
    """
    return _mean_probs(probs).argmax(axis=-1)


def accuracy(predictions: np.ndarray, labels: np.ndarray) -> float:
    """Fraction of predictions equal to the labels.

    Examples
    --------
    >>> accuracy(np.array([1, 2, 3]), np.array([1, 0, 3]))
    0.6666666666666666
    """
    predictions, labels = np.asarray(predictions), np.asarray(labels)
    if predictions.shape != labels.shape:
        raise ValueError(f"predictions {predictions.shape} and labels {labels.shape} differ")
    return float((predictions == labels).mean())
