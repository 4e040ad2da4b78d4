"""The fused first-convolution-and-pooling Ops: against scipy and hand-written pooling,
their gradients, their Numba kernels (blocks, ties, NaN) and the rewrite that uses them."""

from functools import partial

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad
from test_chunked_corr import filter_gradient_reference
from test_corr_op import correlate_reference

from plasagne.ops import opaque_calls
from plasagne.ops.conv import corr_nd
from plasagne.ops.corr_pool import (
    _BLOCKS,
    CORR_MAX_POOL_TAG,
    ChunkedCorrMaxPool,
    ChunkedCorrMaxPoolGradFilters,
)
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.pool import pool_nd

PERFORM = Mode(linker="py", optimizer="fast_compile")


def pool_reference(y, pool):
    """Each window's maximum (NaN wins) and the position of its first maximum, visiting the
    window's last axis slowest, then the middle one, then the first (plain loops)."""
    pd, ph, pw = pool
    lengths = tuple(n // p for n, p in zip(y.shape[2:], pool))
    pooled = np.empty(y.shape[:2] + lengths, dtype=y.dtype)
    argmax = np.empty(y.shape[:2] + lengths, dtype=np.uint8)
    for b, f, i, j, k in np.ndindex(*pooled.shape):
        top, best, q, nan = None, 0, 0, False
        for c in range(pw):
            for yy in range(ph):
                for z in range(pd):
                    v = y[b, f, i * pd + z, j * ph + yy, k * pw + c]
                    nan = nan or np.isnan(v)
                    if top is None or v > top:
                        top, best = v, q
                    q += 1
        pooled[b, f, i, j, k] = np.nan if nan else top
        argmax[b, f, i, j, k] = best
    return pooled, argmax


def unpool_reference(argmax, g, pool, lengths):
    """The pooled gradient put back at each window's recorded position, zeros elsewhere."""
    pd, ph, pw = pool
    full = np.zeros(g.shape[:2] + tuple(lengths))
    for b, f, i, j, k in np.ndindex(*g.shape):
        c, rest = divmod(int(argmax[b, f, i, j, k]), ph * pd)
        yy, z = divmod(rest, pd)
        full[b, f, i * pd + z, j * ph + yy, k * pw + c] = g[b, f, i, j, k]
    return full


def two_ops(settings_4, dtype="float64", depth_one=False):
    """The two Ops on 5-d inputs; with ``depth_one`` the depth axis is statically 1 (the
    wide-row kernels' case)."""
    shape = (None, None, 1, None, None) if depth_one else (None,) * 5
    x = pt.tensor("x", dtype=dtype, shape=shape)
    w = pt.tensor("w", dtype=dtype, shape=shape)
    g = pt.tensor("g", dtype=dtype, shape=shape)
    pooled, argmax = ChunkedCorrMaxPool(*settings_4)(x, w)
    dw = ChunkedCorrMaxPoolGradFilters(*settings_4)(x, argmax, g)
    return (x, w, g), pooled, argmax, dw


def check_against_references(
    mode, shape, filters, settings_4, seed, dtype="float64", x=None, depth_one=False
):
    kernel, stride, dilation, pool = settings_4
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal(shape).astype(dtype) if x is None else x.astype(dtype)
    wv = rng.standard_normal((filters, shape[1], *kernel)).astype(dtype)
    if x is not None:  # integer filters keep the integer input's ties exact
        wv = np.round(wv)
    correlation = correlate_reference(
        xv.astype(float), wv.astype(float), stride, [(0, 0)] * 3, dilation
    )
    want_pooled, want_argmax = pool_reference(correlation, pool)
    gv = rng.standard_normal(want_pooled.shape).astype(dtype)
    (x_, w_, g_), pooled, argmax, dw = two_ops(settings_4, dtype, depth_one)
    got_pooled, got_argmax, got_dw = pytensor.function(
        [x_, w_, g_], [pooled, argmax, dw], mode=mode
    )(xv, wv, gv)
    tol = 1e-10 if dtype == "float64" else 2e-4
    scale = 1 + np.nanmax(np.abs(correlation)) if correlation.size else 1
    np.testing.assert_allclose(got_pooled, want_pooled, atol=tol * scale, rtol=tol)
    np.testing.assert_array_equal(got_argmax, want_argmax)
    full = unpool_reference(want_argmax, gv.astype(float), pool, correlation.shape[2:])
    want_dw = filter_gradient_reference(xv.astype(float), full, kernel, stride, dilation)
    np.testing.assert_allclose(got_dw, want_dw, rtol=tol, atol=tol * (1 + np.abs(want_dw).max()))
    return got_pooled, got_argmax


@st.composite
def configs(draw):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(3))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(3))
    pool = tuple(draw(st.integers(1, 3)) for _ in range(3))
    # at least one whole window along every axis, sometimes a partial one left over
    spatial = tuple(
        d * (k - 1) + 1 + s * (p - 1 + draw(st.integers(0, 3)))
        for k, d, s, p in zip(kernel, dilation, stride, pool)
    )
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *spatial)
    return shape, draw(st.integers(1, 3)), (kernel, stride, dilation, pool)


