"""Pooling, upscaling, feature-pooling and spatial pyramid pooling layers.

Window pooling (:class:`Pool1DLayer` to :class:`Pool3DLayer`, the ``MaxPool`` shortcuts
and :class:`SpatialPyramidPoolingLayer` on fixed sizes) goes through the single function
:func:`plasagne.ops.pool.pool_nd`.
"""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt
from pytensor.raise_op import Assert

from ..ops.pool import POOL_MODES, pool_nd, pool_output_length
from ..utils import as_tuple, int_types
from .base import Layer

__all__ = [
    "pool_output_length",
    "Pool1DLayer",
    "Pool2DLayer",
    "Pool3DLayer",
    "MaxPool1DLayer",
    "MaxPool2DLayer",
    "MaxPool3DLayer",
    "Upscale1DLayer",
    "Upscale2DLayer",
    "Upscale3DLayer",
    "GlobalPoolLayer",
    "FeaturePoolLayer",
    "FeatureWTALayer",
    "SpatialPyramidPoolingLayer",
]


def _int_tuple(layer: Layer, name: str, value: Any, n: int) -> tuple:
    """``as_tuple`` of ints, with errors naming the layer and the argument."""
    try:
        return tuple(int(v) for v in as_tuple(value, n, int_types))
    except (TypeError, ValueError):
        raise ValueError(
            f"{layer._label()}: {name} must be an int or {n} ints, got {value!r}"
        ) from None


