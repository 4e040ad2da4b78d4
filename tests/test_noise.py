"""Dropout variants and Gaussian noise: statistics, masks, seeding and shapes."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

import plasagne
from plasagne.layers import (
    DenseLayer,
    DropoutLayer,
    GaussianNoiseLayer,
    InputLayer,
    dropout,
    dropout_channels,
    dropout_locations,
    get_all_layers,
    get_output,
    get_output_shape,
    spatial_dropout,
)

RNG = np.random.RandomState(11)


def compile_net(layer, **kw):
    l_in = get_all_layers(layer)[0]
    return pytensor.function([l_in.input_var], get_output(layer, **kw))


def nonzero_input(shape, dtype="float64"):
    """Values bounded away from zero, so a zero output means a dropped value."""
    x = RNG.uniform(0.5, 2.0, size=shape) * RNG.choice([-1, 1], size=shape)
    return x.astype(dtype)


def binomial_tolerance(p, n, k=4.5):
    return k * np.sqrt(p * (1 - p) / n)


# ----------------------------------------------------------------------------- deterministic


@pytest.mark.parametrize(
    "make",
    [
        lambda l: DropoutLayer(l, p=0.5),
        lambda l: dropout_channels(l, p=0.3),
        lambda l: dropout_locations(l),
        lambda l: GaussianNoiseLayer(l, sigma=0.7),
    ],
)
def test_deterministic_passes_input_through(make):
    l_in = InputLayer((None, 3, 4, 2))
    layer = make(l_in)
    assert get_output(layer, deterministic=True) is l_in.input_var
    x = nonzero_input((2, 3, 4, 2))
    np.testing.assert_array_equal(compile_net(layer, deterministic=True)(x), x)
    assert not np.array_equal(compile_net(layer)(x), x)  # but training does change it


def test_zero_noise_is_identity_in_training():
    l_in = InputLayer((None, 5))
    assert get_output(DropoutLayer(l_in, p=0.0)) is l_in.input_var
    assert get_output(GaussianNoiseLayer(l_in, sigma=0)) is l_in.input_var


# ----------------------------------------------------------------------------- mask statistics


@pytest.mark.parametrize("p", [0.1, 0.5, 0.8])
@pytest.mark.parametrize("rescale", [True, False])
def test_dropout_fraction_and_rescaling(p, rescale):
    shape = (60, 50)
    x = nonzero_input(shape)
    layer = DropoutLayer(InputLayer(shape), p=p, rescale=rescale)
    out = compile_net(layer)(x)
    kept = out != 0
    assert abs((~kept).mean() - p) < binomial_tolerance(p, kept.size)
    scale = 1 / (1 - p) if rescale else 1.0
    np.testing.assert_allclose(out[kept], x[kept] * scale, rtol=1e-12)


def test_dropout_gradient_is_the_scaled_mask():
    l_in = InputLayer((20, 30))
    out = get_output(DropoutLayer(l_in, p=0.4))
    f = pytensor.function([l_in.input_var], [out, pytensor.grad(out.sum(), l_in.input_var)])
    x = nonzero_input((20, 30))
    y, g = f(x)  # the same draw feeds both outputs
    np.testing.assert_allclose(g, (y != 0) / 0.6, rtol=1e-12)


def test_dropout_draws_a_fresh_mask_on_every_call():
    x = nonzero_input((10, 20))
    f = compile_net(DropoutLayer(InputLayer((10, 20)), p=0.5))
    masks = [f(x) != 0 for _ in range(3)]
    assert not np.array_equal(masks[0], masks[1])
    assert not np.array_equal(masks[1], masks[2])


@pytest.mark.parametrize(
    "shape, shared_axes",
    [
        ((8, 6, 5, 5), (2, 3)),
        ((8, 6, 5, 5), (1,)),
        ((8, 6, 5, 5), (0,)),
        ((8, 6, 5), (-1,)),
        ((8, 6, 5, 4), (0, 2, -1)),
        ((30, 20), ()),
    ],
)
def test_dropout_masks_are_constant_along_shared_axes(shape, shared_axes):
    p = 0.4
    x = nonzero_input(shape)
    layer = DropoutLayer(InputLayer((None,) + shape[1:]), p=p, shared_axes=shared_axes)
    mask = compile_net(layer)(x) != 0
    axes = tuple(a % len(shape) for a in shared_axes)
    first = mask[tuple(slice(0, 1) if a in axes else slice(None) for a in range(len(shape)))]
    np.testing.assert_array_equal(mask, np.broadcast_to(first, shape))
    # the independent part of the mask is Bernoulli(1 - p)
    assert abs((~first).mean() - p) < binomial_tolerance(p, first.size)


@pytest.mark.parametrize("shape", [(4, 5, 6), (6, 5, 4, 4), (3, 8, 3, 2, 2)])
def test_dropout_channels_and_locations(shape):
    x = nonzero_input(shape)
    ch = dropout_channels(InputLayer(shape), p=0.5)
    assert spatial_dropout is dropout_channels and ch.shared_axes == tuple(range(2, len(shape)))
    mask = compile_net(ch)(x) != 0
    per_channel = mask.reshape(shape[:2] + (-1,))
    assert np.all(per_channel == per_channel[:, :, :1])  # a whole feature map at once
    assert 0 < per_channel[:, :, 0].mean() < 1
    loc = dropout_locations(InputLayer(shape), 0.5)  # p given positionally
    assert loc.shared_axes == (1,) and loc.p == 0.5
    mask = compile_net(loc)(x) != 0
    assert np.all(mask == mask[:, :1])  # all channels at a position at once
    assert 0 < mask[:, 0].mean() < 1
    assert dropout is DropoutLayer


def test_symbolic_and_shared_p():
    l_in = InputLayer((100, 100))
    p = pt.scalar("p")
    out = get_output(DropoutLayer(l_in, p=p))
    f = pytensor.function([l_in.input_var, p], out)
    x = nonzero_input((100, 100))
    for value in (0.2, 0.7):
        y = f(x, value)
        assert abs((y == 0).mean() - value) < binomial_tolerance(value, y.size)
        np.testing.assert_allclose(y[y != 0], x[y != 0] / (1 - value))
    p_shared = pytensor.shared(0.1)
    g = compile_net(DropoutLayer(l_in, p=p_shared))
    before = (g(x) == 0).mean()
    p_shared.set_value(0.9)  # annealing: the compiled function follows the shared value
    after = (g(x) == 0).mean()
    assert abs(before - 0.1) < binomial_tolerance(0.1, x.size)
    assert abs(after - 0.9) < binomial_tolerance(0.9, x.size)


@pytest.mark.parametrize("p", [0.5, pt.constant(0.5)])
def test_float32_inputs_stay_float32(p):
    l_in = InputLayer((None, 4), input_var=pt.fmatrix())
    for layer in (DropoutLayer(l_in, p=p), GaussianNoiseLayer(l_in, sigma=0.5)):
        out = get_output(layer)
        assert out.dtype == "float32"
        x = nonzero_input((3, 4), "float32")
        assert pytensor.function([l_in.input_var], out)(x).dtype == np.float32


# ----------------------------------------------------------------------------- seeding


def build_net(seed):
    plasagne.random.set_rng(np.random.RandomState(seed))
    l_in = InputLayer((None, 6))
    h = DenseLayer(DropoutLayer(l_in, p=0.5), 8)
    h = GaussianNoiseLayer(h, sigma=0.2)
    out = dropout_channels(DenseLayer(h, 5), p=0.3)
    return pytensor.function([l_in.input_var], get_output(out))


def test_networks_are_reproducible_from_the_seed():
    x = nonzero_input((7, 6))
    a, b, c = build_net(5), build_net(5), build_net(6)
    first_a, first_b, first_c = a(x), b(x), c(x)
    np.testing.assert_array_equal(first_a, first_b)  # same seed: same weights and noise
    np.testing.assert_array_equal(a(x), b(x))  # and the same sequence of draws
    assert not np.array_equal(first_a, first_c)


def test_layers_of_one_network_draw_independent_masks():
    plasagne.random.set_rng(np.random.RandomState(0))
    l_in = InputLayer((20, 20))
    d1, d2 = DropoutLayer(l_in), DropoutLayer(l_in)
    m1, m2 = pytensor.function([l_in.input_var], get_output([d1, d2]))(np.ones((20, 20)))
    assert not np.array_equal(m1 != 0, m2 != 0)


# ----------------------------------------------------------------------------- Gaussian noise


@pytest.mark.parametrize("sigma", [0.05, 0.3, 2.0])
def test_gaussian_noise_statistics(sigma):
    shape = (100, 80)
    x = RNG.randn(*shape)
    out = compile_net(GaussianNoiseLayer(InputLayer(shape), sigma=sigma))(x)
    noise = out - x
    n = noise.size
    assert abs(noise.mean()) < 4.5 * sigma / np.sqrt(n)
    assert abs(noise.std() - sigma) < 4.5 * sigma / np.sqrt(2 * n)
    # no correlation with the input: noise is additive
    assert abs(np.corrcoef(noise.ravel(), x.ravel())[0, 1]) < 4.5 / np.sqrt(n)


def test_gaussian_noise_symbolic_sigma_and_fresh_draws():
    l_in = InputLayer((50, 40))
    sigma = pt.scalar("sigma")
    f = pytensor.function([l_in.input_var, sigma], get_output(GaussianNoiseLayer(l_in, sigma)))
    x = np.zeros((50, 40))
    a, b = f(x, 1.5), f(x, 1.5)
    assert not np.array_equal(a, b)
    assert abs(a.std() - 1.5) < 4.5 * 1.5 / np.sqrt(2 * a.size)


# ----------------------------------------------------------------------------- errors and shapes


def test_errors_name_the_layer():
    with pytest.raises(ValueError, match="'drop'.*p must be in \\[0, 1\\).*1.0"):
        DropoutLayer((None, 3), p=1.0, name="drop")
    with pytest.raises(ValueError, match="DropoutLayer.*p must be in.*-0.1"):
        DropoutLayer((None, 3), p=-0.1)
    with pytest.raises(ValueError, match="DropoutLayer.*p must be a scalar.*1 dimensions"):
        DropoutLayer((None, 3), p=pt.vector())
    with pytest.raises(ValueError, match="DropoutLayer.*shared_axes.*\\[-2, 2\\).*2"):
        DropoutLayer((None, 3), shared_axes=(2,))
    with pytest.raises(ValueError, match="'noise'.*sigma must be >= 0.*-1"):
        GaussianNoiseLayer((None, 3), sigma=-1, name="noise")
    with pytest.raises(ValueError, match="GaussianNoiseLayer.*sigma must be a scalar"):
        GaussianNoiseLayer((None, 3), sigma=pt.matrix())


@settings(max_examples=15)
@given(
    shape=st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple),
    data=st.data(),
)
def test_noise_shape_inference(shape, data):
    ndim = len(shape)
    shared = data.draw(st.lists(st.integers(-ndim, ndim - 1), max_size=ndim))
    known = data.draw(st.lists(st.booleans(), min_size=ndim, max_size=ndim))
    in_shape = tuple(s if k else None for s, k in zip(shape, known))
    l_in = InputLayer(in_shape)
    layers = [DropoutLayer(l_in, p=0.3, shared_axes=shared), GaussianNoiseLayer(l_in)]
    outs = pytensor.function([l_in.input_var], get_output(layers))(nonzero_input(shape))
    for layer, out in zip(layers, outs):
        assert get_output_shape(layer, shape) == out.shape == shape
        assert layer.output_shape == in_shape


def test_masks_follow_the_actual_input_shape():
    """A layer declared for batches of 4 also works on another batch size."""
    layer = DropoutLayer(InputLayer((4, 3, 2)), p=0.5, shared_axes=(2,))
    v = pt.tensor3("v")
    x = nonzero_input((7, 3, 2))
    mask = pytensor.function([v], get_output(layer, v))(x) != 0
    assert mask.shape == (7, 3, 2) and np.all(mask == mask[:, :, :1])


def test_shared_axes_accepts_an_int_and_numpy_integers():
    assert DropoutLayer((None, 3, 2), shared_axes=-1).shared_axes == (-1,)
    layer = DropoutLayer((None, 3, 2), shared_axes=[np.int64(1)])
    assert layer.shared_axes == (1,) and type(layer.shared_axes[0]) is int
    with pytest.raises(ValueError, match="'d'.*shared_axes must be integers.*0.5"):
        DropoutLayer((None, 3), shared_axes=0.5, name="d")
