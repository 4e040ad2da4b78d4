"""Max pooling in front of a non-decreasing activation (plasagne.ops.pool_first): the same
values as pooling the activation (window loops written out here), the same gradient, and
no move where it would change the result."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.gradient import verify_grad
from pytensor.graph.traversal import ancestors
from scipy.special import expit
from test_pool_op import reference_max_pool

from plasagne.nonlinearities import rectify
from plasagne.ops.pool import pool_graph, pool_nd
from plasagne.ops.pool_op import MaxPoolNd

# (symbolic activation of the pre-activation, numpy twin)
ACTIVATIONS = {
    "rectify": (rectify, lambda v: np.maximum(v, 0.0)),
    "tanh": (pt.tanh, np.tanh),
    "sigmoid": (pt.sigmoid, expit),
    "softplus": (pt.softplus, lambda v: np.logaddexp(0.0, v)),
    "scaled": (lambda v: pt.exp(0.5 * v - 1.0) / 2.0, lambda v: np.exp(0.5 * v - 1.0) / 2.0),
    "identity": (lambda v: v, lambda v: v),
}


def pooled_input_of(out):
    """The input of the MaxPoolNd node under ``out``."""
    nodes = [v.owner for v in ancestors([out]) if v.owner is not None]
    (node,) = [n for n in nodes if isinstance(n.op, MaxPoolNd)]
    return node.inputs[0]


@settings(max_examples=25, deadline=None)
@given(
    name=st.sampled_from(sorted(ACTIVATIONS)),
    size=st.integers(1, 3),
    stride=st.integers(1, 3),
    pad=st.integers(0, 2),
    ignore_border=st.booleans(),
    seed=st.integers(0, 2**16),
)
def test_values_equal_pooling_the_activation(name, size, stride, pad, ignore_border, seed):
    pad = min(pad, size - 1) if ignore_border else 0
    symbolic, numeric = ACTIVATIONS[name]
    rng = np.random.default_rng(seed)
    z_value = rng.normal(size=(2, 3, 7, 6)) * 2.0
    b_value = rng.normal(size=3)
    z = pt.tensor4("z")
    b = pt.vector("b")
    x = symbolic(z + b.dimshuffle("x", 0, "x", "x"))
    out = pool_nd(x, (size, size), (stride, stride), (pad, pad), ignore_border)
    assert pooled_input_of(out) is z  # the pool now reads the correlation itself
    want = reference_max_pool(
        numeric(z_value + b_value[None, :, None, None]),
        (size, size),
        (stride, stride),
        (pad, pad),
        ignore_border,
    )
    got = pytensor.function([z, b], out)(z_value, b_value)
    np.testing.assert_allclose(got, want, rtol=1e-12, atol=1e-15)


def test_gradient_matches_the_activation_pooled_as_given():
    rng = np.random.default_rng(1)
    z = pt.tensor4("z")
    b = pt.vector("b")
    x = pt.tanh(rectify(z + b.dimshuffle("x", 0, "x", "x")) * 1.5)
    moved = pool_nd(x, (2, 2), (2, 2))
    as_given = pool_graph(x, (2, 2), (2, 2), (0, 0), True, "max")
    assert pooled_input_of(moved) is z
    g = rng.normal(size=(2, 3, 3, 3))
    grads = [pt.grad((out * g).sum(), [z, b]) for out in (moved, as_given)]
    f = pytensor.function([z, b], [*grads[0], *grads[1]])
    z_value = rng.normal(size=(2, 3, 6, 7))  # continuous values: no ties within a window
    b_value = rng.normal(size=3)
    dz, db, dz_ref, db_ref = f(z_value, b_value)
    np.testing.assert_allclose(dz, dz_ref, rtol=1e-12, atol=1e-15)
    np.testing.assert_allclose(db, db_ref, rtol=1e-12, atol=1e-15)
    verify_grad(
        lambda zz, bb: pool_nd(pt.tanh(zz + bb.dimshuffle("x", 0, "x", "x")), (2, 2)),
        [z_value, b_value],
        rng=rng,
    )


@pytest.mark.parametrize(
    "build",
    [
        # the added term varies inside the windows
        lambda z, b: z + b.dimshuffle("x", 0, "x", "x") * pt.arange(4.0),
        # not monotone, or decreasing
        lambda z, b: abs(z + b.dimshuffle("x", 0, "x", "x")),
        lambda z, b: -(z + b.dimshuffle("x", 0, "x", "x")),
        lambda z, b: (z + b.dimshuffle("x", 0, "x", "x")) * -2.0,
        # zero: inf * 0 is NaN on one side of the move only
        lambda z, b: (z + b.dimshuffle("x", 0, "x", "x")) * 0.0,
        lambda z, b: 1.0 - z,
        lambda z, b: (z + b.dimshuffle("x", 0, "x", "x")) * b.dimshuffle("x", 0, "x", "x"),
    ],
)
def test_no_move_where_the_maximum_would_change(build):
    z = pt.tensor4("z")
    b = pt.vector("b")
    x = build(z, b)
    out = pool_nd(x, (2, 2))
    assert pooled_input_of(out) is x
    # a move stops where the chain stops commuting with the maximum
    assert pooled_input_of(pool_nd(rectify(x), (2, 2))) is x
    rng = np.random.default_rng(2)
    z_value, b_value = rng.normal(size=(2, 3, 4, 4)), rng.normal(size=3)
    x_value = pytensor.function([z, b], x, on_unused_input="ignore")(z_value, b_value)
    got = pytensor.function([z, b], out, on_unused_input="ignore")(z_value, b_value)
    np.testing.assert_allclose(got, reference_max_pool(x_value, (2, 2), (2, 2), (0, 0), True))


def test_average_pooling_is_not_moved():
    z = pt.tensor4("z")
    x = rectify(z + 1.0)
    out = pool_nd(x, (2, 2), mode="average_inc_pad")
    assert x in set(ancestors([out]))  # the activation is pooled as is
    z_value = np.linspace(-2, 2, 32).reshape(1, 2, 4, 4)
    x_value = np.maximum(z_value + 1.0, 0.0)
    want = x_value.reshape(1, 2, 2, 2, 2, 2).mean(axis=(3, 5))
    np.testing.assert_allclose(pytensor.function([z], out)(z_value), want)
