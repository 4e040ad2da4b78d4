"""The direct SIMD correlation kernels (Numba): against hand-written numpy sums, on shapes
around the vector and tile sizes, in both dtypes, serial and threaded; which nodes they
serve; and the SIMD intrinsics they are written with."""

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from test_chunked_corr import filter_gradient_reference, input_gradient_reference
from test_corr_op import correlate_reference

from plasagne.ops.chunked_corr import (
    ChunkedCorr,
    ChunkedCorrGradFilters,
    ChunkedCorrGradInput,
    uses_direct_kernels,
)
from plasagne.ops.direct_corr import (
    ROWS,
    direct_applies,
    direct_kernels,
    direct_salt,
    source_salt,
    tile_source,
)
from plasagne.ops.simd import vadd, vector_lanes, vfma, vload, vsplat_at, vstore, vzero

UNIT = ((1, 1, 1), (1, 1, 1))


def direct_function(channels, filters, kernel, dtype):
    """The three chunked Ops on inputs of static depth 1 (the direct kernels' case)."""
    settings_3d = ((1, *kernel), *UNIT)
    x = pt.tensor("x", dtype=dtype, shape=(None, channels, 1, None, None))
    w = pt.tensor("w", dtype=dtype, shape=(filters, channels, 1, *kernel))
    g = pt.tensor("g", dtype=dtype, shape=(None, filters, 1, None, None))
    outputs = [
        ChunkedCorr(*settings_3d)(x, w),
        ChunkedCorrGradFilters(*settings_3d)(x, g),
        ChunkedCorrGradInput(*settings_3d)(w, g, x),
    ]
    return pytensor.function([x, w, g], outputs, mode="NUMBA")


def check_direct(batch, channels, filters, kernel, spatial, dtype, seed):
    rng = np.random.default_rng(seed)
    x = rng.standard_normal((batch, channels, 1, *spatial)).astype(dtype)
    w = rng.standard_normal((filters, channels, 1, *kernel)).astype(dtype)
    x64, w64 = x.astype(float), w.astype(float)
    expected = correlate_reference(x64, w64, (1, 1, 1), [(0, 0)] * 3, (1, 1, 1))
    g = rng.standard_normal(expected.shape).astype(dtype)
    f = direct_function(channels, filters, kernel, dtype)
    chunked = [n for n in f.maker.fgraph.apply_nodes if type(n.op).__name__.startswith("Chunked")]
    assert len(chunked) == 3 and all(uses_direct_kernels(n) for n in chunked)
    got_out, got_dw, got_dx = f(x, w, g)
    tol = 1e-10 if dtype == "float64" else 3e-4
    terms = channels * kernel[0] * kernel[1]
    np.testing.assert_allclose(got_out, expected, rtol=tol, atol=tol * np.sqrt(terms))
    dw = filter_gradient_reference(x64, g.astype(float), (1, *kernel), (1, 1, 1), (1, 1, 1))
    np.testing.assert_allclose(got_dw, dw, rtol=tol, atol=tol * np.sqrt(g[:, 0].size))
    dx = input_gradient_reference(w64, g.astype(float), x.shape, (1, 1, 1), (1, 1, 1))
    np.testing.assert_allclose(got_dx, dx, rtol=tol, atol=tol * np.sqrt(filters * terms))


def assert_float64_references(x, w, g, got):
    """``got = (out, dw, dx)`` of a stride-1 float64 correlation against the references."""
    kernel = (1, *w.shape[3:])
    np.testing.assert_allclose(
        got[0], correlate_reference(x, w, (1, 1, 1), [(0, 0)] * 3, (1, 1, 1)), atol=1e-10
    )
    np.testing.assert_allclose(
        got[1], filter_gradient_reference(x, g, kernel, (1, 1, 1), (1, 1, 1)), atol=1e-10
    )
    np.testing.assert_allclose(
        got[2], input_gradient_reference(w, g, x.shape, (1, 1, 1), (1, 1, 1)), atol=1e-10
    )


