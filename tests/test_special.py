"""Special layers against numpy references; gradients by verify_grad."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne import init, nonlinearities
from plasagne.layers import (
    BiasLayer,
    DenseLayer,
    ExpressionLayer,
    InputLayer,
    InverseLayer,
    MaxPool2DLayer,
    NonlinearityLayer,
    ParametricRectifierLayer,
    RandomizedRectifierLayer,
    ScaleLayer,
    TPSTransformerLayer,
    TransformerLayer,
    get_output,
    get_output_shape,
    prelu,
    rrelu,
    standardize,
)


def run(layer, inputs, xs, **kwargs):
    """Compile ``layer``'s output as a function of the input layers' variables."""
    # a linear layer's inverse does not depend on the forward input: allow that
    f = pytensor.function(
        [l.input_var for l in inputs], get_output(layer, **kwargs), on_unused_input="ignore"
    )
    return f(*xs)


def shared_set(shape, shared_axes):
    """The axes a parameter is shared over, written out from Lasagne's rules."""
    nd = len(shape)
    if shared_axes == "auto":
        return {0, *range(2, nd)}
    if shared_axes == "all":
        return set(range(nd))
    if isinstance(shared_axes, int):
        return {shared_axes % nd}
    return {a % nd for a in shared_axes}


def kept_shape(shape, shared_axes):
    """The parameter's shape broadcast against the input: 1 on shared axes."""
    shared = shared_set(shape, shared_axes)
    return tuple(1 if a in shared else s for a, s in enumerate(shape))


SHARED = [
    ("auto", (2, 3, 4, 5)),
    ("all", (2, 3, 4, 5)),
    ((0,), (2, 3, 4, 5)),
    ((0, 2, 3), (2, 3, 4, 5)),
    (-1, (2, 3, 4)),
    ((0, 1), (2, 3, 4)),
    ("auto", (4, 3)),
]


# --- NonlinearityLayer ----------------------------------------------------------------


@pytest.mark.parametrize(
    "nonlinearity, reference",
    [
        (nonlinearities.rectify, lambda x: np.maximum(x, 0)),
        (pt.tanh, np.tanh),
        (nonlinearities.sigmoid, lambda x: 1 / (1 + np.exp(-x))),
        (None, lambda x: x),
    ],
)
def test_nonlinearity_layer_matches_numpy(nonlinearity, reference):
    x = np.random.randn(3, 4, 2)
    l_in = InputLayer((None, 4, 2))
    layer = NonlinearityLayer(l_in, nonlinearity)
    np.testing.assert_allclose(run(layer, [l_in], [x]), reference(x), rtol=1e-12)
    with pytest.raises(TypeError, match="NonlinearityLayer 'n'.*nonlinearity"):
        NonlinearityLayer(l_in, "relu", name="n")


# --- Bias / Scale / PReLU -------------------------------------------------------------


@pytest.mark.parametrize("shared_axes, shape", SHARED)
def test_bias_scale_prelu_match_numpy(shared_axes, shape):
    x = np.random.randn(*shape)
    bshape = kept_shape(shape, shared_axes)
    shared = shared_set(shape, shared_axes)
    pshape = tuple(s for a, s in enumerate(shape) if a not in shared)
    l_in = InputLayer(tuple(None if a == 0 and a in shared else s for a, s in enumerate(shape)))

    bias = BiasLayer(l_in, b=init.Normal(1.0), shared_axes=shared_axes)
    assert bias.b.get_value().shape == pshape
    np.testing.assert_allclose(run(bias, [l_in], [x]), x + bias.b.get_value().reshape(bshape))

    scale = ScaleLayer(l_in, scales=init.Normal(1.0), shared_axes=shared_axes)
    assert scale.scales.get_value().shape == pshape
    np.testing.assert_allclose(
        run(scale, [l_in], [x]), x * scale.scales.get_value().reshape(bshape)
    )

    prl = ParametricRectifierLayer(l_in, alpha=init.Uniform((0.1, 0.5)), shared_axes=shared_axes)
    alpha = prl.alpha.get_value().reshape(bshape)
    np.testing.assert_allclose(run(prl, [l_in], [x]), np.where(x > 0, x, alpha * x))
    for layer in (bias, scale, prl):
        assert get_output_shape(layer, x.shape) == x.shape


