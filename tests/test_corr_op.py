"""CorrNd / CorrNdGrad: the one-node correlation against scipy, its gradients, its backends."""

import itertools

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from backend_params import NUMBA_AND_JAX
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.gradient import verify_grad
from scipy.signal import correlate

import plasagne.ops.conv
from plasagne.layers import Conv2DLayer, InputLayer, get_output
from plasagne.ops.corr_op import CorrNd, CorrNdGrad, corr_nd_op


def correlate_reference(x, w, stride, pads, dilation):
    """Zero-pad (or crop), dilate the filters, correlate with scipy, then subsample."""
    for axis, (before, after) in enumerate(pads):
        widths = [(0, 0)] * x.ndim
        widths[2 + axis] = (max(before, 0), max(after, 0))
        x = np.pad(x, widths)
        stop = x.shape[2 + axis] + min(after, 0)
        x = np.take(x, range(-min(before, 0), stop), axis=2 + axis)
    dilated = np.zeros(w.shape[:2] + tuple(d * (k - 1) + 1 for k, d in zip(w.shape[2:], dilation)))
    dilated[(slice(None), slice(None)) + tuple(slice(None, None, d) for d in dilation)] = w
    out = np.stack(
        [
            np.stack(
                [
                    sum(correlate(xb[c], dilated[f, c], mode="valid") for c in range(x.shape[1]))
                    for f in range(w.shape[0])
                ]
            )
            for xb in x
        ]
    )
    return out[(slice(None), slice(None)) + tuple(slice(None, None, s) for s in stride)]


@st.composite
def configs(draw):
    n = draw(st.integers(1, 3))
    kernel = tuple(draw(st.integers(1, 3)) for _ in range(n))
    stride = tuple(draw(st.integers(1, 2)) for _ in range(n))
    dilation = tuple(draw(st.integers(1, 2)) for _ in range(n))
    pads = tuple((draw(st.integers(-1, 2)), draw(st.integers(-1, 2))) for _ in range(n))
    spatial = tuple(d * (k - 1) + 3 + draw(st.integers(0, 3)) for k, d in zip(kernel, dilation))
    shape = (draw(st.integers(1, 2)), draw(st.integers(1, 3))) + spatial
    return shape, draw(st.integers(1, 3)), kernel, stride, dilation, pads


@settings(max_examples=20, deadline=None)
@given(configs(), st.integers(0, 2**16))
def test_matches_scipy_and_the_im2col_graph_with_its_gradients(config, seed):
    shape, filters, kernel, stride, dilation, pads = config
    rng = np.random.default_rng(seed)
    x = rng.normal(size=shape)
    w = rng.normal(size=(filters, shape[1]) + kernel)
    xs = pt.tensor(dtype="float64", shape=(None,) * len(shape))
    ws = pt.tensor(dtype="float64", shape=w.shape)
    kwargs = dict(stride=stride, pad=pads, dilation=dilation)
    op_out = corr_nd_op(xs, ws, **kwargs)
    ref_out = plasagne.ops.conv.im2col_corr_nd(xs, ws, **kwargs)
    assert any(
        isinstance(node.op, CorrNd)
        for node in pytensor.graph.traversal.applys_between([xs, ws], [op_out])
    )
    got = op_out.eval({xs: x, ws: w})
    np.testing.assert_allclose(
        got, correlate_reference(x, w, stride, pads, dilation), rtol=1e-10, atol=1e-12
    )
    g = rng.normal(size=got.shape)
    grads = pytensor.function(
        [xs, ws],
        pytensor.grad(None, [xs, ws], known_grads={op_out: pt.constant(g)})
        + pytensor.grad(None, [xs, ws], known_grads={ref_out: pt.constant(g)}),
    )(x, w)
    np.testing.assert_allclose(grads[0], grads[2], rtol=1e-10, atol=1e-12)
    np.testing.assert_allclose(grads[1], grads[3], rtol=1e-10, atol=1e-12)


def test_verify_grad_first_and_second_order():
    rng = np.random.default_rng(0)
    x = rng.normal(size=(2, 2, 5, 4))
    w = rng.normal(size=(3, 2, 2, 2))

    def f(a, b):
        return corr_nd_op(a, b, kernel_shape=(2, 2), stride=(2, 1), pad=1)

    verify_grad(f, [x, w], rng=np.random.default_rng(1))

    def grad_of_f(a, b):  # through CorrNdGrad's own (inner-graph) gradient
        return pytensor.grad((f(a, b) ** 2).sum(), b)

    verify_grad(grad_of_f, [x, w], rng=np.random.default_rng(2))


