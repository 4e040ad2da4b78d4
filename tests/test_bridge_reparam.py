"""Local reparameterization and Flipout: same moments as weight sampling, same ELBO, fits.

References are numpy weight sampling (``A @ W`` and ``scipy.signal.correlate`` with
``W ~ N(mu, sigma**2)`` drawn in numpy) and the closed forms ``A @ mu``, ``A**2 @ sigma**2``.
Tolerances are four standard errors of the Monte Carlo estimates.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from backend_params import NUMBA_AND_JAX
from pytensor.graph.traversal import ancestors
from scipy.signal import correlate

import plasagne.ops.conv
from plasagne.layers import Conv2DLayer, DenseLayer, InputLayer
from plasagne.nonlinearities import softmax, tanh
from plasagne.ops.conv import im2col_corr_nd
from plasagne.ops.corr_op import corr_nd_op
from plasagne.pymc_bridge import GaussWeights, build_model, fit
from plasagne.pymc_bridge.fit import _build_vi, _static_batch
from plasagne.pymc_bridge.reparam import (
    WeightMoments,
    reparameterize_likelihood,
    reparameterized_advi_loss,
    seed_random_generators,
)
from plasagne.random import set_rng

S = 4000  # Monte Carlo draws


def draws(expr, n=S, seed=0):
    seed_random_generators([expr], seed)
    fn = pm.pytensorf.compile([], expr, random_seed=False)
    return np.stack([fn() for _ in range(n)])


def moments(mu, sigma):
    return WeightMoments(pt.constant(mu), pt.constant(sigma))


def assert_same_moments(samples, mean, var, reference=None):
    """Sample mean and variance per entry within 4 standard errors of the closed forms."""
    n = len(samples)
    np.testing.assert_array_less(np.abs(samples.mean(0) - mean), 4 * np.sqrt(var / n) + 1e-9)
    np.testing.assert_array_less(np.abs(samples.var(0) - var), 4 * np.sqrt(2.0 / n) * var + 1e-9)
    if reference is not None:  # numpy weight sampling agrees with the same closed forms
        assert_same_moments(reference, mean, var)


@pytest.fixture
def dense_case():
    rng = np.random.default_rng(0)
    A = rng.normal(size=(4, 3))
    mu = rng.normal(size=(3, 2))
    sigma = rng.uniform(0.2, 1.0, size=(3, 2))
    weights = mu + sigma * rng.normal(size=(S, 3, 2))
    return A, mu, sigma, np.einsum("rk,skl->srl", A, weights)


@pytest.mark.parametrize("estimator", ["local", "flipout"])
def test_dense_preactivations_have_weight_sampling_moments(dense_case, estimator):
    A, mu, sigma, reference = dense_case
    W = pt.matrix("W")
    out = pt.dot(pt.specify_shape(pt.constant(A), (4, 3)), W)
    new, report = reparameterize_likelihood(out, {W: moments(mu, sigma)}, 4, estimator)
    assert report == {"W": estimator}
    assert W not in set(ancestors([new]))
    samples = draws(new)
    assert_same_moments(samples, A @ mu, A**2 @ sigma**2, reference)
    # examples are decorrelated: the correlation of two rows is near zero
    corr = np.corrcoef(samples[:, 0, 0], samples[:, 1, 0])[0, 1]
    assert abs(corr) < 4 / np.sqrt(S)


@pytest.mark.parametrize("estimator", ["local", "flipout"])
def test_stacked_layers_feed_the_rewritten_activations_forward(estimator):
    """The second product must see the first layer's per-example noise: the outputs of
    two stacked layers have the moments of numpy weight sampling."""
    rng = np.random.default_rng(5)
    A = rng.normal(size=(4, 3))
    mu1, mu2 = rng.normal(size=(3, 5)), rng.normal(size=(5, 2))
    sd1, sd2 = rng.uniform(0.3, 1.0, size=(3, 5)), rng.uniform(0.3, 1.0, size=(5, 2))
    W1, W2 = pt.matrix("W1"), pt.matrix("W2")
    hidden = pt.tanh(pt.dot(pt.specify_shape(pt.constant(A), (4, 3)), W1))
    out = pt.dot(hidden, W2)
    m = {W1: moments(mu1, sd1), W2: moments(mu2, sd2)}
    new, report = reparameterize_likelihood(out, m, 4, estimator)
    assert report == {"W1": estimator, "W2": estimator}
    samples = draws(new)
    w1 = mu1 + sd1 * rng.normal(size=(S, 3, 5))
    w2 = mu2 + sd2 * rng.normal(size=(S, 5, 2))
    reference = np.einsum("srk,skl->srl", np.tanh(np.einsum("rk,skl->srl", A, w1)), w2)
    se_mean = np.sqrt(samples.var(0) / S + reference.var(0) / S)
    np.testing.assert_array_less(np.abs(samples.mean(0) - reference.mean(0)), 4 * se_mean)
    ratio = samples.var(0) / reference.var(0)
    np.testing.assert_array_less(np.abs(ratio - 1), 4 * np.sqrt(4.0 / S) * 1.5)


def test_transposed_and_scaled_weights_keep_their_moments():
    """``dot(A, (s * V).T)``: a non-centred prior's ``scale * raw`` behind a transpose."""
    rng = np.random.default_rng(1)
    A = rng.normal(size=(5, 3))
    mu = rng.normal(size=(2, 3))
    sigma = rng.uniform(0.2, 1.0, size=(2, 3))
    scale = np.array([[2.0], [0.5]])
    V = pt.matrix("V")
    out = pt.dot(pt.specify_shape(pt.constant(A), (5, 3)), (pt.constant(scale) * V).T)
    new, report = reparameterize_likelihood(out, {V: moments(mu, sigma)}, 5, "local")
    assert report == {"V": "local"}
    W_mu, W_sd = (scale * mu).T, (scale * sigma).T
    assert_same_moments(draws(new), A @ W_mu, A**2 @ W_sd**2)


