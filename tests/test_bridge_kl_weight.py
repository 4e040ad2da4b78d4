"""fit(kl_weight=beta): the KL term of the ADVI objective weighted by beta (PyMC's KLqp)."""

import numpy as np
import pymc as pm
import pytest
from pymc.distributions.dist_math import rho2sigma
from pymc.variational import KLqp
from test_bridge_reparam import advi_setup, draws, mlp_model, toy_data, toy_fit

from plasagne.pymc_bridge import fit
from plasagne.pymc_bridge.checkpoint import CheckpointError
from plasagne.pymc_bridge.fit import _build_vi
from plasagne.pymc_bridge.reparam import reparameterized_advi_loss

BETA = 0.3
N_DRAWS = 3000


def analytic_kl(inference) -> float:
    """KL(q || p) of the mean-field Gaussian from the toy MLP's Normal(0, 1) priors."""
    group = inference.approx.groups[0]
    mu = group.params_dict["mu"].get_value().astype(np.float64)
    sigma = rho2sigma(group.params_dict["rho"]).eval().astype(np.float64)
    return float(np.sum(-np.log(sigma) + 0.5 * (sigma**2 + mu**2) - 0.5))


def test_weighted_objective_moves_by_beta_times_the_analytic_kl():
    """With common random numbers, L_beta - L_1 = (beta - 1) (log q - log p) / scale per
    draw; its mean is (beta - 1) KL / scale with the KL written out by hand."""
    bnet, inference, static = advi_setup(120, 40)  # scale: 120 / 40 = 3
    weighted = KLqp(inference.approx, beta=BETA)
    with bnet.model:
        both = [
            objective.objective(1, more_replacements=static) for objective in (weighted, inference)
        ]
    values = draws(pm.math.stack(both), n=N_DRAWS, seed=4)
    difference = values[:, 0] - values[:, 1]
    expected = (BETA - 1.0) * analytic_kl(inference) / 3.0
    se = difference.std() / np.sqrt(N_DRAWS)
    assert abs(difference.mean() - expected) < 4 * se + 1e-6 * abs(expected)
    assert abs(expected) > 6 * se  # the check has power


@pytest.mark.parametrize("estimator", ["local", "flipout"])
def test_reparameterized_objective_has_the_weighted_expectation(estimator):
    bnet, inference, static = advi_setup(120, 40)
    weighted = KLqp(inference.approx, beta=BETA)
    with bnet.model:
        pymc_loss = weighted.objective(1, more_replacements=static)
    reference = draws(pymc_loss, n=N_DRAWS, seed=5)
    loss, _ = reparameterized_advi_loss(
        bnet.model, inference.approx, static, 40, estimator, kl_weight=BETA
    )
    ours = draws(loss, n=N_DRAWS, seed=6)
    se = np.sqrt(reference.var() / N_DRAWS + ours.var() / N_DRAWS)
    assert abs(ours.mean() - reference.mean()) < 4 * se
    unweighted, _ = reparameterized_advi_loss(bnet.model, inference.approx, static, 40, estimator)
    shift = draws(unweighted, n=N_DRAWS, seed=7).mean() - ours.mean()
    assert abs(shift) > 8 * se  # beta changes the value: the comparison has power


def test_build_vi_uses_klqp_with_the_weight():
    bnet, _, _ = advi_setup(120, 40)
    for method in ("advi", "fullrank_advi"):
        inference = _build_vi(bnet, method, bnet.model.initial_point(0), 0.5, 0, 1, BETA)
        assert isinstance(inference, KLqp)
        assert float(inference.objective.op.beta) == pytest.approx(BETA)


@pytest.mark.parametrize("reparameterization", ["weights", "local"])
def test_tempered_fit_shrinks_the_posterior_stds(reparameterization):
    """Weighting the KL down lets the data pull the stds below the ELBO's."""
    X, y = toy_data(n=120)
    stds = {}
    for beta in (1.0, 0.05):
        bnet = mlp_model(X, y, 40)
        result = fit(
            bnet,
            X,
            y,
            n=300,
            learning_rate=0.05,
            kl_weight=beta,
            reparameterization=reparameterization,
            random_seed=0,
            progressbar=False,
        )
        assert np.isfinite(result.losses).all()
        stds[beta] = result.approximation.std.eval().mean()
    assert stds[0.05] < 0.8 * stds[1.0]


def test_checkpoint_records_the_weight_and_resume_refuses_another(tmp_path):
    X, y = toy_data(n=120)
    path = tmp_path / "run.npz"

    toy_fit(X, y, 4, kl_weight=BETA, checkpoint_path=path)
    with pytest.raises(CheckpointError, match="kl_weight"):
        toy_fit(X, y, 6, kl_weight=1.0, resume=path)
    assert toy_fit(X, y, 6, kl_weight=BETA, resume=path).iterations == 6


@pytest.mark.parametrize(
    ("method", "kl_weight", "error", "match"),
    [
        ("advi", 0.0, ValueError, "positive"),
        ("advi", float("nan"), ValueError, "positive"),
        ("advi", "big", TypeError, "number"),
        ("svgd", 0.5, ValueError, "svgd"),
        ("map", 0.5, ValueError, "map"),
    ],
)
def test_bad_kl_weight_is_refused(method, kl_weight, error, match):
    X, y = toy_data(n=120)
    with pytest.raises(error, match=match):
        fit(mlp_model(X, y, 40), X, y, n=1, method=method, kl_weight=kl_weight, progressbar=False)