def count_corr_nodes(out):
    return sum(isinstance(n.op, CorrNd) for n in pytensor.graph.traversal.applys_between([], [out]))


def test_layers_build_one_node_by_default_and_the_seam_swaps_it(monkeypatch):
    rng = np.random.default_rng(3)
    W = rng.normal(size=(2, 1, 3, 3))
    x = rng.normal(size=(2, 1, 6, 6))

    def layer_output():
        layer = Conv2DLayer(InputLayer((None, 1, 6, 6)), 2, 3, pad="same", W=W, b=None)
        return get_output(layer, pt.constant(x))

    default = layer_output()
    monkeypatch.setattr(plasagne.ops.conv, "corr_nd", plasagne.ops.conv.im2col_corr_nd)
    plain = layer_output()
    assert (count_corr_nodes(default), count_corr_nodes(plain)) == (1, 0)
    np.testing.assert_allclose(default.eval(), plain.eval(), rtol=1e-12)


@pytest.mark.backend
@pytest.mark.parametrize("mode", NUMBA_AND_JAX)
def test_backend_kernels_match_the_reference(mode):
    """JAX runs lax.conv_general_dilated and its vjp; Numba the inner im2col graph."""
    rng = np.random.default_rng(4)
    for stride, pad, dilation in itertools.product(
        [(1, 1), (2, 1)], [0, ((1, 2), (0, -1))], [(1, 1), (1, 2)]
    ):
        x = pt.tensor("x", shape=(2, 3, 9, 8))
        w = pt.tensor("w", shape=(4, 3, 3, 2))
        out = corr_nd_op(x, w, stride=stride, pad=pad, dilation=dilation)
        outputs = [out, *pytensor.grad((out**2).sum(), [x, w])]
        xv, wv = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2))
        want = pytensor.function([x, w], outputs, mode="FAST_COMPILE")(xv, wv)
        got = pytensor.function([x, w], outputs, mode=mode)(xv, wv)
        for a, b in zip(got, want):
            np.testing.assert_allclose(a, b, rtol=1e-9, atol=1e-10)


def test_compiled_graphs_inline_the_nodes_and_share_the_patches():
    """Optimised non-JAX graphs inline CorrNd and CorrNdGrad (they are fusible symbolic
    Ops) and merge their patch matrices: one Im2Col of x serves the output and the filter
    gradient, as in the plain im2col graph. The JAX mode keeps both nodes whole."""
    from pytensor.compile.mode import Mode

    from plasagne.ops.im2col import Im2Col

    x = pt.tensor("x", shape=(2, 3, 9, 8))
    w = pt.tensor("w", shape=(4, 3, 3, 2))
    out = corr_nd_op(x, w)
    outputs = [out, *pytensor.grad((out**2).sum(), [x, w])]
    fn = pytensor.function([x, w], outputs, mode=Mode(linker="py", optimizer="fast_run"))
    ops = [node.op for node in fn.maker.fgraph.apply_nodes]
    assert not any(isinstance(op, CorrNd | CorrNdGrad) for op in ops)
    assert sum(isinstance(op, Im2Col) for op in ops) == 1
    rng = np.random.default_rng(6)
    xv, wv = rng.normal(size=(2, 3, 9, 8)), rng.normal(size=(4, 3, 3, 2))
    want = pytensor.function([x, w], outputs, mode="FAST_COMPILE")(xv, wv)
    for got, ref in zip(fn(xv, wv), want):
        np.testing.assert_allclose(got, ref, rtol=1e-10)


@pytest.mark.backend
def test_the_jax_mode_keeps_the_nodes_whole():
    pytest.importorskip("jax")
    x = pt.tensor("x", shape=(2, 3, 9, 8))
    w = pt.tensor("w", shape=(4, 3, 3, 2))
    out = corr_nd_op(x, w)
    fn = pytensor.function([x, w], [out, pytensor.grad((out**2).sum(), w)], mode="JAX")
    kinds = {type(node.op) for node in fn.maker.fgraph.apply_nodes}
    assert {CorrNd, CorrNdGrad} <= kinds
