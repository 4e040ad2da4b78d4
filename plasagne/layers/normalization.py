"""Normalization layers: local response, batch, instance and layer normalization."""

from __future__ import annotations

import warnings
from typing import Any

import pytensor.tensor as pt

from .. import init, nonlinearities
from .base import Layer

__all__ = [
    "LocalResponseNormalization2DLayer",
    "BatchNormLayer",
    "batch_norm",
    "StandardizationLayer",
    "instance_norm",
    "layer_norm",
]


class LocalResponseNormalization2DLayer(Layer):
    """Cross-channel local response normalization (AlexNet):
    ``x / (k + alpha * sum_{n neighbouring channels} x**2) ** beta``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, LocalResponseNormalization2DLayer
    >>> LocalResponseNormalization2DLayer(InputLayer((None, 8, 4, 4))).output_shape
    (None, 8, 4, 4)
    """

    def __init__(
        self,
        incoming: Any,
        alpha: float = 1e-4,
        k: float = 2,
        beta: float = 0.75,
        n: int = 5,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        if n % 2 == 0:
            raise NotImplementedError(f"{self._label()}: only odd n is supported, got {n}")
        if len(self.input_shape) != 4:
            raise ValueError(f"{self._label()}: expected a 4-D input, got {self.input_shape}")
        self.alpha, self.k, self.beta, self.n = alpha, k, beta, n

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        half = self.n // 2
        sqr = pt.sqr(input)
        b, ch, r, c = input.shape
        padded = pt.zeros((b, ch + 2 * half, r, c), dtype=input.dtype)
        padded = pt.set_subtensor(padded[:, half : half + ch], sqr)
        scale = self.k
        for i in range(self.n):
            scale = scale + self.alpha * padded[:, i : i + ch]
        return input / scale**self.beta


def _norm_axes(axes: Any, ndim: int, auto: tuple) -> tuple:
    if axes == "auto":
        return auto
    if axes == "spatial":
        return tuple(range(2, ndim))
    if axes == "features":
        return tuple(range(1, ndim))
    if isinstance(axes, int):
        return (axes,)
    return tuple(axes)


class BatchNormLayer(Layer):
    """Batch normalization (Ioffe and Szegedy) with running averages for inference.

    In training the input is normalised with the batch's mean and inverse standard
    deviation over ``axes``, and the stored ``mean`` / ``inv_std`` move towards them by
    ``alpha`` every time a compiled function runs (through ``default_update``, so no
    explicit updates are needed). With ``deterministic=True`` the stored values are used.
    ``batch_norm_use_averages`` / ``batch_norm_update_averages`` override either choice.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, BatchNormLayer
    >>> l = BatchNormLayer(InputLayer((None, 3, 5, 5)))
    >>> [p.name for p in l.get_params(trainable=True)]
    ['BatchNormLayer.beta', 'BatchNormLayer.gamma']
    """

    def __init__(
        self,
        incoming: Any,
        axes: Any = "auto",
        epsilon: float = 1e-4,
        alpha: float = 0.1,
        beta: Any = init.Constant(0),
        gamma: Any = init.Constant(1),
        mean: Any = init.Constant(0),
        inv_std: Any = init.Constant(1),
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        ndim = len(self.input_shape)
        self.axes = _norm_axes(axes, ndim, (0,) + tuple(range(2, ndim)))
        self.epsilon, self.alpha = epsilon, alpha
        shape = tuple(s for a, s in enumerate(self.input_shape) if a not in self.axes)
        if any(s is None for s in shape):
            raise ValueError(
                f"{self._label()}: needs fixed sizes on the axes not normalised over; input "
                f"shape {self.input_shape}, axes {self.axes}"
            )
        self.beta = (
            None
            if beta is None
            else self.add_param(beta, shape, "beta", trainable=True, regularizable=False)
        )
        self.gamma = (
            None
            if gamma is None
            else self.add_param(gamma, shape, "gamma", trainable=True, regularizable=False)
        )
        self.mean = self.add_param(mean, shape, "mean", trainable=False, regularizable=False)
        self.inv_std = self.add_param(
            inv_std, shape, "inv_std", trainable=False, regularizable=False
        )

    def get_output_for(
        self,
        input: Any,
        deterministic: bool = False,
        batch_norm_use_averages: bool | None = None,
        batch_norm_update_averages: bool | None = None,
        **kwargs: Any,
    ) -> Any:
        input_mean = input.mean(self.axes)
        input_inv_std = pt.reciprocal(pt.sqrt(input.var(self.axes) + self.epsilon))
        use_averages = (
            deterministic if batch_norm_use_averages is None else (batch_norm_use_averages)
        )
        update_averages = (
            (not deterministic)
            if batch_norm_update_averages is None
            else (batch_norm_update_averages)
        )
        if use_averages:
            mean, inv_std = self.mean, self.inv_std
        else:
            mean, inv_std = input_mean, input_inv_std
        if update_averages:
            # clones share the stored values; their default updates move the averages
            running_mean = self.mean.clone()
            running_inv_std = self.inv_std.clone()
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", DeprecationWarning)
                running_mean.default_update = (
                    (1 - self.alpha) * running_mean + self.alpha * input_mean
                ).astype(self.mean.dtype)
                running_inv_std.default_update = (
                    (1 - self.alpha) * running_inv_std + self.alpha * input_inv_std
                ).astype(self.inv_std.dtype)
            # include the clones in the graph so their updates run
            mean = mean + 0 * running_mean
            inv_std = inv_std + 0 * running_inv_std
        pattern = []
        i = 0
        for axis in range(input.ndim):
            if axis in self.axes:
                pattern.append("x")
            else:
                pattern.append(i)
                i += 1
        beta = 0 if self.beta is None else self.beta.dimshuffle(pattern)
        gamma = 1 if self.gamma is None else self.gamma.dimshuffle(pattern)
        return (input - mean.dimshuffle(pattern)) * (gamma * inv_std.dimshuffle(pattern)) + beta


def _take_nonlinearity(layer: Layer) -> Any:
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    return nonlinearity


def _wrap_nonlinearity(layer: Layer, nonlinearity: Any, name: str | None) -> Layer:
    if nonlinearity is None or nonlinearity is nonlinearities.identity:
        return layer
    from .special import NonlinearityLayer

    return NonlinearityLayer(layer, nonlinearity, name=name and f"{name}_nonlin")


def batch_norm(layer: Layer, **kwargs: Any) -> Layer:
    """Insert batch normalization after ``layer``: its bias is dropped and its
    nonlinearity moved behind the new :class:`BatchNormLayer`.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> top = batch_norm(DenseLayer(InputLayer((None, 10)), 5))
    >>> type(top).__name__, type(top.input_layer).__name__
    ('NonlinearityLayer', 'BatchNormLayer')
    """
    nonlinearity = _take_nonlinearity(layer)
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    name = kwargs.pop("name", None) or (layer.name and f"{layer.name}_bn")
    bn = BatchNormLayer(layer, name=name, **kwargs)
    return _wrap_nonlinearity(bn, nonlinearity, layer.name)


class StandardizationLayer(Layer):
    """Normalise each example to zero mean and unit variance over ``axes``.

    Unlike batch normalization no statistics are shared across examples, so training
    and inference behave the same. ``axes`` may be 'auto'/'spatial' (all axes after the
    second: instance normalization), 'features' (all axes after the first: layer
    normalization) or explicit axes.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, StandardizationLayer
    >>> StandardizationLayer(InputLayer((None, 3, 4, 4))).axes
    (2, 3)
    """

    def __init__(
        self,
        incoming: Any,
        axes: Any = "auto",
        epsilon: float = 1e-4,
        beta: Any = init.Constant(0),
        gamma: Any = init.Constant(1),
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        ndim = len(self.input_shape)
        self.axes = _norm_axes(axes, ndim, tuple(range(2, ndim)))
        if 0 in self.axes:
            raise ValueError(f"{self._label()}: cannot standardise over the batch axis 0")
        self.epsilon = epsilon
        shape = tuple(s for a, s in enumerate(self.input_shape) if a != 0 and a not in self.axes)
        self._param_axes = tuple(a for a in range(1, ndim) if a not in self.axes)
        self.beta = (
            None if beta is None else self.add_param(beta, shape, "beta", regularizable=False)
        )
        self.gamma = (
            None if gamma is None else self.add_param(gamma, shape, "gamma", regularizable=False)
        )

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        mean = input.mean(self.axes, keepdims=True)
        std = pt.sqrt(input.var(self.axes, keepdims=True) + self.epsilon)
        out = (input - mean) / std
        pattern = ["x"] * input.ndim
        for i, a in enumerate(self._param_axes):
            pattern[a] = i
        if self.gamma is not None:
            out = out * self.gamma.dimshuffle(pattern)
        if self.beta is not None:
            out = out + self.beta.dimshuffle(pattern)
        return out


def instance_norm(
    layer: Layer, learn_scale: bool = True, learn_bias: bool = True, **kwargs: Any
) -> Layer:
    """Instance normalization after ``layer`` (per example and channel, over space), with
    a learned scale and bias per channel; ``layer``'s bias is dropped and its
    nonlinearity moved to the top.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv2DLayer
    >>> top = instance_norm(Conv2DLayer(InputLayer((None, 1, 8, 8)), 4, 3))
    >>> type(top).__name__
    'NonlinearityLayer'
    """
    from .special import BiasLayer, ScaleLayer

    nonlinearity = _take_nonlinearity(layer)
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    out = StandardizationLayer(layer, axes="spatial", beta=None, gamma=None, **kwargs)
    if learn_scale:
        out = ScaleLayer(out, shared_axes="auto")
    if learn_bias:
        out = BiasLayer(out, shared_axes="auto")
    return _wrap_nonlinearity(out, nonlinearity, layer.name)


def layer_norm(layer: Layer, **kwargs: Any) -> Layer:
    """Layer normalization after ``layer`` (per example, over all features), with a learned
    scale and bias per feature; ``layer``'s nonlinearity moves to the top.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> top = layer_norm(DenseLayer(InputLayer((None, 10)), 5))
    >>> type(top.input_layer).__name__
    'BiasLayer'
    """
    from .special import BiasLayer, ScaleLayer

    nonlinearity = _take_nonlinearity(layer)
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    out = StandardizationLayer(layer, axes="features", beta=None, gamma=None, **kwargs)
    out = ScaleLayer(out, shared_axes=0)
    out = BiasLayer(out, shared_axes=0)
    return _wrap_nonlinearity(out, nonlinearity, layer.name)
