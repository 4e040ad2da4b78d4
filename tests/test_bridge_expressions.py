"""Bayesian expression parameters: priors on the factors of a low-rank weight, tied weights."""

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.traversal import ancestors

from plasagne.layers import DenseLayer, InputLayer
from plasagne.nonlinearities import softmax, tanh
from plasagne.pymc_bridge import GaussWeights, build_model, fit
from plasagne.pymc_bridge.convert import posterior_draws
from plasagne.pymc_bridge.predict import predict


def data(seed=0, n=200):
    rng = np.random.default_rng(seed)
    X = rng.normal(size=(n, 4))
    return X, (X[:, 0] + X[:, 1] > 0).astype("int64")


def test_low_rank_weight_with_priors_on_its_factors():
    X, y = data()

    def build(prior):
        U = prior((4, 2), name="factors.U")
        V = prior((2, 2), name="factors.V")
        return DenseLayer(
            InputLayer((None, 4)), 2, W=U @ V, b=prior, nonlinearity=softmax, name="lowrank"
        )

    bnet = build_model(build, X, y, priors=GaussWeights(1.0), batch_size=50)
    assert {"factors.U", "factors.V", "lowrank.b"} <= set(bnet.model.named_vars)
    assert "lowrank.W" not in bnet.model.named_vars
    assert bnet.network.get_params() == []
    result = fit(bnet, X, y, n=400, learning_rate=0.05, progressbar=False, random_seed=0)
    assert (predict(bnet, result, X, draws=30, random_seed=1) == y).mean() > 0.9
    post = posterior_draws(result, draws=10, random_seed=2).posterior
    assert post["factors.U"].shape[-2:] == (4, 2) and post["factors.V"].shape[-2:] == (2, 2)


def test_tied_encoder_decoder_share_one_posterior():
    X, _ = data(n=120)

    def build(prior):
        l_in = InputLayer((None, 4))
        enc = DenseLayer(l_in, 2, W=prior, b=prior, nonlinearity=tanh, name="enc")
        return DenseLayer(enc, 4, W=enc.W.T, b=prior, nonlinearity=None, name="dec")

    bnet = build_model(build, X, X, "normal", priors=GaussWeights(1.0), batch_size=40)
    names = set(bnet.model.named_vars)
    assert "enc.W" in names and "dec.W" not in names
    enc_w = bnet.model["enc.W"]
    dec = bnet.network
    assert enc_w in set(ancestors([dec.W])) and isinstance(
        dec.W.owner.op, type(pt.transpose(enc_w).owner.op)
    )
    result = fit(bnet, X, X, n=300, learning_rate=0.05, progressbar=False, random_seed=0)
    assert (
        np.isfinite(result.losses).all() and result.losses[-20:].mean() < result.losses[:20].mean()
    )
