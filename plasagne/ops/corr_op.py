"""The whole N-d cross-correlation as one Op: XLA's convolution on JAX, im2col elsewhere.

:func:`corr_nd_op` computes exactly what :func:`plasagne.ops.conv.im2col_corr_nd` computes,
but as a single :class:`CorrNd` node (a PyTensor ``FusibleSymbolicOp``) whose inner graph is that
im2col graph, with its gradient another single node, :class:`CorrNdGrad`. Numba modes
swap both for the chunked kernels of :mod:`plasagne.ops.chunked_corr` (same values, the
patches gathered a few examples at a time); the optimising C mode inlines both at fusion
time and merges what they share, so it compiles exactly the im2col graph (one patch
matrix for the output and the filter gradient); JAX, which skips fusion, keeps the nodes
and runs
``jax.lax.conv_general_dilated`` and its ``jax.vjp``, which XLA compiles to its own
convolution (cuDNN on a GPU) instead of a gather of patches.

It is the layers' default: :func:`plasagne.ops.conv.corr_nd` calls it, so every
convolution layer builds one node per convolution. On a CPU, JAX with these nodes predicts
the post's CNN about 3x faster than Numba (docs/performance.md). To build the plain im2col
graph instead, assign ``plasagne.ops.conv.corr_nd = plasagne.ops.conv.im2col_corr_nd``.

The Bayesian bridge's Flipout rewrite recognises the Op, so
``fit(reparameterization="local")`` works with it too.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import pytensor
from pytensor.tensor.symbolic import FusibleSymbolicOp

from .conv import correlation_settings, pad_spatial
from .conv import im2col_corr_nd as _im2col_corr_nd

__all__ = ["CorrNd", "CorrNdGrad", "corr_nd_op"]


class _CorrSettings(FusibleSymbolicOp):
    __props__ = ("kernel_shape", "stride", "dilation", "pads")

    def __init__(
        self,
        *,
        kernel_shape: tuple,
        stride: tuple,
        dilation: tuple,
        pads: tuple,
        **kwargs: Any,
    ) -> None:
        self.kernel_shape = tuple(int(k) for k in kernel_shape)
        self.stride = tuple(int(s) for s in stride)
        self.dilation = tuple(int(d) for d in dilation)
        self.pads = tuple((int(a), int(b)) for a, b in pads)
        _register_jax()
        super().__init__(**kwargs)

    def settings(self) -> dict:
        return {name: getattr(self, name) for name in self.__props__}

    def reference(self, x: Any, w: Any) -> Any:
        return _im2col_corr_nd(
            x, w, self.kernel_shape, stride=self.stride, pad=self.pads, dilation=self.dilation
        )


class CorrNd(_CorrSettings):
    """``corr_nd(x, w)`` with fixed kernel shape, stride, dilation and zero padding.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> op = CorrNd(kernel_shape=(2,), stride=(1,), dilation=(1,), pads=((0, 0),))
    >>> x = pt.constant(np.arange(5.0).reshape(1, 1, 5))
    >>> op(x, pt.constant(np.array([[[1.0, -1.0]]]))).eval().tolist()
    [[[-1.0, -1.0, -1.0, -1.0]]]
    """

    def build_inner_graph(self, x: Any, w: Any) -> list:
        return [self.reference(x, w)]

    def pullback(self, inputs: list, outputs: list, output_grads: list) -> list:
        x, w = inputs
        return CorrNdGrad(**self.settings())(x, w, output_grads[0])


class CorrNdGrad(_CorrSettings):
    """The gradients of :class:`CorrNd` with respect to its input and filters, given the
    gradient of its output.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> op = CorrNdGrad(kernel_shape=(2,), stride=(1,), dilation=(1,), pads=((0, 0),))
    >>> x = pt.constant(np.arange(4.0).reshape(1, 1, 4))
    >>> w = pt.constant(np.array([[[1.0, -1.0]]]))
    >>> gx, gw = op(x, w, pt.ones((1, 1, 3)))
    >>> gx.eval().tolist(), gw.eval().tolist()
    ([[[1.0, 0.0, 0.0, -1.0]]], [[[3.0, 6.0]]])
    """

    def build_inner_graph(self, x: Any, w: Any, g: Any) -> list:
        out = self.reference(x, w)
        grad_x, grad_w = pytensor.grad(None, [x, w], known_grads={out: g})
        return [grad_x, grad_w]


def corr_nd_op(
    input: Any,
    filters: Any,
    kernel_shape: Sequence[int] | None = None,
    stride: Sequence[int] | int | None = None,
    pad: Sequence[int | tuple[int, int]] | int | None = None,
    dilation: Sequence[int] | int | None = None,
) -> Any:
    """:func:`plasagne.ops.conv.im2col_corr_nd` as one :class:`CorrNd` node (same arguments).

    Negative pads (crops) are applied before the Op; the Op pads with zeros itself.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> x = pt.constant(np.arange(5.0).reshape(1, 1, 5))
    >>> w = pt.constant(np.array([[[1.0, -1.0]]]))
    >>> corr_nd_op(x, w, stride=2, pad=1).eval().tolist()
    [[[0.0, -1.0, -1.0]]]
    """
    input, filters, kernel, stride, pads, dilation = correlation_settings(
        "corr_nd_op", input, filters, kernel_shape, stride, pad, dilation
    )
    crops = [(min(a, 0), min(b, 0)) for a, b in pads]
    if any(a or b for a, b in crops):
        input = pad_spatial(input, crops)
    op = CorrNd(
        kernel_shape=kernel,
        stride=stride,
        dilation=dilation,
        pads=[(max(a, 0), max(b, 0)) for a, b in pads],
    )
    return op(input, filters)


_JAX_REGISTERED = False


def _register_jax() -> None:
    """Give JAX its kernels for the two Ops, once, if JAX is installed."""
    global _JAX_REGISTERED
    if _JAX_REGISTERED:
        return
    _JAX_REGISTERED = True
    try:
        import jax
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:
        return

    def lax_corr(op: _CorrSettings, dtype: str):
        def corr(x, w):
            return jax.lax.conv_general_dilated(
                x.astype(dtype),
                w.astype(dtype),
                window_strides=op.stride,
                padding=list(op.pads),
                rhs_dilation=op.dilation,
            )

        return corr

    @jax_funcify.register(CorrNd)
    def _jax_corr_nd(op, node=None, **kwargs):
        return lax_corr(op, node.outputs[0].dtype)

    @jax_funcify.register(CorrNdGrad)
    def _jax_corr_nd_grad(op, node=None, **kwargs):
        dtype = node.outputs[0].dtype
        dtypes = [out.dtype for out in node.outputs]
        corr = lax_corr(op, dtype)

        def grads(x, w, g):
            _, pull = jax.vjp(corr, x.astype(dtype), w.astype(dtype))
            grad_x, grad_w = pull(g.astype(dtype))
            return grad_x.astype(dtypes[0]), grad_w.astype(dtypes[1])

        return grads
