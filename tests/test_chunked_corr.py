"""The chunked correlation Ops: against scipy and hand-written sums, their gradients,
their Numba kernels (both product layouts, several chunks) and the rewrite that uses them."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad
from test_corr_op import correlate_reference

from plasagne.ops.chunked_corr import (
    CHUNK_BYTES,
    CHUNKED_CORR_TAG,
    WIDE_DEPTH,
    ChunkedCorr,
    ChunkedCorrGradFilters,
    ChunkedCorrGradInput,
)
from plasagne.ops.conv import corr_nd
from plasagne.ops.fast_math import fast_math_mode

PERFORM = Mode(linker="py", optimizer="fast_compile")


def filter_gradient_reference(x, g, kernel, stride, dilation):
    """``dw[f, c, t] = sum_{b, p} g[b, f, p] x[b, c, p * stride + t * dilation]``, one tap
    at a time with numpy's strided slices."""
    dw = np.zeros((g.shape[1], x.shape[1], *kernel))
    lengths = g.shape[2:]
    for tap in np.ndindex(*kernel):
        window = tuple(
            slice(t * d, t * d + (m - 1) * s + 1, s)
            for t, d, s, m in zip(tap, dilation, stride, lengths)
        )
        dw[(slice(None), slice(None)) + tap] = np.einsum(
            "bfdhw,bcdhw->fc", g, x[(slice(None), slice(None)) + window]
        )
    return dw


def input_gradient_reference(w, g, shape, stride, dilation):
    """Every output gradient entry times the filter added back where its patch came from."""
    dx = np.zeros(shape)
    lengths = g.shape[2:]
    for tap in np.ndindex(*w.shape[2:]):
        window = tuple(
            slice(t * d, t * d + (m - 1) * s + 1, s)
            for t, d, s, m in zip(tap, dilation, stride, lengths)
        )
        dx[(slice(None), slice(None)) + window] += np.einsum(
            "bfdhw,fc->bcdhw", g, w[(slice(None), slice(None)) + tap]
        )
    return dx


def three_ops(settings_3d, dtype="float64"):
    x = pt.tensor("x", dtype=dtype, shape=(None,) * 5)
    w = pt.tensor("w", dtype=dtype, shape=(None,) * 5)
    g = pt.tensor("g", dtype=dtype, shape=(None,) * 5)
    return (
        (x, w, g),
        ChunkedCorr(*settings_3d)(x, w),
        ChunkedCorrGradFilters(*settings_3d)(x, g),
        ChunkedCorrGradInput(*settings_3d)(w, g, x),
    )


def check_against_references(mode, shape, filters, settings_3d, seed, dtype="float64"):
    kernel, stride, dilation = settings_3d
    rng = np.random.default_rng(seed)
    xv = rng.standard_normal(shape).astype(dtype)
    wv = rng.standard_normal((filters, shape[1], *kernel)).astype(dtype)
    x64, w64 = xv.astype(float), wv.astype(float)
    expected = correlate_reference(x64, w64, stride, [(0, 0)] * 3, dilation)
    gv = rng.standard_normal(expected.shape).astype(dtype)
    (x, w, g), out, dw, dx = three_ops(settings_3d, dtype)
    f = pytensor.function([x, w, g], [out, dw, dx], mode=mode)
    got_out, got_dw, got_dx = f(xv, wv, gv)
    tol = 1e-10 if dtype == "float64" else 2e-4
    scale = 1 + np.abs(expected).max()
    np.testing.assert_allclose(got_out, expected, atol=tol * scale, rtol=tol)
    np.testing.assert_allclose(
        got_dw, filter_gradient_reference(x64, gv, kernel, stride, dilation), rtol=tol, atol=tol
    )
    np.testing.assert_allclose(
        got_dx, input_gradient_reference(w64, gv, shape, stride, dilation), rtol=tol, atol=tol
    )
    return f


@st.composite
def configs_3d(draw):
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(3))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(3))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(3))
    spatial = tuple(d * (k - 1) + 1 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation))
    shape = (draw(st.integers(1, 3)), draw(st.integers(1, 3)), *spatial)
    return shape, draw(st.integers(1, 3)), (kernel, stride, dilation)


@settings(max_examples=30, deadline=None)
@given(configs_3d(), st.integers(0, 2**16))
def test_perform_matches_scipy_and_hand_written_gradients(config, seed):
    shape, filters, settings_3d = config
    check_against_references(PERFORM, shape, filters, settings_3d, seed)


