"""Layers that only rearrange their input: reshape, flatten, dimshuffle, pad, slice."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt

from .base import Layer

__all__ = [
    "ReshapeLayer",
    "reshape",
    "FlattenLayer",
    "flatten",
    "DimshuffleLayer",
    "dimshuffle",
    "PadLayer",
    "pad",
    "SliceLayer",
]


class ReshapeLayer(Layer):
    """Reshape the input; entries are ints, ``-1`` (inferred) or ``[i]`` (input axis i's size).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ReshapeLayer
    >>> ReshapeLayer(InputLayer((None, 100, 20)), ([0], [1], 5, -1)).output_shape
    (None, 100, 5, 4)
    """

    def __init__(self, incoming: Any, shape: Any, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        shape = tuple(shape)
        for s in shape:
            if isinstance(s, int):
                if s == 0 or s < -1:
                    raise ValueError(f"{self._label()}: `shape` integers must be positive or -1")
            elif isinstance(s, list):
                if len(s) != 1 or not isinstance(s[0], int) or s[0] < 0:
                    raise ValueError(
                        f"{self._label()}: `shape` input references must be single-element "
                        "lists of int >= 0"
                    )
            elif isinstance(s, pt.TensorVariable):
                if s.ndim != 0:
                    raise ValueError(f"{self._label()}: a symbolic `shape` entry must be a scalar")
            else:
                raise ValueError(
                    f"{self._label()}: `shape` must be ints, [i] or scalars, got {s!r}"
                )
        if sum(s == -1 for s in shape if isinstance(s, int)) > 1:
            raise ValueError(f"{self._label()}: `shape` cannot contain more than one -1")
        self.shape = shape
        self.get_output_shape_for(self.input_shape)  # validate now

    def get_output_shape_for(self, input_shape: tuple, **kwargs: Any) -> tuple:
        output_shape = list(self.shape)
        masked_input = list(input_shape)
        masked_output = list(self.shape)
        for dim, o in enumerate(output_shape):
            if isinstance(o, list):
                if o[0] >= len(input_shape):
                    raise ValueError(
                        f"{self._label()}: specification contains [{o[0]}], but input shape has "
                        f"only {len(input_shape)} dimensions"
                    )
                output_shape[dim] = input_shape[o[0]]
                masked_output[dim] = input_shape[o[0]]
                if input_shape[o[0]] is None and masked_input[o[0]] is None:
                    masked_input[o[0]] = 1
                    masked_output[dim] = 1
        for dim, o in enumerate(output_shape):
            if isinstance(o, pt.TensorVariable):
                output_shape[dim] = None
                masked_output[dim] = None
        input_size = None if None in masked_input else int(np.prod(masked_input))
        output_size = (
            None if None in masked_output else int(np.prod([s for s in masked_output if s != -1]))
        )
        if -1 in output_shape:
            dim = output_shape.index(-1)
            if input_size is None or output_size is None:
                output_shape[dim] = None
                output_size = None
            else:
                output_shape[dim] = input_size // output_size
                output_size *= output_shape[dim]
        if input_size is not None and output_size is not None and input_size != output_size:
            raise ValueError(
                f"{self._label()}: cannot reshape input of shape {input_shape} to {self.shape} "
                "(total size mismatch)"
            )
        return tuple(output_shape)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        output_shape = [input.shape[s[0]] if isinstance(s, list) else s for s in self.shape]
        return input.reshape(tuple(output_shape))


reshape = ReshapeLayer


class FlattenLayer(Layer):
    """Flatten all axes from ``outdim - 1`` on into one.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, FlattenLayer
    >>> FlattenLayer(InputLayer((None, 3, 4, 5))).output_shape
    (None, 60)
    """

    def __init__(self, incoming: Any, outdim: int = 2, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        if outdim < 1:
            raise ValueError(f"{self._label()}: outdim must be >= 1, got {outdim}")
        self.outdim = outdim

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        to_flatten = input_shape[self.outdim - 1 :]
        flat = None if any(s is None for s in to_flatten) else int(np.prod(to_flatten))
        return tuple(input_shape[: self.outdim - 1]) + (flat,)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return input.flatten(self.outdim)


flatten = FlattenLayer


class DimshuffleLayer(Layer):
    """Permute axes and insert broadcastable ones (``'x'``), like ``dimshuffle``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DimshuffleLayer
    >>> DimshuffleLayer(InputLayer((2, 3, 5)), (2, "x", 0, 1)).output_shape
    (5, 1, 2, 3)
    """

    def __init__(self, incoming: Any, pattern: Any, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        used = set()
        for p in pattern:
            if isinstance(p, int):
                if p in used:
                    raise ValueError(f"{self._label()}: pattern uses dimension {p} twice")
                used.add(p)
            elif p != "x":
                raise ValueError(f"{self._label()}: pattern entries must be ints or 'x', got {p!r}")
        self.pattern = tuple(pattern)
        self.get_output_shape_for(self.input_shape)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        output_shape = []
        dims_used = [False] * len(input_shape)
        for p in self.pattern:
            if isinstance(p, int):
                if p < 0 or p >= len(input_shape):
                    raise ValueError(
                        f"{self._label()}: pattern refers to dimension {p}, but the input has "
                        f"{len(input_shape)} dimensions"
                    )
                output_shape.append(input_shape[p])
                dims_used[p] = True
            else:
                output_shape.append(1)
        for used, size in zip(dims_used, input_shape):
            if not used and size != 1 and size is not None:
                raise ValueError(
                    f"{self._label()}: pattern {self.pattern} drops a dimension of size {size}; "
                    "only size-1 dimensions may be dropped"
                )
        return tuple(output_shape)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return input.dimshuffle(self.pattern)


dimshuffle = DimshuffleLayer


class PadLayer(Layer):
    """Pad the axes after the first ``batch_ndim`` with a constant ``val``.

    ``width`` is an int, a tuple of ints (one per padded axis) or a tuple of
    ``(before, after)`` pairs.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, PadLayer
    >>> PadLayer(InputLayer((None, 3, 5, 5)), width=[(1, 2), 0]).output_shape
    (None, 3, 8, 5)
    """

    def __init__(
        self, incoming: Any, width: Any, val: float = 0, batch_ndim: int = 2, **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.width = width
        self.val = val
        self.batch_ndim = batch_ndim

    def _widths(self, ndim: int) -> list[tuple[int, int]]:
        n = ndim - self.batch_ndim
        if isinstance(self.width, int):
            return [(self.width, self.width)] * n
        widths = []
        for w in self.width:
            widths.append((w, w) if isinstance(w, int) else tuple(w))
        if len(widths) != n:
            raise ValueError(
                f"{self._label()}: width {self.width} gives {len(widths)} axes, the input has {n} "
                "axes after the batch axes"
            )
        return widths

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        widths = self._widths(len(input_shape))
        spatial = [
            None if s is None else s + b + a
            for s, (b, a) in zip(input_shape[self.batch_ndim :], widths)
        ]
        return tuple(input_shape[: self.batch_ndim]) + tuple(spatial)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        from ..ops.conv import pad_spatial

        return pad_spatial(input, self._widths(input.ndim), value=self.val)


pad = PadLayer


class SliceLayer(Layer):
    """Index or slice the input along one axis (an int index drops the axis).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, SliceLayer
    >>> SliceLayer(InputLayer((None, 10, 4)), slice(2, 8, 2), axis=1).output_shape
    (None, 3, 4)
    """

    def __init__(self, incoming: Any, indices: Any, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        self.slice = indices
        self.axis = axis

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        output_shape = list(input_shape)
        if isinstance(self.slice, int):
            del output_shape[self.axis]
        elif input_shape[self.axis] is not None:
            output_shape[self.axis] = len(range(*self.slice.indices(input_shape[self.axis])))
        else:
            output_shape[self.axis] = None
        return tuple(output_shape)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        axis = self.axis % input.ndim
        return input[(slice(None),) * axis + (self.slice,)]
