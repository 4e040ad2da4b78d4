"""Recurrent layers against step-by-step numpy implementations written here.

Every forward value is compared with a plain numpy loop over time; gradients are compared
with a hand-written numpy back-propagation through time (truncation and clipping included)
or checked with ``verify_grad``. Sequences are short and sizes tiny: scan compiles slowly
under FAST_COMPILE.
"""

import numpy as np
import pymc as pm
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.gradient import verify_grad
from pytensor.graph.replace import clone_replace
from pytensor.graph.traversal import ancestors

from plasagne import init, nonlinearities
from plasagne.layers import (
    Conv2DLayer,
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
from plasagne.utils import ParameterError

B, T, F, U = 2, 4, 3, 5


def sigmoid(x):
    return 1 / (1 + np.exp(-x))


def run_layer(layer, l_in, x, mask=None, l_mask=None, extra=()):
    ins, vals = [l_in.input_var], [x]
    if l_mask is not None:
        ins.append(l_mask.input_var)
        vals.append(mask)
    for lay, val in extra:
        ins.append(lay.input_var)
        vals.append(val)
    return pytensor.function(ins, get_output(layer))(*vals)


def loop(step, x, state, mask, backwards, only_final):
    """Numpy recurrence: ``step(x_t, state) -> new state tuple``; returns the last element.

    Masked steps keep the previous state; the output stays in input time order.
    """
    steps = range(x.shape[1] - 1, -1, -1) if backwards else range(x.shape[1])
    outs = np.zeros((x.shape[0], x.shape[1]) + state[-1].shape[1:])
    for t in steps:
        new = step(x[:, t], state)
        if mask is not None:
            m = mask[:, t].reshape((-1,) + (1,) * (state[-1].ndim - 1))
            new = tuple(np.where(m > 0, n, s) for n, s in zip(new, state))
        state = new
        outs[:, t] = state[-1]
    return state[-1] if only_final else outs


CONFIGS = [
    dict(backwards=b, only_return_final=f, unroll_scan=u, precompute_input=p, masked=m)
    for b, f, u, p, m in [
        (False, False, False, True, False),
        (True, False, False, False, True),
        (False, True, True, True, True),
        (True, True, False, True, False),
        (False, False, True, False, True),
        (True, False, True, True, False),
        (False, True, False, False, True),
    ]
]
CONFIG_IDS = ["-".join(k for k, v in c.items() if v) or "plain" for c in CONFIGS]


def make_inputs(cfg, features=(F,)):
    """Random input, a mask with a short second sequence, and the input/mask layers."""
    cfg = dict(cfg)
    masked = cfg.pop("masked")
    rng = np.random.RandomState(0)
    x = rng.randn(B, T, *features)
    mask = np.array([[1, 1, 1, 1], [1, 1, 0, 0]], dtype=float) if masked else None
    # unroll_scan needs the length; otherwise leave it free
    l_in = InputLayer((None, T if cfg["unroll_scan"] else None, *features))
    l_mask = InputLayer((None, T)) if masked else None
    return cfg, x, mask, l_in, l_mask


def rnn_reference(Wx, Wh, b, h0, x, mask, backwards, only_final, f=np.tanh):
    return loop(lambda xt, s: (f(xt @ Wx + s[0] @ Wh + b),), x, (h0,), mask, backwards, only_final)


def lstm_reference(layer, x, h0, c0, mask, backwards, only_final, peepholes=True, values=None):
    """``values`` overrides parameters that have no value of their own (random variables)."""
    values = values or {}
    p = {
        k: values[k] if k in values else getattr(layer, k).get_value()
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


def gru_reference(layer, x, h0, mask, backwards, only_final):
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

    return loop(step, x, (h0,), mask, backwards, only_final)


# --------------------------------------------------------------------------- forward values


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_recurrent_layer_matches_numpy(cfg):
    cfg, x, mask, l_in, l_mask = make_inputs(cfg)
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
    expected = rnn_reference(Wx, Wh, b, h0, x, mask, cfg["backwards"], cfg["only_return_final"])
    out = run_layer(layer, l_in, x, mask, l_mask)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    shapes = {l_in: x.shape} if mask is None else {l_in: x.shape, l_mask: mask.shape}
    assert get_output_shape(layer, shapes) == out.shape


def test_default_rectify_and_no_bias():
    x = np.random.RandomState(1).randn(B, T, F)
    l_in = InputLayer((None, None, F))
    layer = RecurrentLayer(l_in, U, b=None)
    assert layer.b is None
    Wx, Wh = layer.W_in_to_hid.get_value(), layer.W_hid_to_hid.get_value()
    expected = rnn_reference(
        Wx, Wh, 0.0, np.zeros((B, U)), x, None, False, False, f=lambda a: np.maximum(a, 0)
    )
    np.testing.assert_allclose(run_layer(layer, l_in, x), expected, rtol=1e-10)


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
@pytest.mark.parametrize("peepholes", [True, False])
def test_lstm_matches_numpy(cfg, peepholes):
    cfg, x, mask, l_in, l_mask = make_inputs(cfg)
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
    assert np.all(layer.b_forgetgate.get_value() == 1.0)
    assert hasattr(layer, "W_cell_to_ingate") == peepholes
    h0 = np.repeat(layer.hid_init.get_value(), B, 0)
    c0 = np.repeat(layer.cell_init.get_value(), B, 0)
    expected = lstm_reference(
        layer, x, h0, c0, mask, cfg["backwards"], cfg["only_return_final"], peepholes
    )
    out = run_layer(layer, l_in, x, mask, l_mask)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)
    shapes = {l_in: x.shape} if mask is None else {l_in: x.shape, l_mask: mask.shape}
    assert get_output_shape(layer, shapes) == out.shape


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_gru_matches_numpy(cfg):
    cfg, x, mask, l_in, l_mask = make_inputs(cfg)
    layer = GRULayer(l_in, U, mask_input=l_mask, hid_init=init.Normal(0.3), **cfg)
    h0 = np.repeat(layer.hid_init.get_value(), B, 0)
    expected = gru_reference(layer, x, h0, mask, cfg["backwards"], cfg["only_return_final"])
    out = run_layer(layer, l_in, x, mask, l_mask)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


def test_gate_nonlinearities_are_used():
    """Non-default gate nonlinearities (None = linear) and layer nonlinearity."""
    x = np.random.RandomState(2).randn(B, T, F) * 0.3
    l_in = InputLayer((None, T, F))
    layer = LSTMLayer(
        l_in,
        U,
        cell=Gate(W_cell=None, nonlinearity=None),
        outgate=Gate(nonlinearity=nonlinearities.rectify),
        nonlinearity=None,
        peepholes=False,
    )
    p = {k: getattr(layer, k).get_value() for k in dir(layer) if k.startswith(("W_", "b_"))}
    gates = ("ingate", "forgetgate", "cell", "outgate")

    def step(xt, state):
        c, h = state
        g = {n: xt @ p[f"W_in_to_{n}"] + h @ p[f"W_hid_to_{n}"] + p[f"b_{n}"] for n in gates}
        c_new = sigmoid(g["forgetgate"]) * c + sigmoid(g["ingate"]) * g["cell"]
        return c_new, np.maximum(g["outgate"], 0) * c_new

    zeros = np.zeros((B, U))
    expected = loop(step, x, (zeros, zeros), None, False, False)
    np.testing.assert_allclose(run_layer(layer, l_in, x), expected, rtol=1e-10, atol=1e-12)


def test_multidimensional_features_are_flattened():
    x = np.random.RandomState(3).randn(B, T, 2, 3)
    l_in = InputLayer((None, T, 2, 3))
    for cls in (RecurrentLayer, LSTMLayer, GRULayer):
        layer = cls(l_in, U)
        flat = InputLayer((None, T, 6))
        twin = cls(flat, U, **{k: v for k, v in _params_of(layer).items()})
        np.testing.assert_allclose(
            run_layer(layer, l_in, x), run_layer(twin, flat, x.reshape(B, T, 6)), rtol=1e-12
        )


def _params_of(layer):
    """Constructor arguments that make a twin layer share ``layer``'s parameters."""
    if isinstance(layer, RecurrentLayer):
        return dict(W_in_to_hid=layer.W_in_to_hid, W_hid_to_hid=layer.W_hid_to_hid, b=layer.b)
    names = [
        g
        for g in (
            "ingate",
            "forgetgate",
            "cell",
            "outgate",
            "resetgate",
            "updategate",
            "hidden_update",
        )
        if hasattr(layer, f"b_{g}")
    ]
    out = {}
    for g in names:
        W_cell = getattr(layer, f"W_cell_to_{g}", None)
        out[g] = Gate(
            W_in=getattr(layer, f"W_in_to_{g}"),
            W_hid=getattr(layer, f"W_hid_to_{g}"),
            W_cell=W_cell,
            b=getattr(layer, f"b_{g}"),
            nonlinearity=getattr(layer, f"nonlinearity_{g}"),
        )
    return out


# ------------------------------------------------------------------ custom recurrent layers


@pytest.mark.parametrize("cfg", CONFIGS, ids=CONFIG_IDS)
def test_custom_recurrent_layer_with_dense_parts(cfg):
    cfg, x, mask, l_in, l_mask = make_inputs(cfg)
    in_hid = DenseLayer(InputLayer((None, F)), U, nonlinearity=None, b=init.Normal(0.5))
    # the recurrent weights are an expression of a shared variable: exp(log_w) - 1
    log_w = pytensor.shared(np.random.RandomState(4).randn(U, U) * 0.3, name="log_w")
    hid_hid = DenseLayer(
        InputLayer((None, U)), U, W=pt.exp(log_w) - 1, b=init.Normal(0.5), nonlinearity=None
    )
    layer = CustomRecurrentLayer(
        l_in, in_hid, hid_hid, nonlinearity=nonlinearities.tanh, mask_input=l_mask, **cfg
    )
    assert layer.num_units == U
    Wx, bx = in_hid.W.get_value(), in_hid.b.get_value()
    Wh, bh = np.exp(log_w.get_value()) - 1, hid_hid.b.get_value()
    expected = rnn_reference(
        Wx, Wh, bx + bh, np.zeros((B, U)), x, mask, cfg["backwards"], cfg["only_return_final"]
    )
    np.testing.assert_allclose(run_layer(layer, l_in, x, mask, l_mask), expected, rtol=1e-10)
    assert get_all_params(layer, trainable=True) == [in_hid.W, in_hid.b, log_w, hid_hid.b]
    # gradients reach the shared variable behind the expression
    g = pytensor.grad(get_output(layer).sum(), log_w)
    ins = [l_in.input_var] + ([l_mask.input_var] if mask is not None else [])
    vals = [x] + ([mask] if mask is not None else [])
    assert np.abs(pytensor.function(ins, g)(*vals)).sum() > 0


def correlate_same(x, W, b):
    """Numpy 'same' cross-correlation: x (batch, cin, r, c), W (cout, cin, k, k), b (cout,)."""
    k = W.shape[-1]
    p = k // 2
    xp = np.pad(x, ((0, 0), (0, 0), (p, p), (p, p)))
    out = np.zeros((x.shape[0], W.shape[0]) + x.shape[2:])
    for i in range(x.shape[2]):
        for j in range(x.shape[3]):
            patch = xp[:, :, i : i + k, j : j + k]
            out[:, :, i, j] = np.einsum("bcuv,ocuv->bo", patch, W)
    return out + b[None, :, None, None]


@pytest.mark.parametrize("precompute_input", [True, False])
@pytest.mark.parametrize("backwards", [False, True])
def test_convolutional_custom_recurrent_layer(precompute_input, backwards):
    rng = np.random.RandomState(5)
    x = rng.randn(B, 3, 1, 4, 4)
    mask = np.array([[1, 1, 1], [1, 0, 1]], dtype=float)
    l_in = InputLayer((None, 3, 1, 4, 4))
    l_mask = InputLayer((None, 3))
    conv = dict(
        filter_size=3,
        pad="same",
        nonlinearity=None,
        flip_filters=False,
        W=init.Normal(0.3),
        b=init.Normal(0.3),
    )
    in_hid = Conv2DLayer(InputLayer((None, 1, 4, 4)), 2, **conv)
    hid_hid = Conv2DLayer(InputLayer((None, 2, 4, 4)), 2, **conv)
    layer = CustomRecurrentLayer(
        l_in,
        in_hid,
        hid_hid,
        nonlinearity=nonlinearities.tanh,
        hid_init=init.Normal(0.5),
        learn_init=True,
        mask_input=l_mask,
        backwards=backwards,
        precompute_input=precompute_input,
    )
    assert layer.output_shape == (None, 3, 2, 4, 4)
    assert layer.hid_init.get_value().shape == (1, 2, 4, 4)
    assert layer.hid_init in get_all_params(layer, trainable=True)
    Wi, bi = in_hid.W.get_value(), in_hid.b.get_value()
    Wh, bh = hid_hid.W.get_value(), hid_hid.b.get_value()
    h0 = np.repeat(layer.hid_init.get_value(), B, axis=0)
    expected = loop(
        lambda xt, s: (np.tanh(correlate_same(xt, Wi, bi) + correlate_same(s[0], Wh, bh)),),
        x,
        (h0,),
        mask,
        backwards,
        False,
    )
    out = run_layer(layer, l_in, x, mask, l_mask)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)


