"""Named-prior initialisers: names, distributions, hyperpriors, PriorMap, the 2016 post's pattern."""

import numpy as np
import pymc as pm
import pytest
from scipy import stats

from plasagne.init import Constant
from plasagne.layers import DenseLayer, InputLayer, get_output
from plasagne.nonlinearities import softmax, tanh
from plasagne.pymc_bridge import (
    GaussWeights,
    HierarchicalGaussWeights,
    Prior,
    PriorMap,
    build_model,
    fit,
)


def _at_values(model, expr, point):
    """Evaluate an expression of the model's random variables at a point of value variables."""
    import pytensor

    (expr,) = model.replace_rvs_by_values([expr])
    fn = pytensor.function(model.value_vars, expr, on_unused_input="ignore")
    return fn(*[point[v.name] for v in model.value_vars])


def _dist_name(rv):
    return type(rv.owner.op).__name__


def test_names_and_distributions_of_named_layers():
    with pm.Model() as m:
        h = DenseLayer(InputLayer((None, 3)), 4, W=GaussWeights(), b=GaussWeights(), name="hidden1")
        DenseLayer(h, 2, W=Prior(pm.Laplace, mu=0.0, b=0.5), b=GaussWeights(), name="out")
    assert set(m.named_vars) == {"hidden1.W", "hidden1.b", "out.W", "out.b"}
    assert m["hidden1.W"].type.shape == (3, 4)
    assert _dist_name(m["hidden1.W"]) == "NormalRV"
    assert _dist_name(m["out.W"]) == "LaplaceRV"
    # The prior's density is the one asked for: compare with scipy at the initial point.
    point = m.initial_point()
    logp = m.compile_logp(vars=[m["hidden1.W"]], sum=True)(point)
    assert np.isclose(logp, stats.norm(0, 0.1).logpdf(point["hidden1.W"]).sum())
    logp = m.compile_logp(vars=[m["out.W"]], sum=True)(point)
    assert np.isclose(logp, stats.laplace(0, 0.5).logpdf(point["out.W"]).sum())


def test_initial_values_glorot_for_weights_zero_for_biases():
    with pm.Model() as m:
        DenseLayer(InputLayer((None, 30)), 20, W=GaussWeights(), b=GaussWeights(), name="h")
    point = m.initial_point()
    limit = np.sqrt(6 / 50)
    assert np.abs(point["h.W"]).max() <= limit
    assert point["h.W"].std() > limit / 4  # a Glorot draw, not PyMC's zeros
    assert np.all(point["h.b"] == 0)


def test_unnamed_layers_get_stable_unique_prefixes():
    with pm.Model() as m:
        l1 = DenseLayer(InputLayer((None, 3)), 4, W=GaussWeights(), b=Constant(0.0))
        l2 = DenseLayer(l1, 4, W=GaussWeights(), b=GaussWeights())
        DenseLayer(l2, 2, W=GaussWeights(), b=GaussWeights(), name="x")
        DenseLayer(l2, 2, W=GaussWeights(), b=GaussWeights(), name="x")
    # All parameters of one layer share one prefix, even when an earlier layer had no b prior.
    assert list(m.named_vars) == [
        "DenseLayer.W",
        "DenseLayer_1.W",
        "DenseLayer_1.b",
        "x.W",
        "x.b",
        "x_1.W",
        "x_1.b",
    ]


def test_hyperprior_per_layer_non_centred():
    with pm.Model() as m:
        h = DenseLayer(InputLayer((None, 3)), 4, W=HierarchicalGaussWeights(), name="hidden1")
    assert {"hidden1.W.scale", "hidden1.W.raw"} <= set(m.named_vars)
    assert "hidden1.W" not in m.named_vars  # no Deterministic of the full weight
    assert m["hidden1.W.scale"].type.shape == ()
    assert _dist_name(m["hidden1.W.scale"]) == "HalfNormalRV"
    # The parameter is raw * scale; at the initial point it equals a Glorot draw.
    point = m.initial_point()
    W0 = _at_values(m, h.W, point)
    scale0 = np.exp(point["hidden1.W.scale_log__"])
    assert np.allclose(W0, point["hidden1.W.raw"] * scale0)
    assert np.isclose(scale0, np.sqrt(2 / 7))
    assert np.abs(W0).max() <= np.sqrt(6 / 7)


def test_hyperprior_per_unit_and_centred():
    with pm.Model() as m:
        DenseLayer(
            InputLayer((None, 3)),
            5,
            W=HierarchicalGaussWeights(scale=Prior(pm.Exponential, lam=2.0), per_unit=True),
            b=HierarchicalGaussWeights(centered=True),
            name="h",
        )
    assert m["h.W.scale"].type.shape == (5,)
    assert _dist_name(m["h.W.scale"]) == "ExponentialRV"
    assert "h.b" in m.named_vars and "h.b.scale" in m.named_vars
    # Centred: h.b ~ Normal(0, scale); check its conditional density against scipy.
    point = m.initial_point()
    point["h.b"] = np.linspace(-1, 1, 5)
    scale = np.exp(point["h.b.scale_log__"])
    lp = m.compile_logp(vars=[m["h.b"]], sum=True)(point)
    assert np.isclose(lp, stats.norm(0, scale).logpdf(point["h.b"]).sum())


