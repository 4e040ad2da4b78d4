"""N-d cross-correlation as a PyTensor graph: gather the filter taps, then one matrix product.

Layout
------
Channels first, as Lasagne and Theano: inputs are ``(batch, channels, *spatial)`` and
filters ``(num_filters, channels, *kernel)``, with 1, 2 or 3 spatial axes (``NCW``,
``NCHW``, ``NCDHW``). :func:`corr_nd` computes the cross-correlation (no filter flip)::

    out[b, f, p] = sum_{c, k} filters[f, c, k] * padded[b, c, p * stride + k * dilation]

for every output position ``p`` and filter tap ``k`` (both multi-indices). A true
convolution is a correlation with the filters' spatial axes reversed; the layers do that
flip themselves.

Method
------
The input is zero-padded and its patches gathered by the :class:`~plasagne.ops.im2col.Im2Col`
Op into a ``(channels * taps, batch * positions)`` matrix (im2col), which is multiplied by
the ``(num_filters, channels * taps)`` filter matrix: one GEMM per call, so the arithmetic
runs in the backend's BLAS. ``Im2Col`` has a Numba kernel (one pass of plain loops, kernel
size, stride and dilation compiled in), a numpy ``perform`` for the Python and C backends
and a JAX implementation; its gradient is its adjoint :class:`~plasagne.ops.im2col.Col2Im`
(every patch entry added back where it came from), also one pass. Building the matrix from
``prod(kernel)`` strided slices instead (the first version) cost a stack of slices forward
and one full-size ``inc_subtensor`` per tap backward. That graph is
:func:`im2col_corr_nd`; :func:`corr_nd`, what the layers call, wraps it as one
:class:`~plasagne.ops.corr_op.CorrNd` node, which Numba modes compute with the chunked
kernels of :mod:`plasagne.ops.chunked_corr`, the optimising C mode inlines (compiling
exactly the im2col graph) and JAX runs as ``lax.conv_general_dilated``.
:func:`corr_nd_transpose` (the gradient of :func:`corr_nd` with respect to its input, used
by the transposed convolution layers) is written on top of :func:`corr_nd`.

Swapping in a faster kernel
---------------------------
Every convolution layer calls ``plasagne.ops.conv.corr_nd`` through the module attribute
at graph-building time, so assigning a function with the same signature replaces the
kernel everywhere, for networks built afterwards::

    import plasagne.ops.conv
    plasagne.ops.conv.corr_nd = my_corr_nd   # e.g. a custom Op, or jax.lax on JAX

The replacement receives ``stride``, ``pad`` (``(before, after)`` pairs) and ``dilation``
as tuples of ints and ``kernel_shape`` as a tuple, and must return
``(batch, num_filters, *out_spatial)``. The layer tests compare every layer with
``scipy.signal``/numpy references, so they check a new kernel directly. A single layer can
also use its own kernel through the ``convolution=`` argument of the convolution layers
(see :mod:`plasagne.layers.conv`).
"""

from __future__ import annotations

from collections.abc import Sequence
from numbers import Integral
from typing import Any

import pytensor.tensor as pt

from .im2col import im2col, output_lengths

__all__ = [
    "corr_nd",
    "im2col_corr_nd",
    "corr_nd_transpose",
    "correlation_settings",
    "pad_spatial",
    "dilate_spatial",
]


def _per_axis(value: Any, n: int, what: str) -> tuple:
    """``value`` as a tuple of ``n`` entries: None means 1 (0 for pads), ints are repeated."""
    if value is None:
        value = 0 if what in ("pad", "crop") else 1
    if isinstance(value, Integral):
        value = (int(value),) * n
    value = tuple(value)
    if len(value) != n:
        raise ValueError(
            f"corr_nd: expected {n} {what} entries (one per spatial axis), got {value}"
        )
    return value