def correlate_all(x, W):
    """Valid cross-correlation of every example of ``x`` (batch, c, h, w) with ``W``."""
    return np.stack(
        [
            np.stack(
                [
                    sum(correlate(xb[c], W[f, c], mode="valid") for c in range(x.shape[1]))
                    for f in range(W.shape[0])
                ]
            )
            for xb in x
        ]
    )


def conv_reference(x, mu, sigma, n, seed):
    """``n`` draws of the layer with a filter bank drawn in numpy per example and draw."""
    rng = np.random.default_rng(seed)
    return np.stack(
        [
            np.concatenate(
                [
                    correlate_all(x[b : b + 1], mu + sigma * rng.normal(size=mu.shape))
                    for b in range(len(x))
                ]
            )
            for _ in range(n)
        ]
    )


@pytest.mark.parametrize("correlation", [im2col_corr_nd, corr_nd_op])
@pytest.mark.parametrize("estimator", ["local", "flipout"])
def test_convolution_gets_flipout_with_the_weight_sharing_covariance(estimator, correlation):
    """Within one example, two output positions share the filter: their covariance under
    weight sampling is sum(x_p * x_q * sigma**2), which per-position noise would lose."""
    rng = np.random.default_rng(2)
    x = rng.normal(size=(3, 2, 4, 4))
    mu = rng.normal(size=(2, 2, 2, 2))
    sigma = rng.uniform(0.3, 1.0, size=mu.shape)
    W = pt.tensor4("W")
    out = correlation(pt.specify_shape(pt.constant(x), x.shape), W, kernel_shape=(2, 2))
    new, report = reparameterize_likelihood(out, {W: moments(mu, sigma)}, 3, estimator)
    assert report == {"W": "flipout"}
    samples = draws(new, n=3000)
    reference = conv_reference(x, mu, sigma, 3000, seed=3)
    mean, var = correlate_all(x, mu), correlate_all(x**2, sigma**2)
    assert_same_moments(samples, mean, var, reference)
    # covariance of positions (0, 0) and (1, 2) of example 1, filter 0
    a, b = samples[:, 1, 0, 0, 0], samples[:, 1, 0, 1, 2]
    patch_p, patch_q = x[1, :, 0:2, 0:2], x[1, :, 1:3, 2:4]
    exact = np.sum(patch_p * patch_q * sigma[0] ** 2)
    cov = np.cov(a, b)[0, 1]
    assert abs(cov - exact) < 4 * np.sqrt(np.var(a) * np.var(b) / 3000)
    assert abs(exact) > 8 * np.sqrt(np.var(a) * np.var(b) / 3000)  # the check has power