def test_prior_map_by_pattern_and_type():
    class Special(DenseLayer):
        pass

    priors = PriorMap(
        {"*.b": Constant(0.0), Special: Prior(pm.StudentT, nu=3, mu=0, sigma=1), "out.*": 0.5},
        default=GaussWeights(2.0),
    )
    with pm.Model() as m:
        h = DenseLayer(InputLayer((None, 3)), 4, W=priors, b=priors, name="h")
        s = Special(h, 4, W=priors, b=priors, name="s")
        out = DenseLayer(s, 2, W=priors, b=priors, name="out")
    assert set(m.named_vars) == {"h.W", "s.W"}
    assert _dist_name(m["s.W"]) == "StudentTRV"
    point = m.initial_point()
    lp = m.compile_logp(vars=[m["h.W"]], sum=True)(point)
    assert np.isclose(lp, stats.norm(0, 2.0).logpdf(point["h.W"]).sum())
    # Unmatched by a prior -> plain shared variables that stay point estimates.
    assert h.b.name == "h.b" and np.all(h.b.get_value() == 0)
    assert np.all(out.W.get_value() == 0.5)
    assert [p.name for p in out.get_params()] == ["out.W", "out.b"]
    assert h.get_params() == [h.b]  # a PyMC variable contributes no shared variable


def test_error_outside_model_context():
    with pytest.raises(RuntimeError, match=r"must be called inside `with pm.Model\(\):`"):
        DenseLayer(InputLayer((None, 3)), 2, W=GaussWeights(), name="h")


def test_bad_prior_arguments():
    with pytest.raises(TypeError, match="PyMC distribution class"):
        Prior("normal")
    with pytest.raises(TypeError, match="rule keys"):
        PriorMap({1: GaussWeights()})
    with pm.Model(), pytest.raises(ValueError, match="scale must be positive"):
        DenseLayer(InputLayer((None, 3)), 2, W=HierarchicalGaussWeights(scale=-1.0))


def test_the_2016_post_counter_class_pattern():
    """The post's own initialiser: a class with a counter returning pm.Normal('w%d' % n, ...)."""
    rng = np.random.default_rng(0)
    N = 120
    y = rng.integers(0, 2, N).astype("int32")
    X = rng.normal(size=(N, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)

    class GaussWeightsPost:
        def __init__(self):
            self.count = 0

        def __call__(self, shape):
            self.count += 1
            init = rng.normal(0, 0.1, size=shape)
            name = "w%d" % self.count  # noqa: UP031 (the post's own code)
            return pm.Normal(name, mu=0, sigma=0.1, initval=init, shape=shape)

    import pytensor

    X_shared = pytensor.shared(X)
    y_shared = pytensor.shared(y)
    with pm.Model() as m:
        l_in = InputLayer((None, 2), input_var=X_shared)
        init = GaussWeightsPost()
        l_h = DenseLayer(l_in, 5, W=init, b=init, nonlinearity=tanh)
        l_out = DenseLayer(l_h, 2, W=init, b=init, nonlinearity=softmax)
        pm.Categorical("out", p=get_output(l_out), observed=y_shared, total_size=N)
        approx = pm.fit(
            300,
            method="advi",
            obj_optimizer=pm.adam(learning_rate=0.05),
            progressbar=False,
            random_seed=0,
        )
    assert {"w1", "w2", "w3", "w4", "out"} <= set(m.named_vars)
    assert np.all(np.isfinite(approx.hist))
    assert approx.hist[-20:].mean() < approx.hist[:20].mean()
    flat = approx.groups[0].params_dict["mu"].get_value()
    mean = {k: flat[slc].reshape(shp) for k, (_, slc, shp, _) in approx.groups[0].ordering.items()}
    probs = _at_values(m, get_output(l_out, X, deterministic=True), mean)
    assert (probs.argmax(1) == y).mean() >= 0.95


def test_priors_compose_with_build_model():
    X = np.zeros((6, 3))
    y = np.arange(6) % 2

    def build(prior):
        return DenseLayer(
            InputLayer((None, 3)), 2, W=prior, b=prior, nonlinearity=softmax, name="out"
        )

    bnet = build_model(build, X, y, priors=HierarchicalGaussWeights(per_unit=True), batch_size=3)
    assert {"out.W.scale", "out.W.raw", "out.b.scale", "out.b.raw"} <= set(bnet.model.named_vars)
    res = fit(bnet, X, y, n=3, random_seed=0, progressbar=False)
    assert res.iterations == 3 and np.all(np.isfinite(res.losses))