def pad_spatial(x: Any, pads: Sequence[tuple[int, int]], value: float = 0.0) -> Any:
    """Pad the trailing ``len(pads)`` axes of ``x`` by ``(before, after)`` each.

    Negative amounts crop instead.

    Parameters
    ----------
    x : tensor
    pads : sequence of (int, int)
        Amounts for the last ``len(pads)`` axes.
    value : float
        The fill value.

    Examples
    --------
    >>> x = pt.constant(np.ones((1, 1, 2, 2)))
    >>> pad_spatial(x, [(1, 0), (0, 2)]).eval().shape
    (1, 1, 3, 4)
    >>> pad_spatial(pt.constant(np.arange(4.0)), [(-1, 1)]).eval().tolist()
    [1.0, 2.0, 3.0, 0.0]
    """
    n = len(pads)
    lead = x.ndim - n
    pads = [(int(b), int(a)) for b, a in pads]
    if any(b < 0 or a < 0 for b, a in pads):
        crops = tuple(slice(max(0, -b), None if a >= 0 else a) for b, a in pads)
        x = x[(slice(None),) * lead + crops]
    pads = [(max(0, b), max(0, a)) for b, a in pads]
    if not any(b or a for b, a in pads):
        return x
    shape = [x.shape[i] for i in range(lead)] + [
        x.shape[lead + i] + b + a for i, (b, a) in enumerate(pads)
    ]
    out = pt.full(shape, value, dtype=x.dtype) if value != 0 else pt.zeros(shape, dtype=x.dtype)
    index = (slice(None),) * lead + tuple(
        slice(b, b + x.shape[lead + i]) for i, (b, _) in enumerate(pads)
    )
    return pt.set_subtensor(out[index], x)


def dilate_spatial(x: Any, factors: Sequence[int]) -> Any:
    """Insert ``factor - 1`` zeros between neighbouring entries of the trailing axes.

    Parameters
    ----------
    x : tensor
    factors : sequence of int
        One factor per trailing axis (1 leaves the axis alone).

    Examples
    --------
    >>> dilate_spatial(pt.constant(np.array([[1.0, 2.0]])), [3]).eval().tolist()
    [[1.0, 0.0, 0.0, 2.0]]
    """
    n = len(factors)
    lead = x.ndim - n
    if all(f == 1 for f in factors):
        return x
    shape = [x.shape[i] for i in range(lead)] + [
        (x.shape[lead + i] - 1) * f + 1 for i, f in enumerate(factors)
    ]
    out = pt.zeros(shape, dtype=x.dtype)
    index = (slice(None),) * lead + tuple(slice(None, None, f) for f in factors)
    return pt.set_subtensor(out[index], x)


def _kernel_shape(filters: Any, kernel_shape: Sequence[int] | None, n: int | None) -> tuple:
    if kernel_shape is not None:
        return tuple(int(k) for k in kernel_shape)
    static = filters.type.shape[2:]
    if any(s is None for s in static):
        raise ValueError(
            "corr_nd: the filters' spatial shape is not known statically "
            f"(type shape {filters.type.shape}); pass kernel_shape"
        )
    return tuple(int(s) for s in static)


def correlation_settings(
    who: str,
    input: Any,
    filters: Any,
    kernel_shape: Sequence[int] | None,
    stride: Sequence[int] | int | None,
    pad: Sequence[int | tuple[int, int]] | int | None,
    dilation: Sequence[int] | int | None,
) -> tuple:
    """Check a correlation's arguments and give them one form: ``(input, filters,
    kernel_shape, stride, pads, dilation)`` with tensors, tuples of ints and
    ``(before, after)`` pad pairs. ``who`` names the caller in error messages.

    Examples
    --------
    >>> x, w = pt.tensor4("x"), pt.tensor("w", shape=(2, 1, 3, 3))
    >>> correlation_settings("corr_nd", x, w, None, 2, 1, None)[2:]
    ((3, 3), (2, 2), [(1, 1), (1, 1)], (1, 1))
    """
    input = pt.as_tensor_variable(input)
    filters = pt.as_tensor_variable(filters)
    n = input.ndim - 2
    if n < 1 or filters.ndim != n + 2:
        raise ValueError(
            f"{who}: expected input (batch, channels, *spatial) and filters (num_filters, "
            f"channels, *kernel) with the same number of spatial axes, got input of "
            f"{input.ndim} and filters of {filters.ndim} dimensions"
        )
    kernel_shape = _kernel_shape(filters, kernel_shape, n)
    if len(kernel_shape) != n:
        raise ValueError(f"{who}: kernel_shape {kernel_shape} has not {n} entries")
    stride = tuple(int(s) for s in _per_axis(stride, n, "stride"))
    dilation = tuple(int(d) for d in _per_axis(dilation, n, "dilation"))
    pads = [p if isinstance(p, tuple) else (p, p) for p in _per_axis(pad, n, "pad")]
    return input, filters, kernel_shape, stride, pads, dilation


