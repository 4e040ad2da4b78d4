"""Every update rule against the same rule written in numpy here, over three steps."""

import inspect

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.compile.sharedvalue import SharedVariable

from plasagne import updates

# ---------------------------------------------------------------------------------------
# numpy references: each returns a step function (param, grad) -> new param, with state
# ---------------------------------------------------------------------------------------


def numpy_rule(name, learning_rate=None, **hp):
    state = {"t": 0}

    def acc(key, like):
        if key not in state:
            state[key] = np.zeros_like(like)
        return state[key]

    def step(p, g, lr):
        state["t"] += 1
        t = state["t"]
        if name == "sgd":
            return p - lr * g
        if name in ("momentum", "nesterov_momentum"):
            mu = hp.get("momentum", 0.9)
            v_old = acc("v", p)
            sgd_new = p - lr * g
            if name == "momentum":
                new = mu * v_old + sgd_new
                state["v"] = new - p
                return new
            v = mu * v_old + sgd_new - p
            state["v"] = v
            return mu * v + sgd_new
        if name == "adagrad":
            eps = hp.get("epsilon", 1e-6)
            state["a"] = acc("a", p) + g * g
            return p - lr * g / np.sqrt(state["a"] + eps)
        if name == "rmsprop":
            rho, eps = hp.get("rho", 0.9), hp.get("epsilon", 1e-6)
            state["a"] = rho * acc("a", p) + (1 - rho) * g * g
            return p - lr * g / np.sqrt(state["a"] + eps)
        if name == "adadelta":
            rho, eps = hp.get("rho", 0.95), hp.get("epsilon", 1e-6)
            state["a"] = rho * acc("a", p) + (1 - rho) * g * g
            d = acc("d", p)
            delta = g * np.sqrt(d + eps) / np.sqrt(state["a"] + eps)
            state["d"] = rho * d + (1 - rho) * delta * delta
            return p - lr * delta
        b1, b2 = hp.get("beta1", 0.9), hp.get("beta2", 0.999)
        eps = hp.get("epsilon", 1e-8)
        state["m"] = b1 * acc("m", p) + (1 - b1) * g
        if name == "adamax":
            state["u"] = np.maximum(b2 * acc("u", p), np.abs(g))
            return p - lr / (1 - b1**t) * state["m"] / (state["u"] + eps)
        state["v"] = b2 * acc("v", p) + (1 - b2) * g * g
        second = state["v"]
        if name == "amsgrad":
            state["vhat"] = np.maximum(acc("vhat", p), state["v"])
            second = state["vhat"]
        lr_t = lr * np.sqrt(1 - b2**t) / (1 - b1**t)
        return p - lr_t * state["m"] / (np.sqrt(second) + eps)

    return step


# (rule, keyword arguments): the defaults of each rule, and non-default hyper-parameters
CONFIGS = [
    ("sgd", {"learning_rate": 0.1}),
    ("momentum", {"learning_rate": 0.1}),
    ("momentum", {"learning_rate": 0.05, "momentum": 0.5}),
    ("nesterov_momentum", {"learning_rate": 0.1}),
    ("nesterov_momentum", {"learning_rate": 0.05, "momentum": 0.5}),
    ("adagrad", {}),
    ("adagrad", {"learning_rate": 0.3, "epsilon": 1e-3}),
    ("rmsprop", {}),
    ("rmsprop", {"learning_rate": 0.05, "rho": 0.5, "epsilon": 1e-4}),
    ("adadelta", {}),
    ("adadelta", {"learning_rate": 0.5, "rho": 0.8, "epsilon": 1e-3}),
    ("adam", {}),
    ("adam", {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-4}),
    ("adamax", {}),
    ("adamax", {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-4}),
    ("amsgrad", {}),
    ("amsgrad", {"learning_rate": 0.05, "beta1": 0.5, "beta2": 0.9, "epsilon": 1e-4}),
]
RULES = sorted({name for name, _ in CONFIGS})


def default_learning_rate(name):
    default = inspect.signature(getattr(updates, name)).parameters["learning_rate"].default
    return None if default is inspect.Parameter.empty else default


