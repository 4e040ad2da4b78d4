"""Layers with one small job each: nonlinearities, biases and scales, arbitrary
expressions, inverses of other layers, parametric and randomized rectifiers, and
spatial transformers (affine and thin-plate spline).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .. import init, nonlinearities
from ..random import new_random_stream
from ..utils import as_tuple, int_types
from .base import Layer, MergeLayer

__all__ = [
    "NonlinearityLayer",
    "BiasLayer",
    "ScaleLayer",
    "standardize",
    "ExpressionLayer",
    "InverseLayer",
    "TransformerLayer",
    "TPSTransformerLayer",
    "ParametricRectifierLayer",
    "prelu",
    "RandomizedRectifierLayer",
    "rrelu",
]


class NonlinearityLayer(Layer):
    """Apply a nonlinearity elementwise to the input.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    nonlinearity : callable or None
        The function to apply; ``None`` means the identity.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> import numpy as np
    >>> from plasagne.layers import InputLayer, NonlinearityLayer, get_output
    >>> l_in = InputLayer((1, 3))
    >>> l = NonlinearityLayer(l_in)
    >>> get_output(l, np.array([[-1.0, 0.0, 2.0]])).eval().tolist()
    [[0.0, 0.0, 2.0]]
    """

    def __init__(
        self, incoming: Any, nonlinearity: Any = nonlinearities.rectify, **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        if nonlinearity is not None and not callable(nonlinearity):
            raise TypeError(
                f"{self._label()}: `nonlinearity` must be callable or None, got {nonlinearity!r}"
            )
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return self.nonlinearity(input)


def _shared_axes(layer: Layer, shared_axes: Any) -> tuple:
    """Resolve ``shared_axes`` into a sorted tuple of non-negative input axes."""
    ndim = len(layer.input_shape)
    if isinstance(shared_axes, str):
        if shared_axes == "auto":
            return (0,) + tuple(range(2, ndim))  # one value per channel (axis 1)
        if shared_axes == "all":
            return tuple(range(ndim))
        raise ValueError(
            f"{layer._label()}: `shared_axes` must be 'auto', 'all', an int or a tuple of ints, "
            f"got {shared_axes!r}"
        )
    if isinstance(shared_axes, int_types):
        axes: tuple = (shared_axes,)
    else:
        try:
            axes = tuple(shared_axes)
        except TypeError:
            axes = (shared_axes,)
    for axis in axes:
        if not isinstance(axis, int_types) or not -ndim <= axis < ndim:
            raise ValueError(
                f"{layer._label()}: `shared_axes` must hold ints in [{-ndim}, {ndim}) for input "
                f"shape {layer.input_shape}, got {shared_axes!r}"
            )
    resolved = sorted({int(a) % ndim for a in axes})
    if len(resolved) != len(axes):
        raise ValueError(f"{layer._label()}: `shared_axes` repeats an axis: {shared_axes!r}")
    return tuple(resolved)


def _param_shape(layer: Layer, shared_axes: tuple, what: str) -> tuple:
    """Shape of a parameter with one value per position on the non-shared axes."""
    shape = tuple(s for axis, s in enumerate(layer.input_shape) if axis not in shared_axes)
    if None in shape:
        raise ValueError(
            f"{layer._label()}: `{what}` needs known input sizes on every axis it is not shared "
            f"over; input shape {layer.input_shape}, shared_axes {shared_axes}"
        )
    return shape


def _broadcast(param: Any, ndim: int, shared_axes: tuple) -> Any:
    """Insert broadcastable axes into ``param`` at the shared axes."""
    pattern: list = []
    own = iter(range(param.ndim))
    for axis in range(ndim):
        pattern.append("x" if axis in shared_axes else next(own))
    return param.dimshuffle(pattern)


class BiasLayer(Layer):
    """Add a learnable bias: ``input + b``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    b : array, shared variable, expression, callable or None
        The biases, with one value per position on the axes not in
        ``shared_axes``; ``None`` makes the layer the identity.
    shared_axes : 'auto', 'all', int or tuple of int
        Axes the bias is shared (broadcast) over. ``'auto'`` shares over all
        axes but the second (one bias per channel), ``'all'`` gives a scalar.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, BiasLayer
    >>> BiasLayer(InputLayer((None, 3, 5, 5))).b.get_value().shape
    (3,)
    >>> BiasLayer(InputLayer((None, 3, 5, 5)), shared_axes=(0, 1)).b.get_value().shape
    (5, 5)
    """

    def __init__(
        self, incoming: Any, b: Any = init.Constant(0), shared_axes: Any = "auto", **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        if b is None:
            self.b = None
        else:
            shape = _param_shape(self, self.shared_axes, "b")
            self.b = self.add_param(b, shape, "b", regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        if self.b is None:
            return input
        return input + _broadcast(self.b, input.ndim, self.shared_axes)


class ScaleLayer(Layer):
    """Multiply by learnable scales: ``input * scales``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    scales : array, shared variable, expression or callable
        The scales, with one value per position on the axes not in
        ``shared_axes``.
    shared_axes : 'auto', 'all', int or tuple of int
        Axes the scales are shared over; ``'auto'``: all but the second.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ScaleLayer
    >>> ScaleLayer(InputLayer((None, 3, 5, 5))).scales.get_value().tolist()
    [1.0, 1.0, 1.0]
    """

    def __init__(
        self,
        incoming: Any,
        scales: Any = init.Constant(1),
        shared_axes: Any = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        shape = _param_shape(self, self.shared_axes, "scales")
        self.scales = self.add_param(scales, shape, "scales", regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return input * _broadcast(self.scales, input.ndim, self.shared_axes)


def standardize(layer: Any, offset: Any, scale: Any, shared_axes: Any = "auto") -> Layer:
    """Append a fixed standardization ``(x - offset) / scale`` to ``layer``.

    Builds a :class:`BiasLayer` with ``b = -offset`` and a :class:`ScaleLayer`
    with ``scales = 1 / scale``; neither parameter is tagged trainable.

    Parameters
    ----------
    layer : Layer or tuple
        The layer to standardize.
    offset, scale : array or expression
        Shaped like a bias of ``shared_axes`` (e.g. per-channel statistics).
    shared_axes : 'auto', 'all', int or tuple of int
        As for :class:`BiasLayer`.

    Returns
    -------
    ScaleLayer
        The last of the two layers.

    Examples
    --------
    >>> import numpy as np
    >>> from plasagne.layers import InputLayer, get_output, standardize
    >>> l_in = InputLayer((1, 2))
    >>> l = standardize(l_in, np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    >>> get_output(l, np.array([[3.0, 6.0]])).eval().tolist()
    [[1.0, 1.0]]
    >>> l.get_params(trainable=True)
    []
    """

    def as_value(v: Any) -> Any:
        return v if isinstance(v, Variable) else np.asarray(v, dtype=pytensor.config.floatX)

    bias = BiasLayer(layer, -as_value(offset), shared_axes)
    bias.params[bias.b].discard("trainable")
    out = ScaleLayer(bias, 1.0 / as_value(scale), shared_axes)
    out.params[out.scales].discard("trainable")
    return out


class ExpressionLayer(Layer):
    """Apply any function to the input expression.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    function : callable
        ``function(input) -> expression``.
    output_shape : None, 'auto', tuple or callable
        ``None``: the output has the input's shape. ``'auto'``: found by
        running ``function`` on zero arrays of the input shape (see Notes).
        A tuple: the output shape. A callable: ``output_shape(input_shape)``.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Notes
    -----
    With ``'auto'``, unknown input sizes are tried as 1 and as 2; output sizes
    that differ between the two trials are reported as ``None``. (Lasagne
    tries 0 once, which fails for functions that reduce over an empty axis.)

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ExpressionLayer
    >>> l_in = InputLayer((None, 6))
    >>> ExpressionLayer(l_in, lambda x: x[:, ::2], "auto").output_shape
    (None, 3)
    >>> ExpressionLayer(l_in, lambda x: x.sum(1), lambda s: s[:1]).output_shape
    (None,)
    """

    def __init__(
        self, incoming: Any, function: Any, output_shape: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        if not callable(function):
            raise TypeError(f"{self._label()}: `function` must be callable, got {function!r}")
        self.function = function
        if output_shape is None or callable(output_shape):
            self._output_shape = output_shape
        elif isinstance(output_shape, str):
            if output_shape != "auto":
                raise ValueError(
                    f"{self._label()}: `output_shape` must be None, 'auto', a tuple or a "
                    f"callable, got {output_shape!r}"
                )
            self._output_shape = "auto"
        else:
            self._output_shape = tuple(output_shape)
        self._auto_cache: dict = {}

    def _infer(self, input_shape: tuple) -> tuple:
        key = tuple(input_shape)
        if key not in self._auto_cache:
            trials = []
            for fill in (1, 2):
                dims = [fill if s is None else s for s in input_shape]
                dummy = pt.zeros(dims, dtype=pytensor.config.floatX)
                trials.append(tuple(int(s) for s in self.function(dummy).shape.eval()))
            self._auto_cache[key] = tuple(a if a == b else None for a, b in zip(*trials))
        return self._auto_cache[key]

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        spec = self._output_shape
        if spec is None:
            return tuple(input_shape)
        if isinstance(spec, str):
            return self._infer(input_shape)
        if callable(spec):
            return tuple(spec(input_shape))
        return spec

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return self.function(input)


class InverseLayer(MergeLayer):
    """Propagate ``incoming`` backwards through ``layer``.

    The output is the gradient of ``layer``'s output with respect to its input,
    with ``incoming`` taking the place of the output gradient (a vector-Jacobian
    product). For a linear layer this is the transposed map: a
    :class:`DenseLayer` becomes multiplication by ``W.T``, a convolution a
    transposed convolution, a max-pooling an unpooling to the maximal
    positions; a nonlinearity of ``layer`` contributes its derivative at the
    forward activations.

    Parameters
    ----------
    incoming : Layer or tuple
        Layer whose output has the shape of ``layer``'s output.
    layer : Layer
        The layer to invert; it must have an input layer.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, InverseLayer
    >>> l_in = InputLayer((None, 5))
    >>> enc = DenseLayer(l_in, 2, nonlinearity=None)
    >>> InverseLayer(enc, enc).output_shape
    (None, 5)
    """

    def __init__(self, incoming: Any, layer: Layer, **kwargs: Any) -> None:
        source = getattr(layer, "input_layer", None)
        if not isinstance(layer, Layer) or source is None:
            label = layer._label() if isinstance(layer, Layer) else repr(layer)
            raise ValueError(
                f"InverseLayer{' ' + repr(kwargs['name']) if kwargs.get('name') else ''}: "
                f"`layer` must be a single-input layer with an input layer, got {label}"
            )
        super().__init__([incoming, layer, source], **kwargs)
        self.layer = layer

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        return input_shapes[2]

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, layer_out, layer_in = inputs
        return pytensor.grad(None, wrt=layer_in, known_grads={layer_out: input})


class ParametricRectifierLayer(Layer):
    """Parametric rectifier (PReLU): ``max(x, 0) + alpha * min(x, 0)``, learnable ``alpha``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    alpha : array, shared variable, expression or callable
        Negative-side slopes, one per position on the axes not in ``shared_axes``.
    shared_axes : 'auto', 'all', int or tuple of int
        Axes the slopes are shared over; ``'auto'``: all but the second (one
        slope per channel), ``'all'``: a single slope.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ParametricRectifierLayer
    >>> l = ParametricRectifierLayer(InputLayer((None, 3, 4, 4)))
    >>> l.alpha.get_value().tolist()
    [0.25, 0.25, 0.25]
    """

    def __init__(
        self,
        incoming: Any,
        alpha: Any = init.Constant(0.25),
        shared_axes: Any = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(self, shared_axes)
        shape = _param_shape(self, self.shared_axes, "alpha")
        self.alpha = self.add_param(alpha, shape, name="alpha", regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        alpha = _broadcast(self.alpha, input.ndim, self.shared_axes)
        return pt.maximum(input, 0) + alpha * pt.minimum(input, 0)


def _take_nonlinearity(layer: Any) -> None:
    if getattr(layer, "nonlinearity", None) is not None:
        layer.nonlinearity = nonlinearities.identity


def prelu(layer: Layer, **kwargs: Any) -> ParametricRectifierLayer:
    """Put a :class:`ParametricRectifierLayer` on top of ``layer`` in place of its nonlinearity.

    ``layer``'s nonlinearity (if it has one) is set to the identity; the PReLU
    replaces it, as in Lasagne.

    Parameters
    ----------
    layer : Layer
        The layer to modify.
    **kwargs
        Passed to :class:`ParametricRectifierLayer`.

    Examples
    --------
    >>> from plasagne import nonlinearities
    >>> from plasagne.layers import InputLayer, DenseLayer, prelu
    >>> dense = DenseLayer(InputLayer((None, 3)), 4)
    >>> l = prelu(dense)
    >>> type(l).__name__, dense.nonlinearity is nonlinearities.identity
    ('ParametricRectifierLayer', True)
    """
    _take_nonlinearity(layer)
    return ParametricRectifierLayer(layer, **kwargs)


class RandomizedRectifierLayer(Layer):
    """Randomized rectifier (RReLU): negative inputs times a random slope.

    In training the slopes are drawn uniformly from ``[lower, upper]`` at each
    evaluation; with ``deterministic=True`` the mean slope
    ``(lower + upper) / 2`` is used.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    lower, upper : float or scalar expression
        Range of the slopes, ``lower <= upper``.
    shared_axes : 'auto', 'all', int or tuple of int
        Axes over which one slope is shared; ``'auto'``: all but the second.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> import numpy as np
    >>> from plasagne.layers import InputLayer, RandomizedRectifierLayer, get_output
    >>> l = RandomizedRectifierLayer(InputLayer((1, 2)))
    >>> get_output(l, np.array([[-2.0, 3.0]]), deterministic=True).eval().tolist()
    [[-1.1, 3.0]]
    """

    def __init__(
        self,
        incoming: Any,
        lower: Any = 0.3,
        upper: Any = 0.8,
        shared_axes: Any = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self._srng = new_random_stream()
        symbolic = isinstance(lower, Variable) or isinstance(upper, Variable)
        if not symbolic and lower > upper:
            raise ValueError(
                f"{self._label()}: `upper` must be >= `lower`, got lower={lower}, upper={upper}"
            )
        self.lower = lower
        self.upper = upper
        self.shared_axes = _shared_axes(self, shared_axes)

    def get_output_for(self, input: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        equal = not isinstance(self.lower, Variable) and not isinstance(self.upper, Variable)
        equal = equal and self.lower == self.upper
        if deterministic or equal:
            slope = pt.cast((self.lower + self.upper) / 2.0, input.dtype)
        else:
            size = tuple(
                1 if axis in self.shared_axes else input.shape[axis] for axis in range(input.ndim)
            )
            slope = self._srng.uniform(self.lower, self.upper, size=size, dtype=input.dtype)
        return pt.switch(input >= 0, input, slope * input)


def rrelu(layer: Layer, **kwargs: Any) -> RandomizedRectifierLayer:
    """Put a :class:`RandomizedRectifierLayer` on top of ``layer`` in place of its nonlinearity.

    ``layer``'s nonlinearity (if it has one) is set to the identity.

    Parameters
    ----------
    layer : Layer
        The layer to modify.
    **kwargs
        Passed to :class:`RandomizedRectifierLayer`.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, rrelu
    >>> dense = DenseLayer(InputLayer((None, 3)), 4)
    >>> type(rrelu(dense, lower=0.1, upper=0.2)).__name__
    'RandomizedRectifierLayer'
    """
    _take_nonlinearity(layer)
    return RandomizedRectifierLayer(layer, **kwargs)


# --- spatial transformers -------------------------------------------------------------

_BORDER_MODES = ("nearest", "mirror", "wrap")


def _fold_index(idx: Any, size: Any, border_mode: str) -> Any:
    """Map integer pixel indices (possibly outside ``[0, size)``) back inside."""
    if border_mode == "nearest":
        return pt.clip(idx, 0, size - 1)
    if border_mode == "wrap":
        return pt.mod(idx, size)
    # mirror: reflect about the first and last pixel, period 2 * (size - 1)
    period = pt.maximum(2 * (size - 1), 1)
    folded = pt.mod(idx, period)
    return pt.minimum(folded, period - folded) * (size > 1)


def _bilinear_sample(image: Any, xs: Any, ys: Any, border_mode: str) -> Any:
    """Sample ``image`` (N, C, H, W) at points (N, P) given in [-1, 1] coordinates.

    Returns an (N, C, P) array.
    """
    num, channels, height, width = image.shape
    dtype = image.dtype
    # pixel coordinates: -1 is the first pixel's centre, +1 the last one's
    px = (xs + 1) * (pt.cast(width, dtype) - 1) / 2
    py = (ys + 1) * (pt.cast(height, dtype) - 1) / 2
    x0f, y0f = pt.floor(px), pt.floor(py)
    fx, fy = px - x0f, py - y0f
    x0 = pt.cast(x0f, "int64")
    y0 = pt.cast(y0f, "int64")
    cols = [_fold_index(x0, width, border_mode), _fold_index(x0 + 1, width, border_mode)]
    rows = [_fold_index(y0, height, border_mode), _fold_index(y0 + 1, height, border_mode)]
    # gather from a (N * H * W, C) table
    table = image.dimshuffle(0, 2, 3, 1).reshape((num * height * width, channels))
    offset = (pt.arange(num, dtype="int64") * height * width).dimshuffle(0, "x")
    weights_x = [1 - fx, fx]
    weights_y = [1 - fy, fy]
    out = None
    for i in range(2):
        for j in range(2):
            flat = (offset + rows[i] * width + cols[j]).flatten()
            values = table[flat].reshape((num, -1, channels))  # (N, P, C)
            weight = (weights_y[i] * weights_x[j]).dimshuffle(0, 1, "x")
            term = weight * values
            out = term if out is None else out + term
    return out.dimshuffle(0, 2, 1)


def _unit_grid(out_h: Any, out_w: Any, dtype: str) -> tuple[Any, Any]:
    """Flattened (row-major) x and y coordinates of an out_h x out_w grid over [-1, 1]^2."""
    xs = pt.cast(pt.linspace(-1.0, 1.0, out_w), dtype)
    ys = pt.cast(pt.linspace(-1.0, 1.0, out_h), dtype)
    gx = pt.tile(xs.dimshuffle("x", 0), (out_h, 1)).flatten()
    gy = pt.tile(ys.dimshuffle(0, "x"), (1, out_w)).flatten()
    return gx, gy


def _check_transformer(layer: MergeLayer, border_mode: str, downsample_factor: Any) -> tuple:
    if border_mode not in _BORDER_MODES:
        raise ValueError(
            f"{layer._label()}: `border_mode` must be 'nearest', 'mirror' or 'wrap', got "
            f"{border_mode!r}"
        )
    try:
        factors = as_tuple(downsample_factor, 2)
    except (TypeError, ValueError) as err:
        raise ValueError(f"{layer._label()}: `downsample_factor`: {err}") from None
    if not all(isinstance(f, (int, float, np.integer, np.floating)) and f > 0 for f in factors):
        raise ValueError(
            f"{layer._label()}: `downsample_factor` must be positive numbers, got "
            f"{downsample_factor!r}"
        )
    if len(layer.input_shapes[0]) != 4:
        raise ValueError(
            f"{layer._label()}: the input must be 4-D (batch, channels, rows, columns), got "
            f"shape {layer.input_shapes[0]}"
        )
    return factors


def _downsampled_shape(shape: tuple, factors: tuple) -> tuple:
    return tuple(shape[:2]) + tuple(
        None if s is None else int(s // f) for s, f in zip(shape[2:], factors)
    )


def _out_size(size: Any, factor: Any) -> Any:
    return pt.cast(pt.floor_div(size, factor), "int64")


class TransformerLayer(MergeLayer):
    """Affine spatial transformer: resample the input on an affinely warped grid.

    For every example the localization network gives a 2x3 matrix ``theta``
    mapping output coordinates ``(x, y, 1)`` to input coordinates, both
    normalised to ``[-1, 1]`` (-1 and 1 are the centres of the first and last
    pixel). The input is sampled there with bilinear interpolation.

    Parameters
    ----------
    incoming : Layer or tuple
        The images, shape ``(batch, channels, rows, columns)``.
    localization_network : Layer
        A layer with output shape ``(batch, 6)``: ``theta`` row by row.
    downsample_factor : float or tuple of two
        The output is ``rows // f0`` by ``columns // f1``.
    border_mode : {'nearest', 'mirror', 'wrap'}
        What is sampled outside the input: the nearest border pixel, the
        input mirrored at its border pixels, or the input repeated periodically.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> import numpy as np
    >>> from plasagne.layers import InputLayer, DenseLayer, TransformerLayer
    >>> l_in = InputLayer((None, 1, 8, 8))
    >>> identity = np.array([1.0, 0, 0, 0, 1, 0])
    >>> loc = DenseLayer(l_in, 6, W=np.zeros((64, 6)), b=identity, nonlinearity=None)
    >>> TransformerLayer(l_in, loc, downsample_factor=2).output_shape
    (None, 1, 4, 4)
    """

    def __init__(
        self,
        incoming: Any,
        localization_network: Any,
        downsample_factor: Any = 1,
        border_mode: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__([incoming, localization_network], **kwargs)
        self.downsample_factor = _check_transformer(self, border_mode, downsample_factor)
        self.border_mode = border_mode
        loc_shape = self.input_shapes[1]
        if len(loc_shape) != 2 or loc_shape[1] != 6:
            raise ValueError(
                f"{self._label()}: the localization network must have output shape (batch, 6), "
                f"got {loc_shape}"
            )

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        return _downsampled_shape(input_shapes[0], self.downsample_factor)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        image, theta = inputs
        num, channels, height, width = image.shape
        out_h = _out_size(height, self.downsample_factor[0])
        out_w = _out_size(width, self.downsample_factor[1])
        gx, gy = _unit_grid(out_h, out_w, image.dtype)
        grid = pt.stack([gx, gy, pt.ones_like(gx)])  # (3, P)
        source = pt.dot(pt.cast(theta, image.dtype).reshape((-1, 2, 3)), grid)  # (N, 2, P)
        sampled = _bilinear_sample(image, source[:, 0], source[:, 1], self.border_mode)
        return sampled.reshape((num, channels, out_h, out_w))


def _tps_kernel(r2: Any) -> Any:
    """The thin-plate radial basis ``r^2 log r^2`` (0 at r = 0), numpy or PyTensor."""
    if isinstance(r2, np.ndarray):
        return r2 * np.log(np.where(r2 > 0, r2, 1.0))
    return r2 * pt.log(pt.switch(r2 > 0, r2, 1.0))


class TPSTransformerLayer(MergeLayer):
    """Spatial transformer with a thin-plate-spline (TPS) warp.

    ``control_points`` points sit on a regular square grid over ``[-1, 1]^2``.
    The localization network gives, per example, the offsets of their images
    in the input (x offsets for all points, then y offsets); the warp is the
    thin-plate spline through those points, and the input is sampled on it
    with bilinear interpolation. Zero offsets give the identity.

    Parameters
    ----------
    incoming : Layer or tuple
        The images, shape ``(batch, channels, rows, columns)``.
    localization_network : Layer
        A layer with output shape ``(batch, 2 * control_points)``.
    downsample_factor : float or tuple of two
        The output is ``rows // f0`` by ``columns // f1``.
    control_points : int
        Number of control points, a perfect square >= 4.
    precompute_grid : 'auto' or bool
        Compute the spline basis on the output grid once, in numpy (needs
        known rows and columns). ``'auto'``: whenever the sizes are known.
    border_mode : {'nearest', 'mirror', 'wrap'}
        As for :class:`TransformerLayer`.
    **kwargs
        Passed to :class:`MergeLayer` (``name``).

    Examples
    --------
    >>> import numpy as np
    >>> from plasagne.layers import InputLayer, DenseLayer, TPSTransformerLayer
    >>> l_in = InputLayer((None, 1, 8, 8))
    >>> loc = DenseLayer(l_in, 32, W=np.zeros((64, 32)), nonlinearity=None)
    >>> TPSTransformerLayer(l_in, loc, control_points=16).output_shape
    (None, 1, 8, 8)
    """

    def __init__(
        self,
        incoming: Any,
        localization_network: Any,
        downsample_factor: Any = 1,
        control_points: int = 16,
        precompute_grid: Any = "auto",
        border_mode: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__([incoming, localization_network], **kwargs)
        self.downsample_factor = _check_transformer(self, border_mode, downsample_factor)
        self.border_mode = border_mode
        side = int(round(np.sqrt(control_points))) if isinstance(control_points, int_types) else 0
        if side < 2 or side * side != control_points:
            raise ValueError(
                f"{self._label()}: `control_points` must be a perfect square >= 4, got "
                f"{control_points!r}"
            )
        self.control_points = int(control_points)
        loc_shape = self.input_shapes[1]
        if len(loc_shape) != 2 or loc_shape[1] != 2 * self.control_points:
            raise ValueError(
                f"{self._label()}: the localization network must have output shape "
                f"(batch, {2 * self.control_points}) for {self.control_points} control points, "
                f"got {loc_shape}"
            )
        out_shape = _downsampled_shape(self.input_shapes[0], self.downsample_factor)
        known = None not in out_shape[2:]
        if precompute_grid == "auto":
            precompute_grid = known
        elif precompute_grid not in (True, False):
            raise ValueError(
                f"{self._label()}: `precompute_grid` must be 'auto', True or False, got "
                f"{precompute_grid!r}"
            )
        elif precompute_grid and not known:
            raise ValueError(
                f"{self._label()}: `precompute_grid=True` needs known rows and columns, got "
                f"input shape {self.input_shapes[0]}"
            )
        self.precompute_grid = bool(precompute_grid)
        lin = np.linspace(-1.0, 1.0, side)
        grid_x, grid_y = np.meshgrid(lin, lin)
        self.source_points = np.stack([grid_x.ravel(), grid_y.ravel()])  # (2, k)
        self._system_inverse = self._solve_matrix(self.source_points)
        self._basis = None
        if self.precompute_grid:
            out_h, out_w = out_shape[2:]
            gx, gy = np.meshgrid(np.linspace(-1.0, 1.0, out_w), np.linspace(-1.0, 1.0, out_h))
            self._basis = self._basis_numpy(gx.ravel(), gy.ravel())

    @staticmethod
    def _solve_matrix(points: np.ndarray) -> np.ndarray:
        """Inverse of the TPS system [[K, P], [P^T, 0]] for the given control points."""
        k = points.shape[1]
        r2 = ((points[:, :, None] - points[:, None, :]) ** 2).sum(axis=0)
        affine = np.concatenate([np.ones((k, 1)), points.T], axis=1)  # (k, 3)
        system = np.zeros((k + 3, k + 3))
        system[:k, :k] = _tps_kernel(r2)
        system[:k, k:] = affine
        system[k:, :k] = affine.T
        return np.linalg.inv(system)

    def _basis_numpy(self, gx: np.ndarray, gy: np.ndarray) -> np.ndarray:
        px, py = self.source_points
        r2 = (gx[None, :] - px[:, None]) ** 2 + (gy[None, :] - py[:, None]) ** 2
        return np.concatenate([_tps_kernel(r2), np.ones((1, gx.size)), gx[None], gy[None]])

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        return _downsampled_shape(input_shapes[0], self.downsample_factor)

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        image, offsets = inputs
        dtype = image.dtype
        num, channels, height, width = image.shape
        k = self.control_points
        targets = pt.constant(self.source_points.astype(dtype))[None] + pt.cast(
            offsets, dtype
        ).reshape((-1, 2, k))  # (N, 2, k)
        # spline coefficients: system^-1 @ [targets; 0], only the first k columns matter
        coeffs = pt.dot(targets, pt.constant(self._system_inverse[:, :k].T.astype(dtype)))
        if self.precompute_grid:
            out_h, out_w = (int(s) for s in self.get_output_shape_for(self.input_shapes)[2:])
            basis = pt.constant(self._basis.astype(dtype))
        else:
            out_h = _out_size(height, self.downsample_factor[0])
            out_w = _out_size(width, self.downsample_factor[1])
            gx, gy = _unit_grid(out_h, out_w, dtype)
            px, py = (pt.constant(p.astype(dtype)) for p in self.source_points)
            r2 = (gx[None, :] - px[:, None]) ** 2 + (gy[None, :] - py[:, None]) ** 2
            basis = pt.concatenate(
                [_tps_kernel(r2), pt.ones_like(gx)[None], gx[None], gy[None]], axis=0
            )
        mapped = pt.dot(coeffs, basis)  # (N, 2, P)
        sampled = _bilinear_sample(image, mapped[:, 0], mapped[:, 1], self.border_mode)
        return sampled.reshape((num, channels, out_h, out_w))
