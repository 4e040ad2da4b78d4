"""The two base classes every layer derives from: :class:`Layer` and :class:`MergeLayer`."""

from __future__ import annotations

from collections import OrderedDict
from typing import Any

from ..utils import ParameterError, collect_shared_vars, create_param, unique

__all__ = ["Layer", "MergeLayer"]


class Layer:
    """Base class for layers with a single input.

    Parameters
    ----------
    incoming : Layer instance or tuple
        The layer feeding into this layer, or the expected input shape.
    name : str, optional
        Name of the layer; parameters are named ``"<name>.<param>"``. Unnamed
        layers use their class name instead (``"DenseLayer.W"``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Layer
    >>> class DoubleLayer(Layer):
    ...     def get_output_for(self, input, **kwargs):
    ...         return 2 * input
    >>> DoubleLayer(InputLayer((None, 3))).output_shape
    (None, 3)
    """

    def __init__(self, incoming: Any, name: str | None = None) -> None:
        if isinstance(incoming, tuple):
            self.input_shape = incoming
            self.input_layer = None
        else:
            self.input_shape = incoming.output_shape
            self.input_layer = incoming
        self.name = name
        self.params: OrderedDict = OrderedDict()
        self.get_output_kwargs: list[str] = []
        if any(d is not None and d <= 0 for d in self.input_shape):
            raise ValueError(
                f"{self._label()}: cannot create a layer with input shape {self.input_shape}; "
                "all known dimensions must be positive"
            )

    def _label(self) -> str:
        if self.name:
            return f"{type(self).__name__} '{self.name}'"
        return type(self).__name__

    @property
    def output_shape(self) -> tuple:
        """The shape of this layer's output, ``None`` marking unknown sizes."""
        shape = self.get_output_shape_for(self.input_shape)
        if any(isinstance(s, Layer) for s in shape):
            raise ValueError(f"{self._label()} returned an invalid output shape {shape}")
        return shape

    def get_params(self, unwrap_shared: bool = True, **tags: bool) -> list:
        """Return this layer's parameters, optionally filtered by tags.

        Parameters
        ----------
        unwrap_shared : bool
            If True (default), parameters given as expressions are replaced by
            the shared variables they depend on; an expression without any
            (such as a PyMC random variable) contributes nothing. If False,
            the expressions themselves are returned.
        **tags
            ``trainable=True`` keeps parameters carrying the tag,
            ``regularizable=False`` keeps those lacking it, and so on.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, DenseLayer
        >>> l = DenseLayer(InputLayer((None, 3)), 2, name="out")
        >>> [p.name for p in l.get_params(regularizable=True)]
        ['out.W']
        """
        result = list(self.params.keys())
        only = {tag for tag, value in tags.items() if value}
        if only:
            result = [p for p in result if not (only - self.params[p])]
        exclude = {tag for tag, value in tags.items() if not value}
        if exclude:
            result = [p for p in result if not (self.params[p] & exclude)]
        if unwrap_shared:
            return unique(v for p in result for v in collect_shared_vars(p))
        return result

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        """Compute the output shape for a given input shape (identity by default).

        Examples
        --------
        >>> from plasagne.layers import InputLayer, Layer
        >>> Layer(InputLayer((None, 3))).get_output_shape_for((5, 3))
        (5, 3)
        """
        return input_shape

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        """Build the symbolic output for a symbolic input; subclasses implement it."""
        raise NotImplementedError

    def param_name(self, name: str | None) -> str | None:
        """Full name of a parameter of this layer: ``"<layer>.<param>"``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, DenseLayer
        >>> DenseLayer(InputLayer((None, 3)), 2, name="h").param_name("W")
        'h.W'
        """
        if name is None:
            return None
        prefix = self.name if self.name else type(self).__name__
        return f"{prefix}.{name}"

    def add_param(self, spec: Any, shape: tuple, name: str | None = None, **tags: bool) -> Any:
        """Create a parameter from ``spec`` and register it with tags.

        ``trainable`` and ``regularizable`` default to True. Every spec is
        interpreted by :func:`plasagne.utils.create_param`.

        Returns
        -------
        The shared variable or expression to use in :meth:`get_output_for`.

        Examples
        --------
        >>> import numpy as np
        >>> from plasagne.layers import InputLayer, Layer
        >>> layer = Layer(InputLayer((None, 3)), name="l")
        >>> layer.add_param(np.ones(3), (3,), name="scale", regularizable=False).name
        'l.scale'
        """
        full_name = self.param_name(name)
        try:
            param = create_param(spec, shape, full_name, layer=self)
        except ParameterError as err:
            raise ParameterError(f"{self._label()}: {err}") from None
        tags["trainable"] = tags.get("trainable", True)
        tags["regularizable"] = tags.get("regularizable", True)
        self.params[param] = {tag for tag, value in tags.items() if value}
        return param


class MergeLayer(Layer):
    """Base class for layers with several inputs.

    Parameters
    ----------
    incomings : list of Layer instances or tuples
        The layers feeding into this layer, or their expected shapes.
    name : str, optional
        Name of the layer.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, MergeLayer
    >>> class SumLayer(MergeLayer):
    ...     def get_output_shape_for(self, input_shapes):
    ...         return input_shapes[0]
    ...     def get_output_for(self, inputs, **kwargs):
    ...         return sum(inputs)
    >>> SumLayer([InputLayer((None, 2)), InputLayer((None, 2))]).output_shape
    (None, 2)
    """

    def __init__(self, incomings: list, name: str | None = None) -> None:
        self.input_shapes = [
            incoming if isinstance(incoming, tuple) else incoming.output_shape
            for incoming in incomings
        ]
        self.input_layers = [
            None if isinstance(incoming, tuple) else incoming for incoming in incomings
        ]
        self.name = name
        self.params = OrderedDict()
        self.get_output_kwargs = []

    @Layer.output_shape.getter
    def output_shape(self) -> tuple:
        shape = self.get_output_shape_for(self.input_shapes)
        if any(isinstance(s, Layer) for s in shape):
            raise ValueError(f"{self._label()} returned an invalid output shape {shape}")
        return shape

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        """Compute the output shape from a list of input shapes."""
        raise NotImplementedError

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        """Build the symbolic output from a list of symbolic inputs."""
        raise NotImplementedError
