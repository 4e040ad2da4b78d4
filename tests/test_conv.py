"""Convolution kernel and layers against scipy.signal / numpy-loop references."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
import scipy.signal
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

import plasagne.ops.conv as conv_ops
from plasagne import init
from plasagne.layers import (
    BaseConvLayer,
    Conv1DLayer,
    Conv2DLayer,
    Conv3DLayer,
    Deconv2DLayer,
    Deconv3DLayer,
    DilatedConv2DLayer,
    InputLayer,
    TransposedConv2DLayer,
    TransposedConv3DLayer,
    conv_input_length,
    conv_output_length,
    get_output,
    get_output_shape,
)
from plasagne.ops.conv import corr_nd, corr_nd_transpose, im2col_corr_nd
from plasagne.utils import ParameterError

CONV = {1: Conv1DLayer, 2: Conv2DLayer, 3: Conv3DLayer}
TRANSPOSED = {2: TransposedConv2DLayer, 3: TransposedConv3DLayer}


def run(layer, x, mode=None):
    l_in = layer.input_layer
    return pytensor.function([l_in.input_var], get_output(layer), mode=mode)(x)


def flip(W):
    return W[(slice(None), slice(None)) + (slice(None, None, -1),) * (W.ndim - 2)]


def pad_amounts(pad, k):
    if pad == "valid":
        return [0] * len(k)
    if pad == "full":
        return [s - 1 for s in k]
    if pad == "same":
        return [s // 2 for s in k]
    return list(pad)


def loop_corr(x, W, stride, pads, dilation):
    """Explicit loops: out[b, f, p] = sum_{c, k} W[f, c, k] * padded[b, c, p*s + k*d]."""
    n = x.ndim - 2
    xp = np.pad(x, [(0, 0), (0, 0)] + list(pads))
    k = W.shape[2:]
    out_len = [(xp.shape[2 + i] - dilation[i] * (k[i] - 1) - 1) // stride[i] + 1 for i in range(n)]
    out = np.zeros((x.shape[0], W.shape[0], *out_len))
    for pos in np.ndindex(*out_len):
        for tap in np.ndindex(*k):
            idx = tuple(p * s + t * d for p, s, t, d in zip(pos, stride, tap, dilation))
            # (b, c) x (f, c) -> (b, f)
            out[(slice(None), slice(None)) + pos] += (
                xp[(slice(None), slice(None)) + idx] @ W[(slice(None), slice(None)) + tap].T
            )
    return out


def scipy_conv(x, W, stride, pad, flip_filters):
    """scipy reference: pad, correlate (or convolve) each channel pair, subsample."""
    pads = pad_amounts(pad, W.shape[2:])
    xp = np.pad(x, [(0, 0), (0, 0)] + [(p, p) for p in pads])
    fn = scipy.signal.convolve if flip_filters else scipy.signal.correlate
    out = np.array(
        [
            [
                sum(fn(xp[b, c], W[f, c], mode="valid") for c in range(x.shape[1]))
                for f in range(W.shape[0])
            ]
            for b in range(x.shape[0])
        ]
    )
    return out[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]


# ---------------------------------------------------------------------------- corr_nd


CORR_CASES = [
    # (x shape, num filters, kernel, stride, pads (before, after), dilation)
    ((2, 3, 9), 2, (3,), (1,), [(0, 0)], (1,)),
    ((1, 2, 10), 3, (2,), (3,), [(2, 1)], (2,)),
    ((2, 2, 7, 6), 3, (3, 2), (1, 2), [(1, 0), (0, 2)], (1, 1)),
    ((1, 3, 8, 9), 2, (2, 3), (2, 1), [(0, 0), (1, 1)], (3, 2)),
    ((2, 1, 5, 5), 1, (1, 1), (2, 2), [(0, 0), (0, 0)], (1, 1)),
    ((1, 2, 5, 4, 6), 2, (2, 2, 3), (1, 2, 1), [(1, 1), (0, 1), (2, 0)], (2, 1, 1)),
]


@pytest.mark.parametrize("correlation", [corr_nd, im2col_corr_nd])
@pytest.mark.parametrize("shape, nf, k, stride, pads, dilation", CORR_CASES)
def test_corr_nd_matches_loops(shape, nf, k, stride, pads, dilation, correlation):
    """The layers' one-node correlation and the im2col graph inside it."""
    rng = np.random.RandomState(1)
    x = rng.randn(*shape)
    W = rng.randn(nf, shape[1], *k)
    tx = pt.tensor(shape=(None,) * len(shape))
    tw = pt.tensor(shape=(None,) * len(shape))
    out = pytensor.function(
        [tx, tw], correlation(tx, tw, k, stride=stride, pad=tuple(pads), dilation=dilation)
    )(x, W)
    np.testing.assert_allclose(out, loop_corr(x, W, stride, pads, dilation), atol=1e-12)


