"""Embedding lookup: integer indices to learned vectors."""

from __future__ import annotations

from typing import Any

from .. import init
from .base import Layer

__all__ = ["EmbeddingLayer"]


class EmbeddingLayer(Layer):
    """Map integer inputs in ``[0, input_size)`` to rows of a matrix ``W``.

    The output is ``W[input]``: the input's shape with a trailing axis of
    ``output_size`` appended.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one (its output must be an integer tensor of any
        shape), or the expected input shape.
    input_size : int
        Number of distinct indices (rows of ``W``).
    output_size : int
        Size of each embedding vector (columns of ``W``).
    W : array, shared variable, expression or callable
        The embedding matrix of shape ``(input_size, output_size)``; any expression of
        that shape (e.g. a PyMC random variable) is accepted.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, EmbeddingLayer, get_output
    >>> l_in = InputLayer((None, 3), input_var=pt.imatrix())
    >>> layer = EmbeddingLayer(l_in, input_size=4, output_size=2, W=np.arange(8.0).reshape(4, 2))
    >>> layer.output_shape
    (None, 3, 2)
    >>> f = pytensor.function([l_in.input_var], get_output(layer))
    >>> f(np.array([[0, 3, 1]], dtype="int32")).tolist()
    [[[0.0, 1.0], [6.0, 7.0], [2.0, 3.0]]]
    """

    def __init__(
        self,
        incoming: Any,
        input_size: int,
        output_size: int,
        W: Any = init.Normal(),
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        for what, value in (("input_size", input_size), ("output_size", output_size)):
            if int(value) != value or value < 1:
                raise ValueError(f"{self._label()}: {what} must be a positive int, found {value!r}")
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.W = self.add_param(W, (self.input_size, self.output_size), name="W")

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return tuple(input_shape) + (self.output_size,)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        if not input.dtype.startswith(("int", "uint")):
            raise TypeError(
                f"{self._label()}: expected integer indices, found input of dtype "
                f"{input.dtype}; give the InputLayer an integer input_var (e.g. pt.imatrix())"
            )
        return self.W[input]
