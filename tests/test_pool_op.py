"""Max pooling as one node: the kernel Ops against window loops written out here, the
slice graph's gradient (ties included), Numba's kernels, and the rewrites that place them."""

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad

from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.pool import pool_graph, pool_nd, pool_output_length
from plasagne.ops.pool_op import MaxPoolKernel, MaxPoolKernelGrad, MaxPoolNd, MaxPoolNdGrad

PERFORM_WITH_KERNELS = Mode(linker="py", optimizer="fast_run").including("max_pool_kernel")


def window_ranges(shape, size, stride, pad, ignore_border):
    """Per output index along each pooled axis, the clipped input range of its window."""
    ranges = []
    for length, k, s, p in zip(shape, size, stride, pad):
        count = pool_output_length(length, k, s, p, ignore_border)
        ranges.append([(max(0, i * s - p), min(length, i * s - p + k)) for i in range(count)])
    return ranges


def reference_max_pool(x, size, stride, pad, ignore_border):
    """Loops over windows; the maximum of the real positions each window covers."""
    n = len(size)
    ranges = window_ranges(x.shape[-n:], size, stride, pad, ignore_border)
    out = np.empty(x.shape[:-n] + tuple(len(r) for r in ranges))
    for index in itertools.product(*(range(len(r)) for r in ranges)):
        window = tuple(slice(*ranges[a][i]) for a, i in enumerate(index))
        out[(..., *index)] = x[(..., *window)].reshape(x.shape[:-n] + (-1,)).max(axis=-1)
    return out


def reference_max_pool_grad(x, g, size, stride, pad, ignore_border):
    """Each window's gradient to its first maximum, visiting the window's positions with
    the last pooled axis slowest, then the one before (PyTensor's ``maximum`` gives a
    tie's gradient to its first argument, and the slice graph pools the axes in order)."""
    n = len(size)
    ranges = window_ranges(x.shape[-n:], size, stride, pad, ignore_border)
    dx = np.zeros_like(x)
    for lead in np.ndindex(*x.shape[:-n]):
        for index in itertools.product(*(range(len(r)) for r in ranges)):
            axes = [range(*ranges[a][i]) for a, i in enumerate(index)]
            best, top = None, None
            for reversed_position in itertools.product(*reversed(axes)):
                position = tuple(reversed(reversed_position))
                value = x[lead + position]
                if top is None or value > top:
                    best, top = position, value
            dx[lead + best] += g[lead + index]
    return dx


@st.composite
def pool_configs(draw):
    n = draw(st.integers(1, 3))
    size = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 3)) for _ in range(n))
    ignore_border = draw(st.booleans())
    pad = tuple(draw(st.integers(0, k - 1)) for k in size) if ignore_border else (0,) * n
    spatial = tuple(k + draw(st.integers(0, 4)) for k in size)
    lead = tuple(draw(st.integers(1, 2)) for _ in range(draw(st.integers(1, 2))))
    return lead + spatial, size, stride, pad, ignore_border


def check(mode, shape, size, stride, pad, ignore_border, seed, dtype="float64"):
    rng = np.random.default_rng(seed)
    # few distinct values: many ties inside windows
    xv = rng.integers(-2, 3, size=shape).astype(dtype)
    x = pt.tensor("x", dtype=dtype, shape=(None,) * len(shape))
    out = pool_nd(x, size, stride, pad, ignore_border)
    expected = reference_max_pool(xv, size, stride, pad, ignore_border)
    gv = rng.standard_normal(expected.shape).astype(dtype)
    g = pt.tensor("g", dtype=dtype, shape=(None,) * len(shape))
    grad = pytensor.grad((out * g).sum(), x)
    f = pytensor.function([x, g], [out, grad], mode=mode)
    got, got_grad = f(xv, gv)
    np.testing.assert_array_equal(got, expected)
    want_grad = reference_max_pool_grad(xv, gv, size, stride, pad, ignore_border)
    np.testing.assert_allclose(got_grad, want_grad, rtol=1e-6, atol=1e-6)
    return f


@settings(max_examples=40, deadline=None)
@given(pool_configs(), st.integers(0, 2**16))
def test_kernel_ops_match_window_loops_with_ties(config, seed):
    f = check(PERFORM_WITH_KERNELS, *config, seed)
    names = {type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}
    assert {"MaxPoolKernel", "MaxPoolKernelGrad"} <= names


@settings(max_examples=15, deadline=None)
@given(pool_configs(), st.integers(0, 2**16))
def test_slice_graph_gradient_matches_the_same_loops(config, seed):
    """The reference's tie rule is the slice graph's: the kernels must agree with both."""
    shape, size, stride, pad, ignore_border = config
    rng = np.random.default_rng(seed)
    xv = rng.integers(-2, 3, size=shape).astype(float)
    x = pt.tensor("x", shape=(None,) * len(shape))
    out = pool_graph(x, size, stride, pad, ignore_border, "max")
    gv = rng.standard_normal(reference_max_pool(xv, size, stride, pad, ignore_border).shape)
    grad = pytensor.grad((out * gv).sum(), x)
    got = pytensor.function([x], grad, mode="FAST_COMPILE")(xv)
    want = reference_max_pool_grad(xv, gv, size, stride, pad, ignore_border)
    np.testing.assert_allclose(got, want, rtol=1e-12)