def corr_nd(
    input: Any,
    filters: Any,
    kernel_shape: Sequence[int] | None = None,
    stride: Sequence[int] | int | None = None,
    pad: Sequence[int | tuple[int, int]] | int | None = None,
    dilation: Sequence[int] | int | None = None,
) -> Any:
    """The layers' cross-correlation: :func:`im2col_corr_nd` as one ``CorrNd`` node.

    Same arguments and values as :func:`im2col_corr_nd`, built by
    :func:`plasagne.ops.corr_op.corr_nd_op`: Numba modes run it as the chunked kernels of
    :mod:`plasagne.ops.chunked_corr`, the optimising C mode inlines the node and compiles
    the im2col graph itself; JAX keeps it and runs XLA's own convolution.

    Examples
    --------
    >>> x = pt.constant(np.arange(5.0).reshape(1, 1, 5))
    >>> w = pt.constant(np.array([[[1.0, -1.0]]]))
    >>> corr_nd(x, w, stride=2, pad=1).eval().tolist()
    [[[0.0, -1.0, -1.0]]]
    """
    from .corr_op import corr_nd_op

    # checked here too, so that errors name the function the layers call
    input, filters, kernel_shape, stride, pads, dilation = correlation_settings(
        "corr_nd", input, filters, kernel_shape, stride, pad, dilation
    )
    return corr_nd_op(input, filters, kernel_shape, stride, pads, dilation)


def im2col_corr_nd(
    input: Any,
    filters: Any,
    kernel_shape: Sequence[int] | None = None,
    stride: Sequence[int] | int | None = None,
    pad: Sequence[int | tuple[int, int]] | int | None = None,
    dilation: Sequence[int] | int | None = None,
) -> Any:
    """Cross-correlate ``input`` with ``filters`` over the trailing spatial axes.

    ``out[b, f, p] = sum_{c, k} filters[f, c, k] * padded[b, c, p * stride + k * dilation]``.

    Parameters
    ----------
    input : tensor, shape ``(batch, channels, *spatial)``
        With 1, 2 or 3 spatial axes.
    filters : tensor, shape ``(num_filters, channels, *kernel_shape)``
        Any expression (shared variable, random variable, ...).
    kernel_shape : tuple of int, optional
        The filters' spatial size; it fixes the number of taps, so it must be static.
        Taken from the filters' static type shape when omitted.
    stride, dilation : int or tuple of int, optional
        Default 1 along every axis.
    pad : int, or tuple of int or of ``(before, after)`` pairs, optional
        Zero padding per spatial axis (default none); negative amounts crop.

    Returns
    -------
    tensor, shape ``(batch, num_filters, *out_spatial)``
        ``out = (in + before + after - dilation * (kernel - 1) - 1) // stride + 1``.

    Examples
    --------
    >>> x = pt.constant(np.arange(5.0).reshape(1, 1, 5))
    >>> w = pt.constant(np.array([[[1.0, -1.0]]]))
    >>> im2col_corr_nd(x, w).eval().tolist()
    [[[-1.0, -1.0, -1.0, -1.0]]]
    >>> im2col_corr_nd(x, w, stride=2, pad=1).eval().tolist()
    [[[0.0, -1.0, -1.0]]]
    """
    input, filters, kernel_shape, stride, pads, dilation = correlation_settings(
        "corr_nd", input, filters, kernel_shape, stride, pad, dilation
    )
    n = input.ndim - 2
    x = pad_spatial(input, pads)
    out_len = output_lengths([x.shape[2 + i] for i in range(n)], kernel_shape, stride, dilation)
    cols = im2col(x, kernel_shape, stride, dilation)  # (channels * taps, batch * positions)
    n_filters = filters.shape[0]
    w = filters.reshape((n_filters, cols.shape[0]))
    out = pt.dot(w, cols).reshape([n_filters, x.shape[0], *out_len])
    return out.dimshuffle(1, 0, *range(2, 2 + n))


