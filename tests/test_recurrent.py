"""Recurrent layers against step-by-step numpy implementations written here."""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.gradient import verify_grad
from pytensor.graph.traversal import ancestors

from plasagne import init, nonlinearities
from plasagne.layers import (
    CustomRecurrentLayer,
    DenseLayer,
    Gate,
    GRULayer,
    InputLayer,
    LSTMLayer,
    RecurrentLayer,
    get_all_params,
    get_output,
    get_output_shape,
)

B, T, F, U = 2, 4, 3, 5


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def run_layer(layer, l_in, x, mask=None, l_mask=None):
    ins, vals = [l_in.input_var], [x]
    if l_mask is not None:
        ins.append(l_mask.input_var)
        vals.append(mask)
    return pytensor.function(ins, get_output(layer))(*vals)


def loop(step, x, h0, mask, backwards, only_final):
    """Generic numpy recurrence: step(x_t, state) -> new state (tuple); returns hidden."""
    steps = range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])
    state = h0
    outs = np.zeros((x.shape[0], x.shape[1], state[-1].shape[1]))
    for t in steps:
        new = step(x[:, t], state)
        if mask is not None:
            m = mask[:, t][:, None]
            new = tuple(m * n + (1 - m) * s for n, s in zip(new, state))
        state = new
        outs[:, t] = state[-1]
    if only_final:
        return state[-1]
    return outs


CONFIGS = [
    dict(backwards=b, only_return_final=f, unroll_scan=u, precompute_input=p, masked=m)
    for b, f, u, p, m in [
        (False, False, False, True, False),
        (True, False, False, False, True),
        (False, True, True, True, True),
        (True, True, False, True, False),
        (False, False, True, False, True),
    ]
]


def make_inputs(masked):
    rng = np.random.RandomState(0)
    x = rng.randn(B, T, F)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=float) if masked else None
    l_in = InputLayer((None, None if not masked else T, F))
    l_mask = InputLayer((None, T)) if masked else None
    return x, mask, l_in, l_mask


@pytest.mark.parametrize("cfg", CONFIGS)
def test_recurrent_layer_matches_numpy(cfg):
    cfg = dict(cfg)
    masked = cfg.pop("masked")
    x, mask, l_in, l_mask = make_inputs(masked)
    if cfg["unroll_scan"]:
        l_in = InputLayer((None, T, F))
    layer = RecurrentLayer(
        l_in,
        U,
        nonlinearity=nonlinearities.tanh,
        mask_input=l_mask,
        W_in_to_hid=init.Normal(0.5),
        W_hid_to_hid=init.Normal(0.5),
        b=init.Normal(0.5),
        hid_init=init.Normal(0.5),
        **cfg,
    )
    Wx, Wh, b = layer.W_in_to_hid.get_value(), layer.W_hid_to_hid.get_value(), layer.b.get_value()
    h0 = np.repeat(layer.hid_init.get_value(), B, axis=0)
    expected = loop(
        lambda xt, s: (np.tanh(xt @ Wx + s[0] @ Wh + b),),
        x,
        (h0,),
        mask,
        cfg["backwards"],
        cfg["only_return_final"],
    )
    out = run_layer(layer, l_in, x, mask, l_mask)
    np.testing.assert_allclose(out, expected, rtol=1e-10)
    assert (
        get_output_shape(
            layer, {l_in: x.shape} if not masked else {l_in: x.shape, l_mask: mask.shape}
        )
        == out.shape
    )


def lstm_reference(layer, x, h0, c0, mask, backwards, only_final, peepholes=True):
    p = {
        k: getattr(layer, k).get_value()
        for k in dir(layer)
        if k.startswith(("W_in_to_", "W_hid_to_", "b_", "W_cell_to_"))
    }

    def step(xt, state):
        c, h = state
        g = {
            n: xt @ p[f"W_in_to_{n}"] + h @ p[f"W_hid_to_{n}"] + p[f"b_{n}"]
            for n in ("ingate", "forgetgate", "cell", "outgate")
        }
        i = sigmoid(g["ingate"] + (c * p["W_cell_to_ingate"] if peepholes else 0))
        f = sigmoid(g["forgetgate"] + (c * p["W_cell_to_forgetgate"] if peepholes else 0))
        c_new = f * c + i * np.tanh(g["cell"])
        o = sigmoid(g["outgate"] + (c_new * p["W_cell_to_outgate"] if peepholes else 0))
        return c_new, o * np.tanh(c_new)

    return loop(step, x, (c0, h0), mask, backwards, only_final)


