"""Layers that only rearrange their input: reshape, flatten, dimshuffle, pad and slice.

None of these layers has parameters. Unknown sizes (``None``) in the input shape
propagate to the output shape wherever the output size depends on them.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

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


def _is_int(value: Any) -> bool:
    return isinstance(value, (int, np.integer)) and not isinstance(value, bool)


def _product(sizes: list) -> int | None:
    """Product of sizes, None if any is unknown."""
    if any(s is None for s in sizes):
        return None
    return int(np.prod(sizes, dtype=np.int64))


class ReshapeLayer(Layer):
    """Reshape the input to a new shape.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    shape : tuple
        The target shape. Each entry is one of

        * a positive int: that size;
        * ``-1``: the size that makes the total number of elements match
          (at most one entry);
        * ``[i]`` (a list holding one int): the size of input axis ``i``,
          whatever it is at run time;
        * a scalar PyTensor expression: a size only known when the graph runs.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Notes
    -----
    When inferring ``-1`` the layer pairs each ``[i]`` with input axis ``i``, so
    an unknown batch size copied with ``[0]`` does not hide the inferred size.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ReshapeLayer
    >>> l_in = InputLayer((None, 100, 20))
    >>> ReshapeLayer(l_in, ([0], [1], 5, -1)).output_shape
    (None, 100, 5, 4)
    >>> ReshapeLayer(l_in, ([0], -1)).output_shape
    (None, 2000)
    """

    def __init__(self, incoming: Any, shape: Any, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        try:
            entries = tuple(shape)
        except TypeError:
            raise TypeError(
                f"{self._label()}: `shape` must be a tuple, got {type(shape).__name__} {shape!r}"
            ) from None
        checked = []
        for entry in entries:
            if _is_int(entry):
                if entry == 0 or entry < -1:
                    raise ValueError(
                        f"{self._label()}: `shape` integers must be positive or -1, got {entry} "
                        f"in {entries}"
                    )
                checked.append(int(entry))
            elif isinstance(entry, list):
                if len(entry) != 1 or not _is_int(entry[0]) or entry[0] < 0:
                    raise ValueError(
                        f"{self._label()}: input references in `shape` must be one-element "
                        f"lists holding an int >= 0, got {entry!r}"
                    )
                checked.append([int(entry[0])])
            elif isinstance(entry, Variable):
                if entry.ndim != 0:
                    raise ValueError(
                        f"{self._label()}: a symbolic entry of `shape` must be a scalar, got "
                        f"{entry.ndim} dimensions"
                    )
                checked.append(entry)
            else:
                raise ValueError(
                    f"{self._label()}: `shape` entries must be ints, -1, [i] or scalar "
                    f"expressions, got {entry!r}"
                )
        if sum(1 for e in checked if _is_int(e) and e == -1) > 1:
            raise ValueError(f"{self._label()}: `shape` may contain -1 only once, got {entries}")
        self.shape = tuple(checked)
        self.get_output_shape_for(self.input_shape)  # report a bad spec at construction

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        ndim_in = len(input_shape)
        out: list = []
        # Sizes entering the element count; a copied unknown axis cancels out
        # against its input counterpart, so it counts as 1 on both sides.
        in_sizes = list(input_shape)
        out_sizes: list = []
        cancelled: set[int] = set()
        for entry in self.shape:
            if isinstance(entry, list):
                axis = entry[0]
                if axis >= ndim_in:
                    raise ValueError(
                        f"{self._label()}: `shape` {self.shape} refers to input axis {axis}, "
                        f"but the input shape {input_shape} has {ndim_in} axes"
                    )
                size = input_shape[axis]
                out.append(size)
                if size is None and axis not in cancelled:
                    cancelled.add(axis)
                    in_sizes[axis] = 1
                    out_sizes.append(1)
                else:
                    out_sizes.append(size)
            elif isinstance(entry, Variable):
                out.append(None)
                out_sizes.append(None)
            else:
                out.append(entry)
                if entry != -1:
                    out_sizes.append(entry)
        total_in = _product(in_sizes)
        total_out = _product(out_sizes)
        if -1 in [e for e in out if e is not None]:
            where = out.index(-1)
            if total_in is None or total_out is None:
                out[where] = None
            else:
                if total_in % total_out:
                    raise ValueError(
                        f"{self._label()}: cannot reshape input of shape {input_shape} to "
                        f"{self.shape}: {total_in} elements do not divide into blocks of "
                        f"{total_out}"
                    )
                out[where] = total_in // total_out
        elif total_in is not None and total_out is not None and total_in != total_out:
            raise ValueError(
                f"{self._label()}: cannot reshape input of shape {input_shape} to {self.shape}: "
                f"the total size changes from {total_in} to {total_out}"
            )
        return tuple(out)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        target = [input.shape[e[0]] if isinstance(e, list) else e for e in self.shape]
        return input.reshape(tuple(target), ndim=len(target))


reshape = ReshapeLayer


class FlattenLayer(Layer):
    """Flatten the trailing axes so that the output has ``outdim`` dimensions.

    Axes ``outdim - 1`` and later are merged into one; the leading
    ``outdim - 1`` axes are kept.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    outdim : int
        Number of dimensions of the output (at least 1, at most the input's).
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, FlattenLayer
    >>> FlattenLayer(InputLayer((None, 3, 4, 5))).output_shape
    (None, 60)
    >>> FlattenLayer(InputLayer((None, 3, 4, 5)), outdim=3).output_shape
    (None, 3, 20)
    """

    def __init__(self, incoming: Any, outdim: int = 2, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        if not _is_int(outdim) or outdim < 1:
            raise ValueError(f"{self._label()}: `outdim` must be an int >= 1, got {outdim!r}")
        self.outdim = int(outdim)
        self.get_output_shape_for(self.input_shape)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        if self.outdim > len(input_shape):
            raise ValueError(
                f"{self._label()}: `outdim`={self.outdim} exceeds the {len(input_shape)} "
                f"dimensions of the input shape {input_shape}"
            )
        keep = tuple(input_shape[: self.outdim - 1])
        return keep + (_product(list(input_shape[self.outdim - 1 :])),)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return pt.flatten(input, self.outdim)


flatten = FlattenLayer


class DimshuffleLayer(Layer):
    """Reorder the input's axes and insert or drop broadcastable ones.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    pattern : tuple
        Output axis ``k`` is input axis ``pattern[k]`` (an int), or a new axis of
        size 1 (``'x'``). Input axes left out are dropped; they must have size
        1 (an unknown size is checked when the graph runs).
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DimshuffleLayer
    >>> DimshuffleLayer(InputLayer((2, 3, 5)), (2, "x", 0, 1)).output_shape
    (5, 1, 2, 3)
    >>> DimshuffleLayer(InputLayer((2, 1, 5)), (2, 0)).output_shape
    (5, 2)
    """

    def __init__(self, incoming: Any, pattern: Any, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        checked: list = []
        for entry in pattern:
            if _is_int(entry):
                if int(entry) in checked:
                    raise ValueError(
                        f"{self._label()}: `pattern` {tuple(pattern)} uses input axis {entry} "
                        "more than once"
                    )
                checked.append(int(entry))
            elif entry == "x":
                checked.append("x")
            else:
                raise ValueError(
                    f"{self._label()}: `pattern` entries must be ints or 'x', got {entry!r}"
                )
        self.pattern = tuple(checked)
        self.get_output_shape_for(self.input_shape)

    def _dropped(self, ndim: int) -> list[int]:
        return [axis for axis in range(ndim) if axis not in self.pattern]

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        ndim = len(input_shape)
        out = []
        for entry in self.pattern:
            if entry == "x":
                out.append(1)
            elif not 0 <= entry < ndim:
                raise ValueError(
                    f"{self._label()}: `pattern` {self.pattern} refers to axis {entry}, but the "
                    f"input shape {input_shape} has {ndim} axes"
                )
            else:
                out.append(input_shape[entry])
        for axis in self._dropped(ndim):
            if input_shape[axis] not in (1, None):
                raise ValueError(
                    f"{self._label()}: `pattern` {self.pattern} drops input axis {axis} of size "
                    f"{input_shape[axis]}; only axes of size 1 can be dropped"
                )
        return tuple(out)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        dropped = self._dropped(input.ndim)
        if dropped:
            # Axes of unknown size are asserted to be 1 at run time.
            input = pt.specify_broadcastable(input, *dropped)
        return input.dimshuffle(self.pattern)


dimshuffle = DimshuffleLayer


class PadLayer(Layer):
    """Pad the axes after the first ``batch_ndim`` with a constant value.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    width : int or iterable
        An int pads every axis after the batch axes by that much on both sides.
        An iterable gives one entry per axis, starting right after the batch
        axes: an int (same on both sides) or a ``(before, after)`` pair. Axes
        beyond the entries given are left alone.
    val : float
        The value to pad with.
    batch_ndim : int
        Number of leading axes that are not padded.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, PadLayer
    >>> PadLayer(InputLayer((None, 3, 5, 5)), width=1).output_shape
    (None, 3, 7, 7)
    >>> PadLayer(InputLayer((None, 3, 5, 5)), width=[(1, 2)]).output_shape
    (None, 3, 8, 5)
    """

    def __init__(
        self, incoming: Any, width: Any, val: float = 0, batch_ndim: int = 2, **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        if not _is_int(batch_ndim) or not 0 <= batch_ndim <= len(self.input_shape):
            raise ValueError(
                f"{self._label()}: `batch_ndim` must be an int between 0 and the "
                f"{len(self.input_shape)} input dimensions, got {batch_ndim!r}"
            )
        self.width = width
        self.val = val
        self.batch_ndim = int(batch_ndim)
        self._pairs = self._widths(len(self.input_shape))

    def _widths(self, ndim: int) -> list[tuple[int, int]]:
        n = ndim - self.batch_ndim
        if _is_int(self.width):
            entries = [self.width] * n
        else:
            try:
                entries = list(self.width)
            except TypeError:
                raise TypeError(
                    f"{self._label()}: `width` must be an int or an iterable, got {self.width!r}"
                ) from None
        if len(entries) > n:
            raise ValueError(
                f"{self._label()}: `width` {self.width} has {len(entries)} entries, but the input "
                f"has only {n} axes after the {self.batch_ndim} batch axes"
            )
        pairs = []
        for entry in entries:
            pair = (entry, entry) if _is_int(entry) else tuple(entry)
            if len(pair) != 2 or not all(_is_int(p) and p >= 0 for p in pair):
                raise ValueError(
                    f"{self._label()}: each `width` entry must be an int >= 0 or a pair "
                    f"(before, after) of such ints, got {entry!r}"
                )
            pairs.append((int(pair[0]), int(pair[1])))
        return pairs + [(0, 0)] * (n - len(pairs))

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        pairs = self._widths(len(input_shape))
        padded = tuple(
            None if s is None else s + before + after
            for s, (before, after) in zip(input_shape[self.batch_ndim :], pairs)
        )
        return tuple(input_shape[: self.batch_ndim]) + padded

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        pairs = self._widths(input.ndim)
        lead = [input.shape[i] for i in range(self.batch_ndim)]
        sizes = [input.shape[self.batch_ndim + i] + b + a for i, (b, a) in enumerate(pairs)]
        out = pt.full(lead + sizes, pt.cast(self.val, input.dtype), dtype=input.dtype)
        window = (slice(None),) * self.batch_ndim + tuple(
            slice(b, b + input.shape[self.batch_ndim + i]) for i, (b, _) in enumerate(pairs)
        )
        return pt.set_subtensor(out[window], input)


pad = PadLayer


class SliceLayer(Layer):
    """Index or slice the input along one axis.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    indices : int or slice
        An int selects one position and removes the axis; a slice keeps it.
    axis : int
        The axis to index; negative values count from the end.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, SliceLayer
    >>> SliceLayer(InputLayer((None, 10, 4)), slice(2, 8, 2), axis=1).output_shape
    (None, 3, 4)
    >>> SliceLayer(InputLayer((None, 10, 4)), -1).output_shape
    (None, 10)
    """

    def __init__(self, incoming: Any, indices: Any, axis: int = -1, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        if not (_is_int(indices) or isinstance(indices, slice)):
            raise TypeError(
                f"{self._label()}: `indices` must be an int or a slice, got {indices!r}"
            )
        if not _is_int(axis):
            raise TypeError(f"{self._label()}: `axis` must be an int, got {axis!r}")
        self.slice = int(indices) if _is_int(indices) else indices
        self.axis = int(axis)
        self.get_output_shape_for(self.input_shape)

    def _axis(self, ndim: int) -> int:
        if not -ndim <= self.axis < ndim:
            raise ValueError(
                f"{self._label()}: `axis`={self.axis} is out of range for a {ndim}-dimensional "
                "input"
            )
        return self.axis % ndim

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        axis = self._axis(len(input_shape))
        size = input_shape[axis]
        out = list(input_shape)
        if isinstance(self.slice, slice):
            out[axis] = None if size is None else len(range(*self.slice.indices(size)))
        else:
            if size is not None and not -size <= self.slice < size:
                raise ValueError(
                    f"{self._label()}: index {self.slice} is out of range for axis {axis} of "
                    f"size {size} (input shape {input_shape})"
                )
            del out[axis]
        return tuple(out)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        axis = self._axis(input.ndim)
        return input[(slice(None),) * axis + (self.slice,)]
