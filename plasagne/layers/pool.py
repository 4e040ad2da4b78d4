"""Pooling, upscaling and feature-pooling layers.

Spatial pooling goes through :func:`plasagne.ops.pool.pool_nd`.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt

from ..ops.pool import pool_nd, pool_output_length
from ..utils import as_tuple
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


class _PoolNDLayer(Layer):
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
                f"{self.input_shape}; expected {n + 2} dimensions (batch, channels, {n} spatial)"
            )
        self.pool_size = as_tuple(pool_size, n, int)
        self.stride = self.pool_size if stride is None else as_tuple(stride, n, int)
        self.pad = as_tuple(pad, n, int)
        self.ignore_border = ignore_border
        if mode not in ("max", "average_inc_pad", "average_exc_pad"):
            raise ValueError(
                f"{self._label()}: mode must be 'max', 'average_inc_pad' or 'average_exc_pad', "
                f"got {mode!r}"
            )
        self.mode = mode
        if not ignore_border and any(self.pad):
            raise ValueError(f"{self._label()}: padding requires ignore_border=True")
        for size, length, p in zip(self.pool_size, self.input_shape[2:], self.pad):
            if length is not None and ignore_border and size > length + 2 * p:
                raise ValueError(
                    f"{self._label()}: pool size {self.pool_size} is larger than the padded "
                    f"input {self.input_shape[2:]} (pad {self.pad}) with ignore_border=True"
                )
            if p >= size:
                raise ValueError(
                    f"{self._label()}: pad {self.pad} must be smaller than pool size "
                    f"{self.pool_size}"
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
    """1-D pooling over ``(batch, channels, length)`` inputs.

    Parameters
    ----------
    pool_size : int
    stride : int, optional
        Default: ``pool_size``.
    pad : int
    ignore_border : bool
        Drop (True) or keep (False) a partial window at the end.
    mode : {'max', 'average_inc_pad', 'average_exc_pad'}

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Pool1DLayer
    >>> Pool1DLayer(InputLayer((None, 3, 9)), 2, ignore_border=False).output_shape
    (None, 3, 5)
    """

    n = 1


class Pool2DLayer(_PoolNDLayer):
    """2-D pooling over ``(batch, channels, rows, columns)`` inputs.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Pool2DLayer
    >>> Pool2DLayer(InputLayer((None, 3, 9, 8)), 3, stride=2, mode="average_exc_pad").output_shape
    (None, 3, 4, 3)
    """

    n = 2


class Pool3DLayer(_PoolNDLayer):
    """3-D pooling over ``(batch, channels, depth, rows, columns)`` inputs.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Pool3DLayer
    >>> Pool3DLayer(InputLayer((None, 1, 4, 4, 4)), 2).output_shape
    (None, 1, 2, 2, 2)
    """

    n = 3


class MaxPool1DLayer(Pool1DLayer):
    """1-D max pooling.

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
    """2-D max pooling.

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
    """3-D max pooling.

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
    n = 0

    def __init__(
        self, incoming: Any, scale_factor: Any, mode: str = "repeat", **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.scale_factor = as_tuple(scale_factor, self.n, int)
        if any(s < 1 for s in self.scale_factor):
            raise ValueError(f"{self._label()}: scale factor must be >= 1, got {scale_factor}")
        if mode not in ("repeat", "dilate"):
            raise ValueError(f"{self._label()}: mode must be 'repeat' or 'dilate', got {mode!r}")
        self.mode = mode

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        lead = len(input_shape) - self.n
        spatial = tuple(
            None if s is None else s * f for s, f in zip(input_shape[lead:], self.scale_factor)
        )
        return (*input_shape[:lead], *spatial)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        lead = input.ndim - self.n
        if self.mode == "repeat":
            out = input
            for i, f in enumerate(self.scale_factor):
                if f > 1:
                    out = pt.repeat(out, f, axis=lead + i)
            return out
        shape = [input.shape[i] for i in range(lead)] + [
            input.shape[lead + i] * f for i, f in enumerate(self.scale_factor)
        ]
        out = pt.zeros(shape, dtype=input.dtype)
        index = (slice(None),) * lead + tuple(slice(None, None, f) for f in self.scale_factor)
        return pt.set_subtensor(out[index], input)


class Upscale1DLayer(_UpscaleNDLayer):
    """Upscale the last axis by an integer factor ('repeat' or 'dilate' with zeros).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Upscale1DLayer
    >>> Upscale1DLayer(InputLayer((None, 2, 5)), 3).output_shape
    (None, 2, 15)
    """

    n = 1


class Upscale2DLayer(_UpscaleNDLayer):
    """Upscale the last two axes by integer factors.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Upscale2DLayer
    >>> Upscale2DLayer(InputLayer((None, 2, 5, 4)), (2, 3)).output_shape
    (None, 2, 10, 12)
    """

    n = 2


class Upscale3DLayer(_UpscaleNDLayer):
    """Upscale the last three axes by integer factors.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Upscale3DLayer
    >>> Upscale3DLayer(InputLayer((None, 1, 2, 2, 2)), 2).output_shape
    (None, 1, 4, 4, 4)
    """

    n = 3


class GlobalPoolLayer(Layer):
    """Pool over all axes after the second: ``(batch, channels, ...) -> (batch, channels)``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, GlobalPoolLayer
    >>> GlobalPoolLayer(InputLayer((None, 8, 5, 5))).output_shape
    (None, 8)
    """

    def __init__(self, incoming: Any, pool_function: Any = pt.mean, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        self.pool_function = pool_function

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[:2])

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return self.pool_function(input.flatten(3), axis=2)


class FeaturePoolLayer(Layer):
    """Pool groups of ``pool_size`` consecutive features along ``axis`` (e.g. maxout).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, FeaturePoolLayer
    >>> FeaturePoolLayer(InputLayer((None, 12, 3)), 4).output_shape
    (None, 3, 3)
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
        self.pool_size = int(pool_size)
        self.axis = axis
        self.pool_function = pool_function
        num_feature_maps = self.input_shape[axis]
        if num_feature_maps is not None and num_feature_maps % self.pool_size != 0:
            raise ValueError(
                f"{self._label()}: number of input feature maps ({num_feature_maps}) is not a "
                f"multiple of the pool size (pool_size={self.pool_size})"
            )

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        shape = list(input_shape)
        if shape[self.axis] is not None:
            shape[self.axis] = shape[self.axis] // self.pool_size
        return tuple(shape)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        axis = self.axis % input.ndim
        shape = [input.shape[i] for i in range(input.ndim)]
        split = shape[:axis] + [shape[axis] // self.pool_size, self.pool_size] + shape[axis + 1 :]
        return self.pool_function(input.reshape(split), axis=axis + 1)


class FeatureWTALayer(Layer):
    """Winner-take-all within groups of ``pool_size`` features: non-maximal ones set to 0.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, FeatureWTALayer
    >>> FeatureWTALayer(InputLayer((None, 6)), 3).output_shape
    (None, 6)
    """

    def __init__(self, incoming: Any, pool_size: int, axis: int = 1, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        self.pool_size = int(pool_size)
        self.axis = axis
        num_inputs = self.input_shape[axis]
        if num_inputs is not None and num_inputs % self.pool_size != 0:
            raise ValueError(
                f"{self._label()}: number of input feature maps ({num_inputs}) is not a "
                f"multiple of the region size (pool_size={self.pool_size})"
            )

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        axis = self.axis % input.ndim
        shape = [input.shape[i] for i in range(input.ndim)]
        split = shape[:axis] + [shape[axis] // self.pool_size, self.pool_size] + shape[axis + 1 :]
        grouped = input.reshape(split)
        winners = pt.eq(grouped, grouped.max(axis=axis + 1, keepdims=True))
        return (grouped * winners).reshape(shape)


class SpatialPyramidPoolingLayer(Layer):
    """Pool each feature map into ``n x n`` bins for every ``n`` in ``pool_dims``.

    Bin ``i`` of ``n`` along an axis of length ``L`` covers
    ``[floor(i L / n), ceil((i + 1) L / n))``, so inputs of any size give
    ``(batch, channels, sum(n * n))`` outputs.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, SpatialPyramidPoolingLayer
    >>> SpatialPyramidPoolingLayer(InputLayer((None, 3, None, None))).output_shape
    (None, 3, 21)
    """

    def __init__(
        self,
        incoming: Any,
        pool_dims: Any = (4, 2, 1),
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
        if mode not in ("max", "average_inc_pad", "average_exc_pad"):
            raise ValueError(f"{self._label()}: unknown mode {mode!r}")
        self.pool_dims = tuple(int(d) for d in pool_dims)
        self.mode = mode
        self.implementation = implementation

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return (input_shape[0], input_shape[1], int(np.sum([d * d for d in self.pool_dims])))

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        rows, cols = input.shape[2], input.shape[3]
        pieces = []
        for n in self.pool_dims:
            for i in range(n):
                r0, r1 = (i * rows) // n, -((-(i + 1) * rows) // n)
                for j in range(n):
                    c0, c1 = (j * cols) // n, -((-(j + 1) * cols) // n)
                    region = input[:, :, r0:r1, c0:c1].flatten(3)
                    if self.mode == "max":
                        pieces.append(region.max(axis=2))
                    else:
                        pieces.append(region.mean(axis=2))
        return pt.stack(pieces, axis=2)