def test_corr_nd_infers_kernel_from_static_filters_and_checks_arguments():
    x = np.random.randn(1, 2, 6)
    W = np.random.randn(3, 2, 2)
    out = corr_nd(pt.constant(x), pt.constant(W), stride=2).eval()
    np.testing.assert_allclose(out, loop_corr(x, W, (2,), [(0, 0)], (1,)), atol=1e-12)
    with pytest.raises(ValueError, match="^corr_nd: .*pass kernel_shape"):
        corr_nd(pt.tensor3(), pt.tensor3())
    with pytest.raises(ValueError, match="^corr_nd: expected 1 stride entries"):
        corr_nd(pt.tensor3(), pt.tensor3(), (2,), stride=(1, 1))
    with pytest.raises(ValueError, match="^corr_nd: .*same number of spatial axes"):
        corr_nd(pt.tensor3(), pt.tensor4(), (2, 2))


@pytest.mark.parametrize(
    "xs, ws, k, kwargs",
    [
        ((2, 2, 4, 3), (3, 2, 2, 2), (2, 2), dict(stride=(2, 1), pad=(1, 0))),
        ((1, 2, 6), (2, 2, 2), (2,), dict(dilation=(2,), pad=((1, 2),))),
        ((1, 1, 3, 3, 4), (2, 1, 2, 1, 2), (2, 1, 2), dict(stride=(1, 2, 2))),
    ],
)
@pytest.mark.parametrize("correlation", [corr_nd, im2col_corr_nd])
def test_corr_nd_gradients(xs, ws, k, kwargs, correlation):
    rng = np.random.RandomState(0)
    verify_grad(
        lambda x, w: correlation(x, w, k, **kwargs), [rng.randn(*xs), rng.randn(*ws)], rng=rng
    )


def test_corr_nd_transpose_is_the_adjoint_of_corr_nd():
    # <corr(x), y> == <x, corr^T(y)> for random x, y
    rng = np.random.RandomState(2)
    for stride, crop, dilation, size in [
        ((2, 1), (1, 0), (1, 2), (8, 7)),
        ((3,), (2,), (1,), (9,)),
    ]:
        n = len(stride)
        W = rng.randn(3, 2, *((2,) * n))
        x = rng.randn(2, 2, *size)
        y = corr_nd(pt.constant(x), pt.constant(W), stride=stride, pad=crop, dilation=dilation)
        y = y.eval()
        g = rng.randn(*y.shape)
        back = corr_nd_transpose(
            pt.constant(g),
            pt.constant(W),
            stride=stride,
            crop=crop,
            dilation=dilation,
            output_size=size,
        ).eval()
        assert back.shape == x.shape
        np.testing.assert_allclose(np.sum(y * g), np.sum(x * back), rtol=1e-10)
    verify_grad(
        lambda g, w: corr_nd_transpose(g, w, (2, 2), stride=(2, 1), crop=(1, 0)),
        [rng.randn(1, 2, 3, 3), rng.randn(2, 2, 2, 2)],
        rng=rng,
    )


# ---------------------------------------------------------------------------- forward layers