@pytest.mark.parametrize("cfg", CONFIGS)
@pytest.mark.parametrize("peepholes", [True, False])
def test_lstm_matches_numpy(cfg, peepholes):
    cfg = dict(cfg)
    masked = cfg.pop("masked")
    x, mask, l_in, l_mask = make_inputs(masked)
    if cfg["unroll_scan"]:
        l_in = InputLayer((None, T, F))
    layer = LSTMLayer(
        l_in,
        U,
        mask_input=l_mask,
        peepholes=peepholes,
        forgetgate=Gate(b=init.Constant(1.0)),
        hid_init=init.Normal(0.3),
        cell_init=init.Normal(0.3),
        learn_init=True,
        **cfg,
    )
    h0 = np.repeat(layer.hid_init.get_value(), B, 0)
    c0 = np.repeat(layer.cell_init.get_value(), B, 0)
    expected = lstm_reference(
        layer, x, h0, c0, mask, cfg["backwards"], cfg["only_return_final"], peepholes
    )
    np.testing.assert_allclose(run_layer(layer, l_in, x, mask, l_mask), expected, rtol=1e-10)
    assert layer.hid_init in get_all_params(layer, trainable=True)


@pytest.mark.parametrize("cfg", CONFIGS)
def test_gru_matches_numpy(cfg):
    cfg = dict(cfg)
    masked = cfg.pop("masked")
    x, mask, l_in, l_mask = make_inputs(masked)
    if cfg["unroll_scan"]:
        l_in = InputLayer((None, T, F))
    layer = GRULayer(l_in, U, mask_input=l_mask, hid_init=init.Normal(0.3), **cfg)
    p = {
        k: getattr(layer, k).get_value()
        for k in dir(layer)
        if k.startswith(("W_in_to_", "W_hid_to_", "b_"))
    }

    def step(xt, state):
        (h,) = state
        r = sigmoid(xt @ p["W_in_to_resetgate"] + p["b_resetgate"] + h @ p["W_hid_to_resetgate"])
        u = sigmoid(xt @ p["W_in_to_updategate"] + p["b_updategate"] + h @ p["W_hid_to_updategate"])
        c = np.tanh(
            xt @ p["W_in_to_hidden_update"]
            + p["b_hidden_update"]
            + r * (h @ p["W_hid_to_hidden_update"])
        )
        return ((1 - u) * h + u * c,)

    h0 = np.repeat(layer.hid_init.get_value(), B, 0)
    expected = loop(step, x, (h0,), mask, cfg["backwards"], cfg["only_return_final"])
    np.testing.assert_allclose(run_layer(layer, l_in, x, mask, l_mask), expected, rtol=1e-10)


def test_initial_states_as_layers_and_expressions():
    x = np.random.randn(B, T, F)
    l_in = InputLayer((None, T, F))
    l_h0 = InputLayer((None, U))
    layer = LSTMLayer(l_in, U, hid_init=l_h0, cell_init=pt.zeros((1, U)) + 0.5)
    h0 = np.random.randn(B, U)
    out = pytensor.function([l_in.input_var, l_h0.input_var], get_output(layer))(x, h0)
    c0 = np.full((B, U), 0.5)
    expected = lstm_reference(layer, x, h0, c0, None, False, False)
    np.testing.assert_allclose(out, expected, rtol=1e-10)


def test_custom_recurrent_layer_with_dense_parts():
    x = np.random.randn(B, T, F)
    l_in = InputLayer((None, T, F))
    in_hid = DenseLayer(InputLayer((None, F)), U, nonlinearity=None)
    hid_hid = DenseLayer(InputLayer((None, U)), U, nonlinearity=None, b=None)
    layer = CustomRecurrentLayer(l_in, in_hid, hid_hid, nonlinearity=nonlinearities.tanh)
    Wx, b, Wh = in_hid.W.get_value(), in_hid.b.get_value(), hid_hid.W.get_value()
    expected = loop(
        lambda xt, s: (np.tanh(xt @ Wx + b + s[0] @ Wh),),
        x,
        (np.zeros((B, U)),),
        None,
        False,
        False,
    )
    np.testing.assert_allclose(run_layer(layer, l_in, x), expected, rtol=1e-10)
    assert set(get_all_params(layer, trainable=True)) == {in_hid.W, in_hid.b, hid_hid.W}
    with pytest.raises(ValueError, match="units"):
        CustomRecurrentLayer(l_in, DenseLayer(InputLayer((None, F)), 3), hid_hid)