# -------------------------------------------------------------------------- initial states


@pytest.mark.parametrize("kind", ["rnn", "lstm", "gru"])
@pytest.mark.parametrize("form", ["array", "initializer", "learned", "expression", "layer"])
def test_initial_state_forms(kind, form):
    rng = np.random.RandomState(6)
    x = rng.randn(B, T, F)
    l_in = InputLayer((None, None, F))
    h_val, c_val = rng.randn(1, U), rng.randn(1, U)
    extra, given = [], {}
    if form == "array":
        specs = {"hid_init": h_val, "cell_init": c_val}
    elif form in ("initializer", "learned"):
        specs = {"hid_init": init.Constant(0.7), "cell_init": init.Constant(-0.4)}
        h_val, c_val = np.full((1, U), 0.7), np.full((1, U), -0.4)
    elif form == "expression":
        s = pytensor.shared(1.5)
        specs = {"hid_init": pt.constant(h_val) * s, "cell_init": pt.constant(c_val) * s}
        h_val, c_val = h_val * 1.5, c_val * 1.5
    else:
        l_h, l_c = InputLayer((None, U)), InputLayer((None, U))
        specs = {"hid_init": l_h, "cell_init": l_c}
        h_val, c_val = rng.randn(B, U), rng.randn(B, U)
        given = {"hid_init": (l_h, h_val), "cell_init": (l_c, c_val)}
    learn = form == "learned"
    if kind == "rnn":
        layer = RecurrentLayer(
            l_in, U, nonlinearity=nonlinearities.tanh, hid_init=specs["hid_init"], learn_init=learn
        )
    elif kind == "gru":
        layer = GRULayer(l_in, U, hid_init=specs["hid_init"], learn_init=learn)
    else:
        layer = LSTMLayer(l_in, U, learn_init=learn, **specs)
    if kind != "lstm":
        given.pop("cell_init", None)
    extra = list(given.values())
    out = run_layer(layer, l_in, x, extra=extra)

    h0 = np.broadcast_to(h_val, (B, U))
    c0 = np.broadcast_to(c_val, (B, U))
    if kind == "rnn":
        expected = rnn_reference(
            layer.W_in_to_hid.get_value(),
            layer.W_hid_to_hid.get_value(),
            layer.b.get_value(),
            h0,
            x,
            None,
            False,
            False,
        )
    elif kind == "gru":
        expected = gru_reference(layer, x, h0, None, False, False)
    else:
        expected = lstm_reference(layer, x, h0, c0, None, False, False)
    np.testing.assert_allclose(out, expected, rtol=1e-10, atol=1e-12)

    # bookkeeping: layers are extra incomings (Lasagne's order), values are params
    if form == "layer":
        assert layer.hid_init is specs["hid_init"]
        assert layer.input_layers[layer.hid_init_incoming_index] is specs["hid_init"]
        if kind == "lstm":
            assert layer.input_layers[layer.cell_init_incoming_index] is specs["cell_init"]
            assert layer.cell_init_incoming_index == layer.hid_init_incoming_index + 1
    else:
        assert layer.hid_init_incoming_index == -1
        trainable = get_all_params(layer, trainable=True)
        every = get_all_params(layer, unwrap_shared=False)
        assert layer.hid_init in every
        assert (layer.hid_init in trainable) == learn
        if form == "expression":
            assert layer.hid_init is specs["hid_init"]


