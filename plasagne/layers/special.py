"""Layers with a small job each: nonlinearities, biases, scales, expressions, inverses,
parametric/randomized rectifiers and spatial transformers."""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt

from .. import init, nonlinearities
from ..random import new_random_stream
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
    """Apply a nonlinearity elementwise.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, NonlinearityLayer
    >>> NonlinearityLayer(InputLayer((None, 4))).output_shape
    (None, 4)
    """

    def __init__(
        self, incoming: Any, nonlinearity: Any = nonlinearities.rectify, **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return self.nonlinearity(input)


def _shared_axes(shared_axes: Any, ndim: int) -> tuple:
    if shared_axes == "auto":
        return (0,) + tuple(range(2, ndim))  # one value per channel (axis 1)
    if shared_axes == "all":
        return tuple(range(ndim))
    if isinstance(shared_axes, int):
        return (shared_axes,)
    return tuple(shared_axes)


def _param_shape(layer: Layer, shared_axes: tuple, what: str) -> tuple:
    shape = [size for axis, size in enumerate(layer.input_shape) if axis not in shared_axes]
    if any(size is None for size in shape):
        raise ValueError(
            f"{layer._label()}: {what} needs fixed sizes on the axes it is not shared over; "
            f"input shape {layer.input_shape}, shared_axes {shared_axes}"
        )
    return tuple(shape)


def _broadcast(param: Any, ndim: int, shared_axes: tuple) -> Any:
    pattern = []
    i = 0
    for axis in range(ndim):
        if axis in shared_axes:
            pattern.append("x")
        else:
            pattern.append(i)
            i += 1
    return param.dimshuffle(pattern)


class BiasLayer(Layer):
    """Add a learnable bias, shared over ``shared_axes`` ('auto': all but axis 1).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, BiasLayer
    >>> BiasLayer(InputLayer((None, 3, 5, 5))).b.get_value().shape
    (3,)
    """

    def __init__(
        self, incoming: Any, b: Any = init.Constant(0), shared_axes: Any = "auto", **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        if b is None:
            self.b = None
        else:
            shape = _param_shape(self, self.shared_axes, "the bias")
            self.b = self.add_param(b, shape, "b", regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        if self.b is None:
            return input
        return input + _broadcast(self.b, input.ndim, self.shared_axes)


class ScaleLayer(Layer):
    """Multiply by learnable scales, shared over ``shared_axes`` ('auto': all but axis 1).

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
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        shape = _param_shape(self, self.shared_axes, "the scales")
        self.scales = self.add_param(scales, shape, "scales", regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return input * _broadcast(self.scales, input.ndim, self.shared_axes)


def standardize(layer: Layer, offset: Any, scale: Any, shared_axes: Any = "auto") -> Layer:
    """Append fixed (non-trainable) ``(x - offset) / scale`` to ``layer``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer
    >>> l = standardize(InputLayer((None, 2)), np.array([1.0, 2.0]), np.array([2.0, 4.0]))
    >>> type(l).__name__, l.get_params(trainable=True)
    ('ScaleLayer', [])
    """
    layer = BiasLayer(layer, -np.asarray(offset), shared_axes)
    layer.params[layer.b].remove("trainable")
    layer = ScaleLayer(layer, 1.0 / np.asarray(scale), shared_axes)
    layer.params[layer.scales].remove("trainable")
    return layer


class ExpressionLayer(Layer):
    """Apply any function of the input expression.

    Parameters
    ----------
    function : callable
        ``function(input) -> expression``.
    output_shape : None, 'auto', tuple or callable
        None: same as the input shape; 'auto': found by running ``function`` on a dummy
        input of the input shape (unknown sizes taken as 1... and reported as None where
        they change with them); a tuple; or ``callable(input_shape)``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ExpressionLayer
    >>> ExpressionLayer(InputLayer((None, 6)), lambda x: x[:, ::2], "auto").output_shape
    (None, 3)
    """

    def __init__(
        self, incoming: Any, function: Any, output_shape: Any = None, **kwargs: Any
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.function = function
        self._output_shape = output_shape

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        spec = self._output_shape
        if spec is None:
            return input_shape
        if spec == "auto":
            shapes = []
            for fill in (1, 2):
                dummy = np.zeros(
                    [fill if s is None else s for s in input_shape], dtype=pytensor.config.floatX
                )
                shapes.append(np.shape(self.function(pt.constant(dummy)).eval()))
            return tuple(a if a == b else None for a, b in zip(*shapes))
        if callable(spec):
            return tuple(spec(input_shape))
        return tuple(spec)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        return self.function(input)


class InverseLayer(MergeLayer):
    """Apply the transpose of ``layer``'s linear map: the gradient of its output w.r.t.
    its input, back-propagating ``incoming`` as the output gradient.

    For a dense layer this multiplies by ``W.T``; for a convolution it gives the
    transposed convolution, for a pool the unpooling to the max positions.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, InverseLayer
    >>> l_in = InputLayer((None, 5))
    >>> enc = DenseLayer(l_in, 2)
    >>> InverseLayer(enc, enc).output_shape
    (None, 5)
    """

    def __init__(self, incoming: Any, layer: Layer, **kwargs: Any) -> None:
        super().__init__([incoming, layer, layer.input_layer], **kwargs)

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        return input_shapes[2]

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, layer_out, layer_in = inputs
        return pytensor.grad(None, wrt=layer_in, known_grads={layer_out: input})


class ParametricRectifierLayer(Layer):
    """PReLU: ``max(x, 0) + alpha * min(x, 0)`` with learnable ``alpha``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, ParametricRectifierLayer
    >>> ParametricRectifierLayer(InputLayer((None, 3, 4, 4))).alpha.get_value().tolist()
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
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))
        shape = _param_shape(self, self.shared_axes, "alpha")
        self.alpha = self.add_param(alpha, shape, name="alpha", regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        alpha = _broadcast(self.alpha, input.ndim, self.shared_axes)
        return pt.maximum(input, 0) + alpha * pt.minimum(input, 0)


def _replace_nonlinearity(layer: Layer) -> Any:
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    return nonlinearity


def prelu(layer: Layer, **kwargs: Any) -> Layer:
    """Replace ``layer``'s nonlinearity by a :class:`ParametricRectifierLayer` on top.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> type(prelu(DenseLayer(InputLayer((None, 3)), 4))).__name__
    'ParametricRectifierLayer'
    """
    _replace_nonlinearity(layer)
    return ParametricRectifierLayer(layer, **kwargs)


class RandomizedRectifierLayer(Layer):
    """RReLU: negative slope drawn uniformly from ``[lower, upper]`` in training, the mean
    slope with ``deterministic=True``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, RandomizedRectifierLayer
    >>> RandomizedRectifierLayer(InputLayer((None, 3))).output_shape
    (None, 3)
    """

    def __init__(
        self,
        incoming: Any,
        lower: float = 0.3,
        upper: float = 0.8,
        shared_axes: Any = "auto",
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self._srng = new_random_stream()
        self.lower, self.upper = lower, upper
        if not isinstance(lower, pt.TensorVariable) and lower > upper:
            raise ValueError(f"{self._label()}: upper ({upper}) must be >= lower ({lower})")
        self.shared_axes = _shared_axes(shared_axes, len(self.input_shape))

    def get_output_for(self, input: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        if deterministic or self.upper == self.lower:
            return pt.switch(input >= 0, input, input * ((self.lower + self.upper) / 2.0))
        shape = [1 if axis in self.shared_axes else input.shape[axis] for axis in range(input.ndim)]
        rnd = self._srng.uniform(self.lower, self.upper, size=tuple(shape), dtype=input.dtype)
        rnd = pt.specify_broadcastable(rnd, *[a for a in self.shared_axes])
        return pt.switch(input >= 0, input, input * rnd)


def rrelu(layer: Layer, **kwargs: Any) -> Layer:
    """Replace ``layer``'s nonlinearity by a :class:`RandomizedRectifierLayer` on top.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> type(rrelu(DenseLayer(InputLayer((None, 3)), 4))).__name__
    'RandomizedRectifierLayer'
    """
    _replace_nonlinearity(layer)
    return RandomizedRectifierLayer(layer, **kwargs)


def _interpolate(im: Any, x: Any, y: Any, out_h: Any, out_w: Any, border_mode: str) -> Any:
    """Bilinear sampling of ``im`` (N, C, H, W) at normalised coordinates in [-1, 1]."""
    num_batch, channels, height, width = im.shape
    height_f = pt.cast(height, pytensor.config.floatX)
    width_f = pt.cast(width, pytensor.config.floatX)
    x = (x + 1) / 2 * (width_f - 1)
    y = (y + 1) / 2 * (height_f - 1)
    x0f, y0f = pt.floor(x), pt.floor(y)
    x1f, y1f = x0f + 1, y0f + 1

    def fix(idx: Any, size: Any) -> Any:
        idx = pt.cast(idx, "int64")
        if border_mode == "nearest":
            return pt.clip(idx, 0, size - 1)
        if border_mode == "mirror":
            period = 2 * (size - 1)
            idx = pt.mod(idx, pt.maximum(period, 1))
            return pt.minimum(idx, period - idx)
        if border_mode == "wrap":
            return pt.mod(idx, size)
        raise ValueError(f"border_mode must be 'nearest', 'mirror' or 'wrap', got {border_mode!r}")

    x0, x1 = fix(x0f, width), fix(x1f, width)
    y0, y1 = fix(y0f, height), fix(y1f, height)
    flat = im.dimshuffle(0, 2, 3, 1).reshape((-1, channels))
    base = pt.repeat(pt.arange(num_batch) * height * width, out_h * out_w)
    ia = flat[base + y0 * width + x0]
    ib = flat[base + y1 * width + x0]
    ic = flat[base + y0 * width + x1]
    id_ = flat[base + y1 * width + x1]
    wa = ((x1f - x) * (y1f - y)).dimshuffle(0, "x")
    wb = ((x1f - x) * (y - y0f)).dimshuffle(0, "x")
    wc = ((x - x0f) * (y1f - y)).dimshuffle(0, "x")
    wd = ((x - x0f) * (y - y0f)).dimshuffle(0, "x")
    return wa * ia + wb * ib + wc * ic + wd * id_


def _output_grid(out_h: Any, out_w: Any) -> Any:
    ys = pt.linspace(-1.0, 1.0, out_h)
    xs = pt.linspace(-1.0, 1.0, out_w)
    gx = pt.tile(xs.dimshuffle("x", 0), (out_h, 1)).flatten()
    gy = pt.tile(ys.dimshuffle(0, "x"), (1, out_w)).flatten()
    return gx, gy


class TransformerLayer(MergeLayer):
    """Spatial transformer (affine): warp the input by a 2x3 matrix per example.

    ``localization_network`` outputs ``(batch, 6)``: the affine map from output to input
    coordinates, both normalised to [-1, 1]. Sampling is bilinear.

    Parameters
    ----------
    downsample_factor : float or tuple
        Output size is the input size divided by this.
    border_mode : {'nearest', 'mirror', 'wrap'}

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, TransformerLayer
    >>> l_in = InputLayer((None, 1, 8, 8))
    >>> loc = DenseLayer(l_in, 6, W=np.zeros((64, 6)), b=np.array([1., 0, 0, 0, 1, 0]))
    >>> TransformerLayer(l_in, loc, downsample_factor=2).output_shape
    (None, 1, 4, 4)
    """

    def __init__(
        self,
        incoming: Any,
        localization_network: Layer,
        downsample_factor: Any = 1,
        border_mode: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__([incoming, localization_network], **kwargs)
        from ..utils import as_tuple

        self.downsample_factor = as_tuple(downsample_factor, 2)
        self.border_mode = border_mode
        input_shp, loc_shp = self.input_shapes
        if loc_shp[-1] != 6 or len(loc_shp) != 2:
            raise ValueError(
                f"{self._label()}: the localization network must output shape (batch, 6), got "
                f"{loc_shp}"
            )
        if len(input_shp) != 4:
            raise ValueError(f"{self._label()}: input must be 4-D (batch, channels, rows, cols)")

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        shape = input_shapes[0]
        factors = self.downsample_factor
        return shape[:2] + tuple(
            None if s is None else int(s // f) for s, f in zip(shape[2:], factors)
        )

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, theta = inputs
        num_batch, channels, height, width = input.shape
        theta = theta.reshape((-1, 2, 3))
        out_h = pt.cast(height // self.downsample_factor[0], "int64")
        out_w = pt.cast(width // self.downsample_factor[1], "int64")
        gx, gy = _output_grid(out_h, out_w)
        grid = pt.stack([gx, gy, pt.ones_like(gx)])  # (3, P)
        src = pt.dot(theta, grid)  # (N, 2, P)
        xs, ys = src[:, 0].flatten(), src[:, 1].flatten()
        sampled = _interpolate(input, xs, ys, out_h, out_w, self.border_mode)
        return sampled.reshape((num_batch, out_h, out_w, channels)).dimshuffle(0, 3, 1, 2)


class TPSTransformerLayer(MergeLayer):
    """Spatial transformer with a thin-plate-spline warp.

    The localization network outputs ``(batch, 2 * control_points)``: the offsets of the
    control points (on a regular grid over [-1, 1]^2) from their resting positions. Zero
    offsets give the identity warp.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, TPSTransformerLayer
    >>> l_in = InputLayer((None, 1, 8, 8))
    >>> loc = DenseLayer(l_in, 32, W=np.zeros((64, 32)), nonlinearity=None)
    >>> TPSTransformerLayer(l_in, loc, control_points=16).output_shape
    (None, 1, 8, 8)
    """

    def __init__(
        self,
        incoming: Any,
        localization_network: Layer,
        downsample_factor: Any = 1,
        control_points: int = 16,
        precompute_grid: Any = "auto",
        border_mode: str = "nearest",
        **kwargs: Any,
    ) -> None:
        super().__init__([incoming, localization_network], **kwargs)
        from ..utils import as_tuple

        self.downsample_factor = as_tuple(downsample_factor, 2)
        self.border_mode = border_mode
        self.control_points = int(control_points)
        side = int(round(np.sqrt(self.control_points)))
        if side * side != self.control_points:
            raise ValueError(
                f"{self._label()}: control_points must be a perfect square, got {control_points}"
            )
        input_shp, loc_shp = self.input_shapes
        if len(loc_shp) != 2 or loc_shp[-1] != 2 * self.control_points:
            raise ValueError(
                f"{self._label()}: the localization network must output shape "
                f"(batch, {2 * self.control_points}), got {loc_shp}"
            )
        self.precompute_grid = precompute_grid
        lin = np.linspace(-1, 1, side)
        cx, cy = np.meshgrid(lin, lin)
        self.source_points = np.stack([cx.ravel(), cy.ravel()]).astype(pytensor.config.floatX)
        self._right_mat = self._tps_inverse(self.source_points)

    @staticmethod
    def _u(r2: Any, xp: Any = np) -> Any:
        # U(r) = r^2 log r^2 with U(0) = 0
        return (
            r2 * xp.log(xp.where(r2 > 0, r2, 1.0))
            if xp is np
            else r2 * pt.log(pt.switch(r2 > 0, r2, 1.0))
        )

    def _tps_inverse(self, points: np.ndarray) -> np.ndarray:
        k = points.shape[1]
        d2 = ((points[:, :, None] - points[:, None, :]) ** 2).sum(0)
        L = np.zeros((k + 3, k + 3))
        L[:k, :k] = self._u(d2)
        L[:k, k] = 1
        L[:k, k + 1 :] = points.T
        L[k, :k] = 1
        L[k + 1 :, :k] = points
        return np.linalg.inv(L).astype(pytensor.config.floatX)

    def get_output_shape_for(self, input_shapes: list) -> tuple:
        shape = input_shapes[0]
        return shape[:2] + tuple(
            None if s is None else int(s // f) for s, f in zip(shape[2:], self.downsample_factor)
        )

    def get_output_for(self, inputs: list, **kwargs: Any) -> Any:
        input, offsets = inputs
        num_batch, channels, height, width = input.shape
        k = self.control_points
        dest = pt.constant(self.source_points)[None] + offsets.reshape((-1, 2, k))  # (N, 2, k)
        # solve for the spline coefficients mapping the resting grid onto `dest`
        rhs = pt.concatenate([dest, pt.zeros((dest.shape[0], 2, 3), dtype=dest.dtype)], axis=2)
        coeffs = pt.dot(rhs, pt.constant(self._right_mat).T)  # (N, 2, k + 3)
        out_h = pt.cast(height // self.downsample_factor[0], "int64")
        out_w = pt.cast(width // self.downsample_factor[1], "int64")
        gx, gy = _output_grid(out_h, out_w)
        src = pt.constant(self.source_points)
        d2 = (gx[None, :] - src[0][:, None]) ** 2 + (gy[None, :] - src[1][:, None]) ** 2
        basis = pt.concatenate(
            [self._u(d2, pt), pt.ones((1, gx.shape[0])), gx[None, :], gy[None, :]], axis=0
        )  # (k + 3, P)
        mapped = pt.dot(coeffs, basis)  # (N, 2, P)
        xs, ys = mapped[:, 0].flatten(), mapped[:, 1].flatten()
        sampled = _interpolate(input, xs, ys, out_h, out_w, self.border_mode)
        return sampled.reshape((num_batch, out_h, out_w, channels)).dimshuffle(0, 3, 1, 2)