@settings(max_examples=8)
@given(
    batch=st.integers(1, 3),
    steps=st.integers(1, 4),
    units=st.integers(1, 3),
    final=st.booleans(),
    kind=st.sampled_from(["rnn", "lstm", "gru"]),
)
def test_shapes_match_outputs(batch, steps, units, final, kind):
    l_in = InputLayer((None, None, 2))
    cls = {"rnn": RecurrentLayer, "lstm": LSTMLayer, "gru": GRULayer}[kind]
    layer = cls(l_in, units, only_return_final=final)
    out = pytensor.function([l_in.input_var], get_output(layer))(np.random.randn(batch, steps, 2))
    assert get_output_shape(layer, (batch, steps, 2)) == out.shape


def test_gradients():
    rng = np.random.RandomState(0)
    x = rng.randn(2, 3, 2)
    for cls in (RecurrentLayer, LSTMLayer, GRULayer):
        layer = cls(InputLayer((None, 3, 2)), 2)
        verify_grad(lambda v, layer=layer: layer.get_output_for([v]).sum(), [x], rng=rng)


def test_grad_clipping_and_gradient_steps():
    x = np.random.randn(B, T, F)
    l_in = InputLayer((None, T, F))
    plain = RecurrentLayer(
        l_in,
        U,
        W_in_to_hid=init.Normal(1.0),
        W_hid_to_hid=init.Normal(1.0),
        nonlinearity=nonlinearities.tanh,
        only_return_final=True,
    )
    kw = dict(
        W_in_to_hid=plain.W_in_to_hid,
        W_hid_to_hid=plain.W_hid_to_hid,
        nonlinearity=nonlinearities.tanh,
        only_return_final=True,
    )
    clipped = RecurrentLayer(l_in, U, grad_clipping=1e-3, **kw)
    truncated = RecurrentLayer(l_in, U, gradient_steps=1, **kw)

    def grads(layer):
        out = get_output(layer)
        return pytensor.function(
            [l_in.input_var], [out, *pytensor.grad(out.sum(), [plain.W_hid_to_hid, l_in.input_var])]
        )(x)

    o_plain, g_plain, gx_plain = grads(plain)
    o_clip, g_clip, _ = grads(clipped)
    o_trunc, _, gx_trunc = grads(truncated)
    np.testing.assert_allclose(o_clip, o_plain)
    np.testing.assert_allclose(o_trunc, o_plain)
    assert np.abs(g_clip).max() < np.abs(g_plain).max()
    # truncated after one step: only the last time step's input gets a gradient
    assert np.allclose(gx_trunc[:, :-1], 0) and not np.allclose(gx_trunc[:, -1], 0)
    assert not np.allclose(gx_plain[:, :-1], 0)


def test_pymc_random_variable_as_recurrent_weight():
    l_in = InputLayer((None, T, F))
    with pm.Model() as model:
        w = pm.Normal("rnn.W_in_to_hid", 0, 1, shape=(F, U))
        layer = RecurrentLayer(l_in, U, W_in_to_hid=w, name="rnn")
    assert "rnn.W_in_to_hid" in model.named_vars
    assert all(p is not w for p in get_all_params(layer))
    assert w in set(ancestors([get_output(layer)]))


def test_bayesian_gru_with_named_priors_fits():
    from plasagne.pymc_bridge import GaussWeights, build_model, fit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3, 1))
    y = X[:, :, 0].sum(1)

    def build(prior):
        gate = Gate(W_in=prior, W_hid=prior, b=prior, W_cell=None)
        rnn = GRULayer(InputLayer((None, 3, 1)), 4, resetgate=gate, updategate=gate,
                       hidden_update=Gate(W_in=prior, W_hid=prior, b=prior, W_cell=None,
                                          nonlinearity=nonlinearities.tanh),
                       only_return_final=True, name="gru")
        return DenseLayer(rnn, 1, W=prior, b=prior, nonlinearity=None, name="out")

    bnet = build_model(build, X, y, "normal", priors=GaussWeights(1.0), batch_size=20)
    names = set(bnet.model.named_vars)
    assert {"gru.W_in_to_resetgate", "gru.W_hid_to_updategate", "gru.b_hidden_update", "out.W"} <= names
    result = fit(bnet, X, y, n=150, learning_rate=0.05, progressbar=False, random_seed=0)
    assert np.isfinite(result.losses).all()
    assert result.losses[-20:].mean() < result.losses[:20].mean()