def test_bias_none_params_and_tags():
    x = np.random.randn(2, 3)
    l_in = InputLayer((None, 3))
    assert BiasLayer(l_in, b=None).get_params() == []
    np.testing.assert_allclose(run(BiasLayer(l_in, b=None), [l_in], [x]), x)
    bias = BiasLayer(l_in, name="bias")
    assert [p.name for p in bias.get_params(regularizable=False)] == ["bias.b"]
    assert bias.get_params(regularizable=True) == []


def test_bias_scale_accept_expressions():
    log_s = pytensor.shared(np.log(np.array([0.5, 2.0, 3.0])))
    l_in = InputLayer((None, 3))
    layer = ScaleLayer(BiasLayer(l_in, b=pt.ones(3) * 2.0), scales=pt.exp(log_s))
    x = np.random.randn(4, 3)
    np.testing.assert_allclose(run(layer, [l_in], [x]), (x + 2.0) * np.array([0.5, 2.0, 3.0]))
    assert layer.get_params() == [log_s]


def test_shared_axes_errors_name_layer():
    with pytest.raises(ValueError, match="BiasLayer 'b'.*`b` needs known input sizes"):
        BiasLayer(InputLayer((None, 3)), shared_axes=1, name="b")
    with pytest.raises(ValueError, match="ScaleLayer 's'.*shared_axes.*ints in \\[-2, 2\\)"):
        ScaleLayer(InputLayer((None, 3)), shared_axes=(2,), name="s")
    with pytest.raises(ValueError, match="ParametricRectifierLayer 'p'.*'auto', 'all'"):
        ParametricRectifierLayer(InputLayer((None, 3)), shared_axes="none", name="p")
    with pytest.raises(ValueError, match="BiasLayer 'b'.*repeats an axis"):
        BiasLayer(InputLayer((None, 3)), shared_axes=(0, -2), name="b")
    with pytest.raises(ValueError, match="BiasLayer 'b'.*b"):
        BiasLayer(InputLayer((None, 3)), b=np.zeros(4), name="b")


@pytest.mark.parametrize(
    "layer_cls, keyword",
    [(BiasLayer, "b"), (ScaleLayer, "scales"), (ParametricRectifierLayer, "alpha")],
)
@pytest.mark.parametrize("shared_axes", ["auto", (0,), "all"])
def test_gradients_of_bias_scale_prelu(layer_cls, keyword, shared_axes):
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 3, 2))
    x[np.abs(x) < 0.05] = 0.3  # keep away from PReLU's kink
    pshape = tuple(s for a, s in enumerate(x.shape) if a not in shared_set(x.shape, shared_axes))
    value = rng.uniform(0.5, 1.5, size=pshape)

    def output(v, p):
        # the parameter is the symbolic input p; squared, so that the gradient
        # depends on every input (verify_grad compiles it)
        layer = layer_cls(InputLayer(x.shape), shared_axes=shared_axes, **{keyword: p})
        return layer.get_output_for(v) ** 2

    verify_grad(output, [x, value], rng=rng)


def test_standardize_matches_numpy():
    x = np.random.randn(5, 3, 4)
    l_in = InputLayer((None, 3, 4))
    offset, scale = x.mean(axis=(0, 2)), x.std(axis=(0, 2))
    layer = standardize(l_in, offset, scale)
    np.testing.assert_allclose(
        run(layer, [l_in], [x]), (x - offset[:, None]) / scale[:, None], rtol=1e-12
    )
    assert layer.get_params(trainable=True) == []
    assert len(layer.get_params()) == 1 and len(layer.input_layer.get_params()) == 1
    # per-feature over a 2-d input, and symbolic statistics
    y = np.random.randn(6, 2)
    l_y = InputLayer((None, 2))
    mu = pytensor.shared(y.mean(0))
    layer = standardize(l_y, mu, pt.as_tensor(y.std(0)), shared_axes=0)
    np.testing.assert_allclose(run(layer, [l_y], [y]), (y - y.mean(0)) / y.std(0), rtol=1e-12)