@settings(max_examples=30, deadline=None)
@given(configs(), st.integers(0, 2**16))
def test_perform_matches_scipy_and_hand_written_pooling(config, seed):
    shape, filters, settings_4 = config
    check_against_references(PERFORM, shape, filters, settings_4, seed)


@pytest.mark.parametrize(
    "shape, filters, settings_4",
    [
        # the post's first layer in small: one channel, 5x5, 2x2 windows; more examples
        # than blocks, and a partial window left over (13 - 4 = 9 positions)
        ((_BLOCKS + 5, 1, 1, 13, 12), 4, ((1, 5, 5), (1, 1, 1), (1, 1, 1), (1, 2, 2))),
        # several channels (wide patches), fewer examples than blocks
        ((3, 8, 1, 10, 11), 5, ((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 3, 2))),
        # stride, dilation and windows over all three axes
        ((4, 2, 7, 9, 8), 3, ((2, 3, 2), (1, 2, 1), (2, 1, 1), (2, 2, 3))),
    ],
)
def test_numba_kernels_match_the_references(shape, filters, settings_4, kernel_threads):
    check_against_references("NUMBA", shape, filters, settings_4, seed=0)


def test_numba_kernels_in_float32(kernel_threads):
    settings_4 = ((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 2, 2))
    check_against_references("NUMBA", (7, 2, 1, 12, 13), 3, settings_4, 1, "float32")


@pytest.mark.parametrize(
    "mode, depth_one",
    [(PERFORM, False), ("NUMBA", False), ("NUMBA", True)],
    ids=["perform", "numba", "numba-wide-rows"],
)
def test_ties_go_to_the_max_pool_gradients_recipient_and_nan_wins(mode, depth_one):
    settings_4 = ((1, 1, 2), (1, 1, 1), (1, 1, 1), (1, 2, 2))
    rng = np.random.default_rng(3)
    x = rng.integers(0, 2, size=(5, 1, 1, 9, 9)).astype(float)
    check = partial(check_against_references, mode, x.shape, 2, settings_4, 3, depth_one=depth_one)
    pooled, argmax = check(x=x)
    assert len(np.unique(argmax)) > 1  # ties were decided, not all at position 0
    x[0, 0, 0, 2, 3] = np.nan
    pooled, _ = check(x=x)
    assert np.isnan(pooled[0]).any() and not np.isnan(pooled[1:]).any()


def wide_kernel_names():
    return {kernel.key.rsplit("-", 1)[-1] for kernel in opaque_calls._KERNELS.values()}


@pytest.mark.parametrize(
    "shape, filters, settings_4, dtype",
    [
        # the post's first layer in small: one channel, 5x5, 2x2 windows, more examples
        # than blocks, a partial window left over, filters not a whole tile
        ((_BLOCKS + 5, 1, 1, 13, 12), 9, ((1, 5, 5), (1, 1, 1), (1, 1, 1), (1, 2, 2)), "float32"),
        # several channels, 3 x 2 windows, terms not a whole tile (8 * 9 = 72)
        ((3, 8, 1, 10, 11), 5, ((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 3, 2)), "float64"),
        # a 1-D correlation: rows of one, wide positions not a whole vector
        ((4, 2, 1, 1, 29), 4, ((1, 1, 4), (1, 1, 1), (1, 1, 1), (1, 1, 3)), "float32"),
    ],
)
def test_wide_row_kernels_match_the_references(shape, filters, settings_4, dtype, kernel_threads):
    check_against_references("NUMBA", shape, filters, settings_4, 5, dtype, depth_one=True)
    assert {"wide_pool_loop", "wide_filters_loop"} <= wide_kernel_names()