@pytest.mark.parametrize(
    "shape, size, stride, pad, ignore_border",
    [
        ((3, 4, 10, 12), (2, 2), (2, 2), (0, 0), True),  # tiles: every position written once
        ((3, 4, 11, 13), (2, 2), (2, 2), (0, 0), True),  # tiles with uncovered borders
        ((3, 4, 11, 13), (2, 3), (2, 3), (0, 0), False),  # tiles with partial end windows
        ((2, 3, 9, 10), (3, 2), (2, 1), (1, 0), True),  # overlapping, padded
        ((2, 7, 9), (3,), (2,), (0,), False),  # one axis, partial end window
        ((2, 2, 5, 6, 7), (2, 3, 2), (1, 2, 3), (1, 0, 1), True),  # three axes
        ((5, 27, 6, 7), (2, 2), (2, 2), (0, 0), False),  # 135 rows: uneven thread blocks
    ],
)
def test_numba_kernels_match_window_loops(shape, size, stride, pad, ignore_border, kernel_threads):
    f = check("NUMBA", shape, size, stride, pad, ignore_border, seed=len(shape))
    names = {type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}
    assert {"MaxPoolKernel", "MaxPoolKernelGrad"} <= names


def test_numba_kernels_in_float32_through_fast_math_mode(kernel_threads):
    check(fast_math_mode("FAST_RUN"), (5, 3, 12, 12), (2, 2), (2, 2), (0, 0), True, 7, "float32")


def test_forward_propagates_nan_like_maximum():
    x = pt.tensor4("x")
    xv = np.arange(16.0).reshape(1, 1, 4, 4)
    xv[0, 0, 0, 1] = np.nan
    for mode in ["NUMBA", PERFORM_WITH_KERNELS]:
        got = pytensor.function([x], pool_nd(x, (2, 2)), mode=mode)(xv)
        assert np.isnan(got[0, 0, 0, 0]) and not np.isnan(got[0, 0, 1:]).any()


def test_kernel_op_gradient_verifies_numerically():
    rng = np.random.default_rng(3)
    settings_3d = ((1, 2, 3), (1, 2, 2), (0, 1, 1), True)
    verify_grad(
        lambda x: MaxPoolKernel(*settings_3d)(x),
        [rng.standard_normal((2, 1, 6, 7))],
        rng=rng,
        mode=PERFORM_WITH_KERNELS,
    )


def op_names(x, outputs, mode):
    f = pytensor.function([x], outputs, mode=mode)
    return {type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}


def test_rewrites_place_kernels_on_numba_and_slice_graphs_elsewhere():
    x = pt.tensor4("x")
    out = pool_nd(x, (2, 2))
    outputs = [out, pytensor.grad(out.sum(), x)]
    assert {"MaxPoolNd", "MaxPoolNdGrad"} <= op_names(x, outputs, "FAST_COMPILE")
    numba = op_names(x, outputs, "NUMBA")
    assert {"MaxPoolKernel", "MaxPoolKernelGrad"} <= numba
    assert not numba & {"MaxPoolNd", "MaxPoolNdGrad"}
    for mode in [Mode("cvm", "fast_run"), Mode("py", "fast_run")]:
        names = op_names(x, outputs, mode)
        assert not names & {"MaxPoolNd", "MaxPoolNdGrad", "MaxPoolKernel", "MaxPoolKernelGrad"}
        assert "IncSubtensor" in names  # the slice graph's gradient
    ints = pt.tensor4("i", dtype="int32")
    assert "MaxPoolKernel" not in op_names(ints, pool_nd(ints, (2, 2)), "NUMBA")


def test_pool_nd_builds_one_node_for_max_only():
    x = pt.tensor4("x")
    assert isinstance(pool_nd(x, (2, 2)).owner.op, MaxPoolNd)
    assert not isinstance(pool_nd(x, (2, 2), mode="average_inc_pad").owner.op, MaxPoolNd)
    grad = pytensor.grad(pool_nd(x, (2, 2)).sum(), x)
    assert isinstance(grad.owner.op, MaxPoolNdGrad)


def test_kernel_ops_name_themselves_in_errors():
    with pytest.raises(TypeError, match="MaxPoolKernel: input must be a 4-d float tensor"):
        MaxPoolKernel((1, 2, 2), (1, 2, 2), (0, 0, 0), True)(pt.matrix())
    with pytest.raises(ValueError, match="MaxPoolKernelGrad: pool_size, stride and pad"):
        MaxPoolKernelGrad((2, 2), (2, 2), (0, 0), True)