# --- prelu / rrelu helpers ------------------------------------------------------------


def test_prelu_replaces_the_nonlinearity():
    l_in = InputLayer((None, 3))
    dense = DenseLayer(l_in, 4, b=init.Normal(1.0))
    top = prelu(dense, alpha=init.Constant(0.1))
    assert isinstance(top, ParametricRectifierLayer) and top.input_layer is dense
    assert dense.nonlinearity is nonlinearities.identity
    x = np.random.randn(5, 3)
    lin = x @ dense.W.get_value() + dense.b.get_value()
    np.testing.assert_allclose(run(top, [l_in], [x]), np.where(lin > 0, lin, 0.1 * lin))
    # a layer without a nonlinearity is fine too
    assert prelu(l_in).input_layer is l_in


def test_rrelu_replaces_the_nonlinearity():
    l_in = InputLayer((None, 3))
    dense = DenseLayer(l_in, 4, b=init.Normal(1.0), nonlinearity=pt.tanh)
    top = rrelu(dense, lower=0.1, upper=0.3)
    assert isinstance(top, RandomizedRectifierLayer) and top.input_layer is dense
    assert (top.lower, top.upper) == (0.1, 0.3)
    x = np.random.randn(5, 3)
    lin = x @ dense.W.get_value() + dense.b.get_value()
    out = run(top, [l_in], [x], deterministic=True)
    np.testing.assert_allclose(out, np.where(lin > 0, lin, 0.2 * lin))


# --- RandomizedRectifierLayer ---------------------------------------------------------


@pytest.mark.parametrize("lower, upper", [(0.3, 0.8), (0.0, 0.1), (0.5, 0.5)])
def test_rrelu_deterministic_uses_mean_slope(lower, upper):
    x = np.random.randn(6, 3, 2)
    l_in = InputLayer((None, 3, 2))
    layer = RandomizedRectifierLayer(l_in, lower=lower, upper=upper)
    out = run(layer, [l_in], [x], deterministic=True)
    np.testing.assert_allclose(out, np.where(x >= 0, x, x * (lower + upper) / 2))


@pytest.mark.parametrize(
    "shared_axes, shape", [("auto", (40, 3, 5)), ((), (40, 6)), ((1,), (40, 6)), ("all", (40, 6))]
)
def test_rrelu_random_slopes_in_range_and_shared(shared_axes, shape):
    lower, upper = 0.2, 0.6
    x = -np.abs(np.random.randn(*shape)) - 0.1  # all negative: the slope is out / x
    l_in = InputLayer(shape)
    layer = RandomizedRectifierLayer(l_in, lower=lower, upper=upper, shared_axes=shared_axes)
    f = pytensor.function([l_in.input_var], get_output(layer))
    slopes = f(x) / x
    assert slopes.min() >= lower and slopes.max() <= upper
    # constant along the shared axes
    bshape = kept_shape(shape, shared_axes)
    first = slopes[tuple(slice(0, 1) if b == 1 else slice(None) for b in bshape)]
    np.testing.assert_allclose(slopes, np.broadcast_to(first, shape))
    if first.size > 20:  # spread like a uniform on [lower, upper]
        assert abs(first.mean() - 0.4) < 0.06 and first.std() > 0.07
    # fresh slopes at each call; positive inputs pass unchanged
    assert not np.allclose(f(x) / x, slopes)
    np.testing.assert_array_equal(f(-x), -x)


def test_rrelu_symbolic_bounds_and_errors():
    lo = pytensor.shared(0.1)
    x = -np.ones((200, 2))
    l_in = InputLayer(x.shape)
    layer = RandomizedRectifierLayer(l_in, lower=lo, upper=0.2, shared_axes=())
    slopes = run(layer, [l_in], [x]) / x
    assert slopes.min() >= 0.1 and slopes.max() <= 0.2
    np.testing.assert_allclose(run(layer, [l_in], [x], deterministic=True), 0.15 * x)
    with pytest.raises(ValueError, match="RandomizedRectifierLayer 'r'.*upper.*>= `lower`"):
        RandomizedRectifierLayer(l_in, lower=0.5, upper=0.4, name="r")


