"""create_param: every kind of parameter spec, and the errors for wrong ones."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st

from plasagne.utils import ParameterError, create_param, floatX

shapes = st.lists(st.integers(1, 4), min_size=1, max_size=4).map(tuple)


@given(shapes)
def test_array_becomes_named_floatx_shared_variable(shape):
    value = np.arange(np.prod(shape), dtype="int64").reshape(shape)
    param = create_param(value, shape, name="layer.W")
    assert param.name == "layer.W"
    assert param.dtype == pytensor.config.floatX
    np.testing.assert_array_equal(param.get_value(), value.astype(pytensor.config.floatX))
    # size-1 axes are broadcastable, like Lasagne's parameters
    assert param.type.broadcastable == tuple(s == 1 for s in shape)


def test_shared_variable_is_used_as_given():
    shared = pytensor.shared(floatX(np.ones((2, 3))))
    assert create_param(shared, (2, 3)) is shared


def test_shared_variable_with_wrong_value_shape_is_rejected():
    shared = pytensor.shared(floatX(np.ones((3, 2))), name="w")
    with pytest.raises(ParameterError, match=r"expected shape \(2, 3\).*holding shape \(3, 2\)"):
        create_param(shared, (2, 3), name="dense.W")


def test_callable_gets_shape_and_name_when_it_accepts_it():
    seen = {}

    def with_name(shape, name=None):
        seen["shape"], seen["name"] = shape, name
        return np.zeros(shape)

    def without_name(shape):
        seen["plain"] = shape
        return np.ones(shape)

    create_param(with_name, (4, 5), name="hidden1.W")
    assert seen["shape"] == (4, 5) and seen["name"] == "hidden1.W"
    p = create_param(without_name, (2,), name="b")
    assert seen["plain"] == (2,)
    np.testing.assert_array_equal(p.get_value(), np.ones(2))


def test_callable_gets_layer_when_it_accepts_it():
    sentinel = object()
    got = []

    def init(shape, layer=None):
        got.append(layer)
        return np.zeros(shape)

    create_param(init, (2,), name="x.b", layer=sentinel)
    assert got == [sentinel]


def test_callable_may_return_an_expression():
    log_w = pytensor.shared(np.zeros((2, 2)), name="log_w")
    expr = create_param(lambda shape: pt.exp(log_w), (2, 2))
    np.testing.assert_allclose(expr.eval(), np.ones((2, 2)))


def test_callable_returning_nonsense_is_rejected():
    with pytest.raises(ParameterError, match="returned"):
        create_param(lambda shape: "oops", (2,), name="l.b")


@pytest.mark.parametrize(
    "spec, shape, message",
    [
        (
            np.zeros((3, 4)),
            (4, 3),
            r"'l\.W': expected shape \(4, 3\), found array of shape \(3, 4\)",
        ),
        (pt.matrix(), (4,), r"expected an expression with 1 dimensions.*found 2"),
        (pt.tensor(shape=(2, 5)), (2, 3), r"expected shape \(2, 3\), found static shape \(2, 5\)"),
        ("string", (2,), "cannot use str"),
        (np.zeros(2), (0,), "non-positive shape"),
    ],
)
def test_wrong_specs_give_clear_errors(spec, shape, message):
    with pytest.raises(ParameterError, match=message):
        create_param(spec, shape, name="l.W")


def test_expression_with_unknown_static_shape_is_accepted():
    m = pt.matrix("m")
    assert create_param(m, (7, 9)) is m