CASES = [
    (1, (2, 3, 9), 4, (3,), (1,), "valid", True),
    (1, (2, 2, 8), 3, (2,), (2,), "full", False),
    (1, (1, 2, 7), 2, (5,), (2,), "same", True),
    (2, (2, 3, 7, 6), 4, (3, 2), (1, 1), "valid", True),
    (2, (1, 2, 8, 9), 3, (3, 3), (2, 1), "same", False),
    (2, (2, 1, 6, 5), 2, (2, 3), (1, 2), "full", True),
    (2, (2, 2, 7, 7), 3, (3, 1), (3, 2), (1, 2), True),
    (2, (1, 2, 5, 7), 2, (5, 3), (1, 1), "same", True),
    (3, (1, 2, 5, 4, 6), 2, (3, 2, 3), (1, 2, 1), "valid", True),
    (3, (2, 1, 4, 5, 4), 2, (3, 3, 3), (2, 1, 1), "same", False),
    (3, (1, 1, 3, 4, 3), 2, (2, 2, 1), (1, 1, 2), (1, 0, 2), False),
]


@pytest.mark.parametrize("n, shape, nf, k, stride, pad, flip_filters", CASES)
@pytest.mark.parametrize("untie", [False, True])
def test_conv_layers_match_scipy(n, shape, nf, k, stride, pad, flip_filters, untie):
    layer = CONV[n](
        InputLayer(shape),
        nf,
        k,
        stride=stride,
        pad=pad,
        flip_filters=flip_filters,
        untie_biases=untie,
        b=init.Normal(1.0),
        nonlinearity=None,
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    W, b = layer.W.get_value(), layer.b.get_value()
    expected = scipy_conv(x, W, stride, pad, flip_filters)
    expected = expected + (b[None] if untie else b.reshape((1, -1) + (1,) * n))
    np.testing.assert_allclose(out, expected, rtol=1e-9, atol=1e-12)
    assert out.shape == layer.output_shape
    assert layer.b.get_value().shape == ((nf, *out.shape[2:]) if untie else (nf,))


def test_nonlinearity_and_base_layer():
    x = np.random.randn(2, 2, 6, 5)
    layer = BaseConvLayer(InputLayer((None, 2, 6, 5)), 3, (2, 2), b=init.Normal(1.0))
    expected = scipy_conv(x, layer.W.get_value(), (1, 1), "valid", True)
    expected = np.maximum(expected + layer.b.get_value()[None, :, None, None], 0)
    np.testing.assert_allclose(run(layer, x), expected, atol=1e-12)


@given(n=st.integers(1, 3), data=st.data())
def test_conv_shape_inference_matches_output(n, data):
    spatial = tuple(data.draw(st.lists(st.integers(1, 7), min_size=n, max_size=n)))
    pad = data.draw(st.sampled_from(["valid", "full", "same", "int"]))
    odd = st.sampled_from([1, 3])
    k = tuple(data.draw(odd if pad == "same" else st.integers(1, 3)) for _ in range(n))
    if pad == "int":
        pad = tuple(data.draw(st.integers(0, 2)) for _ in range(n))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))) + spatial
    amounts = pad_amounts(pad, k)
    if any(s + 2 * p - f + 1 <= 0 for s, p, f in zip(spatial, amounts, k)):
        with pytest.raises(ValueError, match="does not fit the input"):
            CONV[n](InputLayer((None,) + shape[1:]), 2, k, stride=stride, pad=pad)
        return
    layer = CONV[n](InputLayer((None,) + shape[1:]), 2, k, stride=stride, pad=pad)
    out = run(layer, np.random.randn(*shape))
    assert get_output_shape(layer, shape) == out.shape
    assert layer.output_shape == (None,) + out.shape[1:]
    assert out.shape[2:] == tuple(
        conv_output_length(s, f, st_, p) for s, f, st_, p in zip(spatial, k, stride, amounts)
    )