def test_learned_initial_state_gets_gradient():
    x = np.random.RandomState(7).randn(B, 2, F)
    l_in = InputLayer((None, 2, F))
    layer = GRULayer(l_in, U, learn_init=True, only_return_final=True)
    grads = pytensor.grad(get_output(layer).sum(), get_all_params(layer, trainable=True))
    g_h0 = pytensor.function([l_in.input_var], grads[-1])(x)
    assert g_h0.shape == (1, U) and np.abs(g_h0).sum() > 0


# ------------------------------------------------------------------------------ shapes


@settings(max_examples=12)
@given(
    kind=st.sampled_from(["rnn", "lstm", "gru", "custom"]),
    batch=st.integers(1, 3),
    steps=st.integers(1, 4),
    units=st.integers(1, 3),
    final=st.booleans(),
    backwards=st.booleans(),
    masked=st.booleans(),
    unroll=st.booleans(),
    precompute=st.booleans(),
)
def test_shapes_match_outputs(
    kind, batch, steps, units, final, backwards, masked, unroll, precompute
):
    l_in = InputLayer((None, steps if unroll else None, 2))
    l_mask = InputLayer((None, steps if unroll else None)) if masked else None
    kw = dict(
        only_return_final=final,
        backwards=backwards,
        mask_input=l_mask,
        unroll_scan=unroll,
        precompute_input=precompute,
    )
    if kind == "custom":
        layer = CustomRecurrentLayer(
            l_in,
            DenseLayer(InputLayer((None, 2)), units),
            DenseLayer(InputLayer((None, units)), units),
            **kw,
        )
    else:
        cls = {"rnn": RecurrentLayer, "lstm": LSTMLayer, "gru": GRULayer}[kind]
        layer = cls(l_in, units, **kw)
    rng = np.random.RandomState(0)
    x = rng.randn(batch, steps, 2)
    mask = (rng.rand(batch, steps) > 0.3).astype(float)
    out = run_layer(layer, l_in, x, mask, l_mask)
    shapes = {l_in: x.shape} if not masked else {l_in: x.shape, l_mask: mask.shape}
    assert get_output_shape(layer, shapes) == out.shape
    assert out.shape == ((batch, units) if final else (batch, steps, units))
    assert np.all(np.isfinite(out))


