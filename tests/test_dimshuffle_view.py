"""DimShuffle lowered as one intrinsic on Numba: numpy's views, used only under our linker."""

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

from plasagne.ops import dimshuffle_view
from plasagne.ops.dimshuffle_view import register_numba, view_layout
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.lowering_scope import plasagne_lowerings

register_numba()


@st.composite
def shuffles(draw):
    ndim = draw(st.integers(1, 4))
    shape = draw(st.lists(st.integers(1, 3), min_size=ndim, max_size=ndim))
    unit = [axis for axis, length in enumerate(shape) if length == 1]
    drop = draw(st.lists(st.sampled_from(unit), unique=True)) if unit else []
    kept = draw(st.permutations([axis for axis in range(ndim) if axis not in drop]))
    pattern = list(kept)
    for _ in range(draw(st.integers(0, 2))):
        pattern.insert(draw(st.integers(0, len(pattern))), "x")
    if not pattern or pattern == list(range(ndim)):  # no node for an identity
        pattern.append("x")
    static = tuple(1 if length == 1 else None for length in shape)
    order = draw(st.sampled_from(["C", "F", "strided"]))
    return tuple(shape), static, tuple(pattern), order


def _numpy_view(value, pattern):
    """The DimShuffle by hand: kept axes in their new order, length-one axes in/out."""
    kept = [axis for axis in pattern if axis != "x"]
    dropped = [axis for axis in range(value.ndim) if axis not in kept]
    shape = [1 if axis == "x" else value.shape[axis] for axis in pattern]
    return np.transpose(value, kept + dropped).reshape(shape)


def _compiled(x, pattern):
    node = x.dimshuffle(*pattern).owner
    view, key = dimshuffle_view._lower(node.op, node)
    assert isinstance(key, str) and len(key) == 64
    return numba.njit(lambda a: view(a))


@settings(max_examples=30, deadline=None)
@given(shuffles())
def test_view_equals_numpy_and_shares_memory(case):
    shape, static, pattern, order = case
    x = pt.tensor("x", dtype="float32", shape=static)
    value = np.arange(np.prod(shape), dtype=np.float32).reshape(shape)
    if order == "F":
        value = np.asfortranarray(value)
    elif order == "strided":
        value = np.repeat(value, 2, axis=-1)[..., ::2]
    compiled = _compiled(x, pattern)
    got = compiled(value)
    want = _numpy_view(value, pattern)
    assert got.shape == want.shape
    np.testing.assert_array_equal(got, want)
    assert np.shares_memory(got, value)
    [signature] = compiled.nopython_signatures
    unit_axes = frozenset(axis for axis, length in enumerate(static) if length == 1)
    new_order = tuple(-1 if axis == "x" else axis for axis in pattern)
    assert signature.return_type.layout == view_layout(
        signature.args[0].layout, new_order, unit_axes
    )


def test_dropping_an_axis_longer_than_one_raises():
    x = pt.tensor("x", dtype="float64", shape=(None, 1))
    compiled = _compiled(x, (0,))
    np.testing.assert_array_equal(compiled(np.ones((3, 1))), np.ones(3))
    with pytest.raises(ValueError, match="squeeze axes with size not equal to one"):
        compiled(np.ones((3, 2)))


def test_layouts():
    assert view_layout("C", (0, 1), frozenset()) == "C"
    assert view_layout("F", (1, 0), frozenset()) == "C"
    assert view_layout("C", (1, 0, 2), frozenset()) == "A"
    assert view_layout("C", (1, 0, 2), frozenset({0})) == "C"  # the moved axis has length 1
    assert view_layout("A", (0, 1), frozenset()) == "A"


def test_dispatch_applies_only_inside_plasagne_lowerings():
    x = pt.matrix("x")
    node = x.T.owner
    pytensors, _ = numba_funcify_and_cache_key(node.op, node=node)
    with plasagne_lowerings():
        ours, _ = numba_funcify_and_cache_key(node.op, node=node)
        # to or from 0-d keeps PyTensor's lowering
        scalar = pt.scalar("s").dimshuffle("x").owner
        kept, _ = numba_funcify_and_cache_key(scalar.op, node=scalar)
    assert ours is dimshuffle_view._lower(node.op, node)[0]
    assert pytensors is not ours and kept.__name__ != "dimshuffle_view"


def test_compiled_function_matches_numpy(monkeypatch):
    x = pt.tensor3("x", dtype="float32")
    b = pt.vector("b", dtype="float32")
    outputs = [x.dimshuffle(2, 0, 1) * 2.0, x + b.dimshuffle("x", "x", 0), x.T.sum(axis=0)]
    lowered = []
    original = dimshuffle_view._lower

    def lower(op, node):
        lowered.append(tuple(op.new_order))
        return original(op, node)

    monkeypatch.setattr(dimshuffle_view, "_lower", lower)
    f = pytensor.function([x, b], outputs, mode=fast_math_mode("NUMBA"))
    rng = np.random.default_rng(0)
    value = rng.normal(size=(2, 3, 4)).astype(np.float32)
    bias = rng.normal(size=4).astype(np.float32)
    got = f(value, bias)
    want = [np.transpose(value, (2, 0, 1)) * 2.0, value + bias, value.T.sum(axis=0)]
    for g, w in zip(got, want):
        np.testing.assert_allclose(g, w, rtol=1e-6)
    assert lowered  # the graph's DimShuffles went through the intrinsic