@st.composite
def direct_configs(draw):
    lanes = vector_lanes(4)
    # a few kernel sizes (each is compiled into its kernels); shapes vary freely
    kernel = draw(st.sampled_from([(5, 5), (1, 3), (4, 4), (2, 3)]))
    spatial = tuple(k + draw(st.integers(0, 2 * ROWS + 1)) for k in kernel)
    # channels and filters at least 8 (narrower ones stay with the chunked kernels), on
    # both sides of one and two vectors of filters
    width = st.sampled_from([8, 9, lanes - 1, lanes, lanes + 1, 2 * lanes, 2 * lanes + 3])
    return draw(st.integers(1, 5)), draw(width), draw(width), kernel, spatial


@settings(max_examples=6, deadline=None)
@given(direct_configs(), st.sampled_from(["float32", "float64"]), st.integers(0, 2**16))
def test_direct_kernels_match_hand_written_sums(config, dtype, seed):
    batch, channels, filters, kernel, spatial = config
    check_direct(batch, channels, filters, kernel, spatial, dtype, seed)


@pytest.mark.parametrize(
    "batch, channels, filters, kernel, spatial, dtype",
    [
        # the post's second convolution (fewer images): two vectors of float32 filters
        (19, 32, 32, (5, 5), (12, 12), "float32"),
        # a 1-D correlation, output rows not a whole tile, several examples per group
        (23, 40, 17, (1, 3), (1, 30), "float64"),
        # output 1 x 1: a tile of padding but one position
        (2, 8, 8, (4, 4), (4, 4), "float32"),
    ],
)
def test_direct_kernels_on_chosen_shapes(
    batch, channels, filters, kernel, spatial, dtype, kernel_threads
):
    check_direct(batch, channels, filters, kernel, spatial, dtype, seed=batch)


def test_direct_kernels_on_an_empty_batch_and_strided_inputs(kernel_threads):
    f = direct_function(8, 9, (3, 3), "float64")
    out, dw, dx = f(np.ones((0, 8, 1, 5, 5)), np.ones((9, 8, 1, 3, 3)), np.ones((0, 9, 1, 3, 3)))
    assert out.shape == (0, 9, 1, 3, 3) and dx.shape == (0, 8, 1, 5, 5)
    np.testing.assert_array_equal(dw, np.zeros((9, 8, 1, 3, 3)))
    rng = np.random.default_rng(3)
    x = rng.standard_normal((4, 8, 1, 6, 14))[..., ::2]
    w = rng.standard_normal((9, 8, 1, 3, 3))
    g = rng.standard_normal((4, 9, 1, 4, 10))[..., ::2]
    got_out, got_dw, got_dx = f(x, w, g)
    assert_float64_references(x, w, g, (got_out, got_dw, got_dx))


def test_direct_kernels_raise_on_mismatched_shapes():
    f = direct_function(8, 9, (3, 3), "float64")
    x, w = np.ones((2, 8, 1, 5, 5)), np.ones((9, 8, 1, 3, 3))
    with pytest.raises(ValueError, match="gradient does not match the output"):
        f(x, w, np.ones((2, 9, 1, 4, 3)))
    with pytest.raises(ValueError, match="input smaller than the kernel"):
        f(np.ones((2, 8, 1, 2, 5)), w, np.ones((2, 9, 1, 0, 3)))
    x_ = pt.tensor("x", dtype="float64", shape=(None, 8, 1, None, None))
    w_ = pt.tensor("w", dtype="float64", shape=(9, 8, 1, None, None))
    forward = pytensor.function([x_, w_], ChunkedCorr((1, 3, 3), *UNIT)(x_, w_), mode="NUMBA")
    with pytest.raises(ValueError, match="ChunkedCorr: filters or input differ from the kernel"):
        forward(x, np.ones((9, 8, 1, 3, 2)))


def test_which_nodes_the_direct_kernels_serve():
    x5 = pt.tensor("x", shape=(None, 8, 1, None, None))
    w5 = pt.tensor("w", shape=(9, 8, 1, 3, 3))
    direct = ChunkedCorr((1, 3, 3), *UNIT)
    assert direct_applies(direct, direct(x5, w5).owner)
    for op in [
        ChunkedCorr((1, 3, 3), (1, 2, 1), (1, 1, 1)),  # stride
        ChunkedCorr((1, 3, 3), (1, 1, 1), (1, 1, 2)),  # dilation
        ChunkedCorr((2, 3, 3), *UNIT),  # a kernel with depth
    ]:
        assert not direct_applies(op, op(x5, w5).owner)
    # depth not known to be 1
    assert not direct_applies(direct, direct(pt.tensor5("x"), w5).owner)
    ints = pt.tensor("i", dtype="int64", shape=(None, 8, 1, None, None))
    assert not direct_applies(direct, ChunkedCorr((1, 3, 3), *UNIT).make_node(ints, ints))


