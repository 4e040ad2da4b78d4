"""Fully connected layers: :class:`DenseLayer` and :class:`NINLayer`."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt

from .. import init, nonlinearities
from .base import Layer

__all__ = ["DenseLayer", "NINLayer"]


class DenseLayer(Layer):
    """A fully connected layer: ``nonlinearity(dot(input, W) + b)``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    num_units : int
        The number of units of the layer.
    W : array, shared variable, expression or callable
        Weights of shape ``(num_inputs, num_units)``; any PyTensor expression
        (including a PyMC random variable) of that shape is accepted.
    b : array, shared variable, expression, callable or None
        Biases of shape ``(num_units,)``; ``None`` for no biases.
    nonlinearity : callable or None
        Applied to the output; ``None`` means linear.
    num_leading_axes : int
        Number of leading axes to keep; the rest are flattened into the
        input features. Negative values count from the end.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l_in = InputLayer((100, 20))
    >>> DenseLayer(l_in, num_units=50).output_shape
    (100, 50)
    """

    def __init__(
        self,
        incoming: Any,
        num_units: int,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        num_leading_axes: int = 1,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.num_units = int(num_units)
        ndim = len(self.input_shape)
        if num_leading_axes >= ndim:
            raise ValueError(
                f"{self._label()}: got num_leading_axes={num_leading_axes} for a "
                f"{ndim}-dimensional input, leaving no trailing axes for the dot product"
            )
        if num_leading_axes < -ndim:
            raise ValueError(
                f"{self._label()}: got num_leading_axes={num_leading_axes} for a "
                f"{ndim}-dimensional input, requesting more trailing axes than there are"
            )
        if num_leading_axes < 0:
            num_leading_axes += ndim
        self.num_leading_axes = num_leading_axes
        feature_shape = self.input_shape[num_leading_axes:]
        if any(s is None for s in feature_shape):
            raise ValueError(
                f"{self._label()}: a DenseLayer needs a fixed input size for all axes but "
                f"the first {num_leading_axes}, got input shape {self.input_shape}"
            )
        num_inputs = int(np.prod(feature_shape))
        self.W = self.add_param(W, (num_inputs, self.num_units), name="W")
        if b is None:
            self.b = None
        else:
            self.b = self.add_param(b, (self.num_units,), name="b", regularizable=False)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return tuple(input_shape[: self.num_leading_axes]) + (self.num_units,)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        lead = self.num_leading_axes
        if input.ndim > lead + 1:
            input = _flatten_trailing(input, lead, self.input_shape)
        activation = pt.dot(input, self.W)
        if self.b is not None:
            activation = activation + self.b
        return self.nonlinearity(activation)


def _flatten_trailing(input: Any, lead: int, declared: tuple | None) -> Any:
    """``input`` with the axes after the first ``lead`` flattened into one. When their
    lengths are known (from the input's type, or else from the layer's declared input
    shape, which its weights were sized for) the flattened length is a constant, so the
    result, the product and its gradient keep it as a static length; ``flatten`` drops it
    when a leading length is unknown, and PyTensor then wraps the weight gradient in a
    shape check that Numba compiles for seconds."""
    trailing = input.type.shape[lead:]
    if any(length is None for length in trailing) and declared is not None:
        trailing = tuple(declared[lead:])
    if len(trailing) != input.ndim - lead or any(length is None for length in trailing):
        return input.flatten(lead + 1)
    leading = [input.shape[i] for i in range(lead)]
    return input.reshape([*leading, int(np.prod(trailing))], ndim=lead + 1)


class NINLayer(Layer):
    """Network-in-network layer: a dense layer applied across the channel axis.

    Parameters
    ----------
    incoming : Layer or tuple
    num_units : int
    untie_biases : bool
        If True, one bias per unit and position: ``b`` has shape
        ``(num_units,) + input_shape[2:]``.
    W, b, nonlinearity
        As for :class:`DenseLayer`; ``W`` has shape ``(num_channels, num_units)``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, NINLayer
    >>> NINLayer(InputLayer((None, 3, 8, 8)), num_units=5).output_shape
    (None, 5, 8, 8)
    """

    def __init__(
        self,
        incoming: Any,
        num_units: int,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        self.num_units = int(num_units)
        self.untie_biases = untie_biases
        num_input_channels = self.input_shape[1]
        if num_input_channels is None:
            raise ValueError(f"{self._label()}: the channel axis (axis 1) must have a fixed size")
        self.W = self.add_param(W, (num_input_channels, self.num_units), name="W")
        if b is None:
            self.b = None
        else:
            if untie_biases:
                if any(s is None for s in self.input_shape[2:]):
                    raise ValueError(f"{self._label()}: untie_biases needs fixed spatial sizes")
                biases_shape = (self.num_units,) + tuple(self.input_shape[2:])
            else:
                biases_shape = (self.num_units,)
            self.b = self.add_param(b, biases_shape, name="b", regularizable=False)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return (input_shape[0], self.num_units) + tuple(input_shape[2:])

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        # Contract the channel axis and move the units back into position 1.
        out_r = pt.tensordot(self.W, input, axes=[[0], [1]])
        remaining = tuple(range(2, input.ndim))
        out = out_r.dimshuffle(1, 0, *remaining)
        if self.b is not None:
            if self.untie_biases:
                out = out + pt.shape_padleft(self.b, 1)
            else:
                out = out + self.b.dimshuffle("x", 0, *(["x"] * len(remaining)))
        return self.nonlinearity(out)
