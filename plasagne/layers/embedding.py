"""Embedding lookup: integer indices to learned vectors."""

from __future__ import annotations

from typing import Any

from .. import init
from .base import Layer

__all__ = ["EmbeddingLayer"]


class EmbeddingLayer(Layer):
    """Map integer inputs in ``[0, input_size)`` to rows of ``W`` (input_size, output_size).

    The output has the input's shape plus a trailing axis of ``output_size``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, EmbeddingLayer
    >>> import pytensor.tensor as pt
    >>> l_in = InputLayer((None, 7), input_var=pt.imatrix())
    >>> EmbeddingLayer(l_in, input_size=100, output_size=16).output_shape
    (None, 7, 16)
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
        self.input_size = int(input_size)
        self.output_size = int(output_size)
        self.W = self.add_param(W, (self.input_size, self.output_size), name="W")

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        return tuple(input_shape) + (self.output_size,)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        if not input.dtype.startswith(("int", "uint")):
            raise TypeError(
                f"{self._label()}: expected integer indices, got input of dtype {input.dtype}; "
                "give the InputLayer an integer input_var (e.g. pt.imatrix())"
            )
        return self.W[input]