def test_unknown_spatial_sizes_give_none_and_still_run():
    layer = Conv2DLayer(InputLayer((None, 2, None, 7)), 3, 3, stride=2, pad="same")
    assert layer.output_shape == (None, 3, None, 4)
    x = np.random.randn(2, 2, 9, 7)
    out = run(layer, x)
    assert out.shape == get_output_shape(layer, x.shape) == (2, 3, 5, 4)


def test_weight_expression_and_random_variable_weights():
    log_w = pytensor.shared(np.random.randn(4, 2, 3, 3) * 0.1)
    layer = Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 3, W=pt.exp(log_w), nonlinearity=None)
    x = np.random.randn(1, 2, 5, 5)
    expected = scipy_conv(x, np.exp(log_w.get_value()), (1, 1), "valid", True)
    np.testing.assert_allclose(run(layer, x), expected, atol=1e-12)
    assert layer.get_params() == [log_w, layer.b]
    # a free symbolic weight tensor: the output is a function of it
    w = pt.tensor4("w")
    layer = Conv1DLayer(InputLayer((1, 2, 6)), 3, 2, W=w[:, :, :, 0], b=None, nonlinearity=None)
    xv, wv = np.random.randn(1, 2, 6), np.random.randn(3, 2, 2, 4)
    f = pytensor.function([layer.input_layer.input_var, w], get_output(layer))
    np.testing.assert_allclose(f(xv, wv), scipy_conv(xv, wv[:, :, :, 0], (1,), "valid", True))


def test_convolution_argument_is_called_like_lasagne():
    calls = []

    def my_conv(input, W, input_shape, W_shape, subsample, border_mode, filter_flip):
        calls.append((input_shape, W_shape, subsample, border_mode, filter_flip))
        return 2 * corr_nd(input, W, W_shape[2:], stride=subsample)

    layer = Conv2DLayer(
        InputLayer((1, 1, 5, 5)),
        2,
        3,
        stride=2,
        pad="same",
        convolution=my_conv,
        nonlinearity=None,
        b=None,
        flip_filters=False,
    )
    x = np.random.randn(1, 1, 5, 5)
    out = run(layer, x)
    assert calls == [((1, 1, 5, 5), (2, 1, 3, 3), (2, 2), "half", False)]
    np.testing.assert_allclose(
        out, 2 * loop_corr(x, layer.W.get_value(), (2, 2), [(0, 0)] * 2, (1, 1))
    )


def test_replacing_corr_nd_in_the_module_swaps_every_layer(monkeypatch):
    seen = []

    def traced(*args, **kwargs):
        seen.append(kwargs["stride"])
        return corr_nd(*args, **kwargs)

    monkeypatch.setattr(conv_ops, "corr_nd", traced)
    layer = Conv1DLayer(InputLayer((1, 1, 7)), 1, 3, stride=2)
    get_output(layer)
    assert seen == [(2,)]


def test_float32_stays_float32():
    with pytensor.config.change_flags(floatX="float32"):
        layer = Conv2DLayer(InputLayer((1, 2, 6, 6)), 3, 3, stride=2, pad="same")
        x = pt.tensor4(dtype="float32")
        out = get_output(layer, x)
        assert out.dtype == "float32"
        xv = np.random.randn(1, 2, 6, 6).astype("float32")
        result = pytensor.function([x], out)(xv)
    assert result.dtype == np.float32
    W = layer.W.get_value().astype("float64")
    expected = np.maximum(scipy_conv(xv.astype("float64"), W, (2, 2), "same", True), 0)
    np.testing.assert_allclose(result, expected, rtol=1e-4, atol=1e-5)


def test_layer_gradients():
    rng = np.random.RandomState(3)
    layer = Conv2DLayer(
        InputLayer((1, 2, 4, 3)),
        2,
        (2, 2),
        stride=(1, 2),
        pad="full",
        nonlinearity=None,
        untie_biases=True,
    )
    verify_grad(layer.get_output_for, [rng.randn(1, 2, 4, 3)], rng=rng)
    x = rng.randn(1, 2, 5)

    def through_layer(w):
        layer = Conv1DLayer(InputLayer((1, 2, 5)), 2, 3, W=w, pad="same", nonlinearity=None)
        return layer.get_output_for(pt.constant(x))

    verify_grad(through_layer, [rng.randn(2, 2, 3)], rng=rng)