# ---------------------------------------------------------------------------- gradients


def _build(kind, l_in, W_hid, **kw):
    """A layer whose recurrent weights are the given expression (for verify_grad)."""
    if kind == "rnn":
        return RecurrentLayer(l_in, 2, W_hid_to_hid=W_hid, nonlinearity=nonlinearities.tanh, **kw)
    gate = Gate(W_hid=W_hid, W_cell=init.Normal(0.5))
    if kind == "lstm":
        return LSTMLayer(l_in, 2, ingate=gate, forgetgate=gate, outgate=gate, **kw)
    return GRULayer(l_in, 2, resetgate=Gate(W_hid=W_hid, W_cell=None), **kw)


@pytest.mark.parametrize(
    "kind,kw",
    [
        ("rnn", {}),
        ("lstm", {"backwards": True}),
        ("gru", {"precompute_input": False, "only_return_final": True}),
        ("lstm", {"unroll_scan": True, "only_return_final": True}),
    ],
)
def test_verify_grad(kind, kw):
    rng = np.random.RandomState(8)
    x = rng.randn(2, 3, 2)
    W = rng.randn(2, 2) * 0.5
    l_in = InputLayer((None, 3, 2))
    mask = np.array([[1, 1, 0], [1, 1, 1]], dtype=float)
    l_mask = InputLayer((None, 3))

    def fun(xv, Wv):
        layer = _build(kind, l_in, Wv, mask_input=l_mask, **kw)
        out = get_output(layer, {l_in: xv, l_mask: pt.constant(mask)})
        return (out * np.array([1.0, -0.5])).sum()

    verify_grad(fun, [x, W], rng=rng, abs_tol=1e-6, rel_tol=1e-6)


