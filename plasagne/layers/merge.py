"""Layers that combine several inputs: concatenation and elementwise merges.

Inputs of different sizes can be cropped to a common size first: ``cropping`` is
a sequence with one entry per axis (missing trailing entries mean ``None``):

* ``None``: no cropping on that axis;
* ``'lower'``: keep the first ``m`` elements, ``m`` being the smallest size;
* ``'upper'``: keep the last ``m`` elements;
* ``'center'``: keep the middle ``m`` elements (when the surplus is odd, the
  extra element is dropped at the end).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .base import MergeLayer

__all__ = [
    "autocrop",
    "autocrop_array_shapes",
    "ConcatLayer",
    "concat",
    "ElemwiseMergeLayer",
    "ElemwiseSumLayer",
]

_CROP_MODES = ("lower", "upper", "center")


def _crop_modes(cropping: Any, ndim: int, where: str = "autocrop") -> list:
    """Validate ``cropping`` and pad it with None up to ``ndim`` entries."""
    modes = list(cropping)
    if len(modes) > ndim:
        raise ValueError(
            f"{where}: `cropping` {cropping} has {len(modes)} entries for {ndim}-dimensional inputs"
        )
    for mode in modes:
        if mode is not None and mode not in _CROP_MODES:
            raise ValueError(
                f"{where}: unknown crop mode {mode!r} in `cropping`; expected None, 'lower', "
                "'upper' or 'center'"
            )
    return modes + [None] * (ndim - len(modes))


def autocrop(inputs: list, cropping: Any) -> list:
    """Crop expressions to a common size along the axes where ``cropping`` asks for it.

    Parameters
    ----------
    inputs : list of TensorVariable
        Expressions with the same number of dimensions.
    cropping : None or sequence
        One crop mode per axis (``None``, ``'lower'``, ``'upper'``, ``'center'``);
        ``None`` as a whole returns ``inputs`` unchanged.

    Returns
    -------
    list of TensorVariable
        The cropped expressions, in the order given.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor.tensor as pt
    >>> from plasagne.layers import autocrop
    >>> a = pt.constant(np.arange(5.0).reshape(1, 5))
    >>> b = pt.constant(np.ones((1, 3)))
    >>> [x.eval().tolist() for x in autocrop([a, b], [None, "center"])][0]
    [[1.0, 2.0, 3.0]]
    """
    if cropping is None:
        return list(inputs)
    ndims = [x.ndim for x in inputs]
    if len(set(ndims)) > 1:
        raise ValueError(
            f"autocrop: all inputs must have the same number of dimensions, got {ndims}"
        )
    modes = _crop_modes(cropping, ndims[0])
    indices: list[list] = [[] for _ in inputs]
    for axis, mode in enumerate(modes):
        if mode is None:
            for index in indices:
                index.append(slice(None))
            continue
        sizes = [x.shape[axis] for x in inputs]
        smallest = sizes[0]
        for size in sizes[1:]:
            smallest = pt.minimum(smallest, size)
        for size, index in zip(sizes, indices):
            if mode == "lower":
                start = 0
            elif mode == "upper":
                start = size - smallest
            else:
                start = (size - smallest) // 2
            index.append(slice(start, start + smallest))
    return [x[tuple(index)] for x, index in zip(inputs, indices)]


def autocrop_array_shapes(input_shapes: list, cropping: Any) -> list:
    """The shapes :func:`autocrop` produces from inputs of the given shapes.

    A cropped axis gets the smallest of the sizes, or ``None`` when any of them
    is unknown.

    Parameters
    ----------
    input_shapes : list of tuple
        Shapes with the same number of dimensions, ``None`` for unknown sizes.
    cropping : None or sequence
        As for :func:`autocrop`.

    Returns
    -------
    list of tuple

    Examples
    --------
    >>> from plasagne.layers import autocrop_array_shapes
    >>> autocrop_array_shapes([(1, 5, 4), (1, 3, 6)], [None, "lower", "upper"])
    [(1, 3, 4), (1, 3, 4)]
    >>> autocrop_array_shapes([(None, 5), (2, 3)], ["center", "center"])
    [(None, 3), (None, 3)]
    """
    if cropping is None:
        return [tuple(s) for s in input_shapes]
    ndims = [len(s) for s in input_shapes]
    if len(set(ndims)) > 1:
        raise ValueError(
            "autocrop_array_shapes: all input shapes must have the same number of dimensions, "
            f"got {list(input_shapes)}"
        )
    modes = _crop_modes(cropping, ndims[0], "autocrop_array_shapes")
    result = [list(s) for s in input_shapes]
    for axis, mode in enumerate(modes):
        if mode is None:
            continue
        sizes = [s[axis] for s in input_shapes]
        common = None if None in sizes else min(sizes)
        for shape in result:
            shape[axis] = common
    return [tuple(s) for s in result]


def _merge_sizes(layer: MergeLayer, input_shapes: list, skip_axis: int | None) -> list:
    """Per axis, the one known size all inputs agree on (None if all unknown)."""
    ndims = [len(s) for s in input_shapes]
    if len(set(ndims)) > 1:
        raise ValueError(
            f"{layer._label()}: all inputs must have the same number of dimensions, got "
            f"shapes {input_shapes}"
        )
    merged = []
    for axis, sizes in enumerate(zip(*input_shapes)):
        known = sorted({s for s in sizes if s is not None})
        if axis != skip_axis and len(known) > 1:
            raise ValueError(
                f"{layer._label()}: input shapes {input_shapes} disagree on axis {axis} "
                f"(sizes {list(sizes)}); they must match"
                + ("" if skip_axis is None else f" on all axes but {skip_axis}")
                + " or be cropped with `cropping`"
            )
        merged.append(known[0] if known else None)
    return merged


class ConcatLayer(MergeLayer):
    """Concatenate the inputs along one axis.

    Parameters
    ----------
    incomings : list of Layer or tuple
        The layers to concatenate, or their expected shapes.
    axis : int
        The axis to join along; negative values count from the end. All other
        axes must agree in size (or be cropped).
    cropping : None or sequence
        Crop modes per axis, see :mod:`plasagne.layers.merge`. The
        concatenation axis itself is never cropped.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ConcatLayer
    >>> ConcatLayer([InputLayer((None, 3)), InputLayer((None, 4))]).output_shape
    (None, 7)
    >>> a, b = InputLayer((2, 3, 8)), InputLayer((2, 5, 6))
    >>> ConcatLayer([a, b], axis=1, cropping=[None, None, "center"]).output_shape
    (2, 8, 6)
    """

    def __init__(self, incomings: list, axis: int = 1, cropping: Any = None, **kwargs: Any) -> None:
        super().__init__(incomings, **kwargs)
        if not isinstance(axis, (int, np.integer)):
            raise TypeError(f"{self._label()}: `axis` must be an int, got {axis!r}")
        ndim = len(self.input_shapes[0])
        if not -ndim <= axis < ndim:
            raise ValueError(
                f"{self._label()}: `axis`={axis} is out of range for {ndim}-dimensional inputs"
            )
        self.axis = int(axis)
        if cropping is not None:
            cropping = _crop_modes(cropping, ndim, self._label())
            cropping[self.axis] = None
        self.cropping = cropping
        self.get_output_shape_for(self.input_shapes)

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        axis = self.axis % len(input_shapes[0])
        out = _merge_sizes(self, input_shapes, skip_axis=axis)
        sizes = [s[axis] for s in input_shapes]
        out[axis] = None if None in sizes else sum(sizes)
        return tuple(out)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        return pt.concatenate(autocrop(inputs, self.cropping), axis=self.axis)


concat = ConcatLayer


class ElemwiseMergeLayer(MergeLayer):
    """Combine equally shaped inputs with a binary elementwise function.

    The output is ``merge_function(...merge_function(x0, x1)..., xn)``.

    Parameters
    ----------
    incomings : list of Layer or tuple
        The layers to merge, or their expected shapes.
    merge_function : callable
        A function of two expressions, such as ``pytensor.tensor.mul`` or
        ``pytensor.tensor.maximum``.
    cropping : None or sequence
        Crop modes per axis, see :mod:`plasagne.layers.merge`.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from plasagne.layers import InputLayer, ElemwiseMergeLayer
    >>> l = ElemwiseMergeLayer([InputLayer((None, 3)), InputLayer((4, 3))], pt.mul)
    >>> l.output_shape
    (4, 3)
    """

    def __init__(
        self, incomings: list, merge_function: Any, cropping: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(incomings, **kwargs)
        if not callable(merge_function):
            raise TypeError(
                f"{self._label()}: `merge_function` must be callable, got {merge_function!r}"
            )
        self.merge_function = merge_function
        if cropping is not None:
            cropping = _crop_modes(cropping, len(self.input_shapes[0]), self._label())
        self.cropping = cropping
        self.get_output_shape_for(self.input_shapes)

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        return tuple(_merge_sizes(self, autocrop_array_shapes(input_shapes, self.cropping), None))

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        inputs = autocrop(inputs, self.cropping)
        output = inputs[0]
        for x in inputs[1:]:
            output = self.merge_function(output, x)
        return output


class ElemwiseSumLayer(ElemwiseMergeLayer):
    """Weighted elementwise sum of the inputs: ``sum_i coeffs[i] * inputs[i]``.

    Parameters
    ----------
    incomings : list of Layer or tuple
        The layers to add, or their expected shapes.
    coeffs : number, expression or list
        One coefficient for all inputs, or a list with one per input. Numbers
        and scalar expressions (e.g. a shared variable) are both accepted.
    cropping : None or sequence
        Crop modes per axis, see :mod:`plasagne.layers.merge`.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ElemwiseSumLayer, get_output
    >>> a, b = InputLayer((1, 2)), InputLayer((1, 2))
    >>> l = ElemwiseSumLayer([a, b], coeffs=[1, -1])
    >>> get_output(l, {a: np.array([[3.0, 4.0]]), b: np.ones((1, 2))}).eval().tolist()
    [[2.0, 3.0]]
    """

    def __init__(
        self, incomings: list, coeffs: Any = 1, cropping: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(incomings, pt.add, cropping=cropping, **kwargs)
        if isinstance(coeffs, (list, tuple)):
            if len(coeffs) != len(incomings):
                raise ValueError(
                    f"{self._label()}: got {len(coeffs)} `coeffs` for {len(incomings)} inputs"
                )
            coeffs = list(coeffs)
        else:
            coeffs = [coeffs] * len(incomings)
        self.coeffs = coeffs

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        inputs = autocrop(inputs, self.cropping)
        output = None
        for coeff, x in zip(self.coeffs, inputs):
            if isinstance(coeff, Variable) or np.ndim(coeff) or coeff != 1:
                x = x * coeff
            output = x if output is None else output + x
        return output