def test_weights_used_elsewhere_or_not_per_example_keep_the_shared_sample():
    A = pt.specify_shape(pt.constant(np.ones((4, 3))), (4, 3))
    B = pt.specify_shape(pt.constant(np.ones((5, 3))), (5, 3))
    W, V, U, T = pt.matrix("W"), pt.matrix("V"), pt.matrix("U"), pt.matrix("T")
    m = {v: moments(np.zeros((3, 2)), np.ones((3, 2))) for v in (W, V, U, T)}
    graph = (
        pt.sum(pt.dot(A, W))
        + pt.sum(pt.dot(A, W))  # tied: used twice
        + pt.sum(pt.dot(A, V))
        + pt.sum(V**2)  # used outside a product
        + pt.sum(pt.dot(B, U))  # 5 rows are not the 4 examples
        + pt.sum(pt.dot(A, pt.tanh(T)))  # not linear in T
    )
    new, report = reparameterize_likelihood(graph, m, 4, "local")
    assert report == {"W": "weights", "V": "weights", "U": "weights", "T": "weights"}
    assert new is graph


def test_broadcast_weights_are_not_rewritten():
    """``w * F`` with ``w`` of shape (1, 2) reuses each weight in 3 rows: correlated entries."""
    A = pt.specify_shape(pt.constant(np.ones((4, 3))), (4, 3))
    w = pt.tensor("w", shape=(1, 2))
    graph = pt.sum(pt.dot(A, w * pt.constant(np.ones((3, 2)))))
    _, report = reparameterize_likelihood(
        graph, {w: moments(np.zeros((1, 2)), np.ones((1, 2)))}, 4, "local"
    )
    assert report == {"w": "weights"}


def test_unknown_estimator_is_refused():
    with pytest.raises(ValueError, match="'local' or 'flipout'"):
        reparameterize_likelihood(pt.scalar(), {}, 4, "lrt")


def mlp(priors):
    hidden = DenseLayer(InputLayer((None, 4)), 6, W=priors, b=priors, nonlinearity=tanh, name="h")
    return DenseLayer(hidden, 3, W=priors, b=priors, nonlinearity=softmax, name="out")


def toy_data(n=120, seed=0):
    """Three well separated classes in 4-D."""
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 4)) + 3.0 * np.eye(4)[y]
    return X, y


def mlp_model(X, y, batch_size):
    set_rng(np.random.RandomState(0))  # the same initial values for every build
    return build_model(mlp, X, y, priors=GaussWeights(1.0), batch_size=batch_size)


def toy_fit(X, y, n, seed=0, **kwargs):
    """fit() on a freshly built toy MLP (batch 40), quietly."""
    return fit(mlp_model(X, y, 40), X, y, n=n, random_seed=seed, progressbar=False, **kwargs)


def advi_setup(n, batch_size):
    """A mean-field approximation (std 0.5) of the toy MLP, its first minibatch loaded,
    and the static-batch replacements: what fit's objectives are built from."""
    X, y = toy_data(n=n)
    bnet = mlp_model(X, y, batch_size)
    bnet.set_batch(X[:batch_size], y[:batch_size])
    inference = _build_vi(bnet, "advi", bnet.model.initial_point(0), 0.5, 0, 1)
    return bnet, inference, _static_batch(bnet, batch_size)


@pytest.mark.parametrize("estimator", ["local", "flipout"])
def test_loss_has_the_expectation_of_pymc_negative_elbo(estimator):
    bnet, inference, static = advi_setup(120, 40)
    with bnet.model:
        pymc_loss = inference.objective.score_function(sc_n_mc=1, more_replacements=static)
    pymc_values = np.array([float(pymc_loss()) for _ in range(3000)])
    loss, report = reparameterized_advi_loss(bnet.model, inference.approx, static, 40, estimator)
    assert report["h.W"] == estimator and report["out.b"] == "weights"
    ours = draws(loss, n=3000, seed=1)
    se = np.sqrt(pymc_values.var() / 3000 + ours.var() / 3000)
    assert abs(ours.mean() - pymc_values.mean()) < 4 * se


def test_per_example_noise_lowers_the_gradient_variance():
    """With one weight sample per minibatch, the noise of every example's gradient is
    correlated and does not average out; per-example draws make it average out. Measured
    on the first layer's means (same expectation, several times lower variance)."""
    bnet, inference, static = advi_setup(400, 200)
    mu = inference.approx.params[0]
    first_layer = inference.approx.groups[0].ordering["h.W"][1]
    with bnet.model:
        shared_loss = inference.objective(1, more_replacements=static)
    shared = draws(pytensor.grad(shared_loss, mu), n=300, seed=2)[:, first_layer]
    for estimator in ("local", "flipout"):
        loss, _ = reparameterized_advi_loss(bnet.model, inference.approx, static, 200, estimator)
        ours = draws(pytensor.grad(loss, mu), n=300, seed=3)[:, first_layer]
        se = np.sqrt((shared.var(0) + ours.var(0)) / 300)
        assert (np.abs(shared.mean(0) - ours.mean(0)) < 4.5 * se).all()
        assert ours.var(0).sum() < 0.3 * shared.var(0).sum()