def test_wide_row_kernels_on_an_empty_batch_and_a_strided_input():
    settings_4 = ((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 2, 2))
    (x, w, g), pooled, argmax, dw = two_ops(settings_4, depth_one=True)
    f = pytensor.function([x, w, g], [pooled, dw], mode="NUMBA")
    got_pooled, got_dw = f(
        np.ones((0, 2, 1, 7, 7)), np.ones((4, 2, 1, 3, 3)), np.ones((0, 4, 1, 2, 2))
    )
    assert got_pooled.shape == (0, 4, 1, 2, 2)
    np.testing.assert_array_equal(got_dw, np.zeros((4, 2, 1, 3, 3)))
    rng = np.random.default_rng(4)
    xv = rng.standard_normal((3, 2, 1, 8, 18))[..., ::2]
    wv, gv = rng.standard_normal((4, 2, 1, 3, 3)), rng.standard_normal((3, 4, 1, 3, 3))
    got_pooled, got_dw = f(xv, wv, gv)
    correlation = correlate_reference(xv, wv, (1, 1, 1), [(0, 0)] * 3, (1, 1, 1))
    want_pooled, want_argmax = pool_reference(correlation, (1, 2, 2))
    np.testing.assert_allclose(got_pooled, want_pooled, rtol=1e-10, atol=1e-10)
    full = unpool_reference(want_argmax, gv, (1, 2, 2), correlation.shape[2:])
    want_dw = filter_gradient_reference(xv, full, (1, 3, 3), (1, 1, 1), (1, 1, 1))
    np.testing.assert_allclose(got_dw, want_dw, rtol=1e-10, atol=1e-10)


def test_static_output_shapes_follow_static_inputs():
    x = pt.tensor("x", shape=(500, 1, 1, 28, 27))
    w = pt.tensor("w", shape=(32, 1, 1, 5, 5))
    pooled, argmax = ChunkedCorrMaxPool((1, 5, 5), (1, 1, 1), (1, 1, 1), (1, 2, 2))(x, w)
    assert pooled.type.shape == argmax.type.shape == (500, 32, 1, 12, 11)
    unknown = pt.tensor("u", shape=(None, 1, 1, None, 27))
    pooled, _ = ChunkedCorrMaxPool((1, 5, 5), (1, 1, 1), (1, 1, 1), (1, 2, 2))(unknown, w)
    assert pooled.type.shape == (None, 32, 1, None, 11)


def test_numba_kernels_take_a_non_contiguous_input(kernel_threads):
    # the kernels walk the input flat after making it C-contiguous: a strided view of the
    # graph's input must give the references' values
    settings_4 = ((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 2, 2))
    kernel, stride, dilation, pool = settings_4
    rng = np.random.default_rng(3)
    xs = rng.standard_normal((4, 2, 1, 10, 18))
    xv, wv = xs[..., ::2], rng.standard_normal((3, 2, *kernel))
    correlation = correlate_reference(xv, wv, stride, [(0, 0)] * 3, dilation)
    want_pooled, want_argmax = pool_reference(correlation, pool)
    gv = rng.standard_normal(want_pooled.shape)
    big = pt.tensor("x", dtype="float64", shape=(None,) * 5)
    w, g = pt.tensor5("w", dtype="float64"), pt.tensor5("g", dtype="float64")
    pooled, argmax = ChunkedCorrMaxPool(*settings_4)(big[..., ::2], w)
    dw = ChunkedCorrMaxPoolGradFilters(*settings_4)(big[..., ::2], argmax, g)
    f = pytensor.function([big, w, g], [pooled, argmax, dw], mode="NUMBA")
    got_pooled, got_argmax, got_dw = f(xs, wv, gv)
    np.testing.assert_allclose(got_pooled, want_pooled, rtol=1e-10, atol=1e-10)
    np.testing.assert_array_equal(got_argmax, want_argmax)
    full = unpool_reference(want_argmax, gv, pool, correlation.shape[2:])
    want_dw = filter_gradient_reference(xv, full, kernel, stride, dilation)
    np.testing.assert_allclose(got_dw, want_dw, rtol=1e-10, atol=1e-10)


