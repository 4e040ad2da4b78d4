"""Every update rule against the same rule written in numpy, over three steps."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from plasagne import updates


def np_rules(name, kw):
    """Return a stateful numpy step function grad -> step for each rule."""
    state = {"t": 0}

    def zeros_like(g, key):
        state.setdefault(key, np.zeros_like(g))
        return state[key]

    def step(p, g):
        state["t"] += 1
        t = state["t"]
        if name == "sgd":
            return p - kw["learning_rate"] * g
        if name == "momentum":
            v = zeros_like(g, "v")
            x = kw["momentum"] * v + (p - kw["learning_rate"] * g)
            state["v"] = x - p
            return x
        if name == "nesterov_momentum":
            v = zeros_like(g, "v")
            upd = p - kw["learning_rate"] * g
            x = kw["momentum"] * v + upd - p
            state["v"] = x
            return kw["momentum"] * x + upd
        if name == "adagrad":
            a = zeros_like(g, "a") + g**2
            state["a"] = a
            return p - kw["learning_rate"] * g / np.sqrt(a + 1e-6)
        if name == "rmsprop":
            a = 0.9 * zeros_like(g, "a") + 0.1 * g**2
            state["a"] = a
            return p - kw["learning_rate"] * g / np.sqrt(a + 1e-6)
        if name == "adadelta":
            a = 0.95 * zeros_like(g, "a") + 0.05 * g**2
            d = zeros_like(g, "d")
            s = g * np.sqrt(d + 1e-6) / np.sqrt(a + 1e-6)
            state["a"], state["d"] = a, 0.95 * d + 0.05 * s**2
            return p - kw["learning_rate"] * s
        b1, b2, lr = 0.9, 0.999, kw["learning_rate"]
        m = b1 * zeros_like(g, "m") + (1 - b1) * g
        state["m"] = m
        if name == "adamax":
            u = np.maximum(b2 * zeros_like(g, "u"), np.abs(g))
            state["u"] = u
            return p - lr / (1 - b1**t) * m / (u + 1e-8)
        v = b2 * zeros_like(g, "v") + (1 - b2) * g**2
        state["v"] = v
        a_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        if name == "amsgrad":
            vh = np.maximum(zeros_like(g, "vh"), v)
            state["vh"] = vh
            return p - a_t * m / (np.sqrt(vh) + 1e-8)
        return p - a_t * m / (np.sqrt(v) + 1e-8)

    return step


RULES = {
    "sgd": {"learning_rate": 0.1},
    "momentum": {"learning_rate": 0.1, "momentum": 0.8},
    "nesterov_momentum": {"learning_rate": 0.1, "momentum": 0.8},
    "adagrad": {"learning_rate": 0.5},
    "rmsprop": {"learning_rate": 0.05},
    "adadelta": {"learning_rate": 1.0},
    "adam": {"learning_rate": 0.05},
    "adamax": {"learning_rate": 0.05},
    "amsgrad": {"learning_rate": 0.05},
}


@pytest.mark.parametrize("shape", [(), (3, 2)])
@pytest.mark.parametrize("name", sorted(RULES))
def test_rule_matches_numpy(name, shape):
    rng = np.random.RandomState(3)
    start = np.asarray(rng.randn(*shape))
    target = np.asarray(rng.randn(*shape))
    w = pytensor.shared(start.copy())
    loss = pt.sum((w - target) ** 4)  # a non-quadratic loss, so steps differ between rules
    ups = getattr(updates, name)(loss, [w], **RULES[name])
    f = pytensor.function([], loss, updates=ups)
    step = np_rules(name, RULES[name])
    p = start.copy()
    for _ in range(3):
        f()
        p = step(p, 4 * (p - target) ** 3)
        np.testing.assert_allclose(w.get_value(), p, rtol=1e-10, atol=1e-12)


def test_learning_rate_may_be_a_shared_variable():
    lr = pytensor.shared(0.5)
    w = pytensor.shared(np.array([2.0]))
    f = pytensor.function([], updates=updates.sgd(pt.sum(w**2), [w], lr))
    f()
    np.testing.assert_allclose(w.get_value(), [2.0 - 0.5 * 4.0])
    lr.set_value(0.25)
    f()
    np.testing.assert_allclose(w.get_value(), [0.0 - 0.25 * 0.0])


@pytest.mark.parametrize("name", sorted(RULES))
def test_float32_parameters_stay_float32(name):
    w = pytensor.shared(np.ones((2, 2), dtype="float32"), shape=(None, None))
    loss = pt.sum(w**2)
    for var, new in getattr(updates, name)(loss, [w], **RULES[name]).items():
        assert new.dtype == var.dtype, (name, var, new.dtype)
        assert new.type.broadcastable == var.type.broadcastable


def test_expression_params_are_rejected_with_a_hint():
    w = pytensor.shared(np.ones(2))
    with pytest.raises(ValueError, match="get_all_params"):
        updates.sgd(pt.sum(pt.exp(w)), [pt.exp(w)], 0.1)


def test_gradient_list_length_is_checked():
    w = pytensor.shared(np.ones(2))
    with pytest.raises(ValueError, match="1 parameters"):
        updates.sgd([w, w], [w], 0.1)


@pytest.mark.parametrize("axes", [None, (1,)])
def test_norm_constraint_matches_numpy(axes):
    x = np.random.RandomState(0).randn(4, 5) * 3
    out = updates.norm_constraint(pt.constant(x), 2.0, norm_axes=axes).eval()
    sum_over = (0,) if axes is None else axes
    norms = np.sqrt((x**2).sum(axis=sum_over, keepdims=True))
    expected = x * np.clip(norms, 0, 2.0) / (1e-7 + norms)
    np.testing.assert_allclose(out, expected)
    assert np.all(np.sqrt((out**2).sum(axis=sum_over)) <= 2.0 + 1e-6)


def test_total_norm_constraint_matches_numpy():
    xs = [np.random.RandomState(i).randn(3, 2) for i in range(2)]
    scaled, norm = updates.total_norm_constraint(
        [pt.constant(x) for x in xs], 1.5, return_norm=True
    )
    total = np.sqrt(sum((x**2).sum() for x in xs))
    np.testing.assert_allclose(norm.eval(), total)
    for s, x in zip(scaled, xs):
        np.testing.assert_allclose(s.eval(), x * min(total, 1.5) / (1e-7 + total))


def test_adam_trains_a_logistic_regression():
    from plasagne.layers import DenseLayer, InputLayer, get_all_params, get_output
    from plasagne.nonlinearities import sigmoid
    from plasagne.objectives import binary_crossentropy

    rng = np.random.RandomState(0)
    x = rng.randn(200, 3)
    y = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype("float64")
    l_in = InputLayer((None, 3))
    net = DenseLayer(l_in, 1, nonlinearity=sigmoid)
    t = pt.vector("t")
    loss = binary_crossentropy(get_output(net)[:, 0], t).mean()
    f = pytensor.function(
        [l_in.input_var, t],
        loss,
        updates=updates.adam(loss, get_all_params(net), learning_rate=0.1),
    )
    losses = [f(x, y) for _ in range(100)]
    assert losses[-1] < 0.3 * losses[0]