def test_errors_name_the_layer():
    with pytest.raises(ParameterError, match=r"Conv2DLayer 'c1'.*\(4, 2, 3, 3\).*\(4, 3, 3, 3\)"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 3, W=np.zeros((4, 3, 3, 3)), name="c1")
    with pytest.raises(ParameterError, match=r"Conv3DLayer 'c3'.*bias|Conv3DLayer 'c3'.*b"):
        Conv3DLayer(InputLayer((1, 1, 4, 4, 4)), 2, 3, b=np.zeros(3), name="c3")
    with pytest.raises(ValueError, match="Conv2DLayer 'c2'.*expected 4 input dimensions"):
        Conv2DLayer(InputLayer((1, 2, 5)), 4, 3, name="c2")
    with pytest.raises(NotImplementedError, match="Conv2DLayer.*odd filter"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 2, pad="same")
    with pytest.raises(ValueError, match="Conv2DLayer 'p'.*invalid pad 'half'"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, 3, pad="half", name="p")
    with pytest.raises(ValueError, match="Conv1DLayer 's'.*stride must be an int >= 1"):
        Conv1DLayer(InputLayer((1, 2, 5)), 4, 3, stride=0, name="s")
    with pytest.raises(ValueError, match="Conv2DLayer 'f'.*filter_size.*\\(3, 3, 3\\)"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 4, (3, 3, 3), name="f")
    with pytest.raises(ValueError, match="Conv2DLayer.*num_filters must be a positive int"):
        Conv2DLayer(InputLayer((1, 2, 5, 5)), 0, 3)
    with pytest.raises(ValueError, match="Conv2DLayer.*channel axis"):
        Conv2DLayer(InputLayer((1, None, 5, 5)), 2, 3)
    with pytest.raises(ValueError, match="untie_biases=True needs a fixed output size"):
        Conv2DLayer(InputLayer((1, 2, None, 5)), 2, 3, untie_biases=True)
    with pytest.raises(ValueError, match="Invalid pad"):
        conv_output_length(5, 3, 1, "half")


# ---------------------------------------------------------------------------- transposed


def scatter_transposed(x, W, stride, crop, flip_filters, output_size=None):
    """Every input entry adds its value times the filter (flipped unless flip_filters) into
    the uncropped output, `stride` apart; then `crop` is removed from each border."""
    k = W.shape[2:]
    crop = pad_amounts(crop, k)
    stamp = W if flip_filters else flip(W)
    natural = [(i - 1) * s + f for i, s, f in zip(x.shape[2:], stride, k)]
    full = natural if output_size is None else [o + 2 * c for o, c in zip(output_size, crop)]
    full = [max(a, b) for a, b in zip(full, natural)]
    out = np.zeros((x.shape[0], W.shape[1], *full))
    for b in range(x.shape[0]):
        for c in range(x.shape[1]):
            for pos in np.ndindex(*x.shape[2:]):
                idx = tuple(slice(p * s, p * s + f) for p, s, f in zip(pos, stride, k))
                out[(b, slice(None)) + idx] += x[(b, c) + pos] * stamp[c]
    size = [f - 2 * c for f, c in zip(natural, crop)] if output_size is None else output_size
    return out[(slice(None), slice(None)) + tuple(slice(c, c + s) for c, s in zip(crop, size))]