def rnn_bptt(Wx, Wh, b, h0, x, G, steps=-1, clip=0.0):
    """Numpy gradients of ``sum(G * H)`` for a tanh RNN (H: all states, time-major order).

    ``steps`` truncates the backward pass to the last ``steps`` steps (pytensor's
    ``truncate_gradient``: output gradients of earlier steps are dropped too), ``clip``
    clips the gradient of each step's pre-activation.
    """
    n = x.shape[1]
    hs = [h0]
    for t in range(n):
        hs.append(np.tanh(x[:, t] @ Wx + hs[-1] @ Wh + b))
    gWx, gWh, gb = np.zeros_like(Wx), np.zeros_like(Wh), np.zeros_like(b)
    gx, carry = np.zeros_like(x), np.zeros_like(h0)
    first = 0 if steps == -1 else max(0, n - steps)
    for t in range(n - 1, first - 1, -1):
        da = (G[:, t] + carry) * (1 - hs[t + 1] ** 2)
        if clip:
            da = np.clip(da, -clip, clip)
        gWx += x[:, t].T @ da
        gWh += hs[t].T @ da
        gb += da.sum(0)
        gx[:, t] = da @ Wx.T
        carry = da @ Wh.T
    gh0 = carry if first == 0 else np.zeros_like(h0)
    return gWx, gWh, gb, gx, gh0


