"""Losses and accuracies against numpy formulas written out here; gradients by verify_grad."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne import objectives as obj

seeds = st.integers(0, 2**31 - 1)
sizes = st.integers(1, 6)


def compile_loss(fn, pred_type, target_type, **kwargs):
    """Compile fn(predictions, targets) with symbolic inputs of the given types."""
    p, t = pred_type("p"), target_type("t")
    return pytensor.function([p, t], fn(p, t, **kwargs))


def softmax_rows(z):
    e = np.exp(z - z.max(axis=-1, keepdims=True))
    return e / e.sum(axis=-1, keepdims=True)


# --- binary cross-entropy -----------------------------------------------------------------


@given(seeds, sizes, sizes)
def test_binary_crossentropy_matches_numpy(seed, n, k):
    rng = np.random.default_rng(seed)
    p = rng.uniform(0.01, 0.99, (n, k))
    t = rng.uniform(0, 1, (n, k))  # soft targets too
    f = compile_loss(obj.binary_crossentropy, pt.dmatrix, pt.dmatrix)
    np.testing.assert_allclose(f(p, t), -t * np.log(p) - (1 - t) * np.log(1 - p), rtol=1e-12)


def test_binary_crossentropy_aligns_vector_targets_with_a_column():
    rng = np.random.default_rng(0)
    p = rng.uniform(0.1, 0.9, (5, 1))
    t = rng.integers(0, 2, 5).astype(float)
    pred = pt.matrix("p", shape=(None, 1), dtype="float64")
    out = pytensor.function([pred], obj.binary_crossentropy(pred, t))(p)
    assert out.shape == (5, 1)
    np.testing.assert_allclose(out[:, 0], -t * np.log(p[:, 0]) - (1 - t) * np.log(1 - p[:, 0]))


def test_binary_crossentropy_finite_at_saturated_float32():
    p = pt.fvector("p")
    t = pt.fvector("t")
    f = pytensor.function([p, t], obj.binary_crossentropy(p, t))
    out = f(np.array([1.0, 0.0], "float32"), np.array([0.0, 1.0], "float32"))
    assert out.dtype == np.float32
    eps = np.finfo(np.float32).eps
    np.testing.assert_allclose(out, [-np.log(eps), -np.log(eps)], rtol=1e-5)


# --- categorical cross-entropy ------------------------------------------------------------


@given(seeds, sizes, st.integers(2, 6))
def test_categorical_crossentropy_int_onehot_and_soft_targets(seed, n, k):
    rng = np.random.default_rng(seed)
    p = softmax_rows(rng.normal(size=(n, k)))
    y = rng.integers(0, k, n)
    expected = -np.log(p[np.arange(n), y])
    f_int = compile_loss(obj.categorical_crossentropy, pt.dmatrix, pt.lvector)
    f_dist = compile_loss(obj.categorical_crossentropy, pt.dmatrix, pt.dmatrix)
    np.testing.assert_allclose(f_int(p, y), expected, rtol=1e-12)
    np.testing.assert_allclose(f_dist(p, np.eye(k)[y]), expected, rtol=1e-12)
    soft = softmax_rows(rng.normal(size=(n, k)))
    np.testing.assert_allclose(f_dist(p, soft), -(soft * np.log(p)).sum(axis=1), rtol=1e-12)


def test_categorical_crossentropy_on_3d_predictions():
    rng = np.random.default_rng(1)
    p = softmax_rows(rng.normal(size=(2, 3, 4)))
    y = rng.integers(0, 4, (2, 3))
    f = compile_loss(obj.categorical_crossentropy, pt.dtensor3, pt.lmatrix)
    expected = -np.log(np.take_along_axis(p, y[..., None], axis=-1)[..., 0])
    np.testing.assert_allclose(f(p, y), expected)


@pytest.mark.parametrize("targets", ["int", "onehot"])
def test_categorical_crossentropy_finite_for_saturated_float32_softmax(targets):
    z = pt.fmatrix("z")
    probs = pt.special.softmax(z, axis=-1)
    t = pt.ivector("t") if targets == "int" else pt.fmatrix("t")
    loss = obj.categorical_crossentropy(probs, t)
    f = pytensor.function([z, t], [loss, pytensor.grad(loss.sum(), z)])
    logits = np.array([[200.0, -200.0, 0.0]], dtype="float32")  # softmax gives exact zeros
    y = np.array([1], "int32") if targets == "int" else np.array([[0, 1, 0]], "float32")
    value, grad = f(logits, y)
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, [-np.log(np.finfo(np.float32).eps)], rtol=1e-5)
    assert np.all(np.isfinite(grad))


def test_categorical_crossentropy_errors_name_what_was_expected():
    with pytest.raises(TypeError, match="must be integers, got dtype float64"):
        obj.categorical_crossentropy(pt.dmatrix(), pt.dvector())
    with pytest.raises(TypeError, match="must have 2 .* or 1 .*got 3"):
        obj.categorical_crossentropy(pt.dmatrix(), pt.dtensor3())
    with pytest.raises(TypeError, match="PyTensor expression or an array"):
        obj.categorical_crossentropy(object(), np.array([0]))


# --- squared error, huber, aggregate ------------------------------------------------------


@given(seeds, sizes, sizes, st.sampled_from([0.3, 1.0, 2.5]))
def test_squared_error_and_huber_match_numpy(seed, n, k, delta):
    rng = np.random.default_rng(seed)
    a, b = rng.normal(size=(n, k)) * 2, rng.normal(size=(n, k))
    f_sq = compile_loss(obj.squared_error, pt.dmatrix, pt.dmatrix)
    np.testing.assert_allclose(f_sq(a, b), (a - b) ** 2, rtol=1e-12)
    f_h = compile_loss(obj.huber_loss, pt.dmatrix, pt.dmatrix, delta=delta)
    d = np.abs(a - b)
    np.testing.assert_allclose(
        f_h(a, b), np.where(d <= delta, 0.5 * d**2, delta * d - 0.5 * delta**2), rtol=1e-12
    )


def test_squared_error_aligns_column_and_vector():
    col = pt.matrix("c", shape=(None, 1), dtype="float64")
    vec = pt.dvector("v")
    f = pytensor.function([col, vec], obj.squared_error(col, vec))
    a, b = np.array([[1.0], [2.0], [4.0]]), np.array([0.0, 1.0, 1.0])
    np.testing.assert_allclose(f(a, b), (a[:, 0] - b)[:, None] ** 2)


def test_float32_losses_stay_float32():
    p, t = pt.fvector("p"), pt.fvector("t")
    m, y = pt.fmatrix("m"), pt.ivector("y")
    for loss in [
        obj.binary_crossentropy(p, t),
        obj.squared_error(p, t),
        obj.huber_loss(p, t, delta=0.7),
        obj.binary_hinge_loss(p, t, delta=0.3, log_odds=False),
        obj.categorical_crossentropy(m, y),
        obj.multiclass_hinge_loss(m, y, delta=0.7),
    ]:
        assert loss.dtype == "float32", loss


@pytest.mark.parametrize("mode", ["mean", "sum", "normalized_sum"])
@given(seed=seeds, n=sizes, k=sizes)
def test_aggregate_matches_numpy(mode, seed, n, k):
    rng = np.random.default_rng(seed)
    loss, w = rng.random((n, k)), rng.random((n, k)) + 0.1
    lv, wv = pt.dmatrix("l"), pt.dmatrix("w")
    f = pytensor.function([lv, wv], obj.aggregate(lv, wv, mode=mode))
    reference = {
        "mean": np.mean(loss * w),
        "sum": np.sum(loss * w),
        "normalized_sum": np.sum(loss * w) / np.sum(w),
    }[mode]
    np.testing.assert_allclose(f(loss, w), reference, rtol=1e-12)
    if mode != "normalized_sum":
        g = pytensor.function([lv], obj.aggregate(lv, mode=mode))
        np.testing.assert_allclose(g(loss), getattr(np, mode)(loss), rtol=1e-12)


def test_aggregate_errors():
    with pytest.raises(ValueError, match="requires weights"):
        obj.aggregate(pt.dvector(), mode="normalized_sum")
    with pytest.raises(ValueError, match="got 'median'"):
        obj.aggregate(pt.dvector(), mode="median")


# --- hinge losses -------------------------------------------------------------------------


@given(seeds, sizes, st.sampled_from([0.5, 1.0, 2.0]))
def test_binary_hinge_loss_matches_numpy(seed, n, delta):
    rng = np.random.default_rng(seed)
    f_val, t01 = rng.normal(size=n) * 2, rng.integers(0, 2, n).astype(float)
    pm1 = 2 * t01 - 1
    on_log_odds = compile_loss(
        obj.binary_hinge_loss, pt.dvector, pt.dvector, delta=delta, log_odds=True
    )
    np.testing.assert_allclose(on_log_odds(f_val, t01), np.maximum(0, delta - f_val * pm1))
    signed = compile_loss(
        obj.binary_hinge_loss, pt.dvector, pt.dvector, delta=delta, log_odds=True, binary=False
    )
    np.testing.assert_allclose(signed(f_val, pm1), np.maximum(0, delta - f_val * pm1))
    prob = rng.uniform(0.05, 0.95, n)
    on_probs = compile_loss(
        obj.binary_hinge_loss, pt.dvector, pt.dvector, delta=delta, log_odds=False
    )
    np.testing.assert_allclose(
        on_probs(prob, t01), np.maximum(0, delta - np.log(prob / (1 - prob)) * pm1), rtol=1e-10
    )


def test_binary_hinge_loss_without_log_odds_warns_and_uses_log_odds():
    f_val, t = np.array([0.3, -2.0]), np.array([1.0, 0.0])
    with pytest.warns(FutureWarning, match="log_odds"):
        out = obj.binary_hinge_loss(f_val, t).eval()
    np.testing.assert_allclose(out, np.maximum(0, 1 - f_val * (2 * t - 1)))


@given(seeds, sizes, st.integers(2, 6), st.sampled_from([0.5, 1.0, 3.0]))
def test_multiclass_hinge_loss_matches_numpy(seed, n, k, delta):
    rng = np.random.default_rng(seed)
    scores, y = rng.normal(size=(n, k)), rng.integers(0, k, n)
    expected = np.array(
        [max(0.0, np.max(np.delete(row, c)) - row[c] + delta) for row, c in zip(scores, y)]
    )
    f_int = compile_loss(obj.multiclass_hinge_loss, pt.dmatrix, pt.lvector, delta=delta)
    f_hot = compile_loss(obj.multiclass_hinge_loss, pt.dmatrix, pt.dmatrix, delta=delta)
    np.testing.assert_allclose(f_int(scores, y), expected, rtol=1e-12)
    np.testing.assert_allclose(f_hot(scores, np.eye(k)[y]), expected, rtol=1e-12)


def test_multiclass_hinge_loss_errors():
    with pytest.raises(TypeError, match="must be a matrix"):
        obj.multiclass_hinge_loss(pt.dvector(), pt.lscalar())
    with pytest.raises(TypeError, match="must be integers"):
        obj.multiclass_hinge_loss(pt.dmatrix(), pt.dvector())


# --- accuracies ---------------------------------------------------------------------------


@given(seeds, sizes, st.sampled_from([0.2, 0.5, 0.8]))
def test_binary_accuracy_matches_numpy(seed, n, threshold):
    rng = np.random.default_rng(seed)
    p, t = rng.random(n), rng.integers(0, 2, n)
    f = compile_loss(obj.binary_accuracy, pt.dvector, pt.lvector, threshold=threshold)
    np.testing.assert_array_equal(f(p, t), ((p >= threshold) == t).astype(float))
    col = pt.matrix("c", shape=(None, 1), dtype="float64")
    g = pytensor.function([col], obj.binary_accuracy(col, t, threshold=threshold))
    np.testing.assert_array_equal(g(p[:, None])[:, 0], ((p >= threshold) == t).astype(float))


@given(seeds, st.integers(1, 8), st.integers(2, 6), st.integers(1, 6))
def test_categorical_accuracy_matches_numpy(seed, n, k, top_k):
    top_k = min(top_k, k)
    rng = np.random.default_rng(seed)
    scores, y = rng.normal(size=(n, k)), rng.integers(0, k, n)
    # the numpy reference: is the target's score among the top_k largest?
    rank = (scores > scores[np.arange(n), y][:, None]).sum(axis=1)
    expected = (rank < top_k).astype(float)
    f_int = compile_loss(obj.categorical_accuracy, pt.dmatrix, pt.lvector, top_k=top_k)
    f_hot = compile_loss(obj.categorical_accuracy, pt.dmatrix, pt.dmatrix, top_k=top_k)
    np.testing.assert_array_equal(f_int(scores, y), expected)
    np.testing.assert_array_equal(f_hot(scores, np.eye(k)[y]), expected)


def test_categorical_accuracy_errors():
    with pytest.raises(ValueError, match="top_k must be a positive integer, got 0"):
        obj.categorical_accuracy(pt.dmatrix(), pt.lvector(), top_k=0)
    with pytest.raises(TypeError, match="got 3"):
        obj.categorical_accuracy(pt.dmatrix(), pt.dtensor3())


# --- gradients ----------------------------------------------------------------------------


def test_loss_gradients_by_finite_differences():
    rng = np.random.RandomState(7)
    y = np.array([0, 2, 1])
    verify_grad(
        lambda z: obj.categorical_crossentropy(pt.special.softmax(z, axis=-1), y),
        [rng.randn(3, 3)],
        rng=rng,
    )
    soft = softmax_rows(rng.randn(3, 3))
    verify_grad(
        lambda z: obj.categorical_crossentropy(pt.special.softmax(z, axis=-1), soft),
        [rng.randn(3, 3)],
        rng=rng,
    )
    t = np.array([0.0, 1.0, 0.3])
    verify_grad(lambda z: obj.binary_crossentropy(pt.sigmoid(z), t), [rng.randn(3)], rng=rng)
    verify_grad(lambda a: obj.squared_error(a, np.ones(4)), [rng.randn(4)], rng=rng)
    # points away from the kinks, where the losses are differentiable
    verify_grad(
        lambda z: obj.huber_loss(z, np.zeros(4), delta=0.5),
        [np.array([0.1, -0.2, 1.0, -2.0])],
        rng=rng,
    )
    verify_grad(
        lambda z: obj.binary_hinge_loss(z, np.array([1.0, 0.0, 1.0]), log_odds=True),
        [np.array([0.2, 0.5, 3.0])],
        rng=rng,
    )
    verify_grad(
        lambda z: obj.multiclass_hinge_loss(z, np.array([0, 2])),
        [np.array([[0.5, 0.1, -0.3], [0.2, 1.0, 0.4]])],
        rng=rng,
    )