# --- ExpressionLayer ------------------------------------------------------------------


@pytest.mark.parametrize(
    "function, reference, output_shape, expected",
    [
        (lambda v: v * 2, lambda v: v * 2, None, (None, 6, 4)),
        (lambda v: v[:, ::2], lambda v: v[:, ::2], "auto", (None, 3, 4)),
        (lambda v: v.sum(axis=0), lambda v: v.sum(axis=0), "auto", (6, 4)),
        (lambda v: v.max(axis=2), lambda v: v.max(axis=2), "auto", (None, 6)),
        (
            lambda v: pt.concatenate([v, v], axis=0),
            lambda v: np.concatenate([v, v], axis=0),
            "auto",
            (None, 6, 4),
        ),
        (lambda v: v.reshape((-1, 24)), lambda v: v.reshape(-1, 24), (None, 24), (None, 24)),
        (lambda v: v[:, :, 1], lambda v: v[:, :, 1], lambda s: s[:2], (None, 6)),
    ],
)
def test_expression_layer(function, reference, output_shape, expected):
    x = np.random.randn(5, 6, 4)
    l_in = InputLayer((None, 6, 4))
    layer = ExpressionLayer(l_in, function, output_shape)
    out = run(layer, [l_in], [x])
    np.testing.assert_allclose(out, reference(x))
    assert layer.output_shape == expected
    if output_shape is None or output_shape == "auto":
        assert get_output_shape(layer, x.shape) == out.shape


def test_expression_layer_errors():
    with pytest.raises(TypeError, match="ExpressionLayer 'e'.*function"):
        ExpressionLayer(InputLayer((2,)), "sum", name="e")
    with pytest.raises(ValueError, match="ExpressionLayer 'e'.*output_shape.*'automatic'"):
        ExpressionLayer(InputLayer((2,)), pt.sum, "automatic", name="e")


# --- InverseLayer ---------------------------------------------------------------------


@pytest.mark.parametrize("nonlinearity", [None, "tanh"])
def test_inverse_of_dense_is_transposed_weights(nonlinearity):
    l_in = InputLayer((None, 5))
    dense = DenseLayer(l_in, 3, b=init.Normal(1.0), nonlinearity=pt.tanh if nonlinearity else None)
    l_grad = InputLayer((None, 3))
    inv = InverseLayer(l_grad, dense)
    assert inv.output_shape == (None, 5)
    x, g = np.random.randn(4, 5), np.random.randn(4, 3)
    W, b = dense.W.get_value(), dense.b.get_value()
    # d(out)/d(in) applied to g: g * f'(xW + b) @ W.T
    local = 1 - np.tanh(x @ W + b) ** 2 if nonlinearity else 1.0
    np.testing.assert_allclose(run(inv, [l_in, l_grad], [x, g]), (g * local) @ W.T)
    # the classic tied autoencoder: decode with the encoder's own output
    tied = InverseLayer(dense, dense)
    enc = np.tanh(x @ W + b) if nonlinearity else x @ W + b
    np.testing.assert_allclose(run(tied, [l_in], [x]), (enc * local) @ W.T)


def test_inverse_of_maxpool_routes_to_the_maxima():
    l_in = InputLayer((1, 1, 4, 4))
    pool = MaxPool2DLayer(l_in, 2)
    inv = InverseLayer(pool, pool)
    x = np.random.permutation(16).reshape(1, 1, 4, 4).astype(float)
    out = run(inv, [l_in], [x])
    expected = np.zeros_like(x)
    for i in range(2):
        for j in range(2):
            win = x[0, 0, 2 * i : 2 * i + 2, 2 * j : 2 * j + 2]
            r, c = np.unravel_index(win.argmax(), (2, 2))
            expected[0, 0, 2 * i + r, 2 * j + c] = win.max()
    np.testing.assert_allclose(out, expected)
    assert get_output_shape(inv) == x.shape


def test_inverse_layer_needs_an_input_layer():
    with pytest.raises(ValueError, match="InverseLayer 'i'.*DenseLayer"):
        InverseLayer(InputLayer((None, 3)), DenseLayer((None, 5), 3), name="i")