@pytest.mark.parametrize("steps", [-1, 1, 2])
@pytest.mark.parametrize("clip", [0.0, 0.05])
@pytest.mark.parametrize("final", [False, True])
def test_rnn_gradients_match_numpy_bptt(steps, clip, final):
    rng = np.random.RandomState(9)
    x = rng.randn(B, T, F)
    l_in = InputLayer((None, T, F))
    l_h0 = InputLayer((None, U))
    layer = RecurrentLayer(
        l_in,
        U,
        nonlinearity=nonlinearities.tanh,
        W_in_to_hid=init.Normal(0.8),
        W_hid_to_hid=init.Normal(0.8),
        b=init.Normal(0.5),
        hid_init=l_h0,
        gradient_steps=steps,
        grad_clipping=clip,
        only_return_final=final,
    )
    h0 = rng.randn(B, U)
    G = rng.randn(B, T, U)
    if final:
        G[:, :-1] = 0
    out = get_output(layer)
    weights = pt.constant(G[:, -1] if final else G)
    wrt = [layer.W_in_to_hid, layer.W_hid_to_hid, layer.b, l_in.input_var, l_h0.input_var]
    fn = pytensor.function(
        [l_in.input_var, l_h0.input_var], [out, *pytensor.grad((out * weights).sum(), wrt)]
    )
    got = fn(x, h0)
    Wx, Wh, b = layer.W_in_to_hid.get_value(), layer.W_hid_to_hid.get_value(), layer.b.get_value()
    expected_out = rnn_reference(Wx, Wh, b, h0, x, None, False, final)
    np.testing.assert_allclose(got[0], expected_out, rtol=1e-10)
    for g, e in zip(got[1:], rnn_bptt(Wx, Wh, b, h0, x, G, steps, clip)):
        np.testing.assert_allclose(g, e, rtol=1e-8, atol=1e-12)


@pytest.mark.parametrize("kind", ["lstm", "gru"])
def test_gated_grad_clipping_and_gradient_steps(kind):
    rng = np.random.RandomState(10)
    x = rng.randn(B, T, F) * 3
    l_in = InputLayer((None, T, F))
    cls = LSTMLayer if kind == "lstm" else GRULayer
    plain = cls(l_in, U, only_return_final=True)
    shared = _params_of(plain)
    c = 1e-4
    clipped = cls(l_in, U, grad_clipping=c, only_return_final=True, **shared)
    truncated = cls(l_in, U, gradient_steps=1, only_return_final=True, **shared)
    W_in = getattr(plain, "W_in_to_ingate" if kind == "lstm" else "W_in_to_updategate")

    def run(layer):
        out = get_output(layer)
        return pytensor.function(
            [l_in.input_var], [out, *pytensor.grad(out.sum(), [W_in, l_in.input_var])]
        )(x)

    o_plain, gW_plain, gx_plain = run(plain)
    o_clip, gW_clip, _ = run(clipped)
    o_trunc, _, gx_trunc = run(truncated)
    # forward values are unchanged
    np.testing.assert_allclose(o_clip, o_plain, rtol=1e-12)
    np.testing.assert_allclose(o_trunc, o_plain, rtol=1e-12)
    # every step's gradient w.r.t. the input pre-activations is at most c, so
    # |dL/dW_in[i, j]| <= c * sum over batch and time of |x[..., i]|
    bound = c * np.abs(x).sum(axis=(0, 1))[:, None]
    assert np.all(np.abs(gW_clip) <= bound + 1e-15)
    assert np.any(np.abs(gW_plain) > bound)
    # truncated after one step: only the last step's input receives a gradient
    assert np.allclose(gx_trunc[:, :-1], 0) and not np.allclose(gx_trunc[:, -1], 0)
    assert not np.allclose(gx_plain[:, :-1], 0)