def corr_nd_transpose(
    input: Any,
    filters: Any,
    kernel_shape: Sequence[int] | None = None,
    stride: Sequence[int] | int | None = None,
    crop: Sequence[int] | int | None = None,
    dilation: Sequence[int] | int | None = None,
    output_size: Any = None,
) -> Any:
    """The transpose of :func:`corr_nd`: its gradient with respect to its input.

    ``corr_nd(x, filters, stride=stride, pad=crop, dilation=dilation)`` maps
    ``(batch, channels, *size)`` to ``(batch, num_filters, *in)``; this function maps
    ``input`` of shape ``(batch, num_filters, *in)`` back to ``(batch, channels, *size)``:
    every input entry adds its value times the filter into the output (scatter-add), and
    ``crop`` entries are removed from each border. It is computed with :func:`corr_nd` on
    the stride-dilated, padded input with the flipped, channel-swapped filters.

    Parameters
    ----------
    input : tensor, shape ``(batch, num_filters, *in)``
    filters : tensor, shape ``(num_filters, channels, *kernel_shape)``
        The forward correlation's filters.
    kernel_shape : tuple of int, optional
        As for :func:`corr_nd`.
    stride, crop, dilation : int or tuple of int, optional
        The forward correlation's stride, padding and dilation.
    output_size : tuple of int or symbolic vector, optional
        The forward input size. Default: the smallest,
        ``(in - 1) * stride - 2 * crop + dilation * (kernel - 1) + 1``; with stride > 1 up to
        ``stride - 1`` more are possible (the extra entries receive nothing and are zero).

    Returns
    -------
    tensor, shape ``(batch, channels, *output_size)``

    Examples
    --------
    >>> x = pt.constant(np.array([[[1.0, 10.0]]]))
    >>> w = pt.constant(np.array([[[1.0, 2.0, 3.0]]]))
    >>> corr_nd_transpose(x, w, stride=2).eval().tolist()
    [[[1.0, 2.0, 13.0, 20.0, 30.0]]]
    """
    input = pt.as_tensor_variable(input)
    filters = pt.as_tensor_variable(filters)
    n = input.ndim - 2
    kernel_shape = _kernel_shape(filters, kernel_shape, n)
    stride = tuple(int(s) for s in _per_axis(stride, n, "stride"))
    crop = tuple(int(c) for c in _per_axis(crop, n, "crop"))
    dilation = tuple(int(d) for d in _per_axis(dilation, n, "dilation"))
    flipped = filters.dimshuffle(1, 0, *range(2, 2 + n))
    flipped = flipped[(slice(None), slice(None)) + (slice(None, None, -1),) * n]
    x = dilate_spatial(input, stride)
    reach = [d * (k - 1) for d, k in zip(dilation, kernel_shape)]
    static_in = input.type.shape[2:]
    sizes = None
    if output_size is not None and not hasattr(output_size, "type"):
        sizes = tuple(int(s) for s in output_size)
    pads, need_slice = [], False
    for i in range(n):
        before = after = reach[i] - crop[i]
        if output_size is not None:
            if sizes is not None and static_in[i] is not None:
                natural = (static_in[i] - 1) * stride[i] - 2 * crop[i] + reach[i] + 1
                after += sizes[i] - natural
            else:
                after += stride[i] - 1
                need_slice = True
        pads.append((before, after))
    out = corr_nd(x, flipped, kernel_shape, pad=tuple(pads), dilation=dilation)
    if need_slice:
        out = out[(slice(None), slice(None)) + tuple(slice(None, output_size[i]) for i in range(n))]
    return out
