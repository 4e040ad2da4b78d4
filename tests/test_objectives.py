"""Losses and accuracies against numpy formulas; gradients by verify_grad."""

import numpy as np
import pytensor.tensor as pt
import pytest
from pytensor.gradient import verify_grad

from plasagne import objectives as obj

rng = np.random.RandomState(42)


def probs(n, k):
    e = np.exp(rng.randn(n, k))
    return e / e.sum(1, keepdims=True)


def test_binary_crossentropy():
    p, t = rng.uniform(0.05, 0.95, 10), rng.randint(0, 2, 10).astype(float)
    np.testing.assert_allclose(
        obj.binary_crossentropy(p, t).eval(), -t * np.log(p) - (1 - t) * np.log(1 - p)
    )


def test_categorical_crossentropy_int_and_onehot_targets():
    p, y = probs(6, 4), rng.randint(0, 4, 6)
    expected = -np.log(p[np.arange(6), y])
    np.testing.assert_allclose(obj.categorical_crossentropy(p, y).eval(), expected)
    np.testing.assert_allclose(obj.categorical_crossentropy(p, np.eye(4)[y]).eval(), expected)


def test_categorical_crossentropy_stays_finite_for_saturated_float32():
    p = np.array([[1.0, 0.0]], dtype="float32")
    loss = obj.categorical_crossentropy(pt.constant(p), np.array([1])).eval()
    assert np.isfinite(loss).all() and loss[0] > 10


def test_categorical_crossentropy_rejects_float_index_targets():
    with pytest.raises(TypeError, match="integers"):
        obj.categorical_crossentropy(probs(2, 3), np.array([0.0, 1.0]))


def test_squared_error_and_huber():
    a, b = rng.randn(7), rng.randn(7) * 2
    np.testing.assert_allclose(obj.squared_error(a, b).eval(), (a - b) ** 2)
    d = np.abs(a - b)
    np.testing.assert_allclose(
        obj.huber_loss(pt.constant(a), b, delta=0.7).eval(),
        np.where(d <= 0.7, 0.5 * d**2, 0.7 * (d - 0.35)),
    )


@pytest.mark.parametrize("mode", ["mean", "sum", "normalized_sum"])
def test_aggregate(mode):
    loss, w = rng.rand(5), rng.rand(5)
    out = obj.aggregate(pt.constant(loss), pt.constant(w), mode=mode).eval()
    expected = {
        "mean": (loss * w).mean(),
        "sum": (loss * w).sum(),
        "normalized_sum": (loss * w).sum() / w.sum(),
    }[mode]
    np.testing.assert_allclose(out, expected)
    with pytest.raises(ValueError, match="mode"):
        obj.aggregate(pt.constant(loss), mode="median")


def test_hinge_losses():
    pred, t = rng.randn(8), rng.randint(0, 2, 8)
    np.testing.assert_allclose(
        obj.binary_hinge_loss(pt.constant(pred), t).eval(), np.maximum(0, 1 - pred * (2 * t - 1))
    )
    p = rng.uniform(0.1, 0.9, 8)
    np.testing.assert_allclose(
        obj.binary_hinge_loss(pt.constant(p), t, log_odds=False).eval(),
        np.maximum(0, 1 - np.log(p / (1 - p)) * (2 * t - 1)),
    )
    scores, y = rng.randn(5, 4), rng.randint(0, 4, 5)
    expected = [max(0, max(np.delete(s, c)) - s[c] + 1) for s, c in zip(scores, y)]
    np.testing.assert_allclose(obj.multiclass_hinge_loss(pt.constant(scores), y).eval(), expected)


def test_accuracies():
    p, t = rng.rand(9), rng.randint(0, 2, 9)
    np.testing.assert_array_equal(obj.binary_accuracy(pt.constant(p), t).eval(), (p >= 0.5) == t)
    scores, y = rng.randn(20, 5), rng.randint(0, 5, 20)
    for k in (1, 2, 3):
        top = np.argsort(scores, axis=1)[:, -k:]
        expected = [c in row for c, row in zip(y, top)]
        np.testing.assert_array_equal(
            obj.categorical_accuracy(pt.constant(scores), y, top_k=k).eval(), expected
        )


def test_loss_gradients():
    y = np.array([0, 2, 1])
    verify_grad(
        lambda z: obj.categorical_crossentropy(pt.special.softmax(z, axis=-1), y).sum(),
        [rng.randn(3, 3)],
        rng=rng,
    )
    t = np.array([0.0, 1.0, 1.0])
    verify_grad(lambda z: obj.binary_crossentropy(pt.sigmoid(z), t).sum(), [rng.randn(3)], rng=rng)
    verify_grad(
        lambda z: obj.huber_loss(z, np.zeros(4), delta=0.5).sum(),
        [np.array([0.1, -0.2, 1.0, -2.0])],
        rng=rng,
    )
