"""Sums lowered to loop nests on Numba: numpy's values, used only under plasagne's linker."""

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
from pytensor.link.numba.linker import NumbaLinker
from pytensor.tensor.math import Sum

from plasagne.ops import simple_sum
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.lowering_scope import plasagne_lowerings
from plasagne.ops.simple_sum import register_numba, sum_source

register_numba()


@st.composite
def sums(draw):
    ndim = draw(st.integers(0, 4))
    axes = draw(st.lists(st.integers(0, max(ndim - 1, 0)), unique=True, max_size=ndim))
    shape = tuple(draw(st.lists(st.integers(0, 4), min_size=ndim, max_size=ndim)))
    dtype = draw(st.sampled_from(["float32", "float64", "int32", "bool"]))
    # accumulators PyTensor accepts for the dtype (no loss of precision)
    acc = draw(st.sampled_from([None, "float64"] if dtype[0] == "f" else [None, "int64"]))
    transposed = draw(st.booleans())
    return ndim, tuple(sorted(axes)) or None, shape, dtype, acc, transposed


def _compiled_kernel(op, node, scalar_out=False):
    """The kernel this module makes for ``node``, callable from Python."""
    kernel, key = simple_sum._lower(op, node, scalar_out=scalar_out)
    assert isinstance(key, str) and len(key) == 64
    return numba.njit(lambda x: kernel(x))


@settings(max_examples=25, deadline=None)
@given(sums())
def test_loop_nest_equals_numpy_sum(case):
    ndim, axes, shape, dtype, acc, transposed = case
    x = pt.tensor(dtype=dtype, shape=(None,) * ndim)
    out = x.sum(axis=axes, acc_dtype=acc)
    node = out.owner
    assert isinstance(node.op, Sum) and simple_sum._lowerable(node.op, node)
    rng = np.random.default_rng(ndim)
    value = np.asarray((rng.normal(size=shape) * 10).astype(dtype))
    if transposed and ndim > 1:  # a strided view, as a DimShuffle hands it over
        value = np.ascontiguousarray(value.T).T
    got = _compiled_kernel(node.op, node)(value)
    acc_dtype = acc or out.dtype
    want = value.astype(acc_dtype).sum(axis=axes).astype(out.dtype)
    assert got.dtype == want.dtype and got.shape == want.shape
    np.testing.assert_allclose(got, want, rtol=1e-6 if "float32" in (dtype, acc_dtype) else 1e-12)


def test_full_sum_returns_a_scalar_or_a_0d_array():
    x = pt.matrix("x", dtype="float32")
    node = x.sum(acc_dtype="float64").owner
    value = np.arange(6, dtype=np.float32).reshape(2, 3)
    array_kernel = _compiled_kernel(node.op, node)
    scalar_kernel = _compiled_kernel(node.op, node, scalar_out=True)
    as_array, as_scalar = array_kernel(value), scalar_kernel(value)
    assert isinstance(as_array, np.ndarray) and as_array.shape == () and as_array == 15.0
    assert np.isscalar(as_scalar) and as_scalar == 15.0
    assert as_array.dtype == np.float32
    [signature] = scalar_kernel.nopython_signatures
    assert signature.return_type == numba.float32


def test_source_of_a_partial_sum_with_a_cast():
    source = sum_source(
        ndim=3, axes=(0, 2), acc_dtype="float64", out_dtype="float32", scalar_out=False
    )
    assert "res = np.zeros((s[1],), dtype=np.float64)" in source
    assert "res[l1] += x[l0, l1, l2]" in source
    assert source.rstrip().endswith("return res.astype(np.float32)")


def test_complex_and_other_reductions_keep_pytensors_lowering():
    z = pt.vector("z", dtype="complex128")
    complex_sum = z.sum().owner
    assert not simple_sum._lowerable(complex_sum.op, complex_sum)
    m = pt.vector("m").max().owner
    assert not simple_sum._lowerable(m.op, m)


def test_dispatch_applies_only_inside_plasagne_lowerings(monkeypatch):
    x = pt.matrix("x")
    node = x.sum(axis=1).owner
    ours = []
    monkeypatch.setattr(simple_sum, "_lower", lambda *a, **k: ours.append(1) or ("f", "k"))
    numba_funcify_and_cache_key(node.op, node=node)
    assert ours == []
    with plasagne_lowerings():
        assert numba_funcify_and_cache_key(node.op, node=node) == ("f", "k")
    assert ours == [1]


@pytest.mark.parametrize("linker", ["plasagne", "pytensor"])
def test_compiled_functions_match_numpy(linker, monkeypatch):
    """Whole functions on Numba: a partial sum and a full sum (which PyTensor turns into
    a scalar-output reduction); plasagne's linker lowers them here, PyTensor's does not."""
    x = pt.matrix("x", dtype="float32")
    outputs = [x.sum(axis=1, acc_dtype="float64"), x.sum() * 2.0]
    mode = fast_math_mode("NUMBA")
    if linker == "pytensor":
        mode = Mode(linker=NumbaLinker(), optimizer=mode.provided_optimizer)
    lowered = []
    original = simple_sum._lower

    def lower(op, node, scalar_out):
        lowered.append(scalar_out)
        return original(op, node, scalar_out)

    monkeypatch.setattr(simple_sum, "_lower", lower)
    f = pytensor.function([x], outputs, mode=mode)
    value = np.random.default_rng(1).normal(size=(7, 5)).astype(np.float32)
    rows, total = f(value)
    np.testing.assert_allclose(rows, value.astype(np.float64).sum(axis=1), rtol=1e-6)
    np.testing.assert_allclose(total, value.sum() * 2.0, rtol=1e-5)
    # the partial sum as an array, the full one (scalarized) as a scalar
    assert sorted(lowered) == ([False, True] if linker == "plasagne" else [])