def test_numba_kernels_on_an_empty_batch():
    settings_4 = ((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 2, 2))
    (x, w, g), pooled, argmax, dw = two_ops(settings_4)
    f = pytensor.function([x, w, g], [pooled, dw], mode="NUMBA")
    got_pooled, got_dw = f(
        np.ones((0, 2, 1, 7, 7)), np.ones((4, 2, 1, 3, 3)), np.ones((0, 4, 1, 2, 2))
    )
    assert got_pooled.shape == (0, 4, 1, 2, 2)
    np.testing.assert_array_equal(got_dw, np.zeros((4, 2, 1, 3, 3)))


def test_inferred_shapes_are_the_computed_ones():
    settings_4 = ((1, 2, 3), (1, 1, 2), (1, 2, 1), (1, 2, 2))
    (x, w, g), pooled, argmax, dw = two_ops(settings_4)
    xv, wv = np.ones((2, 3, 1, 9, 12)), np.ones((4, 3, 1, 2, 3))
    shapes = pytensor.function([x, w], [pooled.shape, argmax.shape], mode="FAST_RUN")(xv, wv)
    got = pytensor.function([x, w], [pooled, argmax], mode=PERFORM)(xv, wv)
    assert [tuple(s) for s in shapes] == [v.shape for v in got] == [(2, 4, 1, 3, 2)] * 2
    gv = np.ones(got[0].shape)
    dw_shape = pytensor.function([x, w, g], dw.shape, mode="FAST_RUN")(xv, wv, gv)
    assert tuple(dw_shape) == (4, 3, 1, 2, 3)


@pytest.mark.parametrize("wrt", ["forward", "filter_gradient"])
def test_gradients_verify_numerically(wrt):
    rng = np.random.default_rng(7)
    settings_4 = ((1, 2, 3), (1, 1, 2), (1, 1, 1), (1, 2, 2))
    x = rng.standard_normal((2, 2, 1, 6, 11))
    w = rng.standard_normal((3, 2, 1, 2, 3))
    g = rng.standard_normal((2, 3, 1, 2, 2))
    if wrt == "forward":
        verify_grad(
            lambda x, w: ChunkedCorrMaxPool(*settings_4)(x, w)[0], [x, w], rng=rng, mode=PERFORM
        )
    else:
        argmax = ChunkedCorrMaxPool(*settings_4)(pt.constant(x), pt.constant(w))[1]

        def filter_gradient(x, g):
            return ChunkedCorrMaxPoolGradFilters(*settings_4)(x, argmax, g)

        verify_grad(filter_gradient, [x, g], rng=rng, mode=PERFORM)


def test_make_node_names_the_op_and_what_is_wrong():
    settings_4 = ((1, 1, 2), (1, 1, 1), (1, 1, 1), (1, 1, 2))
    with pytest.raises(ValueError, match="ChunkedCorrMaxPool: input must be 5-d"):
        ChunkedCorrMaxPool(*settings_4)(pt.tensor4(), pt.tensor5())
    with pytest.raises(TypeError, match="ChunkedCorrMaxPool: input float64 and filters float32"):
        ChunkedCorrMaxPool(*settings_4)(pt.tensor5(dtype="float64"), pt.tensor5(dtype="float32"))
    grad_op = ChunkedCorrMaxPoolGradFilters(*settings_4)
    with pytest.raises(TypeError, match="ChunkedCorrMaxPoolGradFilters: argmax must be uint8"):
        grad_op(pt.tensor5(), pt.tensor5(dtype="int64"), pt.tensor5())
    with pytest.raises(ValueError, match="a pooling window of 256 entries"):
        ChunkedCorrMaxPool((1, 1, 1), (1, 1, 1), (1, 1, 1), (1, 16, 16))
    with pytest.raises(ValueError, match="pool must be 3 positive ints"):
        ChunkedCorrMaxPool((1, 1, 1), (1, 1, 1), (1, 1, 1), (2, 2))


# ---------------------------------------------------------------------- the rewrite