def test_narrow_gradients_stay_with_the_chunked_kernels():
    """One input channel (a first layer): the forward takes the direct kernel, the filter
    and input gradients the chunked ones; with 8 channels all three go direct."""
    f = direct_function(1, 12, (3, 3), "float64")
    chosen = {
        type(n.op).__name__: uses_direct_kernels(n)
        for n in f.maker.fgraph.apply_nodes
        if type(n.op).__name__.startswith("ChunkedCorr")
    }
    assert chosen == {
        "ChunkedCorr": True,
        "ChunkedCorrGradFilters": False,
        "ChunkedCorrGradInput": False,
    }
    wide = direct_function(8, 12, (3, 3), "float64")
    assert all(
        uses_direct_kernels(n)
        for n in wide.maker.fgraph.apply_nodes
        if type(n.op).__name__.startswith("ChunkedCorr")
    )
    rng = np.random.default_rng(0)
    x, w = rng.standard_normal((2, 1, 1, 6, 6)), rng.standard_normal((12, 1, 1, 3, 3))
    g = rng.standard_normal((2, 12, 1, 4, 4))
    got_out, got_dw, got_dx = f(x, w, g)
    assert_float64_references(x, w, g, (got_out, got_dw, got_dx))


def test_the_salt_follows_the_source():
    """The salt is the hash of the kernels', intrinsics' and funcify's source files."""
    import hashlib
    from pathlib import Path

    import plasagne.ops

    folder = Path(plasagne.ops.__file__).parent
    digest = hashlib.sha256()
    for name in ("direct_corr.py", "simd.py", "chunked_corr.py"):
        digest.update((folder / name).read_bytes())
    assert direct_salt() == int(digest.hexdigest()[:8], 16)
    assert source_salt("wide_rows.py") != source_salt("simd.py")


def test_tile_sources_hold_one_accumulator_per_register():
    source = tile_source(3, 2, 8)
    assert source.count("vzero(") == 3 * 3 * 2  # three tiles of 3 x 2 accumulators
    assert "a2_1 = vfma(s, w1, a2_1)" in source and "a3_0" not in source
    assert source.count("def ") == 3


def test_simd_intrinsics_against_numpy():
    @numba.njit
    def combine(a, b, out):
        for i in range(0, a.size, 4):
            s = vsplat_at(b, 0, 4)
            v = vfma(vload(a, i, 4), s, vzero(a[0], 4))
            vstore(out, i, vadd(v, vload(b, i, 4)))

    for dtype in (np.float32, np.float64):
        a = np.arange(12, dtype=dtype) - 3
        b = np.linspace(-1, 2, 12).astype(dtype)
        out = np.empty_like(a)
        combine(a, b, out)
        np.testing.assert_allclose(out, a * b[0] + b, rtol=1e-6)
    assert vector_lanes(4) in (4, 8, 16) and vector_lanes(8) == vector_lanes(4) // 2


def test_static_output_lengths_follow_static_inputs():
    from plasagne.ops.pool_op import MaxPoolKernel

    x = pt.tensor("x", shape=(500, 32, 1, 12, None))
    w = pt.tensor("w", shape=(32, 32, 1, 5, 5))
    assert ChunkedCorr((1, 5, 5), *UNIT)(x, w).type.shape == (500, 32, 1, 8, None)
    strided = ChunkedCorr((1, 3, 3), (1, 2, 2), (1, 1, 2))
    assert strided(pt.tensor("s", shape=(2, 32, 1, 12, 13)), w).type.shape == (2, 32, 1, 5, 5)
    too_small = pt.tensor("t", shape=(2, 32, 1, 3, 3))
    assert ChunkedCorr((1, 5, 5), *UNIT)(too_small, w).type.shape == (2, 32, 1, None, None)
    pool = MaxPoolKernel((1, 2, 2), (1, 2, 2), (0, 0, 0), True)
    assert pool(pt.tensor("p", shape=(16000, 1, 8, None))).type.shape == (16000, 1, 4, None)
    f = pytensor.function([x, w], ChunkedCorr((1, 5, 5), *UNIT)(x, w), mode="FAST_COMPILE")
    assert f(np.ones((500, 32, 1, 12, 9)), np.ones((32, 32, 1, 5, 5))).shape == (500, 32, 1, 8, 5)