def test_custom_layer_grad_clipping_and_truncation_compile():
    rng = np.random.RandomState(11)
    x = rng.randn(B, T, F)
    l_in = InputLayer((None, T, F))
    in_hid = DenseLayer(InputLayer((None, F)), U, nonlinearity=None)
    hid_hid = DenseLayer(InputLayer((None, U)), U, nonlinearity=None)
    plain = CustomRecurrentLayer(l_in, in_hid, hid_hid, only_return_final=True)
    other = CustomRecurrentLayer(
        l_in,
        in_hid,
        hid_hid,
        only_return_final=True,
        grad_clipping=0.1,
        gradient_steps=2,
        precompute_input=False,
    )
    outs = [get_output(plain), get_output(other)]
    g = pytensor.grad(outs[1].sum(), l_in.input_var)
    a, b_, gx = pytensor.function([l_in.input_var], [*outs, g])(x)
    np.testing.assert_allclose(a, b_, rtol=1e-12)
    assert np.allclose(gx[:, :-2], 0)


# ------------------------------------------------------------------------- Bayesian use


def test_pymc_random_variable_as_recurrent_weight():
    l_in = InputLayer((None, T, F))
    with pm.Model() as model:
        w = pm.Normal("rnn.W_in_to_hid", 0, 1, shape=(F, U))
        layer = RecurrentLayer(l_in, U, W_in_to_hid=w, nonlinearity=nonlinearities.tanh, name="rnn")
    assert "rnn.W_in_to_hid" in model.named_vars
    assert layer.W_in_to_hid is w
    params = get_all_params(layer)
    assert all(p is not w for p in params)
    assert params == [layer.hid_init, layer.b, layer.W_hid_to_hid]
    out = get_output(layer)
    assert w in set(ancestors([out]))
    # with a value substituted for the random variable the output is the numpy RNN's
    w_val = np.random.RandomState(12).randn(F, U)
    x = np.random.RandomState(13).randn(B, T, F)
    fixed = clone_replace(out, {w: pt.constant(w_val)})
    got = pytensor.function([l_in.input_var], fixed)(x)
    expected = rnn_reference(
        w_val,
        layer.W_hid_to_hid.get_value(),
        layer.b.get_value(),
        np.zeros((B, U)),
        x,
        None,
        False,
        False,
    )
    np.testing.assert_allclose(got, expected, rtol=1e-10)


def test_pymc_random_variables_in_lstm_gates_stay_outside_scan():
    from scipy import stats

    x = np.random.RandomState(14).randn(B, T, F)
    with pm.Model() as model:
        w = pm.Normal("lstm.W_hid_to_cell", 0, 1, shape=(U, U))
        cell = Gate(W_hid=w, W_cell=None, nonlinearity=nonlinearities.tanh)
        layer = LSTMLayer(InputLayer((None, T, F)), U, cell=cell, only_return_final=True)
        pm.Normal("y", get_output(layer, pt.constant(x)).sum(), 1.0, observed=0.3)
    assert layer.W_hid_to_cell is w
    # the log-probability compiles (no random variable was captured inside the scan) and
    # equals the prior plus the likelihood of the numpy LSTM's output
    logp = model.compile_logp()
    w_val = np.random.RandomState(15).randn(U, U)
    hT = lstm_reference(
        layer,
        x,
        np.zeros((B, U)),
        np.zeros((B, U)),
        None,
        False,
        True,
        values={"W_hid_to_cell": w_val},
    )
    expected = stats.norm.logpdf(w_val).sum() + stats.norm.logpdf(0.3, hT.sum(), 1.0)
    np.testing.assert_allclose(logp({"lstm.W_hid_to_cell": w_val}), expected, rtol=1e-10)


def test_bayesian_gru_with_named_priors_fits():
    from plasagne.pymc_bridge import GaussWeights, build_model, fit

    rng = np.random.default_rng(0)
    X = rng.normal(size=(60, 3, 1))
    y = X[:, :, 0].sum(1)

    def build(prior):
        gate = Gate(W_in=prior, W_hid=prior, b=prior, W_cell=None)
        rnn = GRULayer(
            InputLayer((None, 3, 1)),
            4,
            resetgate=gate,
            updategate=gate,
            hidden_update=Gate(
                W_in=prior, W_hid=prior, b=prior, W_cell=None, nonlinearity=nonlinearities.tanh
            ),
            only_return_final=True,
            name="gru",
        )
        return DenseLayer(rnn, 1, W=prior, b=prior, nonlinearity=None, name="out")

    bnet = build_model(build, X, y, "normal", priors=GaussWeights(1.0), batch_size=20)
    names = set(bnet.model.named_vars)
    assert {
        "gru.W_in_to_resetgate",
        "gru.W_hid_to_updategate",
        "gru.b_hidden_update",
        "out.W",
    } <= names
    result = fit(bnet, X, y, n=150, learning_rate=0.05, progressbar=False, random_seed=0)
    assert np.isfinite(result.losses).all()
    assert result.losses[-20:].mean() < result.losses[:20].mean()


