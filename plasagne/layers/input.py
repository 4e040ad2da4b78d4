"""The network's entry point: :class:`InputLayer`."""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .base import Layer

__all__ = ["InputLayer"]


class InputLayer(Layer):
    """A layer holding a symbolic variable that stands for the network's input.

    Parameters
    ----------
    shape : tuple of int or None
        Shape of the input; ``None`` marks a size that is not fixed.
    input_var : TensorVariable, optional
        The variable to use; a new one of matching dimensionality is made if
        not given.
    name : str, optional
        Name of the layer (also the default name of the created variable).

    Examples
    --------
    >>> from plasagne.layers import InputLayer
    >>> l_in = InputLayer((None, 1, 28, 28))
    >>> l_in.input_var.ndim
    4
    """

    def __init__(
        self, shape: tuple, input_var: Any = None, name: str | None = None, **kwargs: Any
    ) -> None:
        self.shape = tuple(shape)
        if any(d is not None and (not isinstance(d, int) or d <= 0) for d in self.shape):
            raise ValueError(
                f"InputLayer{' ' + repr(name) if name else ''}: cannot create an InputLayer with "
                f"shape {shape}; each element must be a positive int or None"
            )
        ndim = len(self.shape)
        if input_var is None:
            var_name = f"{name}.input" if name else "input"
            input_var = pt.tensor(name=var_name, dtype="floatX", shape=(None,) * ndim)
        else:
            if not isinstance(input_var, Variable):
                input_var = pt.as_tensor_variable(input_var)
            if input_var.ndim != ndim:
                raise ValueError(
                    f"InputLayer{' ' + repr(name) if name else ''}: shape {shape} has {ndim} "
                    f"dimensions, but input_var {input_var} has {input_var.ndim}"
                )
        self.input_var = input_var
        self.name = name
        self.input_shape = self.shape
        self.input_layer = None
        self.params = {}
        self.get_output_kwargs = []

    @Layer.output_shape.getter
    def output_shape(self) -> tuple:
        return self.shape