TRANSPOSED_CASES = [
    (2, (2, 3, 4, 3), (3, 2), (2, 2), (0, 0), None),
    (2, (1, 2, 3, 5), (3, 3), (1, 3), (1, 1), None),
    (2, (1, 2, 3, 4), (3, 3), (2, 2), "same", None),
    (2, (2, 1, 4, 4), (2, 3), (2, 1), "full", None),
    (2, (1, 2, 3, 3), (3, 3), (3, 2), (1, 0), (9, 7)),
    (2, (1, 1, 2, 3), (3, 1), (1, 1), "valid", None),
    (3, (1, 2, 3, 2, 3), (2, 2, 3), (2, 1, 1), (0, 0, 1), None),
    (3, (1, 1, 2, 3, 2), (3, 1, 3), (2, 2, 1), "same", (4, 5, 2)),
]


@pytest.mark.parametrize("n, shape, k, stride, crop, output_size", TRANSPOSED_CASES)
@pytest.mark.parametrize("flip_filters", [False, True])
def test_transposed_conv_matches_scatter_add(n, shape, k, stride, crop, output_size, flip_filters):
    layer = TRANSPOSED[n](
        InputLayer(shape),
        2,
        k,
        stride=stride,
        crop=crop,
        nonlinearity=None,
        b=init.Normal(1.0),
        flip_filters=flip_filters,
        output_size=output_size,
    )
    x = np.random.randn(*shape)
    out = run(layer, x)
    expected = scatter_transposed(x, layer.W.get_value(), stride, crop, flip_filters, output_size)
    expected = expected + layer.b.get_value().reshape((1, -1) + (1,) * n)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out.shape == layer.output_shape


@pytest.mark.parametrize("flip_filters", [False, True])
@pytest.mark.parametrize(
    "stride, crop, in_size, out_size",
    [
        ((2, 2), (0, 0), (4, 4), (10, 9)),
        ((1, 2), "same", (5, 3), (5, 6)),
        ((2, 1), "full", (6, 5), (10, 3)),
    ],
)
def test_transposed_conv_is_the_gradient_of_the_forward_conv(
    flip_filters, stride, crop, in_size, out_size
):
    """Lasagne's pairing: TransposedConv(W=conv.W, crop=conv.pad, flip=not conv.flip)."""
    W = np.random.randn(3, 2, 3, 3)
    fwd = Conv2DLayer(
        InputLayer((2, 2, *out_size)),
        3,
        3,
        stride=stride,
        pad=crop,
        W=W,
        b=None,
        nonlinearity=None,
        flip_filters=not flip_filters,
    )
    assert fwd.output_shape[2:] == in_size
    up = TransposedConv2DLayer(
        InputLayer((2, 3, *in_size)),
        2,
        3,
        stride=stride,
        crop=crop,
        W=W,
        b=None,
        nonlinearity=None,
        flip_filters=flip_filters,
        output_size=out_size,
    )
    x = np.random.randn(2, 3, *in_size)
    z = pt.tensor4()
    g = pytensor.grad(pt.sum(get_output(fwd, z) * pt.constant(x)), z)
    expected = pytensor.function([z], g)(np.random.randn(2, 2, *out_size))
    np.testing.assert_allclose(run(up, x), expected, atol=1e-12)


def test_lasagne_tied_autoencoder_pattern():
    conv = Conv2DLayer(InputLayer((None, 1, 9, 9)), 4, 3, stride=2)
    deconv = Deconv2DLayer(
        conv,
        conv.input_shape[1],
        conv.filter_size,
        stride=conv.stride,
        crop=conv.pad,
        W=conv.W,
        flip_filters=not conv.flip_filters,
        nonlinearity=None,
        b=None,
    )
    assert deconv.W is conv.W and deconv.output_shape == (None, 1, 9, 9)
    assert deconv.get_params() == [conv.W]
    assert Deconv3DLayer is TransposedConv3DLayer


def test_transposed_symbolic_output_size():
    size = pt.ivector("size")
    layer = TransposedConv2DLayer(
        InputLayer((None, 1, 3, 3)), 1, 3, stride=2, output_size=size, nonlinearity=None, b=None
    )
    assert layer.output_shape == (None, 1, None, None)
    x = np.random.randn(1, 1, 3, 3)
    f = pytensor.function([layer.input_layer.input_var, size], get_output(layer))
    for out_size in [(7, 7), (8, 7), (7, 8)]:
        np.testing.assert_allclose(
            f(x, np.array(out_size, dtype="int32")),
            scatter_transposed(x, layer.W.get_value(), (2, 2), (0, 0), False, out_size),
            atol=1e-12,
        )