@pytest.mark.parametrize("estimator", ["local", "flipout"])
def test_fit_learns_and_reports_what_it_rewrote(estimator):
    X, y = toy_data()
    bnet = mlp_model(X, y, 40)
    result = fit(
        bnet,
        X,
        y,
        n=400,
        reparameterization=estimator,
        random_seed=0,
        learning_rate=0.05,
        progressbar=False,
    )
    assert result.extra["reparameterization"] == {
        "h.W": estimator,
        "h.b": "weights",
        "out.W": estimator,
        "out.b": "weights",
    }
    assert result.losses[-50:].mean() < 0.5 * result.losses[:10].mean()
    means = result.point_estimate()
    hidden = np.tanh(X @ means["h.W"] + means["h.b"])
    accuracy = np.mean((hidden @ means["out.W"] + means["out.b"]).argmax(1) == y)
    assert accuracy > 0.9


@pytest.mark.parametrize("correlation", [im2col_corr_nd, corr_nd_op])
def test_fit_with_convolution_rewrites_it_with_flipout(correlation, monkeypatch):
    monkeypatch.setattr(plasagne.ops.conv, "corr_nd", correlation)
    rng = np.random.default_rng(4)
    X = rng.normal(size=(30, 1, 6, 6))
    y = (X[:, 0, :3].mean((1, 2)) > 0).astype(int)

    def cnn(p):
        conv = Conv2DLayer(InputLayer((None, 1, 6, 6)), 2, 3, W=p, b=p, name="c")
        return DenseLayer(conv, 2, W=p, b=p, nonlinearity=softmax, name="out")

    bnet = build_model(cnn, X, y, priors=GaussWeights(), batch_size=10)
    result = fit(bnet, X, y, n=5, reparameterization="local", random_seed=0, progressbar=False)
    assert result.extra["reparameterization"]["c.W"] == "flipout"
    assert result.extra["reparameterization"]["out.W"] == "local"
    assert np.isfinite(result.losses).all()


def test_resume_continues_exactly(tmp_path):
    X, y = toy_data()
    path = tmp_path / "ck.npz"

    def run(n, estimator="local", **kwargs):
        return toy_fit(X, y, n, seed=5, reparameterization=estimator, **kwargs)

    full = run(20)
    run(10, checkpoint_path=path)
    resumed = run(20, resume=path)
    np.testing.assert_array_equal(resumed.losses, full.losses)
    for a, b in zip(resumed.approximation.params, full.approximation.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    with pytest.raises(ValueError, match="reparameterization='local', this run has .*'flipout'"):
        run(20, "flipout", resume=path)
    with pytest.raises(ValueError, match="reparameterization='local', this run has .*'weights'"):
        run(20, "weights", resume=path)


def test_fit_refuses_bad_reparameterization_settings():
    X, y = toy_data()
    bnet = mlp_model(X, y, 40)
    with pytest.raises(ValueError, match="one of"):
        fit(bnet, X, y, n=1, reparameterization="lrt", progressbar=False)
    with pytest.raises(ValueError, match="method='advi'"):
        fit(bnet, X, y, n=1, method="map", reparameterization="local", progressbar=False)


@pytest.mark.backend
@pytest.mark.parametrize("mode", NUMBA_AND_JAX)
def test_backends_estimate_the_same_loss(mode):
    """The rewritten objective compiled by a real backend has the reference's expectation."""
    bnet, inference, static = advi_setup(120, 40)
    loss, _ = reparameterized_advi_loss(bnet.model, inference.approx, static, 40, "local")
    values = {}
    for name in ("FAST_COMPILE", mode):
        seed_random_generators([loss], 0 if name == mode else 1)
        fn = pm.pytensorf.compile([], loss, random_seed=False, mode=name)
        values[name] = np.array([float(fn()) for _ in range(1500)])
    a, b = values.values()
    assert abs(a.mean() - b.mean()) < 4 * np.sqrt(a.var() / len(a) + b.var() / len(b))
    assert not np.array_equal(b[:10], b[10:20])  # fresh noise on every call