@pytest.mark.parametrize("rows", [4, 3])
def test_direct_kernels_with_other_tile_rows(rows):
    """The tiles a 16-register machine uses (4 rows), and an odd count, called directly."""
    channels, filters, kernel = 9, 19, (3, 2)
    op = ChunkedCorr((1, *kernel), *UNIT)
    k = direct_kernels(op, numba.njit, "float64", rows=rows)
    threaded = {name: numba.njit(parallel=True)(k[name]) for name in _LOOPS}
    rng = np.random.default_rng(rows)
    x = rng.standard_normal((5, channels, 1, 7, 11))
    w = rng.standard_normal((filters, channels, 1, *kernel))
    wk, offsets, oh, ow = k["forward_operands"](x, w)
    out = np.empty((5, filters, 1, oh, ow))
    threaded["forward_loop"](x, wk, offsets, out)
    np.testing.assert_allclose(
        out, correlate_reference(x, w, (1, 1, 1), [(0, 0)] * 3, (1, 1, 1)), atol=1e-10
    )
    g = rng.standard_normal(out.shape)
    offsets, group, shares = k["filters_operands"](x, g)
    assert shares.shape == (-(-5 // group), offsets.shape[0], wk.shape[1])
    threaded["filters_loop"](x, g, offsets, shares, group)
    np.testing.assert_allclose(
        k["filters_result"](shares, channels, filters),
        filter_gradient_reference(x, g, (1, *kernel), (1, 1, 1), (1, 1, 1)),
        atol=1e-10,
    )
    dx = np.empty(x.shape)
    threaded["input_loop"](k["input_operands"](w), g, dx)
    np.testing.assert_allclose(
        dx, input_gradient_reference(w, g, x.shape, (1, 1, 1), (1, 1, 1)), atol=1e-10
    )


_LOOPS = ("forward_loop", "filters_loop", "input_loop")


@pytest.mark.parametrize("shape", [(2, 4, 5), (3, 2, 3)])
def test_wide_row_kernels_with_other_tile_shapes(shape):
    """The wide-row tiles a 16-register machine uses (2 filters), and odd shapes."""
    from scipy.signal import correlate

    from plasagne.ops.wide_rows import wide_kernels

    channels, filters, (kh, kw), (height, width) = 2, 7, (3, 4), (9, 13)
    k = wide_kernels(ChunkedCorr((1, kh, kw), *UNIT), numba.njit, "float64", shape=shape)
    rng = np.random.default_rng(len(shape))
    x = rng.standard_normal((3, channels, 1, height, width))
    w = rng.standard_normal((filters, channels, 1, kh, kw))
    wmat, offsets = k["operands"](w, height, width)
    positions, scratch = k["sizes"](x.shape)
    oh, ow = height - kh + 1, width - kw + 1
    xs = np.zeros(scratch)
    out = np.empty((wmat.shape[0], positions))
    same_offsets, shares = k["filters_operands"](x, filters, 1)
    np.testing.assert_array_equal(same_offsets, offsets)
    shares[:] = 0
    dw = np.zeros((filters, channels, 1, kh, kw))
    for b in range(3):
        k["layout"](x, b, xs)
        k["forward"](xs, wmat, offsets, out)
        want = [sum(correlate(x[b, c, 0], w[f, c, 0], "valid") for c in range(2)) for f in range(7)]
        got = out[:filters, : oh * width].reshape(filters, oh, width)[:, :, :ow]
        np.testing.assert_allclose(got, np.stack(want), atol=1e-10)
        g = rng.standard_normal((filters, oh, ow))
        wide = np.zeros_like(out)
        wide[:filters, : oh * width].reshape(filters, oh, width)[:, :, :ow] = g
        k["filters_accumulate"](xs, wide, offsets, shares[0])
        dw += filter_gradient_reference(
            x[b : b + 1], g[None, :, None], (1, kh, kw), (1, 1, 1), (1, 1, 1)
        )
    np.testing.assert_allclose(k["filters_result"](shares, filters, channels), dw, atol=1e-10)
