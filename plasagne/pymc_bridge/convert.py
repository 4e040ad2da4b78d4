"""Moving between deterministic and Bayesian versions of one network.

The same network-building function gives both versions, so their layers pair up one to
one (same traversal order, same parameter order). That pairing is all this module relies
on; it never looks at layer classes.

- :func:`warm_start` starts a Bayesian fit at a trained deterministic network's values;
- :func:`to_deterministic` fills a deterministic network with posterior means (fast
  inference, or a starting point for further training);
- :func:`posterior_draws` returns weight draws as ArviZ ``InferenceData``.
"""

from __future__ import annotations

from typing import Any

import numpy as np
from pytensor.compile.sharedvalue import SharedVariable

from ..layers.helper import get_all_layers

__all__ = ["paired_params", "warm_start", "to_deterministic", "posterior_draws"]


def paired_params(bayes_network: Any, det_network: Any) -> list[tuple[Any, Any]]:
    """Pair the parameters of two networks built by the same function.

    Returns ``(bayesian_param, deterministic_param)`` pairs: the first is whatever the
    Bayesian layer holds (a random variable, an expression of several, or a shared
    variable for a point-estimate parameter), the second a shared variable.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> a, b = DenseLayer(InputLayer((None, 2)), 3), DenseLayer(InputLayer((None, 2)), 3)
    >>> len(paired_params(a, b))
    2
    """
    bayes_layers = get_all_layers(bayes_network)
    det_layers = get_all_layers(det_network)
    if len(bayes_layers) != len(det_layers):
        raise ValueError(
            f"the networks differ: {len(bayes_layers)} layers against {len(det_layers)}; "
            "build both with the same function"
        )
    pairs = []
    for lb, ld in zip(bayes_layers, det_layers):
        pb, pd = list(lb.params), list(ld.params)
        if type(lb) is not type(ld) or len(pb) != len(pd):
            raise ValueError(
                f"the networks differ at {lb._label()} / {ld._label()}; build both with the "
                "same function"
            )
        for b, d in zip(pb, pd):
            if not isinstance(d, SharedVariable):
                raise ValueError(
                    f"{ld._label()}: the deterministic network's parameter {d} is an expression; "
                    "expected shared variables"
                )
            pairs.append((b, d))
    return pairs


def warm_start(bnet: Any, det_network: Any) -> list[str]:
    """Start a Bayesian fit at a trained deterministic network's parameter values.

    Every Bayesian parameter that is a model random variable gets the deterministic
    value as its initial value (ADVI then starts its means there); point-estimate
    (shared) parameters get the value copied. Parameters built as expressions of several
    variables (e.g. non-centred hierarchical weights) are left alone. Returns the names
    of the variables that were set.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights, build_model
    >>> net = lambda p: DenseLayer(InputLayer((None, 2)), 2, W=p, nonlinearity=softmax, name="o")
    >>> det = net(np.ones((2, 2)))
    >>> bnet = build_model(net, np.zeros((4, 2)), np.array([0, 1, 0, 1]), priors=GaussWeights())
    >>> warm_start(bnet, det)
    ['o.W', 'o.b']
    >>> bnet.model.initial_point()["o.W"].tolist()
    [[1.0, 1.0], [1.0, 1.0]]
    """
    model = bnet.model
    free = set(model.free_RVs)
    done = []
    for b, d in paired_params(bnet.network, det_network):
        value = d.get_value()
        if b in free:
            model.set_initval(b, value.astype(b.dtype))
            done.append(b.name)
        elif isinstance(b, SharedVariable):
            b.set_value(value.astype(b.dtype))
            done.append(b.name)
    return done


def to_deterministic(
    bnet: Any,
    fitted: Any,
    build_network: Any,
    init: Any = None,
    draws: int = 200,
    random_seed: int | None = None,
) -> Any:
    """Build a deterministic network holding the posterior means of a fitted Bayesian one.

    Parameters
    ----------
    bnet : BayesianNetwork
    fitted : FitResult or approximation
    build_network : callable
        The function that built the Bayesian network; it is called again with a
        deterministic initializer.
    init : initializer, optional
        Passed to ``build_network`` (default zeros); its values are overwritten.
    draws : int
        Draws used to estimate the mean of parameters that are expressions of several
        random variables (a plain random variable uses the approximation's mean draws too).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights, build_model, fit
    >>> net = lambda p: DenseLayer(InputLayer((None, 2)), 2, W=p, b=p, nonlinearity=softmax)
    >>> X = np.random.default_rng(0).normal(size=(20, 2)); y = (X[:, 0] > 0).astype(int)
    >>> bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=10)
    >>> result = fit(bnet, X, y, n=20, progressbar=False, random_seed=0)
    >>> det = to_deterministic(bnet, result, net, draws=10)
    >>> det.W.get_value().shape
    (2, 2)
    """
    import pymc as pm

    from .. import init as plasagne_init

    approx = getattr(fitted, "approximation", fitted)
    det_network = build_network(plasagne_init.Constant(0.0) if init is None else init)
    pairs = paired_params(bnet.network, det_network)
    stochastic = [b for b, _ in pairs if not isinstance(b, SharedVariable)]
    means: dict = {}
    if stochastic:
        if hasattr(approx, "sample_node"):
            nodes = [approx.sample_node(b, size=draws).mean(axis=0) for b in stochastic]
            fn = pm.pytensorf.compile([], nodes, random_seed=random_seed)
            values = fn()
        else:  # a point estimate
            from pytensor.graph.replace import clone_replace

            graphs = bnet.model.replace_rvs_by_values(stochastic)
            graphs = [clone_replace(g, approx.replacements()) for g in graphs]
            values = pm.pytensorf.compile([], graphs)()
        means = dict(zip(stochastic, values))
    for b, d in pairs:
        value = b.get_value() if isinstance(b, SharedVariable) else means[b]
        d.set_value(np.asarray(value, dtype=d.dtype))
    return det_network


def posterior_draws(fitted: Any, draws: int = 500, random_seed: int | None = None) -> Any:
    """Posterior draws of every model variable as ArviZ ``InferenceData``, named by
    parameter (``"hidden1.W"``...).

    A MAP estimate gives one draw.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights, build_model, fit
    >>> net = lambda p: DenseLayer(InputLayer((None, 2)), 2, W=p, nonlinearity=softmax, name="o")
    >>> X = np.random.default_rng(0).normal(size=(20, 2)); y = (X[:, 0] > 0).astype(int)
    >>> bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=10)
    >>> result = fit(bnet, X, y, n=20, progressbar=False, random_seed=0)
    >>> posterior_draws(result, draws=30).posterior["o.W"].shape
    (1, 30, 2, 2)
    """
    approx = getattr(fitted, "approximation", fitted)
    if hasattr(approx, "sample"):
        return approx.sample(draws, random_seed=random_seed)
    import arviz as az

    point = approx.point()
    return az.from_dict({"posterior": {k: np.asarray(v)[None, None] for k, v in point.items()}})
