"""N-d cross-correlation as a PyTensor graph: gather the filter taps, then one GEMM.

Layout: inputs ``(batch, channels, *spatial)``, filters ``(filters, channels, *kernel)``.
:func:`corr_nd` pads the input, takes one strided (and dilated) slice of the input per
filter tap, stacks the slices into an ``(channels * taps, batch * positions)`` matrix and
multiplies it by the ``(filters, channels * taps)`` filter matrix: a single matrix product
per call, so the work runs in the backend's BLAS. It differentiates like any graph.

To use a faster kernel, replace :func:`corr_nd` (keeping its signature): every
convolution layer goes through it.
"""

from __future__ import annotations

import itertools
from collections.abc import Sequence
from typing import Any

import pytensor.tensor as pt

__all__ = ["corr_nd", "pad_spatial", "dilate_spatial"]


def pad_spatial(x: Any, pads: Sequence[tuple[int, int]], value: float = 0.0) -> Any:
    """Pad the trailing ``len(pads)`` axes of ``x`` by ``(before, after)`` each.

    Negative amounts crop instead.

    Examples
    --------
    >>> x = pt.constant(np.ones((1, 1, 2, 2)))
    >>> pad_spatial(x, [(1, 0), (0, 2)]).eval().shape
    (1, 1, 3, 4)
    """
    n = len(pads)
    lead = x.ndim - n
    crops = tuple(slice(max(0, -b), None if a >= 0 else a) for b, a in pads)
    if any(b < 0 or a < 0 for b, a in pads):
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


def corr_nd(
    input: Any,
    filters: Any,
    kernel_shape: Sequence[int],
    stride: Sequence[int] | None = None,
    pad: Sequence[int | tuple[int, int]] | None = None,
    dilation: Sequence[int] | None = None,
) -> Any:
    """Cross-correlate ``input`` with ``filters`` over the last ``len(kernel_shape)`` axes.

    ``out[b, f, p] = sum_{c, k} filters[f, c, k] * padded[b, c, p * stride + k * dilation]``.

    Parameters
    ----------
    input : expression, shape ``(batch, channels, *spatial)``
    filters : expression, shape ``(filters, channels, *kernel_shape)``
    kernel_shape : tuple of int
        The filter's spatial size (static: it fixes the number of taps).
    stride, dilation : tuple of int, optional
        Default 1 along every axis.
    pad : tuple of int or (before, after) pairs, optional
        Zero padding per spatial axis (default none).

    Returns
    -------
    expression, shape ``(batch, filters, *out_spatial)``

    Examples
    --------
    >>> x = pt.constant(np.arange(5.0).reshape(1, 1, 5))
    >>> w = pt.constant(np.array([[[1.0, -1.0]]]))
    >>> corr_nd(x, w, (2,)).eval().tolist()
    [[[-1.0, -1.0, -1.0, -1.0]]]
    """
    n = len(kernel_shape)
    stride = tuple(stride or (1,) * n)
    dilation = tuple(dilation or (1,) * n)
    pad = tuple(pad or (0,) * n)
    pads = [p if isinstance(p, tuple) else (p, p) for p in pad]
    x = pad_spatial(input, pads)
    # channels first, batch second: the stacked taps then reshape straight into the
    # (channels * taps, batch * positions) matrix of the product
    x = x.dimshuffle(1, 0, *range(2, 2 + n))
    out_len = [
        (x.shape[2 + i] - dilation[i] * (kernel_shape[i] - 1) - 1) // stride[i] + 1
        for i in range(n)
    ]
    taps = []
    for offsets in itertools.product(*(range(k) for k in kernel_shape)):
        index = (slice(None), slice(None)) + tuple(
            slice(o * d, o * d + (m - 1) * s + 1, s)
            for o, d, s, m in zip(offsets, dilation, stride, out_len)
        )
        taps.append(x[index])
    n_taps = len(taps)
    cols = pt.stack(taps, axis=1)  # (channels, taps, batch, *out)
    channels = x.shape[0]
    batch = x.shape[1]
    cols = cols.reshape((channels * n_taps, -1))
    n_filters = filters.shape[0]
    w = filters.reshape((n_filters, channels * n_taps))
    out = pt.dot(w, cols).reshape([n_filters, batch, *out_len])
    return out.dimshuffle(1, 0, *range(2, 2 + n))