def two_layer_graph(pool_stride=None, ignore_border=True, input_gradient=False, extra_use=False):
    """conv -> pool -> tanh -> conv -> pool, gradients for both filters (and the input)."""
    x = pt.tensor("x", dtype="float64", shape=(None, 1, None, None))
    w1 = pt.tensor("w1", dtype="float64", shape=(3, 1, 3, 3))
    w2 = pt.tensor("w2", dtype="float64", shape=(2, 3, 2, 2))
    c1 = corr_nd(x, w1, pad=((1, 0), (0, 1)))
    h = pt.tanh(pool_nd(c1, (2, 2), stride=pool_stride, ignore_border=ignore_border))
    out = pool_nd(corr_nd(h, w2), (2, 2))
    cost = (out**2).sum() + (c1.sum() if extra_use else 0)
    wrt = [x, w1, w2] if input_gradient else [w1, w2]
    return [x, w1, w2], [out, *pytensor.grad(cost, wrt)]


def values_for(seed=0):
    rng = np.random.default_rng(seed)
    return [
        rng.standard_normal((3, 1, 12, 11)),
        rng.standard_normal((3, 1, 3, 3)),
        rng.standard_normal((2, 3, 2, 2)),
    ]


def op_names(f):
    return [type(node.op).__name__ for node in f.maker.fgraph.apply_nodes]


def test_rewrite_fuses_the_first_layer_with_the_same_values():
    inputs, outputs = two_layer_graph()
    values = values_for()
    unfused_mode = fast_math_mode("NUMBA").excluding("plasagne_fuse_corr_max_pool")
    fused = pytensor.function(inputs, outputs, mode=fast_math_mode("NUMBA"))
    unfused = pytensor.function(inputs, outputs, mode=unfused_mode)
    names = op_names(fused)
    # the first layer fused; the second's input gradient is needed, so it stays apart
    assert names.count("ChunkedCorrMaxPool") == 1
    assert names.count("ChunkedCorrMaxPoolGradFilters") == 1
    assert names.count("MaxPoolKernelGrad") == 1 and names.count("ChunkedCorr") == 1
    assert "ChunkedCorrMaxPool" not in op_names(unfused)
    for got, want in zip(fused(*values), unfused(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
    forward = pool_nd(corr_nd(inputs[0], inputs[1]), (2, 2))
    prediction = pytensor.function(inputs[:2], forward, mode="NUMBA")
    assert "ChunkedCorrMaxPool" in op_names(prediction)  # forward-only graphs too


@pytest.mark.parametrize(
    "case",
    [
        {"pool_stride": (1, 1)},  # overlapping windows
        {"ignore_border": False},  # a partial end window kept
        {"input_gradient": True},  # the data's gradient wanted
        {"extra_use": True},  # the correlation's output used beyond the pooling
    ],
    ids=["overlapping", "partial-windows", "input-gradient", "output-used-elsewhere"],
)
def test_rewrite_leaves_what_it_cannot_fuse(case):
    inputs, outputs = two_layer_graph(**case)
    names = op_names(pytensor.function(inputs, outputs, mode="NUMBA"))
    assert "ChunkedCorrMaxPool" not in names and "ChunkedCorr" in names


@pytest.mark.parametrize("channels", [8, None], ids=["wide-patches", "unknown-channels"])
def test_rewrite_leaves_wide_or_unknown_patch_depths(channels):
    # 8 channels x 9 taps = 72 >= WIDE_DEPTH: the chunked forward's one product per chunk
    x = pt.tensor("x", dtype="float64", shape=(None, 8, None, None))
    w = pt.tensor("w", dtype="float64", shape=(3, channels, 3, 3))
    out = pool_nd(corr_nd(x, w), (2, 2))
    names = op_names(pytensor.function([x, w], [out, pytensor.grad(out.sum(), w)], mode="NUMBA"))
    assert "ChunkedCorrMaxPool" not in names and "ChunkedCorr" in names


def test_rewrite_stays_out_of_other_backends_unless_included():
    inputs, outputs = two_layer_graph()
    c_names = op_names(pytensor.function(inputs, outputs, mode=Mode("cvm", "fast_run")))
    assert "ChunkedCorrMaxPool" not in c_names
    included = Mode("py", "fast_run").including(CORR_MAX_POOL_TAG)
    f = pytensor.function(inputs, outputs, mode=included)
    assert "ChunkedCorrMaxPool" in op_names(f)
    reference = pytensor.function(inputs, outputs, mode="FAST_COMPILE")
    values = values_for(1)
    for got, want in zip(f(*values), reference(*values)):
        np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-12)