# --- spatial transformers -------------------------------------------------------------


def fold(i, n, mode):
    """A pixel index outside [0, n) mapped back inside, per border mode."""
    if mode == "nearest":
        return min(max(i, 0), n - 1)
    if mode == "wrap":
        return i % n
    if n == 1:
        return 0
    period = 2 * (n - 1)  # mirror: ... 2 1 [0 1 ... n-1] n-2 ...
    i = i % period
    return i if i < n else period - i


def sample_numpy(img, xs, ys, mode):
    """Bilinear sampling of img (C, H, W) at normalised coordinates xs, ys in [-1, 1]."""
    C, H, W = img.shape
    out = np.zeros((C, len(xs)))
    for k, (x, y) in enumerate(zip(xs, ys)):
        px, py = (x + 1) / 2 * (W - 1), (y + 1) / 2 * (H - 1)
        x0, y0 = int(np.floor(px)), int(np.floor(py))
        for xi in (x0, x0 + 1):
            for yi in (y0, y0 + 1):
                w = (1 - abs(px - xi)) * (1 - abs(py - yi))
                out[:, k] += w * img[:, fold(yi, H, mode), fold(xi, W, mode)]
    return out


def affine_numpy(x, thetas, factor, mode):
    N, C, H, W = x.shape
    fr, fc = factor if isinstance(factor, tuple) else (factor, factor)
    oh, ow = int(H // fr), int(W // fc)
    gx, gy = np.meshgrid(np.linspace(-1, 1, ow), np.linspace(-1, 1, oh))
    grid = np.stack([gx.ravel(), gy.ravel(), np.ones(oh * ow)])
    out = np.zeros((N, C, oh, ow))
    for n in range(N):
        src = thetas[n].reshape(2, 3) @ grid
        out[n] = sample_numpy(x[n], src[0], src[1], mode).reshape(C, oh, ow)
    return out


def theta_layer(l_in, values):
    """A localization network whose output is the given (batch, k) values' first row."""
    n = int(np.prod(l_in.output_shape[1:]))
    return DenseLayer(
        l_in, values.shape[1], W=np.zeros((n, values.shape[1])), b=values[0], nonlinearity=None
    )


@pytest.mark.parametrize("shape", [(2, 2, 5, 6), (1, 3, 4, 4), (1, 1, 1, 3)])
@pytest.mark.parametrize("mode", ["nearest", "mirror", "wrap"])
def test_transformer_identity_reproduces_input(shape, mode):
    x = np.random.randn(*shape)
    l_in = InputLayer((None,) + shape[1:])
    l_theta = InputLayer((None, 6))
    layer = TransformerLayer(l_in, l_theta, border_mode=mode)
    theta = np.tile([1.0, 0, 0, 0, 1, 0], (shape[0], 1))
    np.testing.assert_allclose(run(layer, [l_in, l_theta], [x, theta]), x, atol=1e-12)


@pytest.mark.parametrize("mode", ["nearest", "mirror", "wrap"])
@pytest.mark.parametrize(
    "thetas, factor",
    [
        ([[1.0, 0, 0.3, 0, 1, -0.2], [1.0, 0, -0.7, 0, 1, 0.45]], 1),  # translations
        ([[1.0, 0, 1.6, 0, 1, -1.3], [1.0, 0, -2.5, 0, 1, 0.9]], 1),  # far outside
        ([[0.8, 0.3, 0.1, -0.2, 1.2, 0.05], [1.5, 0, 0, 0, -1.5, 0.2]], 1),  # general
        ([[1.0, 0, 0.25, 0, 1, 0.1], [0.7, -0.4, 0, 0.4, 0.7, 0]], 2),  # downsampled
    ],
)
def test_transformer_matches_numpy_bilinear(mode, thetas, factor):
    x = np.random.randn(2, 2, 5, 6)
    thetas = np.array(thetas)
    l_in = InputLayer((None, 2, None, 6))
    l_theta = InputLayer((None, 6))
    layer = TransformerLayer(l_in, l_theta, downsample_factor=factor, border_mode=mode)
    out = run(layer, [l_in, l_theta], [x, thetas])
    np.testing.assert_allclose(out, affine_numpy(x, thetas, factor, mode), atol=1e-12)
    assert get_output_shape(layer, {l_in: x.shape, l_theta: thetas.shape}) == out.shape


def test_transformer_with_a_localization_network():
    x = np.random.randn(1, 1, 4, 5)
    l_in = InputLayer(x.shape)
    theta = np.array([[0.9, 0.1, 0.2, -0.1, 1.1, -0.3]])
    layer = TransformerLayer(l_in, theta_layer(l_in, theta))
    np.testing.assert_allclose(
        run(layer, [l_in], [x]), affine_numpy(x, theta, 1, "nearest"), atol=1e-12
    )


@pytest.mark.parametrize("mode", ["nearest", "mirror", "wrap"])
def test_transformer_gradient(mode):
    rng = np.random.default_rng(1)
    x = rng.normal(size=(2, 1, 4, 4))
    theta = np.array([[0.9, 0.1, 0.05, -0.1, 1.1, 0.07], [1.2, -0.1, 0.4, 0.2, 0.8, -0.35]])
    layer = TransformerLayer(InputLayer((2, 1, 4, 4)), InputLayer((2, 6)), border_mode=mode)
    verify_grad(lambda img, th: layer.get_output_for([img, th]), [x, theta], rng=rng)


@given(
    batch=st.integers(1, 2),
    channels=st.integers(1, 2),
    rows=st.integers(1, 5),
    cols=st.integers(1, 5),
    factor=st.sampled_from([1, 2, (1, 2), (2.0, 1.5)]),
    unknown=st.booleans(),
)
def test_transformer_shapes_property(batch, channels, rows, cols, factor, unknown):
    shape = (batch, channels, rows, cols)
    l_in = InputLayer((None, channels, None, None) if unknown else shape)
    l_theta = InputLayer((None, 6))
    layer = TransformerLayer(l_in, l_theta, downsample_factor=factor)
    fr, fc = factor if isinstance(factor, tuple) else (factor, factor)
    if rows // fr < 1 or cols // fc < 1:
        return
    x = np.random.randn(*shape)
    theta = np.tile([1.0, 0, 0, 0, 1, 0], (batch, 1)) + 0.1 * np.random.randn(batch, 6)
    out = run(layer, [l_in, l_theta], [x, theta])
    assert get_output_shape(layer, {l_in: shape, l_theta: theta.shape}) == out.shape
    assert all(d is None or d == o for d, o in zip(layer.output_shape, out.shape))
    np.testing.assert_allclose(out, affine_numpy(x, theta, factor, "nearest"), atol=1e-12)


def test_transformer_errors_name_layer():
    l_in = InputLayer((None, 1, 4, 4))
    with pytest.raises(ValueError, match="TransformerLayer 't'.*output shape \\(batch, 6\\)"):
        TransformerLayer(l_in, InputLayer((None, 5)), name="t")
    with pytest.raises(ValueError, match="TransformerLayer 't'.*4-D"):
        TransformerLayer(InputLayer((None, 4, 4)), InputLayer((None, 6)), name="t")
    with pytest.raises(ValueError, match="TransformerLayer 't'.*border_mode.*'reflect'"):
        TransformerLayer(l_in, InputLayer((None, 6)), border_mode="reflect", name="t")
    with pytest.raises(ValueError, match="TransformerLayer 't'.*downsample_factor"):
        TransformerLayer(l_in, InputLayer((None, 6)), downsample_factor=0, name="t")


def tps_numpy(x, offsets, k, mode):
    """Thin-plate spline warp, solved per example with the r^2 log r kernel."""
    N, C, H, W = x.shape
    side = int(np.sqrt(k))
    cx, cy = np.meshgrid(np.linspace(-1, 1, side), np.linspace(-1, 1, side))
    P = np.stack([cx.ravel(), cy.ravel()], axis=1)  # (k, 2)

    def kernel(d):
        return np.where(d > 0, d**2 * np.log(np.where(d > 0, d, 1)), 0.0)

    A = np.zeros((k + 3, k + 3))
    A[:k, :k] = kernel(np.linalg.norm(P[:, None] - P[None], axis=2))
    A[:k, k] = A[k, :k] = 1
    A[:k, k + 1 :] = P
    A[k + 1 :, :k] = P.T
    gx, gy = np.meshgrid(np.linspace(-1, 1, W), np.linspace(-1, 1, H))
    G = np.stack([gx.ravel(), gy.ravel()], axis=1)
    basis = np.concatenate(
        [kernel(np.linalg.norm(G[:, None] - P[None], axis=2)), np.ones((len(G), 1)), G], axis=1
    )
    out = np.zeros_like(x)
    for n in range(N):
        target = P + offsets[n].reshape(2, k).T
        rhs = np.concatenate([target, np.zeros((3, 2))])
        coef = np.linalg.solve(A, rhs)
        src = basis @ coef
        out[n] = sample_numpy(x[n], src[:, 0], src[:, 1], mode).reshape(C, H, W)
    return out


@pytest.mark.parametrize("precompute", [True, False])
@pytest.mark.parametrize("k", [4, 16])
def test_tps_identity_reproduces_input(precompute, k):
    x = np.random.randn(2, 2, 6, 5)
    l_in = InputLayer(x.shape)
    loc = theta_layer(l_in, np.zeros((1, 2 * k)))
    layer = TPSTransformerLayer(l_in, loc, control_points=k, precompute_grid=precompute)
    assert layer.precompute_grid is precompute
    np.testing.assert_allclose(run(layer, [l_in], [x]), x, atol=1e-9)


@pytest.mark.parametrize("precompute", ["auto", False])
@pytest.mark.parametrize("mode", ["nearest", "mirror", "wrap"])
@pytest.mark.parametrize("k", [4, 9])
def test_tps_matches_numpy_spline(precompute, mode, k):
    x = np.random.randn(2, 1, 5, 6)
    offsets = 0.3 * np.random.randn(2, 2 * k)
    shape = x.shape if precompute == "auto" else (None, 1, None, None)
    l_in = InputLayer(shape)
    l_off = InputLayer((None, 2 * k))
    layer = TPSTransformerLayer(
        l_in, l_off, control_points=k, precompute_grid=precompute, border_mode=mode
    )
    assert layer.precompute_grid is (precompute == "auto")
    out = run(layer, [l_in, l_off], [x, offsets])
    np.testing.assert_allclose(out, tps_numpy(x, offsets, k, mode), atol=1e-9)
    assert get_output_shape(layer, {l_in: x.shape, l_off: offsets.shape}) == out.shape


def test_tps_downsampled_shapes_and_errors():
    x = np.random.randn(1, 1, 6, 8)
    for precompute in (True, False):
        l_in = InputLayer(x.shape)
        l_off = InputLayer((None, 32))
        layer = TPSTransformerLayer(l_in, l_off, downsample_factor=2, precompute_grid=precompute)
        out = run(layer, [l_in, l_off], [x, np.zeros((1, 32))])
        assert out.shape == layer.output_shape == (1, 1, 3, 4)
        # the identity warp on a coarser grid samples the input at the grid positions
        ref = affine_numpy(x, np.array([[1.0, 0, 0, 0, 1, 0]]), 2, "nearest")
        np.testing.assert_allclose(out, ref, atol=1e-9)
    l_in = InputLayer((None, 1, None, 8))
    with pytest.raises(ValueError, match="TPSTransformerLayer 'p'.*perfect square >= 4"):
        TPSTransformerLayer(l_in, InputLayer((None, 30)), control_points=15, name="p")
    with pytest.raises(ValueError, match="TPSTransformerLayer 'p'.*\\(batch, 32\\)"):
        TPSTransformerLayer(l_in, InputLayer((None, 30)), name="p")
    with pytest.raises(ValueError, match="TPSTransformerLayer 'p'.*precompute_grid=True.*known"):
        TPSTransformerLayer(l_in, InputLayer((None, 32)), precompute_grid=True, name="p")
    with pytest.raises(ValueError, match="TPSTransformerLayer 'p'.*border_mode"):
        TPSTransformerLayer(l_in, InputLayer((None, 32)), border_mode="zero", name="p")