class _PoolNDLayer(Layer):
    """Shared code of :class:`Pool1DLayer`, :class:`Pool2DLayer` and :class:`Pool3DLayer`."""

    n = 0

    def __init__(
        self,
        incoming: Any,
        pool_size: Any,
        stride: Any = None,
        pad: Any = 0,
        ignore_border: bool = True,
        mode: str = "max",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        n = self.n
        if len(self.input_shape) != n + 2:
            raise ValueError(
                f"{self._label()}: tried to create a {n}D pooling layer with input shape "
                f"{self.input_shape}; expected {n + 2} dimensions (batch, channels, "
                f"{n} spatial)"
            )
        self.pool_size = _int_tuple(self, "pool_size", pool_size, n)
        self.stride = self.pool_size if stride is None else _int_tuple(self, "stride", stride, n)
        self.pad = _int_tuple(self, "pad", pad, n)
        self.ignore_border = bool(ignore_border)
        if mode not in POOL_MODES:
            raise ValueError(f"{self._label()}: mode must be one of {POOL_MODES}, got {mode!r}")
        self.mode = mode
        if any(s < 1 for s in self.pool_size + self.stride):
            raise ValueError(
                f"{self._label()}: pool_size and stride must be positive, got pool_size "
                f"{self.pool_size} and stride {self.stride}"
            )
        if any(p < 0 or p >= s for p, s in zip(self.pad, self.pool_size)):
            raise ValueError(
                f"{self._label()}: pad must be non-negative and smaller than pool_size "
                f"{self.pool_size}, got pad {self.pad}"
            )
        if not self.ignore_border and any(self.pad):
            raise ValueError(
                f"{self._label()}: pad {self.pad} requires ignore_border=True, got "
                "ignore_border=False"
            )
        for size, length, p in zip(self.pool_size, self.input_shape[2:], self.pad):
            if length is not None and self.ignore_border and size > length + 2 * p:
                raise ValueError(
                    f"{self._label()}: pool_size {self.pool_size} is larger than the padded "
                    f"input {self.input_shape[2:]} (pad {self.pad}) with ignore_border=True"
                )

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        spatial = tuple(
            pool_output_length(i, s, st, p, self.ignore_border)
            for i, s, st, p in zip(input_shape[2:], self.pool_size, self.stride, self.pad)
        )
        return (*input_shape[:2], *spatial)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return pool_nd(input, self.pool_size, self.stride, self.pad, self.ignore_border, self.mode)


class Pool1DLayer(_PoolNDLayer):
    """1-D pooling over the last axis of ``(batch, channels, length)`` inputs.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pool_size : int or iterable of int
        Window size per spatial axis; an int is used for every axis.
    stride : int, iterable of int or None
        Step between windows; ``None`` means ``pool_size``.
    pad : int or iterable of int
        Elements added on both sides of each spatial axis, smaller than the pool
        size. Max pooling ignores them; average pooling reads them as zeros.
    ignore_border : bool
        If True, partial windows at the end are dropped; if False, one partial window
        is kept where elements would otherwise be left out. Must be True when padding.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
        Max pooling, or mean pooling dividing by the window size counting padding
        (``'average_inc_pad'``) or counting real elements only (``'average_exc_pad'``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Pool1DLayer
    >>> Pool1DLayer(InputLayer((None, 3, 9)), 2, ignore_border=False).output_shape
    (None, 3, 5)
    """

    n = 1


class Pool2DLayer(_PoolNDLayer):
    """2-D pooling over the last two axes of ``(batch, channels, rows, columns)`` inputs.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pool_size : int or iterable of int
        Window size per spatial axis; an int is used for every axis.
    stride : int, iterable of int or None
        Step between windows; ``None`` means ``pool_size``.
    pad : int or iterable of int
        Elements added on both sides of each spatial axis, smaller than the pool
        size. Max pooling ignores them; average pooling reads them as zeros.
    ignore_border : bool
        If True, partial windows at the end are dropped; if False, one partial window
        is kept where elements would otherwise be left out. Must be True when padding.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
        Max pooling, or mean pooling dividing by the window size counting padding
        (``'average_inc_pad'``) or counting real elements only (``'average_exc_pad'``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Pool2DLayer
    >>> Pool2DLayer(InputLayer((None, 3, 9, 8)), 3, stride=2, mode="average_exc_pad").output_shape
    (None, 3, 4, 3)
    """

    n = 2

    def __init__(
        self,
        incoming: Any,
        pool_size: Any,
        stride: Any = None,
        pad: Any = (0, 0),
        ignore_border: bool = True,
        mode: str = "max",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)


class Pool3DLayer(_PoolNDLayer):
    """3-D pooling over the last three axes of ``(batch, channels, depth, rows, columns)``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pool_size : int or iterable of int
        Window size per spatial axis; an int is used for every axis.
    stride : int, iterable of int or None
        Step between windows; ``None`` means ``pool_size``.
    pad : int or iterable of int
        Elements added on both sides of each spatial axis, smaller than the pool
        size. Max pooling ignores them; average pooling reads them as zeros.
    ignore_border : bool
        If True, partial windows at the end are dropped; if False, one partial window
        is kept where elements would otherwise be left out. Must be True when padding.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
        Max pooling, or mean pooling dividing by the window size counting padding
        (``'average_inc_pad'``) or counting real elements only (``'average_exc_pad'``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Pool3DLayer
    >>> Pool3DLayer(InputLayer((None, 1, 4, 5, 4)), 2, pad=1).output_shape
    (None, 1, 3, 3, 3)
    """

    n = 3

    def __init__(
        self,
        incoming: Any,
        pool_size: Any,
        stride: Any = None,
        pad: Any = (0, 0, 0),
        ignore_border: bool = True,
        mode: str = "max",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode, **kwargs)


class MaxPool1DLayer(Pool1DLayer):
    """1-D max pooling: :class:`Pool1DLayer` with ``mode='max'``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pool_size : int or iterable of int
        Window size per spatial axis; an int is used for every axis.
    stride : int, iterable of int or None
        Step between windows; ``None`` means ``pool_size``.
    pad : int or iterable of int
        Elements added on both sides of each spatial axis, smaller than the pool
        size. Max pooling ignores them; average pooling reads them as zeros.
    ignore_border : bool
        If True, partial windows at the end are dropped; if False, one partial window
        is kept where elements would otherwise be left out. Must be True when padding.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, MaxPool1DLayer
    >>> MaxPool1DLayer(InputLayer((None, 3, 9)), 3).output_shape
    (None, 3, 3)
    """

    def __init__(
        self,
        incoming: Any,
        pool_size: Any,
        stride: Any = None,
        pad: Any = 0,
        ignore_border: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class MaxPool2DLayer(Pool2DLayer):
    """2-D max pooling: :class:`Pool2DLayer` with ``mode='max'``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pool_size : int or iterable of int
        Window size per spatial axis; an int is used for every axis.
    stride : int, iterable of int or None
        Step between windows; ``None`` means ``pool_size``.
    pad : int or iterable of int
        Elements added on both sides of each spatial axis, smaller than the pool
        size. Max pooling ignores them; average pooling reads them as zeros.
    ignore_border : bool
        If True, partial windows at the end are dropped; if False, one partial window
        is kept where elements would otherwise be left out. Must be True when padding.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, MaxPool2DLayer
    >>> MaxPool2DLayer(InputLayer((None, 32, 24, 24)), (2, 2)).output_shape
    (None, 32, 12, 12)
    """

    def __init__(
        self,
        incoming: Any,
        pool_size: Any,
        stride: Any = None,
        pad: Any = (0, 0),
        ignore_border: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class MaxPool3DLayer(Pool3DLayer):
    """3-D max pooling: :class:`Pool3DLayer` with ``mode='max'``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pool_size : int or iterable of int
        Window size per spatial axis; an int is used for every axis.
    stride : int, iterable of int or None
        Step between windows; ``None`` means ``pool_size``.
    pad : int or iterable of int
        Elements added on both sides of each spatial axis, smaller than the pool
        size. Max pooling ignores them; average pooling reads them as zeros.
    ignore_border : bool
        If True, partial windows at the end are dropped; if False, one partial window
        is kept where elements would otherwise be left out. Must be True when padding.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, MaxPool3DLayer
    >>> MaxPool3DLayer(InputLayer((None, 1, 6, 6, 6)), 3).output_shape
    (None, 1, 2, 2, 2)
    """

    def __init__(
        self,
        incoming: Any,
        pool_size: Any,
        stride: Any = None,
        pad: Any = (0, 0, 0),
        ignore_border: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, pool_size, stride, pad, ignore_border, mode="max", **kwargs)


class _UpscaleNDLayer(Layer):
    """Shared code of the ``Upscale*DLayer`` classes: axes ``2 .. 2 + n - 1`` are scaled."""

    n = 0

    def __init__(
        self, incoming: Any, scale_factor: Any, mode: str = "repeat", **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        if len(self.input_shape) < self.n + 2:
            raise ValueError(
                f"{self._label()}: expected an input with at least {self.n + 2} dimensions "
                f"(batch, channels, {self.n} spatial), got shape {self.input_shape}"
            )
        self.scale_factor = _int_tuple(self, "scale_factor", scale_factor, self.n)
        if any(s < 1 for s in self.scale_factor):
            raise ValueError(f"{self._label()}: scale_factor must be >= 1, got {self.scale_factor}")
        if mode not in ("repeat", "dilate"):
            raise ValueError(f"{self._label()}: mode must be 'repeat' or 'dilate', got {mode!r}")
        self.mode = mode

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        shape = list(input_shape)
        for i, f in enumerate(self.scale_factor):
            if shape[2 + i] is not None:
                shape[2 + i] *= f
        return tuple(shape)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        if self.mode == "repeat":
            out = input
            for i, f in enumerate(self.scale_factor):
                if f > 1:
                    out = pt.repeat(out, f, axis=2 + i)
            return out
        shape = [input.shape[i] for i in range(input.ndim)]
        for i, f in enumerate(self.scale_factor):
            shape[2 + i] = shape[2 + i] * f
        index = (slice(None), slice(None)) + tuple(slice(None, None, f) for f in self.scale_factor)
        return pt.set_subtensor(pt.zeros(shape, dtype=input.dtype)[index], input)


class Upscale1DLayer(_UpscaleNDLayer):
    """Upscale axis 2 of ``(batch, channels, length)`` inputs by an integer factor.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    scale_factor : int or iterable of int
        Integer factor (>= 1) per spatial axis; an int is used for every axis.
    mode : {'repeat', 'dilate'}
        ``'repeat'`` repeats every element ``scale_factor`` times; ``'dilate'`` puts each
        element first in its block and fills the rest of the block with zeros.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Upscale1DLayer, get_output
    >>> layer = Upscale1DLayer(InputLayer((1, 1, 2)), 2, mode="dilate")
    >>> get_output(layer, np.array([[[1.0, 2.0]]])).eval().tolist()
    [[[1.0, 0.0, 2.0, 0.0]]]
    """

    n = 1


class Upscale2DLayer(_UpscaleNDLayer):
    """Upscale axes 2 and 3 of ``(batch, channels, rows, columns)`` inputs.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    scale_factor : int or iterable of int
        Integer factor (>= 1) per spatial axis; an int is used for every axis.
    mode : {'repeat', 'dilate'}
        ``'repeat'`` repeats every element ``scale_factor`` times; ``'dilate'`` puts each
        element first in its block and fills the rest of the block with zeros.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Upscale2DLayer
    >>> Upscale2DLayer(InputLayer((None, 2, 5, 4)), (2, 3)).output_shape
    (None, 2, 10, 12)
    """

    n = 2


class Upscale3DLayer(_UpscaleNDLayer):
    """Upscale axes 2, 3 and 4 of ``(batch, channels, depth, rows, columns)`` inputs.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    scale_factor : int or iterable of int
        Integer factor (>= 1) per spatial axis; an int is used for every axis.
    mode : {'repeat', 'dilate'}
        ``'repeat'`` repeats every element ``scale_factor`` times; ``'dilate'`` puts each
        element first in its block and fills the rest of the block with zeros.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Upscale3DLayer
    >>> Upscale3DLayer(InputLayer((None, 1, 2, 2, 2)), 2).output_shape
    (None, 1, 4, 4, 4)
    """

    n = 3


class GlobalPoolLayer(Layer):
    """Pool over all axes after the second: ``(batch, channels, ...) -> (batch, channels)``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one; at least 3 dimensions.
    pool_function : callable
        Called as ``pool_function(x, axis=2)`` on the input flattened to 3 dimensions,
        e.g. ``pt.mean`` (default), ``pt.max`` or ``pt.sum``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, GlobalPoolLayer
    >>> GlobalPoolLayer(InputLayer((None, 8, 5, 5))).output_shape
    (None, 8)
    """

    def __init__(self, incoming: Any, pool_function: Any = pt.mean, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        if len(self.input_shape) < 3:
            raise ValueError(
                f"{self._label()}: expected an input with at least 3 dimensions (batch, "
                f"channels, ...), got shape {self.input_shape}"
            )
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:2])

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return self.pool_function(input.flatten(3), axis=2)


def _check_groups(layer: Layer, pool_size: Any, axis: int, what: str) -> tuple[int, int]:
    """Validate ``pool_size`` and ``axis`` of a feature pooling layer; returns both as ints."""
    ndim = len(layer.input_shape)
    if not -ndim <= axis < ndim:
        raise ValueError(
            f"{layer._label()}: axis {axis} is out of range for input shape {layer.input_shape}"
        )
    pool_size = int(pool_size)
    if pool_size < 1:
        raise ValueError(f"{layer._label()}: pool_size must be positive, got {pool_size}")
    size = layer.input_shape[axis]
    if size is not None and size % pool_size != 0:
        raise ValueError(
            f"{layer._label()}: number of input feature maps ({size}) along axis {axis} is "
            f"not a multiple of the {what} size (pool_size={pool_size})"
        )
    return pool_size, axis % ndim


def _split_axis(input: Any, axis: int, pool_size: int) -> Any:
    """Reshape ``axis`` of length ``k * pool_size`` into two axes ``(k, pool_size)``."""
    shape = [input.shape[i] for i in range(input.ndim)]
    split = shape[:axis] + [shape[axis] // pool_size, pool_size] + shape[axis + 1 :]
    return input.reshape(split)


class FeaturePoolLayer(Layer):
    """Pool groups of ``pool_size`` consecutive features along ``axis`` (e.g. maxout).

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one.
    pool_size : int
        Number of consecutive features pooled together; must divide the axis length.
    axis : int
        Axis to pool (default 1, the channels of dense and convolution layers).
    pool_function : callable
        Called as ``pool_function(x, axis=axis + 1)`` on the input with ``axis`` split
        into ``(groups, pool_size)``; default ``pt.max`` (maxout).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, FeaturePoolLayer, get_output
    >>> layer = FeaturePoolLayer(InputLayer((1, 4)), 2)
    >>> get_output(layer, np.array([[1.0, 3.0, 5.0, 2.0]])).eval().tolist()
    [[3.0, 5.0]]
    """

    def __init__(
        self,
        incoming: Any,
        pool_size: int,
        axis: int = 1,
        pool_function: Any = pt.max,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.pool_size, self.axis = _check_groups(self, pool_size, axis, "pool")
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        shape = list(input_shape)
        if shape[self.axis] is not None:
            shape[self.axis] = shape[self.axis] // self.pool_size
        return tuple(shape)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        grouped = _split_axis(input, self.axis, self.pool_size)
        return self.pool_function(grouped, axis=self.axis + 1)


class FeatureWTALayer(Layer):
    """Winner-take-all within groups of ``pool_size`` features: all but the maximum set to 0.

    Within each group the first maximal element (``argmax``) keeps its value; ties go to
    the earliest position, as in Lasagne.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one.
    pool_size : int
        Number of consecutive features per group; must divide the axis length.
    axis : int
        Axis along which groups are formed (default 1).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, FeatureWTALayer, get_output
    >>> layer = FeatureWTALayer(InputLayer((1, 6)), 3)
    >>> get_output(layer, np.array([[1.0, 3.0, 2.0, 4.0, 4.0, 0.0]])).eval().tolist()
    [[0.0, 3.0, 0.0, 4.0, 0.0, 0.0]]
    """

    def __init__(self, incoming: Any, pool_size: int, axis: int = 1, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        self.pool_size, self.axis = _check_groups(self, pool_size, axis, "group")

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        grouped = _split_axis(input, self.axis, self.pool_size)
        winner = pt.argmax(grouped, axis=self.axis + 1, keepdims=True)
        pattern = ["x"] * grouped.ndim
        pattern[self.axis + 1] = 0
        position = pt.arange(self.pool_size).dimshuffle(pattern)
        mask = pt.eq(winner, position).reshape(input.shape)
        return input * mask


def _pool_bins(x: Any, axis: int, bins: list, mode: str) -> Any:
    """Reduce ``x[..., start:stop, ...]`` along ``axis`` for each ``(start, stop)`` bin."""
    reduce = pt.max if mode == "max" else pt.mean
    pieces = []
    for start, stop in bins:
        index = [slice(None)] * x.ndim
        index[axis] = slice(start, stop)
        pieces.append(reduce(x[tuple(index)], axis=axis, keepdims=True))
    return pt.concatenate(pieces, axis=axis)


class SpatialPyramidPoolingLayer(Layer):
    """Spatial pyramid pooling: each level pools every map into ``n x n`` bins.

    For every ``n`` in ``pool_dims`` the two spatial axes are cut into ``n`` bins each,
    every bin is pooled, and the ``n * n`` results (row-major) of all levels are
    concatenated: ``(batch, channels, rows, cols) -> (batch, channels, sum(n * n))``.
    The spatial sizes may be unknown (``None``), so networks accept any image size.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one; 4 dimensions.
    pool_dims : list of int
        Number of bins per axis at each pyramid level.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}
        Max or mean over each bin (the two average modes agree: there is no padding).
    implementation : {'fast', 'kaiming'}
        ``'fast'`` (Lasagne's default) pools with window ``ceil(L / n)`` and stride
        ``floor(L / n)`` along an axis of length ``L``; this gives ``n`` bins only for
        some lengths, so a length that does not is an error (at construction for known
        sizes, when run otherwise). ``'kaiming'`` uses bin ``i`` = ``[floor(i L / n),
        ceil((i + 1) L / n))`` as in He et al. (2015) and works for every ``L >= 1``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, SpatialPyramidPoolingLayer
    >>> SpatialPyramidPoolingLayer(InputLayer((None, 3, None, None))).output_shape
    (None, 3, 21)
    """

    def __init__(
        self,
        incoming: Any,
        pool_dims: Any = [4, 2, 1],  # noqa: B006 - Lasagne's default, never mutated
        mode: str = "max",
        implementation: str = "fast",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        if len(self.input_shape) != 4:
            raise ValueError(
                f"{self._label()}: expected a 4-D input (batch, channels, rows, columns), got "
                f"shape {self.input_shape}"
            )
        if mode not in POOL_MODES:
            raise ValueError(f"{self._label()}: mode must be one of {POOL_MODES}, got {mode!r}")
        if implementation not in ("fast", "kaiming"):
            raise ValueError(
                f"{self._label()}: implementation must be 'fast' or 'kaiming', got "
                f"{implementation!r}"
            )
        self.pool_dims = list(pool_dims)
        if not self.pool_dims or any(not isinstance(d, int_types) or d < 1 for d in self.pool_dims):
            raise ValueError(
                f"{self._label()}: pool_dims must be a non-empty list of positive ints, got "
                f"{pool_dims!r}"
            )
        self.mode = mode
        self.implementation = implementation
        if implementation == "fast":
            for n in self.pool_dims:
                for length in self.input_shape[2:]:
                    if length is not None and not self._fast_fits(length, n):
                        raise ValueError(
                            f"{self._label()}: implementation='fast' cannot cut a spatial "
                            f"axis of length {length} into {n} bins (window ceil(L/n), "
                            "stride floor(L/n)); use implementation='kaiming'"
                        )

    @staticmethod
    def _fast_fits(length: Any, n: int) -> Any:
        """Whether window ``ceil(L/n)`` with stride ``floor(L/n)`` gives ``n`` windows."""
        if isinstance(length, int_types):
            return length >= n and (length - -(-length // n)) // (length // n) + 1 == n
        stride = pt.maximum(length // n, 1)
        count = (length - (length + n - 1) // n) // stride + 1
        return pt.and_(pt.ge(length, n), pt.eq(count, n))

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[1], sum(n * n for n in self.pool_dims))

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        sizes = [
            fixed if fixed is not None else input.shape[2 + i]
            for i, fixed in enumerate(self.input_shape[2:])
        ]
        static = all(isinstance(s, int_types) for s in sizes)
        levels = []
        for n in self.pool_dims:
            if self.implementation == "fast" and static:
                window = tuple(-(-s // n) for s in sizes)
                stride = tuple(s // n for s in sizes)
                levels.append(pool_nd(input, window, stride, mode=self.mode).flatten(3))
                continue
            x = input
            for i, length in enumerate(sizes):
                if self.implementation == "fast":
                    window, stride = (length + n - 1) // n, length // n
                    bins = [(k * stride, k * stride + window) for k in range(n)]
                    if not isinstance(length, int_types):
                        x = Assert(
                            f"{self._label()}: implementation='fast' cannot cut a spatial "
                            f"axis into {n} bins for this input size; use "
                            "implementation='kaiming'"
                        )(x, self._fast_fits(length, n))
                else:
                    bins = [((k * length) // n, -((-(k + 1) * length) // n)) for k in range(n)]
                x = _pool_bins(x, 2 + i, bins, self.mode)
            levels.append(x.flatten(3))
        return pt.concatenate(levels, axis=2)