@given(n=st.sampled_from([2, 3]), data=st.data())
def test_transposed_shape_inference_matches_output(n, data):
    spatial = tuple(data.draw(st.lists(st.integers(1, 4), min_size=n, max_size=n)))
    k = tuple(data.draw(st.sampled_from([1, 2, 3])) for _ in range(n))
    stride = tuple(data.draw(st.integers(1, 3)) for _ in range(n))
    crop = data.draw(st.sampled_from(["valid", "full", "same", "int"]))
    if crop == "same":
        k = tuple(f if f % 2 else f + 1 for f in k)
    if crop == "int":
        crop = tuple(data.draw(st.integers(0, f - 1)) for f in k)
    extra = data.draw(st.booleans())
    crops = pad_amounts(crop, k)
    natural = [conv_input_length(i, f, s, c) for i, f, s, c in zip(spatial, k, stride, crops)]
    output_size = None
    if extra:
        output_size = tuple(m + data.draw(st.integers(0, s - 1)) for m, s in zip(natural, stride))
    shape = (data.draw(st.integers(1, 2)), data.draw(st.integers(1, 2))) + spatial
    if any(m <= 0 for m in natural):
        with pytest.raises(ValueError, match="does not fit"):
            TRANSPOSED[n](InputLayer((None,) + shape[1:]), 2, k, stride=stride, crop=crop)
        return
    layer = TRANSPOSED[n](
        InputLayer((None,) + shape[1:]), 2, k, stride=stride, crop=crop, output_size=output_size
    )
    out = run(layer, np.random.randn(*shape))
    assert get_output_shape(layer, shape) == out.shape
    assert layer.output_shape == (None,) + out.shape[1:]
    assert out.shape[2:] == (tuple(natural) if output_size is None else output_size)


def test_transposed_errors():
    with pytest.raises(ValueError, match=r"TransposedConv2DLayer 'd'.*output_size.*\[9, 10\]"):
        TransposedConv2DLayer(
            InputLayer((1, 1, 4, 4)), 1, 3, stride=2, output_size=(11, 9), name="d"
        )
    with pytest.raises(ValueError, match="TransposedConv3DLayer 'e'.*output_size must be"):
        TransposedConv3DLayer(InputLayer((1, 1, 4, 4, 4)), 1, 3, output_size=(3, 3), name="e")
    with pytest.raises(ParameterError, match=r"TransposedConv2DLayer 't'.*\(3, 2, 2, 2\)"):
        TransposedConv2DLayer(InputLayer((1, 3, 4, 4)), 2, 2, W=np.zeros((2, 3, 2, 2)), name="t")


# ---------------------------------------------------------------------------- dilated


def loop_dilated(x, W, dilation, flip_filters):
    """W: (channels, filters, kh, kw); out[b, f, y, x] = sum W[c, f, i, j] x[b, c, y+i*dh, x+j*dw]."""
    Wf = flip(W) if flip_filters else W
    return loop_corr(x, Wf.transpose(1, 0, 2, 3), (1, 1), [(0, 0), (0, 0)], dilation)


