"""fit's learning-rate schedules: the rate each step uses, resume, validation."""

import numpy as np
import pytest

from plasagne.layers import DenseLayer, InputLayer
from plasagne.nonlinearities import softmax, tanh
from plasagne.pymc_bridge import GaussWeights, build_model, fit
from plasagne.pymc_bridge.fit import exponential_decay


def _data(N=60, seed=0):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    return rng.normal(size=(N, 2)) + np.where(y[:, None] == 1, 1.5, -1.5), y


def _bnet(X, y):
    from plasagne.random import set_rng

    set_rng(np.random.RandomState(0))

    def build(p):
        h = DenseLayer(InputLayer((None, 2)), 4, W=p, b=p, nonlinearity=tanh, name="h")
        return DenseLayer(h, 2, W=p, b=p, nonlinearity=softmax, name="out")

    return build_model(build, X, y, priors=GaussWeights(1.0), batch_size=15)


KW = dict(random_seed=2, progressbar=False)


def _params(result):
    return [p.get_value() for p in result.approximation.params]


def test_exponential_decay_matches_formula():
    rate = exponential_decay(0.02, 0.0005, 40)
    for i in (0, 1, 7, 39, 40, 41, 1000):
        expected = 0.02 * (0.0005 / 0.02) ** (min(i, 40) / 40)
        assert rate(i) == pytest.approx(expected, rel=1e-12)
    with pytest.raises(ValueError, match="positive"):
        exponential_decay(0.0, 0.1, 10)
    with pytest.raises(ValueError, match="steps"):
        exponential_decay(0.1, 0.01, 0)


def test_constant_schedule_equals_constant_rate():
    X, y = _data()
    a = fit(_bnet(X, y), X, y, n=12, learning_rate=0.03, **KW)
    b = fit(_bnet(X, y), X, y, n=12, learning_rate=lambda i: 0.03, **KW)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6)
    for u, v in zip(_params(a), _params(b)):
        np.testing.assert_allclose(u, v, rtol=1e-6)


def test_each_step_uses_the_scheduled_rate(tmp_path):
    """Steps 0-9 at 0.05 then 0.005 == a fit at 0.05 resumed for the rest at 0.005."""
    X, y = _data()
    path = tmp_path / "c.npz"
    fit(_bnet(X, y), X, y, n=10, learning_rate=0.05, checkpoint_path=path, **KW)
    by_hand = fit(_bnet(X, y), X, y, n=20, learning_rate=0.005, resume=path, **KW)
    scheduled = fit(
        _bnet(X, y), X, y, n=20, learning_rate=lambda i: 0.05 if i < 10 else 0.005, **KW
    )
    np.testing.assert_allclose(scheduled.losses, by_hand.losses, rtol=1e-6)
    for u, v in zip(_params(scheduled), _params(by_hand)):
        np.testing.assert_allclose(u, v, rtol=1e-6)
    constant = fit(_bnet(X, y), X, y, n=20, learning_rate=0.05, **KW)
    assert not np.allclose(_params(constant)[0], _params(scheduled)[0])


def test_resume_continues_on_the_schedule(tmp_path):
    X, y = _data()
    rate = exponential_decay(0.05, 0.001, 20)
    full = fit(_bnet(X, y), X, y, n=20, learning_rate=rate, **KW)

    def stop(approx, losses, i):
        if i == 8:
            raise KeyboardInterrupt

    path = tmp_path / "s.npz"
    fit(_bnet(X, y), X, y, n=20, learning_rate=rate, callbacks=[stop], checkpoint_path=path, **KW)
    resumed = fit(_bnet(X, y), X, y, n=20, learning_rate=rate, resume=path, **KW)
    np.testing.assert_array_equal(resumed.losses, full.losses)
    for u, v in zip(_params(resumed), _params(full)):
        np.testing.assert_array_equal(u, v)


def test_schedule_errors_are_clear():
    import pymc as pm

    X, y = _data(N=30)
    with pytest.raises(ValueError, match="iteration 3"):
        fit(_bnet(X, y), X, y, n=6, learning_rate=lambda i: 0.01 if i < 3 else -1.0, **KW)
    with pytest.raises(ValueError, match="optimizer"):
        fit(_bnet(X, y), X, y, n=2, learning_rate=lambda i: 0.01, optimizer=pm.adam(), **KW)
    with pytest.raises(ValueError, match="learning_rate"):
        fit(_bnet(X, y), X, y, n=2, learning_rate=0.0, **KW)
