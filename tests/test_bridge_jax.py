"""fit and prediction compiled with JAX (static minibatch shapes), against the reference mode."""

import importlib.util

import numpy as np
import pytensor
import pytest

from plasagne.models import build_cnn
from plasagne.pymc_bridge import GaussWeights, build_model, fit
from plasagne.pymc_bridge.predict import PosteriorPredictive

pytestmark = [
    pytest.mark.backend,
    pytest.mark.skipif(
        importlib.util.find_spec("jax") is None, reason="jax not installed (extra 'jax')"
    ),
]


def _data(n=48, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 3, n)
    X = rng.normal(size=(n, 1, 16, 16)).astype("float32") * 0.3
    X[np.arange(n), 0, y * 4 + 2, y * 4 + 2] += 3.0  # a class-dependent bright pixel
    return X, y


def _bnet(X, y):
    from plasagne.random import set_rng

    set_rng(np.random.RandomState(0))

    def build(p):
        return build_cnn(p, input_shape=(None, 1, 16, 16), n_filters=2, n_dense=6, n_classes=3)

    return build_model(build, X, y, priors=GaussWeights(1.0), batch_size=16)


@pytest.mark.filterwarnings("error::FutureWarning")  # float64 leaking into float32 graphs
@pytest.mark.parametrize("reparameterization", ["weights", "local"])
def test_cnn_fit_and_prediction_compile_with_jax(reparameterization):
    X, y = _data()
    with pytensor.config.change_flags(floatX="float32"):
        result = fit(
            _bnet(X, y),
            X,
            y,
            n=30,
            mode="JAX",
            progressbar=False,
            random_seed=0,
            reparameterization=reparameterization,
        )
    assert np.isfinite(result.losses).all()
    assert result.losses[-10:].mean() < result.losses[:10].mean()


def test_jax_prediction_matches_reference_for_a_point_estimate():
    X, y = _data()
    with pytensor.config.change_flags(floatX="float32"):
        bnet = _bnet(X, y)
        result = fit(bnet, X, y, n=20, method="map", mode="JAX", progressbar=False, random_seed=0)
        want = PosteriorPredictive(bnet, result, mode="FAST_COMPILE").mean(X, chunk_size=20)
        got = PosteriorPredictive(bnet, result, mode="JAX").mean(X, chunk_size=20)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)


def test_cnn_fits_elsewhere_and_predicts_on_jax_with_its_one_node_convolutions():
    """The documented CNN recipe: CorrNd nodes, fit on another backend, predict with XLA."""
    from pytensor.graph.traversal import applys_between

    from plasagne.ops.corr_op import CorrNd

    X, y = _data()
    with pytensor.config.change_flags(floatX="float32"):
        bnet = _bnet(X, y)
        ops = [node.op for node in applys_between([], [bnet.output])]
        assert sum(isinstance(op, CorrNd) for op in ops) == 2
        result = fit(
            bnet, X, y, n=20, method="map", mode="FAST_COMPILE", progressbar=False, random_seed=0
        )
        want = PosteriorPredictive(bnet, result, mode="FAST_COMPILE").mean(X, chunk_size=20)
        got = PosteriorPredictive(bnet, result, mode="JAX").mean(X, chunk_size=20)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(got, got.mean(0))  # the fit moved the predictions apart


@pytest.mark.parametrize("one_node", [False, True])
def test_several_draws_per_call_on_jax_equal_the_reference(one_node, monkeypatch):
    """JAX cannot trace a vectorised CNN (its shapes come from a symbolic row count), so
    JAX builds one copy of the network per draw: given the same weight draws, the outputs
    equal the reference mode's vectorised graph, draw by draw."""
    import plasagne.ops.conv

    if not one_node:  # the plain im2col graph
        monkeypatch.setattr(plasagne.ops.conv, "corr_nd", plasagne.ops.conv.im2col_corr_nd)
    X, y = _data()
    with pytensor.config.change_flags(floatX="float32"):
        bnet = _bnet(X, y)
        result = fit(bnet, X, y, n=5, mode="FAST_COMPILE", progressbar=False, random_seed=0)
        ref = PosteriorPredictive(bnet, result, mode="FAST_COMPILE", draws_per_call=3)
        on_jax = PosteriorPredictive(bnet, result, mode="JAX", draws_per_call=3)
        weights = ref._sample()
        want = ref._network(X[:20], *weights)
        got = np.asarray(on_jax._network(X[:20], *weights))
        assert on_jax.draws(X, draws=7, chunk_size=20).shape == (7, len(X), 3)
    assert got.shape == want.shape == (3, 20, 3)
    np.testing.assert_allclose(got, want, rtol=1e-4, atol=1e-6)
    assert not np.allclose(want[0], want[1])  # the draws differ