@pytest.mark.parametrize(
    "shape, k, dilation, flip_filters, untie",
    [
        ((2, 3, 9, 8), (2, 3), (3, 2), False, False),
        ((1, 2, 7, 7), (3, 3), (2, 2), True, True),
        ((1, 1, 5, 6), (1, 2), (1, 4), False, True),
    ],
)
def test_dilated_conv_matches_loops(shape, k, dilation, flip_filters, untie):
    layer = DilatedConv2DLayer(
        InputLayer(shape),
        2,
        k,
        dilation=dilation,
        nonlinearity=None,
        b=init.Normal(1.0),
        flip_filters=flip_filters,
        untie_biases=untie,
    )
    x = np.random.randn(*shape)
    W = layer.W.get_value()
    assert W.shape == (shape[1], 2, *k)
    expected = loop_dilated(x, W, dilation, flip_filters)
    # independent check of the loop helper: scipy on the zero-stuffed filter
    Wd = np.zeros((shape[1], 2, *[(f - 1) * d + 1 for f, d in zip(k, dilation)]))
    Wd[:, :, :: dilation[0], :: dilation[1]] = flip(W) if flip_filters else W
    np.testing.assert_allclose(
        expected, scipy_conv(x, Wd.transpose(1, 0, 2, 3), (1, 1), "valid", False), atol=1e-12
    )
    b = layer.b.get_value()
    expected = expected + (b[None] if untie else b[None, :, None, None])
    out = run(layer, x)
    np.testing.assert_allclose(out, expected, atol=1e-12)
    assert out.shape == layer.output_shape == get_output_shape(layer, shape)


@given(
    size=st.tuples(st.integers(1, 9), st.integers(1, 9)),
    k=st.tuples(st.integers(1, 3), st.integers(1, 3)),
    dilation=st.tuples(st.integers(1, 3), st.integers(1, 3)),
)
def test_dilated_shape_inference(size, k, dilation):
    if any(s - (f - 1) * d <= 0 for s, f, d in zip(size, k, dilation)):
        with pytest.raises(ValueError, match="DilatedConv2DLayer.*does not fit"):
            DilatedConv2DLayer(InputLayer((None, 1, *size)), 2, k, dilation=dilation)
        return
    layer = DilatedConv2DLayer(InputLayer((None, 1, *size)), 2, k, dilation=dilation)
    out = run(layer, np.random.randn(2, 1, *size))
    assert get_output_shape(layer, out.shape[:2] + size) == out.shape
    assert layer.output_shape == (None,) + out.shape[1:]


def test_dilated_errors():
    with pytest.raises(NotImplementedError, match="DilatedConv2DLayer 'dl'.*pad=0"):
        DilatedConv2DLayer(InputLayer((1, 1, 8, 8)), 2, 3, pad=1, name="dl")
    with pytest.raises(ParameterError, match=r"DilatedConv2DLayer.*\(1, 2, 3, 3\)"):
        DilatedConv2DLayer(InputLayer((1, 1, 8, 8)), 2, 3, W=np.zeros((2, 1, 3, 3)))
    with pytest.raises(ValueError, match="DilatedConv2DLayer 'dd'.*dilation"):
        DilatedConv2DLayer(InputLayer((1, 1, 8, 8)), 2, 3, dilation=0, name="dd")


# ---------------------------------------------------------------------------- backends


@pytest.mark.backend
def test_conv_layers_compile_with_numba():
    pytest.importorskip("numba")
    layer = Conv2DLayer(InputLayer((2, 2, 6, 6)), 3, 3, stride=2, pad=1, nonlinearity=None, b=None)
    x = np.random.randn(2, 2, 6, 6)
    np.testing.assert_allclose(
        run(layer, x, mode="NUMBA"),
        scipy_conv(x, layer.W.get_value(), (2, 2), (1, 1), True),
        atol=1e-10,
    )
    up = TransposedConv2DLayer(InputLayer((1, 2, 3, 3)), 2, 3, stride=2, nonlinearity=None, b=None)
    x = np.random.randn(1, 2, 3, 3)
    np.testing.assert_allclose(
        run(up, x, mode="NUMBA"),
        scatter_transposed(x, up.W.get_value(), (2, 2), (0, 0), False),
        atol=1e-10,
    )
    # the gradient graph compiles too
    xv = pt.tensor4()
    loss = pt.sum(get_output(layer, xv) ** 2)
    grads = pytensor.grad(loss, [xv, layer.W])
    pytensor.function([xv], grads, mode="NUMBA")(np.random.randn(2, 2, 6, 6))