# ------------------------------------------------------------------------------- errors


def _dense(n_in, n_out):
    return DenseLayer(InputLayer((None, n_in)), n_out)


@pytest.mark.parametrize(
    "make,error,match",
    [
        (
            lambda: LSTMLayer(InputLayer((None, 3)), 2),
            ValueError,
            r"LSTMLayer: input must be \(batch, time",
        ),
        (lambda: GRULayer(InputLayer((None, 4, None)), 2), ValueError, "feature sizes"),
        (
            lambda: GRULayer(InputLayer((None, None, 3)), 2, unroll_scan=True),
            ValueError,
            "fixed sequence length",
        ),
        (lambda: GRULayer(InputLayer((None, 4, 3)), 0), ValueError, "num_units must be a positive"),
        (lambda: RecurrentLayer(InputLayer((None, 4, 3)), 2.5), ValueError, "num_units"),
        (
            lambda: RecurrentLayer(
                InputLayer((None, 4, 3)), 2, W_in_to_hid=np.zeros((2, 2)), name="r"
            ),
            ParameterError,
            r"RecurrentLayer 'r'.*r\.input_to_hidden\.W.*\(3, 2\).*\(2, 2\)",
        ),
        (
            lambda: LSTMLayer(
                InputLayer((None, 4, 3)), 2, ingate=Gate(W_hid=np.zeros((3, 2))), name="l"
            ),
            ParameterError,
            r"LSTMLayer 'l'.*l\.W_hid_to_ingate.*\(2, 2\).*\(3, 2\)",
        ),
        (
            lambda: LSTMLayer(InputLayer((None, 4, 3)), 2, forgetgate=Gate(W_cell=None)),
            ValueError,
            "forgetgate.W_cell",
        ),
        (
            lambda: LSTMLayer(InputLayer((None, 4, 3)), 2, ingate="sigmoid"),
            TypeError,
            "ingate must be a Gate",
        ),
        (
            lambda: GRULayer(InputLayer((None, 4, 3)), 2, mask_input=InputLayer((None, 5))),
            ValueError,
            "mask_input",
        ),
        (
            lambda: GRULayer(InputLayer((None, 4, 3)), 2, mask_input=InputLayer((None, 4, 1))),
            ValueError,
            "mask_input",
        ),
        (
            lambda: GRULayer(InputLayer((None, 4, 3)), 2, hid_init=InputLayer((None, 3))),
            ValueError,
            "hid_init must output",
        ),
        (
            lambda: LSTMLayer(InputLayer((None, 4, 3)), 2, cell_init=np.zeros((2,))),
            ParameterError,
            "cell_init",
        ),
        (
            lambda: GRULayer(InputLayer((None, 4, 3)), 2, gradient_steps=0),
            ValueError,
            "gradient_steps",
        ),
        (
            lambda: GRULayer(InputLayer((None, 4, 3)), 2, gradient_steps=1.5),
            TypeError,
            "gradient_steps",
        ),
        (
            lambda: GRULayer(InputLayer((None, 4, 3)), 2, grad_clipping=-1),
            ValueError,
            "grad_clipping",
        ),
        (
            lambda: CustomRecurrentLayer(InputLayer((None, 4, 3)), _dense(3, 3), _dense(5, 5)),
            ValueError,
            "must agree",
        ),
        (
            lambda: CustomRecurrentLayer(
                InputLayer((None, 4, 3)), _dense(3, 5), DenseLayer(InputLayer((None, 4)), 5)
            ),
            ValueError,
            "map the state to itself",
        ),
        (
            lambda: CustomRecurrentLayer(InputLayer((None, 4, 3)), _dense(2, 5), _dense(5, 5)),
            ValueError,
            "step inputs",
        ),
        (
            lambda: CustomRecurrentLayer(
                InputLayer((2, 4, 3)), DenseLayer(InputLayer((2, 3)), 5), _dense(5, 5)
            ),
            ValueError,
            "batch \\* time = 8",
        ),
        (
            lambda: CustomRecurrentLayer(InputLayer((None, 4, 3)), "dense", _dense(5, 5)),
            TypeError,
            "input_to_hidden must be a Layer",
        ),
    ],
)
def test_errors_name_layer_and_problem(make, error, match):
    with pytest.raises(error, match=match):
        make()
