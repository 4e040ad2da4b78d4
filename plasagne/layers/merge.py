"""Layers that combine several inputs: concatenation and elementwise merges, with cropping."""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt

from .base import MergeLayer

__all__ = [
    "autocrop",
    "autocrop_array_shapes",
    "ConcatLayer",
    "concat",
    "ElemwiseMergeLayer",
    "ElemwiseSumLayer",
]

_CROP_MODES = (None, "lower", "upper", "center")


def _check_cropping(cropping: Any) -> None:
    for mode in cropping:
        if mode not in _CROP_MODES:
            raise ValueError(f"Unknown crop mode {mode!r}; expected one of {_CROP_MODES}")


def autocrop(inputs: list, cropping: Any) -> list:
    """Crop expressions to a common size along the axes where ``cropping`` is not None.

    Per axis: ``'lower'`` keeps the first elements, ``'upper'`` the last, ``'center'``
    the middle ones (extra element dropped at the end).

    Examples
    --------
    >>> a, b = pt.constant(np.ones((1, 5))), pt.constant(np.ones((1, 3)))
    >>> [x.eval().shape for x in autocrop([a, b], [None, "center"])]
    [(1, 3), (1, 3)]
    """
    if cropping is None:
        return inputs
    _check_cropping(cropping)
    ndim = inputs[0].ndim
    if not all(x.ndim == ndim for x in inputs):
        raise ValueError("autocrop: all inputs must have the same number of dimensions")
    shapes = [x.shape for x in inputs]
    slices_by_input = [[] for _ in inputs]
    for dim, mode in enumerate(list(cropping) + [None] * (ndim - len(cropping))):
        if mode is None:
            for s in slices_by_input:
                s.append(slice(None))
            continue
        smallest = pt.min(pt.stack([sh[dim] for sh in shapes]))
        for sh, s in zip(shapes, slices_by_input):
            if mode == "lower":
                s.append(slice(0, smallest))
            elif mode == "upper":
                s.append(slice(sh[dim] - smallest, None))
            else:
                start = (sh[dim] - smallest) // 2
                s.append(slice(start, start + smallest))
    return [x[tuple(s)] for x, s in zip(inputs, slices_by_input)]


def autocrop_array_shapes(input_shapes: list, cropping: Any) -> list:
    """The shapes :func:`autocrop` produces (``None`` where unknown).

    Examples
    --------
    >>> autocrop_array_shapes([(1, 5), (1, 3)], [None, "lower"])
    [(1, 3), (1, 3)]
    """
    if cropping is None:
        return input_shapes
    _check_cropping(cropping)
    ndim = len(input_shapes[0])
    if not all(len(s) == ndim for s in input_shapes):
        raise ValueError("autocrop: all input shapes must have the same number of dimensions")
    result = [list(s) for s in input_shapes]
    for dim, mode in enumerate(list(cropping) + [None] * (ndim - len(cropping))):
        if mode is None:
            continue
        sizes = [s[dim] for s in input_shapes]
        smallest = None if any(v is None for v in sizes) else min(sizes)
        for r in result:
            r[dim] = smallest
    return [tuple(r) for r in result]


class ConcatLayer(MergeLayer):
    """Concatenate inputs along ``axis``; other axes must match (or be cropped).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ConcatLayer
    >>> ConcatLayer([InputLayer((None, 3)), InputLayer((None, 4))]).output_shape
    (None, 7)
    """

    def __init__(self, incomings: list, axis: int = 1, cropping: Any = None, **kwargs: Any) -> None:
        super().__init__(incomings, **kwargs)
        self.axis = axis
        if cropping is not None:
            cropping = list(cropping)
            cropping[axis] = None
        self.cropping = cropping

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        ndim = len(input_shapes[0])
        if any(len(s) != ndim for s in input_shapes):
            raise ValueError(f"{self._label()}: inputs have different numbers of dimensions")
        axis = self.axis % ndim
        output_shape = []
        for dim, sizes in enumerate(zip(*input_shapes)):
            if dim == axis:
                output_shape.append(None if None in sizes else sum(sizes))
                continue
            known = {s for s in sizes if s is not None}
            if len(known) > 1:
                raise ValueError(
                    f"{self._label()}: mismatch in input shapes {input_shapes} on axis {dim} "
                    f"(concatenating along axis {self.axis})"
                )
            output_shape.append(known.pop() if known else None)
        return tuple(output_shape)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        return pt.concatenate(autocrop(inputs, self.cropping), axis=self.axis)


concat = ConcatLayer


class ElemwiseMergeLayer(MergeLayer):
    """Merge equally shaped inputs with a binary function (e.g. ``pt.mul``), left to right.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ElemwiseMergeLayer
    >>> ElemwiseMergeLayer([InputLayer((None, 3)), InputLayer((None, 3))], pt.mul).output_shape
    (None, 3)
    """

    def __init__(
        self, incomings: list, merge_function: Any, cropping: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(incomings, **kwargs)
        self.merge_function = merge_function
        self.cropping = cropping

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        input_shapes = autocrop_array_shapes(input_shapes, self.cropping)
        ndim = len(input_shapes[0])
        if any(len(s) != ndim for s in input_shapes):
            raise ValueError(f"{self._label()}: inputs have different numbers of dimensions")
        output_shape = []
        for sizes in zip(*input_shapes):
            known = {s for s in sizes if s is not None}
            if len(known) > 1:
                raise ValueError(
                    f"{self._label()}: input shapes {input_shapes} must be equal (or cropped)"
                )
            output_shape.append(known.pop() if known else None)
        return tuple(output_shape)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        inputs = autocrop(inputs, self.cropping)
        output = inputs[0]
        for x in inputs[1:]:
            output = self.merge_function(output, x)
        return output


class ElemwiseSumLayer(ElemwiseMergeLayer):
    """Weighted elementwise sum ``sum_i coeffs[i] * inputs[i]``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ElemwiseSumLayer
    >>> l = ElemwiseSumLayer([InputLayer((None, 3)), InputLayer((None, 3))], coeffs=[1, -1])
    >>> l.coeffs
    [1, -1]
    """

    def __init__(
        self, incomings: list, coeffs: Any = 1, cropping: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(incomings, pt.add, cropping=cropping, **kwargs)
        if isinstance(coeffs, list):
            if len(coeffs) != len(incomings):
                raise ValueError(
                    f"{self._label()}: got {len(coeffs)} coeffs for {len(incomings)} inputs"
                )
        else:
            coeffs = [coeffs] * len(incomings)
        self.coeffs = coeffs

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        inputs = autocrop(inputs, self.cropping)
        output = None
        for coeff, x in zip(self.coeffs, inputs):
            term = x if coeff == 1 else x * coeff
            output = term if output is None else output + term
        return output
