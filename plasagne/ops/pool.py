"""N-d pooling as a PyTensor graph, one axis at a time.

Max and sum pooling over a box are separable: pooling the last axis, then the one
before, and so on gives the box result with ``sum(pool_size)`` slices instead of
``prod(pool_size)``. Where windows tile the axis exactly (stride equal to the pool size,
no padding) an axis is pooled by one reshape and a reduction, the fast path every
non-overlapping pool takes.

To use a faster kernel, replace :func:`pool_nd` (keeping its signature).
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor.tensor as pt

__all__ = ["pool_nd", "pool_output_length"]


def pool_output_length(
    input_length: int | None, pool_size: int, stride: int, pad: int, ignore_border: bool
) -> int | None:
    """Output length of pooling along one axis (Lasagne's rule).

    With ``ignore_border=False`` a partial window at the end still produces an output.

    Examples
    --------
    >>> pool_output_length(7, 2, 2, 0, True), pool_output_length(7, 2, 2, 0, False)
    (3, 4)
    """
    if input_length is None or pool_size is None:
        return None
    if ignore_border:
        output_length = input_length + 2 * pad - pool_size + 1
        output_length = (output_length + stride - 1) // stride
    else:
        if pad != 0:
            raise ValueError("padding requires ignore_border=True")
        if stride >= pool_size:
            output_length = (input_length + stride - 1) // stride
        else:
            output_length = max(0, (input_length - pool_size + stride - 1) // stride) + 1
    return output_length


def _symbolic_out_len(length: Any, size: int, stride: int, pad: int, ignore_border: bool) -> Any:
    if ignore_border:
        return (length + 2 * pad - size) // stride + 1
    if stride >= size:
        return (length + stride - 1) // stride
    return pt.maximum(0, (length - size + stride - 1) // stride) + 1


def _pool_axis(
    x: Any, axis: int, size: int, stride: int, pad: int, ignore_border: bool, reduce: str
) -> tuple[Any, Any]:
    """Pool one axis; returns the pooled tensor and the symbolic output length."""
    length = x.shape[axis]
    out_len = _symbolic_out_len(length, size, stride, pad, ignore_border)
    fill = -np.inf if reduce == "max" else 0.0
    if stride == size and pad == 0 and ignore_border:
        # windows tile the axis: crop the remainder, split the axis, reduce
        index = [slice(None)] * x.ndim
        index[axis] = slice(0, out_len * size)
        cropped = x[tuple(index)]
        shape = [cropped.shape[i] for i in range(x.ndim)]
        split = shape[:axis] + [out_len, size] + shape[axis + 1 :]
        windows = cropped.reshape(split)
        pooled = windows.max(axis=axis + 1) if reduce == "max" else windows.sum(axis=axis + 1)
        return pooled, out_len
    # general case: pad (padding, plus a partial last window), then combine shifted slices
    needed = (out_len - 1) * stride + size
    after = pt.maximum(0, needed - length - pad) if not ignore_border else pad
    shape = [x.shape[i] for i in range(x.ndim)]
    shape[axis] = length + pad + after
    padded = pt.full(shape, fill, dtype=x.dtype)
    index = [slice(None)] * x.ndim
    index[axis] = slice(pad, pad + length)
    padded = pt.set_subtensor(padded[tuple(index)], x)
    result = None
    for offset in range(size):
        index[axis] = slice(offset, offset + (out_len - 1) * stride + 1, stride)
        piece = padded[tuple(index)]
        if result is None:
            result = piece
        elif reduce == "max":
            result = pt.maximum(result, piece)
        else:
            result = result + piece
    return result, out_len


def _window_counts(
    length: Any, out_len: Any, size: int, stride: int, pad: int, include_pad: bool, dtype: str
) -> Any:
    starts = pt.arange(out_len) * stride - pad
    ends = starts + size
    lo, hi = (-pad, length + pad) if include_pad else (0, length)
    return pt.cast(pt.minimum(ends, hi) - pt.maximum(starts, lo), dtype)


def pool_nd(
    input: Any,
    pool_size: Sequence[int],
    stride: Sequence[int] | None = None,
    pad: Sequence[int] | None = None,
    ignore_border: bool = True,
    mode: str = "max",
) -> Any:
    """Pool the last ``len(pool_size)`` axes of ``input``.

    Parameters
    ----------
    input : expression
    pool_size : tuple of int
    stride : tuple of int, optional
        Default: ``pool_size`` (non-overlapping windows).
    pad : tuple of int, optional
        Symmetric padding (needs ``ignore_border=True``); ignored by max, zeros for
        ``'average_inc_pad'``, not counted by ``'average_exc_pad'``.
    ignore_border : bool
        Drop (True) or keep (False) a partial window at the end of an axis.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}

    Examples
    --------
    >>> x = pt.constant(np.arange(16.0).reshape(1, 1, 4, 4))
    >>> pool_nd(x, (2, 2)).eval()[0, 0].tolist()
    [[5.0, 7.0], [13.0, 15.0]]
    >>> pool_nd(x, (2, 2), mode="average_inc_pad").eval()[0, 0].tolist()
    [[2.5, 4.5], [10.5, 12.5]]
    """
    n = len(pool_size)
    stride = tuple(pool_size if stride is None else stride)
    pad = tuple((0,) * n if pad is None else pad)
    if mode not in ("max", "average_inc_pad", "average_exc_pad"):
        raise ValueError(
            f"pool mode must be 'max', 'average_inc_pad' or 'average_exc_pad', got {mode!r}"
        )
    if not ignore_border and any(p != 0 for p in pad):
        raise ValueError("padding requires ignore_border=True")
    reduce = "max" if mode == "max" else "sum"
    x = pt.as_tensor_variable(input)
    counts = []
    for i in range(n):
        axis = x.ndim - n + i
        length = x.shape[axis]
        x, out_len = _pool_axis(x, axis, pool_size[i], stride[i], pad[i], ignore_border, reduce)
        if reduce == "sum":
            c = _window_counts(
                length,
                out_len,
                pool_size[i],
                stride[i],
                pad[i],
                mode == "average_inc_pad",
                x.dtype,
            )
            counts.append((axis, c))
    for axis, c in counts:
        pattern = ["x"] * x.ndim
        pattern[axis] = 0
        x = x / c.dimshuffle(pattern)
    return x