def test_defaults_are_lasagnes():
    expected = {
        "adagrad": {"learning_rate": 1.0, "epsilon": 1e-6},
        "rmsprop": {"learning_rate": 1.0, "rho": 0.9, "epsilon": 1e-6},
        "adadelta": {"learning_rate": 1.0, "rho": 0.95, "epsilon": 1e-6},
        "adam": {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        "adamax": {"learning_rate": 0.002, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        "amsgrad": {"learning_rate": 0.001, "beta1": 0.9, "beta2": 0.999, "epsilon": 1e-8},
        "momentum": {"momentum": 0.9},
        "nesterov_momentum": {"momentum": 0.9},
        "apply_momentum": {"params": None, "momentum": 0.9},
        "apply_nesterov_momentum": {"params": None, "momentum": 0.9},
        "norm_constraint": {"norm_axes": None, "epsilon": 1e-7},
        "total_norm_constraint": {"epsilon": 1e-7, "return_norm": False},
    }
    for name, defaults in expected.items():
        params = inspect.signature(getattr(updates, name)).parameters
        assert {k: params[k].default for k in defaults} == defaults, name


def quartic(w, target):
    # non-quadratic, so the gradient's scale matters and the rules give different paths
    return pt.sum((w - target) ** 4 + 0.5 * (w - target) ** 2)


def quartic_grad(p, target):
    return 4 * (p - target) ** 3 + (p - target)


@pytest.mark.parametrize("shape", [(), (3, 2)], ids=["scalar", "matrix"])
@pytest.mark.parametrize("lr_kind", ["float", "shared"])
@pytest.mark.parametrize(
    "name,kwargs", CONFIGS, ids=[f"{n}-{i}" for i, (n, _) in enumerate(CONFIGS)]
)
def test_rule_matches_numpy_over_three_steps(name, kwargs, shape, lr_kind):
    rng = np.random.default_rng(len(name) + len(kwargs))
    start = np.asarray(rng.normal(size=shape))
    target = np.asarray(rng.normal(size=shape))
    w = pytensor.shared(start.copy(), name="w")
    kwargs = dict(kwargs)
    lr = kwargs.pop("learning_rate", default_learning_rate(name))
    lr_var = pytensor.shared(np.float64(lr), name="lr") if lr_kind == "shared" else lr
    ups = getattr(updates, name)(quartic(w, target), [w], learning_rate=lr_var, **kwargs)
    f = pytensor.function([], [], updates=ups)
    reference = numpy_rule(name, **kwargs)
    p = start.copy()
    for step in range(3):
        if lr_kind == "shared" and step == 2:
            lr = lr / 2  # the compiled function must read the shared learning rate each call
            lr_var.set_value(np.float64(lr))
        f()
        p = reference(p, quartic_grad(p, target), lr)
        np.testing.assert_allclose(w.get_value(), p, rtol=1e-10, atol=1e-13)
    assert not np.allclose(p, start)  # the rule moved the parameter


@pytest.mark.parametrize("name", RULES)
def test_rule_accepts_a_list_of_gradients(name):
    # passing gradients computed elsewhere: two parameters, only the given gradients count
    w1, w2 = pytensor.shared(np.array([1.0, -1.0])), pytensor.shared(np.array([[2.0]]))
    g1, g2 = pt.dvector("g1"), pt.dmatrix("g2")
    lr = default_learning_rate(name) or 0.1
    f = pytensor.function([g1, g2], [], updates=getattr(updates, name)([g1, g2], [w1, w2], lr))
    ref1, ref2 = numpy_rule(name), numpy_rule(name)
    p1, p2 = w1.get_value(), w2.get_value()
    rng = np.random.default_rng(5)
    for _ in range(3):
        a, b = rng.normal(size=2), rng.normal(size=(1, 1))
        f(a, b)
        p1, p2 = ref1(p1, a, lr), ref2(p2, b, lr)
        np.testing.assert_allclose(w1.get_value(), p1, rtol=1e-10)
        np.testing.assert_allclose(w2.get_value(), p2, rtol=1e-10)


@pytest.mark.parametrize("apply_name", ["apply_momentum", "apply_nesterov_momentum"])
def test_apply_momentum_to_a_subset_and_to_all(apply_name):
    apply = getattr(updates, apply_name)
    rule = "momentum" if apply_name == "apply_momentum" else "nesterov_momentum"
    a, b = pytensor.shared(np.array([1.0, 2.0])), pytensor.shared(np.array([-3.0]))
    loss = pt.sum(a**2) + pt.sum(b**2)
    base = updates.sgd(loss, [a, b], 0.1)
    only_a = apply(base, [a], momentum=0.7)
    assert len(base) == 2  # the input dict is not modified
    assert len(only_a) == 3 and only_a[b] is base[b]
    f = pytensor.function([], [], updates=only_a)
    ref_a, pa, pb = numpy_rule(rule, momentum=0.7), a.get_value(), b.get_value()
    for _ in range(3):
        f()
        pa, pb = ref_a(pa, 2 * pa, 0.1), pb - 0.1 * 2 * pb
        np.testing.assert_allclose(a.get_value(), pa)
        np.testing.assert_allclose(b.get_value(), pb)
    assert len(apply(updates.sgd(loss, [a, b], 0.1))) == 4  # params=None: every key


@pytest.mark.parametrize("name", RULES)
def test_float32_parameters_stay_float32(name):
    # floatX is float64 under the test configuration: Python-float hyper-parameters and a
    # float64 shared learning rate must not upcast the float32 updates.
    assert pytensor.config.floatX == "float64"
    start = np.array([[0.5, -1.0, 2.0]], dtype="float32")
    w = pytensor.shared(start.copy(), shape=(1, None), name="w")
    target = np.float32(0.25)
    lr = default_learning_rate(name) or 0.1
    lr_var = pytensor.shared(np.float64(lr))
    ups = getattr(updates, name)(quartic(w, target), [w], lr_var)
    for var, new in ups.items():
        assert isinstance(var, SharedVariable)
        assert var.dtype == "float32", (name, var)
        assert new.type == var.type, (name, var, new.type)
    f = pytensor.function([], [], updates=ups)
    reference, p = numpy_rule(name), start.astype("float64")
    for _ in range(3):
        f()
        p = reference(p, quartic_grad(p, 0.25), lr)
    value = w.get_value()
    assert value.dtype == np.float32
    np.testing.assert_allclose(value, p, rtol=2e-4, atol=1e-5)
    assert all(v.get_value().dtype == np.float32 for v in ups)


def test_accumulators_are_shared_variables_shaped_like_the_parameter():
    w = pytensor.shared(np.zeros((4, 3)), name="W")
    ups = updates.adam(pt.sum(w**2), [w])
    shapes = {v.name: v.get_value().shape for v in ups}
    assert shapes == {"W": (4, 3), "W.m": (4, 3), "W.v": (4, 3), "adam.t": ()}


def test_expression_params_are_rejected_with_a_hint():
    w = pytensor.shared(np.ones(2), name="log_w")
    with pytest.raises(ValueError, match="shared variables only.*get_all_params"):
        updates.adam(pt.sum(pt.exp(w)), [pt.exp(w)])


def test_gradient_list_length_is_checked():
    w = pytensor.shared(np.ones(2))
    with pytest.raises(ValueError, match="got 2 gradient expressions for 1 parameters"):
        updates.sgd([w, w], [w], 0.1)


# ---------------------------------------------------------------------------------------
# norm constraints
# ---------------------------------------------------------------------------------------


def numpy_norm_constraint(x, max_norm, axes, epsilon=1e-7):
    norms = np.sqrt(np.sum(x**2, axis=axes, keepdims=True))
    return x * np.minimum(norms, max_norm) / (epsilon + norms)


@given(
    seed=st.integers(0, 2**31 - 1),
    shape=st.sampled_from([(4, 5), (2, 3, 4), (3, 2, 2, 2), (2, 2, 1, 2, 3)]),
    max_norm=st.sampled_from([0.5, 2.0, 10.0]),
    explicit=st.booleans(),
)
def test_norm_constraint_matches_numpy(seed, shape, max_norm, explicit):
    x = np.random.default_rng(seed).normal(size=shape) * 2
    default_axes = (0,) if len(shape) == 2 else tuple(range(1, len(shape)))
    axes = (len(shape) - 1,) if explicit else default_axes
    v = pt.tensor("v", shape=(None,) * len(shape), dtype="float64")
    out = pytensor.function([v], updates.norm_constraint(v, max_norm, axes if explicit else None))(
        x
    )
    np.testing.assert_allclose(out, numpy_norm_constraint(x, max_norm, axes), rtol=1e-12)
    assert np.all(np.sqrt(np.sum(out**2, axis=axes)) <= max_norm * (1 + 1e-9))


def test_norm_constraint_float32_and_errors():
    w = pytensor.shared(np.ones((3, 2), dtype="float32"))
    out = updates.norm_constraint(w, 0.5)
    assert out.type == w.type
    np.testing.assert_allclose(out.eval(), numpy_norm_constraint(np.ones((3, 2)), 0.5, (0,)))
    with pytest.raises(ValueError, match="1 dimensions.*pass norm_axes"):
        updates.norm_constraint(pt.dvector(), 1.0)


def test_norm_constraint_on_an_update_keeps_weights_inside_the_ball():
    w = pytensor.shared(np.full((3, 2), 1.0))
    ups = updates.sgd(-pt.sum(w), [w], learning_rate=1.0)  # grows the weights
    ups[w] = updates.norm_constraint(ups[w], 2.0)
    pytensor.function([], [], updates=ups)()
    np.testing.assert_allclose(w.get_value(), numpy_norm_constraint(np.full((3, 2), 2.0), 2.0, 0))


@given(
    seed=st.integers(0, 2**31 - 1),
    n=st.integers(1, 4),
    max_norm=st.sampled_from([0.1, 1.0, 100.0]),
)
def test_total_norm_constraint_matches_numpy(seed, n, max_norm):
    rng = np.random.default_rng(seed)
    xs = [rng.normal(size=rng.integers(1, 4, size=i % 3)) for i in range(n)]
    variables = [
        pt.tensor(f"x{i}", shape=(None,) * x.ndim, dtype="float64") for i, x in enumerate(xs)
    ]
    scaled, norm = updates.total_norm_constraint(variables, max_norm, return_norm=True)
    outs = pytensor.function(variables, [*scaled, norm])(*xs)
    total = np.sqrt(sum(np.sum(x**2) for x in xs))
    np.testing.assert_allclose(outs[-1], total, rtol=1e-12)
    for out, x in zip(outs[:-1], xs):
        np.testing.assert_allclose(out, x * min(total, max_norm) / (1e-7 + total), rtol=1e-12)
    assert len(updates.total_norm_constraint(variables, max_norm)) == n


def test_total_norm_constraint_keeps_dtypes_and_rejects_empty():
    a, b = pt.fvector("a"), pt.fmatrix("b")
    scaled = updates.total_norm_constraint([a, b], 1.0)
    assert [s.dtype for s in scaled] == ["float32", "float32"]
    with pytest.raises(ValueError, match="empty"):
        updates.total_norm_constraint([], 1.0)


# ---------------------------------------------------------------------------------------
# end to end
# ---------------------------------------------------------------------------------------


def test_adam_trains_a_logistic_regression():
    from plasagne.layers import DenseLayer, InputLayer, get_all_params, get_output
    from plasagne.nonlinearities import sigmoid
    from plasagne.objectives import binary_accuracy, binary_crossentropy

    rng = np.random.default_rng(0)
    x = rng.normal(size=(200, 3))
    y = (x @ np.array([1.0, -2.0, 0.5]) > 0).astype("float64")
    l_in = InputLayer((None, 3))
    net = DenseLayer(l_in, 1, nonlinearity=sigmoid)
    t = pt.dvector("t")
    prediction = get_output(net)  # (N, 1): targets are aligned to a column
    loss = binary_crossentropy(prediction, t).mean()
    accuracy = binary_accuracy(prediction, t).mean()
    f = pytensor.function(
        [l_in.input_var, t],
        [loss, accuracy],
        updates=updates.adam(loss, get_all_params(net, trainable=True), learning_rate=0.1),
    )
    history = [f(x, y) for _ in range(100)]
    losses = [h[0] for h in history]
    assert losses[-1] < 0.3 * losses[0]
    assert all(b <= a + 1e-9 for a, b in zip(losses[:20], losses[1:21]))  # early steps descend
    assert history[-1][1] > 0.95