@pytest.mark.parametrize(
    "shape, filters, settings_3d, wide, several_chunks",
    [
        # depth 36 (narrow): one filter-gradient product per example;
        # 93 kB of float64 patches per example: 44 per chunk, 70 = 44 + 26
        ((70, 4, 1, 20, 20), 5, ((1, 3, 3), (1, 1, 1), (1, 1, 1)), False, True),
        # depth 72 (wide): one filter-gradient product per chunk; 22 per chunk, 30 = 22 + 8
        ((30, 8, 1, 20, 20), 6, ((1, 3, 3), (1, 1, 1), (1, 1, 1)), True, True),
        # stride, dilation and three spatial axes, one chunk
        ((3, 2, 5, 7, 6), 3, ((2, 3, 2), (1, 2, 1), (2, 1, 2)), False, False),
    ],
)
def test_numba_kernels_match_the_references(
    shape, filters, settings_3d, wide, several_chunks, kernel_threads
):
    kernel, stride, dilation = settings_3d
    depth = shape[1] * int(np.prod(kernel))
    assert (depth >= WIDE_DEPTH) == wide
    lengths = [(s - d * (k - 1) - 1) // st + 1 for s, k, st, d in zip(shape[2:], *settings_3d)]
    budget = CHUNK_BYTES // 2 if kernel_threads else CHUNK_BYTES  # parallel: half chunks
    chunk = budget // (8 * depth * int(np.prod(lengths)))
    assert (chunk < shape[0] and shape[0] % chunk > 0) == several_chunks
    check_against_references("NUMBA", shape, filters, settings_3d, seed=0)


def test_numba_kernels_in_float32(kernel_threads):
    check_against_references(
        "NUMBA", (9, 3, 1, 10, 11), 4, ((1, 3, 2), (1, 2, 1), (1, 1, 2)), 1, "float32"
    )


def test_numba_kernels_take_non_contiguous_inputs(kernel_threads):
    # the kernels index their patch walk flat, after making inputs C-contiguous: strided
    # views of the graph's inputs must give the references' values
    settings_3d = ((1, 3, 2), (1, 1, 2), (1, 2, 1))
    kernel, stride, dilation = settings_3d
    rng = np.random.default_rng(7)
    xs = rng.standard_normal((5, 3, 1, 9, 22))
    ws = rng.standard_normal((8, 3, 1, 3, 2))
    xv, wv = xs[..., ::2], ws[::2]
    expected = correlate_reference(xv, wv, stride, [(0, 0)] * 3, dilation)
    gs = rng.standard_normal((*expected.shape[:4], 2 * expected.shape[4]))
    gv = gs[..., ::2]
    big = [pt.tensor(name, dtype="float64", shape=(None,) * 5) for name in "xwg"]
    x, w, g = big[0][..., ::2], big[1][::2], big[2][..., ::2]
    outputs = [
        ChunkedCorr(*settings_3d)(x, w),
        ChunkedCorrGradFilters(*settings_3d)(x, g),
        ChunkedCorrGradInput(*settings_3d)(w, g, x),
    ]
    got_out, got_dw, got_dx = pytensor.function(big, outputs, mode="NUMBA")(xs, ws, gs)
    np.testing.assert_allclose(got_out, expected, rtol=1e-10, atol=1e-10)
    np.testing.assert_allclose(
        got_dw, filter_gradient_reference(xv, gv, kernel, stride, dilation), atol=1e-10
    )
    np.testing.assert_allclose(
        got_dx, input_gradient_reference(wv, gv, xv.shape, stride, dilation), atol=1e-10
    )


def test_numba_kernels_on_an_empty_batch(kernel_threads):
    settings_3d = ((1, 3, 3), (1, 1, 1), (1, 1, 1))
    (x, w, g), out, dw, dx = three_ops(settings_3d)
    f = pytensor.function([x, w, g], [out, dw, dx], mode="NUMBA")
    got_out, got_dw, got_dx = f(
        np.ones((0, 2, 1, 5, 5)), np.ones((4, 2, 1, 3, 3)), np.ones((0, 4, 1, 3, 3))
    )
    assert got_out.shape == (0, 4, 1, 3, 3) and got_dx.shape == (0, 2, 1, 5, 5)
    np.testing.assert_array_equal(got_dw, np.zeros((4, 2, 1, 3, 3)))


@pytest.mark.parametrize("op_index", [0, 1, 2])
def test_gradients_of_each_op_verify_numerically(op_index):
    rng = np.random.default_rng(op_index)
    settings_3d = ((1, 2, 3), (1, 2, 1), (1, 1, 2))
    x = rng.standard_normal((2, 2, 1, 5, 8))
    w = rng.standard_normal((3, 2, 1, 2, 3))
    g = rng.standard_normal((2, 3, 1, 2, 4))
    ops = [
        lambda x, w, g: ChunkedCorr(*settings_3d)(x, w),
        lambda x, w, g: ChunkedCorrGradFilters(*settings_3d)(x, g),
        lambda x, w, g: ChunkedCorrGradInput(*settings_3d)(w, g, pt.zeros_like(x)),
    ]
    verify_grad(ops[op_index], [x, w, g], rng=rng, mode=PERFORM)


def test_make_node_names_the_op_and_what_is_wrong():
    settings_3d = ((1, 1, 2), (1, 1, 1), (1, 1, 1))
    with pytest.raises(ValueError, match="ChunkedCorr: input must be 5-d"):
        ChunkedCorr(*settings_3d)(pt.tensor4(), pt.tensor5())
    with pytest.raises(
        TypeError, match="ChunkedCorrGradFilters: input float32 and output_gradient float64"
    ):
        ChunkedCorrGradFilters(*settings_3d)(
            pt.tensor5(dtype="float32"), pt.tensor5(dtype="float64")
        )
    with pytest.raises(TypeError, match="ChunkedCorr: input float64 and filters float32"):
        ChunkedCorr(*settings_3d)(pt.tensor5(dtype="float64"), pt.tensor5(dtype="float32"))
    with pytest.raises(ValueError, match="ChunkedCorrGradInput: like must be 5-d"):
        ChunkedCorrGradInput(*settings_3d)(pt.tensor5(), pt.tensor5(), pt.tensor4())


def correlation_graph(n, dtype="float64", need_input_gradient=True):
    x = pt.tensor("x", dtype=dtype, shape=(None,) * (n + 2))
    w = pt.tensor("w", dtype=dtype, shape=(2, 3) + (2,) * n)
    out = corr_nd(x, w, stride=(2,) + (1,) * (n - 1), pad=((1, 2),) + ((0, 1),) * (n - 1))
    wrt = [x, w] if need_input_gradient else [w]
    return [x, w], [out, *pytensor.grad((out**2).sum(), wrt)]


def op_names(f):
    return {type(node.op).__name__ for node in f.maker.fgraph.apply_nodes}


@pytest.mark.parametrize("n", [1, 2, 3])
def test_rewrite_in_numba_modes_gives_the_im2col_values(n):
    inputs, outputs = correlation_graph(n)
    rng = np.random.default_rng(n)
    values = [rng.standard_normal((2, 3) + (5,) * n), rng.standard_normal((2, 3) + (2,) * n)]
    reference = pytensor.function(inputs, outputs, mode="FAST_COMPILE")(*values)
    # PyTensor's NUMBA mode has the numba tag; FAST_RUN (Numba's linker) gets the rewrite
    # through fast_math_mode
    for mode in ["NUMBA", fast_math_mode("FAST_RUN")]:
        f = pytensor.function(inputs, outputs, mode=mode)
        names = op_names(f)
        assert {"ChunkedCorr", "ChunkedCorrGradFilters", "ChunkedCorrGradInput"} <= names
        assert not names & {"Im2Col", "Col2Im", "CorrNd", "CorrNdGrad"}
        for got, want in zip(f(*values), reference):
            np.testing.assert_allclose(got, want, rtol=1e-10, atol=1e-10)


def test_input_gradient_is_built_only_when_used():
    inputs, outputs = correlation_graph(2, need_input_gradient=False)
    names = op_names(pytensor.function(inputs, outputs, mode="NUMBA"))
    assert "ChunkedCorrGradFilters" in names and "ChunkedCorrGradInput" not in names


def test_rewrite_stays_out_of_other_backends_and_mixed_dtypes():
    inputs, outputs = correlation_graph(2)
    c_names = op_names(pytensor.function(inputs, outputs, mode=Mode("cvm", "fast_run")))
    assert "ChunkedCorr" not in c_names and "Im2Col" in c_names
    x = pt.tensor4("x", dtype="float32")
    w = pt.tensor("w", dtype="float64", shape=(2, 3, 2, 2))
    mixed = op_names(pytensor.function([x, w], corr_nd(x, w), mode="NUMBA"))
    assert "ChunkedCorr" not in mixed and "Im2Col" in mixed
    included = Mode("py", "fast_run").including(CHUNKED_CORR_TAG)
    assert "ChunkedCorr" in op_names(pytensor.function(inputs, outputs, mode=included))
