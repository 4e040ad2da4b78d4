"""Normalization layers: local response, batch, instance and layer normalization.

:class:`BatchNormLayer` keeps running averages of the batch statistics in its ``mean`` and
``inv_std`` shared variables; a compiled training function moves them without explicit
updates, through the ``default_update`` of clones of those variables, as Lasagne did.
"""

from __future__ import annotations

import warnings
from typing import Any

import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable

from .. import init, nonlinearities
from ..utils import int_types
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
    """Cross-channel local response normalization of a 4-D (N, C, H, W) input.

    Each value is divided by ``(k + alpha * s) ** beta``, where ``s`` is the sum of the
    squares of the values at the same position in the ``n`` channels centred on its own
    (channels beyond the edges count as zero). As in Lasagne, ``alpha`` is not divided
    by ``n``.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape (4 dimensions).
    alpha : float
        Scale of the sum of squares.
    k : float
        Additive constant.
    beta : float
        Exponent.
    n : int
        Number of adjacent channels to sum over; must be odd.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, LocalResponseNormalization2DLayer
    >>> layer = LocalResponseNormalization2DLayer(InputLayer((None, 8, 4, 4)), n=3)
    >>> layer.output_shape
    (None, 8, 4, 4)
    >>> x = np.ones((1, 3, 1, 1))
    >>> y = layer.get_output_for(pt.as_tensor(x)).eval()
    >>> bool(np.allclose(y[0, :, 0, 0], [(2 + 2e-4) ** -0.75, (2 + 3e-4) ** -0.75,
    ...                                  (2 + 2e-4) ** -0.75]))
    True
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
        if len(self.input_shape) != 4:
            raise ValueError(
                f"{self._label()}: expected a 4-dimensional (N, C, H, W) input, found input "
                f"shape {self.input_shape}"
            )
        if int(n) != n or n < 1:
            raise ValueError(f"{self._label()}: n must be a positive odd integer, found {n!r}")
        if n % 2 == 0:
            raise NotImplementedError(f"{self._label()}: only odd n is supported, found n={n}")
        self.alpha = alpha
        self.k = k
        self.beta = beta
        self.n = int(n)

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


def _norm_axes(layer: Layer, axes: Any, auto: tuple) -> tuple:
    """Resolve an ``axes`` argument into a tuple of non-negative axes of the input."""
    ndim = len(layer.input_shape)
    if isinstance(axes, str):
        named = {
            "auto": auto,
            "spatial": tuple(range(2, ndim)),
            "features": tuple(range(1, ndim)),
        }
        if axes not in named:
            raise ValueError(
                f"{layer._label()}: axes must be 'auto', 'spatial', 'features', an int or a "
                f"tuple of ints, found {axes!r}"
            )
        result = named[axes]
    elif isinstance(axes, int_types):
        result = (axes,)
    else:
        try:
            result = tuple(axes)
        except TypeError:
            result = (axes,)  # reported as not an integer below
    for a in result:
        if not isinstance(a, int_types) or not -ndim <= a < ndim:
            raise ValueError(
                f"{layer._label()}: axes must be integers in [{-ndim}, {ndim}) for an input "
                f"of shape {layer.input_shape}, found axes={axes!r}"
            )
    result = tuple(int(a) % ndim for a in result)
    if len(set(result)) != len(result):
        raise ValueError(f"{layer._label()}: axes contains a repeated axis: {axes!r}")
    if not result:
        raise ValueError(f"{layer._label()}: no axes to normalize over (axes={axes!r})")
    return result


def _pattern(ndim: int, skipped: tuple) -> list:
    """Dimshuffle pattern putting a parameter's axes at the input axes not in ``skipped``."""
    pattern: list = []
    i = 0
    for axis in range(ndim):
        if axis in skipped:
            pattern.append("x")
        else:
            pattern.append(i)
            i += 1
    return pattern


class BatchNormLayer(Layer):
    """Batch normalization: ``(x - mean) * inv_std * gamma + beta`` over ``axes``.

    In training the mean and inverse standard deviation ``1 / sqrt(var + epsilon)`` of
    the current batch over ``axes`` are used, and every run of a compiled function
    moves the stored ``mean`` and ``inv_std`` towards them:
    ``stored = (1 - alpha) * stored + alpha * batch``. With ``deterministic=True`` the
    stored values are used and left alone.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    axes : 'auto', int or tuple of int
        Axes to normalize over. ``'auto'`` means all but the second (axis 0 for dense
        outputs; batch and spatial axes for convolution outputs). The other axes need
        fixed sizes: there is one parameter value per position on them.
    epsilon : float
        Added to the variance before taking the square root.
    alpha : float
        Step of the running averages.
    beta, gamma : array, shared variable, expression, callable or None
        Learned shift and scale (trainable, not regularizable); ``None`` fixes them to
        0 and 1.
    mean, inv_std : array, shared variable, expression or callable
        Stored statistics (tagged neither trainable nor regularizable). To be updated
        in training they must be shared variables; otherwise pass
        ``batch_norm_update_averages=False`` to :func:`plasagne.layers.get_output`.

    Notes
    -----
    Keyword arguments of ``get_output_for`` (given to
    :func:`plasagne.layers.get_output`): ``deterministic``;
    ``batch_norm_use_averages`` (use the stored statistics instead of the batch's;
    defaults to ``deterministic``); ``batch_norm_update_averages`` (move the stored
    statistics; defaults to ``not deterministic``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, BatchNormLayer, get_output
    >>> l_in = InputLayer((None, 2))
    >>> layer = BatchNormLayer(l_in, alpha=0.5)
    >>> [p.name for p in layer.get_params(trainable=True)]
    ['BatchNormLayer.beta', 'BatchNormLayer.gamma']
    >>> train = pytensor.function([l_in.input_var], get_output(layer))
    >>> train(np.array([[1.0, 2.0], [3.0, 6.0]])).round(3).tolist()
    [[-1.0, -1.0], [1.0, 1.0]]
    >>> layer.mean.get_value().tolist()
    [1.0, 2.0]
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
        self.axes = _norm_axes(self, axes, (0,) + tuple(range(2, ndim)))
        self.epsilon = epsilon
        self.alpha = alpha
        shape = tuple(s for a, s in enumerate(self.input_shape) if a not in self.axes)
        if any(s is None for s in shape):
            raise ValueError(
                f"{self._label()}: needs fixed input sizes on all axes not normalized over; "
                f"found input shape {self.input_shape} with axes={self.axes}"
            )
        if beta is None:
            self.beta = None
        else:
            self.beta = self.add_param(beta, shape, "beta", trainable=True, regularizable=False)
        if gamma is None:
            self.gamma = None
        else:
            self.gamma = self.add_param(gamma, shape, "gamma", trainable=True, regularizable=False)
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

        use_averages = batch_norm_use_averages
        if use_averages is None:
            use_averages = deterministic
        if use_averages:
            mean, inv_std = self.mean, self.inv_std
        else:
            mean, inv_std = input_mean, input_inv_std

        update_averages = batch_norm_update_averages
        if update_averages is None:
            update_averages = not deterministic
        if update_averages:
            for what, stored in (("mean", self.mean), ("inv_std", self.inv_std)):
                if not isinstance(stored, SharedVariable):
                    raise ValueError(
                        f"{self._label()}: cannot update the running average of '{what}': "
                        f"expected a shared variable, found expression {stored}; pass "
                        "batch_norm_update_averages=False to get_output"
                    )
            # Clones sharing their storage with mean/inv_std: their default updates are
            # applied by every pytensor.function whose graph contains them.
            running_mean = self._running_average(self.mean, input_mean)
            running_inv_std = self._running_average(self.inv_std, input_inv_std)
            mean = mean + 0 * running_mean
            inv_std = inv_std + 0 * running_inv_std

        pattern = _pattern(input.ndim, self.axes)
        beta = 0 if self.beta is None else self.beta.dimshuffle(pattern)
        gamma = 1 if self.gamma is None else self.gamma.dimshuffle(pattern)
        mean = mean.dimshuffle(pattern)
        inv_std = inv_std.dimshuffle(pattern)
        return (input - mean) * (gamma * inv_std) + beta

    def _running_average(self, stored: Any, batch: Any) -> Any:
        """A clone of ``stored`` whose default update moves it by ``alpha`` towards ``batch``.

        The clone's static shape combines what ``stored`` and ``batch`` know, so the
        update expression has exactly the clone's type, as ``pytensor.function`` requires.
        """
        shape = []
        for axis, (s, b) in enumerate(zip(stored.type.shape, batch.type.shape)):
            if s is not None and b is not None and s != b:
                raise ValueError(
                    f"{self._label()}: the stored '{stored.name}' has size {s} on its axis "
                    f"{axis}, the input's batch statistic has size {b}"
                )
            shape.append(s if s is not None else b)
        running = type(stored)(
            type=stored.type.clone(shape=tuple(shape)),
            value=None,
            strict=None,
            container=stored.container,
            name=stored.name,
        )
        update = ((1 - self.alpha) * running + self.alpha * batch).astype(stored.dtype)
        update = pt.specify_shape(update, tuple(shape))
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            running.default_update = update
        return running


def _detach_bias_and_nonlinearity(layer: Layer) -> Any:
    """Remove ``layer``'s bias and return its nonlinearity, leaving it linear."""
    nonlinearity = getattr(layer, "nonlinearity", None)
    if nonlinearity is not None:
        layer.nonlinearity = nonlinearities.identity
    if getattr(layer, "b", None) is not None:
        del layer.params[layer.b]
        layer.b = None
    return nonlinearity


def _add_nonlinearity(layer: Layer, nonlinearity: Any, name: str | None) -> Layer:
    if nonlinearity is None:
        return layer
    from .special import NonlinearityLayer

    return NonlinearityLayer(layer, nonlinearity, name=name and f"{name}_nonlin")


def batch_norm(layer: Layer, **kwargs: Any) -> Layer:
    """Apply batch normalization to the output of ``layer``.

    ``layer``'s bias is removed (``beta`` takes its role) and its nonlinearity moved into
    a :class:`~plasagne.layers.NonlinearityLayer` on top of the new
    :class:`BatchNormLayer`, so the normalization comes before the nonlinearity.

    Parameters
    ----------
    layer : Layer
        The layer to normalize, usually a dense or convolution layer.
    **kwargs
        Passed to :class:`BatchNormLayer`. Without a ``name``, a named ``layer`` gives
        ``"<name>_bn"`` (and ``"<name>_bn_nonlin"`` for the nonlinearity layer).

    Returns
    -------
    Layer
        The :class:`BatchNormLayer`, or the ``NonlinearityLayer`` above it when ``layer``
        had a nonlinearity (``DenseLayer`` always has one, identity at least).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, get_all_params
    >>> top = batch_norm(DenseLayer(InputLayer((None, 10)), 5, name="fc"))
    >>> type(top).__name__, type(top.input_layer).__name__
    ('NonlinearityLayer', 'BatchNormLayer')
    >>> [p.name for p in get_all_params(top)]
    ['fc.W', 'fc_bn.beta', 'fc_bn.gamma', 'fc_bn.mean', 'fc_bn.inv_std']
    """
    nonlinearity = _detach_bias_and_nonlinearity(layer)
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and f"{layer.name}_bn")
    out = BatchNormLayer(layer, name=name, **kwargs)
    return _add_nonlinearity(out, nonlinearity, name)


class StandardizationLayer(Layer):
    """Standardize each example to zero mean and unit variance over ``axes``.

    Computes ``(x - mean) / sqrt(var + epsilon) * gamma + beta`` with the mean and
    variance taken over ``axes`` separately for every position on the other axes. The
    statistics are usually not shared across the batch, so training and inference
    behave the same.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    axes : 'auto', 'spatial', 'features', int or tuple of int
        ``'auto'``: the last axis of a 2-D input, all axes after the second otherwise.
        ``'spatial'``: all axes after the second (instance normalization).
        ``'features'``: all axes after the first (layer normalization).
    epsilon : float
        Added to the variance before taking the square root.
    beta, gamma : array, shared variable, expression, callable or None
        Shift and scale with one value per position on the axes neither normalized over
        nor the batch axis 0 (a scalar when there are none); ``None`` leaves them out.
        Lasagne's layer has no such parameters; their defaults (0 and 1) leave the
        output as Lasagne's at initialization.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, StandardizationLayer
    >>> StandardizationLayer(InputLayer((None, 3, 4, 4))).axes
    (2, 3)
    >>> layer = StandardizationLayer(InputLayer((None, 2)), beta=None, gamma=None)
    >>> layer.get_output_for(pt.as_tensor(np.array([[1.0, 3.0]]))).eval().round(3).tolist()
    [[-1.0, 1.0]]
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
        if ndim < 2:
            raise ValueError(
                f"{self._label()}: expected an input of at least 2 dimensions, found input "
                f"shape {self.input_shape}"
            )
        auto = (1,) if ndim == 2 else tuple(range(2, ndim))
        self.axes = _norm_axes(self, axes, auto)
        self.epsilon = epsilon
        self._param_skip = (0,) + tuple(a for a in self.axes if a != 0)
        shape = tuple(s for a, s in enumerate(self.input_shape) if a not in self._param_skip)
        if (beta is not None or gamma is not None) and any(s is None for s in shape):
            raise ValueError(
                f"{self._label()}: beta and gamma need fixed input sizes on the axes other "
                f"than 0 not normalized over; found input shape {self.input_shape} with "
                f"axes={self.axes} (pass beta=None, gamma=None to leave them out)"
            )
        if beta is None:
            self.beta = None
        else:
            self.beta = self.add_param(beta, shape, "beta", trainable=True, regularizable=False)
        if gamma is None:
            self.gamma = None
        else:
            self.gamma = self.add_param(gamma, shape, "gamma", trainable=True, regularizable=False)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        mean = input.mean(self.axes, keepdims=True)
        std = pt.sqrt(input.var(self.axes, keepdims=True) + self.epsilon)
        out = (input - mean) / std
        pattern = _pattern(input.ndim, self._param_skip)
        if self.gamma is not None:
            out = out * self.gamma.dimshuffle(pattern)
        if self.beta is not None:
            out = out + self.beta.dimshuffle(pattern)
        return out


def instance_norm(
    layer: Layer, learn_scale: bool = True, learn_bias: bool = True, **kwargs: Any
) -> Layer:
    """Apply instance normalization to the output of ``layer``.

    Each example and channel is standardized over the spatial axes by a
    :class:`StandardizationLayer` (without its own ``beta``/``gamma``), followed by a
    per-channel :class:`~plasagne.layers.ScaleLayer` and
    :class:`~plasagne.layers.BiasLayer`. ``layer``'s bias is removed and its
    nonlinearity moved to a ``NonlinearityLayer`` on top.

    Parameters
    ----------
    layer : Layer
        The layer to normalize (at least 3-D output, e.g. a convolution layer).
    learn_scale, learn_bias : bool
        Whether to add the scale and the bias layer.
    **kwargs
        Passed to :class:`StandardizationLayer` (e.g. ``epsilon``, ``name``). Names
        default to ``"<name>_bn"`` with ``_scale``, ``_bias`` and ``_nonlin`` suffixes
        for the added layers, as in Lasagne.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv2DLayer
    >>> from plasagne.layers import get_all_layers, get_all_params
    >>> top = instance_norm(Conv2DLayer(InputLayer((None, 1, 8, 8)), 4, 3, name="c"))
    >>> [type(l).__name__ for l in get_all_layers(top)[2:]]
    ['StandardizationLayer', 'ScaleLayer', 'BiasLayer', 'NonlinearityLayer']
    >>> [p.name for p in get_all_params(top)]
    ['c.W', 'c_bn_scale.scales', 'c_bn_bias.b']
    """
    from .special import BiasLayer, ScaleLayer

    nonlinearity = _detach_bias_and_nonlinearity(layer)
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and f"{layer.name}_bn")
    out: Layer = StandardizationLayer(
        layer, axes="spatial", beta=None, gamma=None, name=name, **kwargs
    )
    if learn_scale:
        out = ScaleLayer(out, shared_axes="auto", name=name and f"{name}_scale")
    if learn_bias:
        out = BiasLayer(out, shared_axes="auto", name=name and f"{name}_bias")
    return _add_nonlinearity(out, nonlinearity, name)


def layer_norm(layer: Layer, **kwargs: Any) -> Layer:
    """Apply layer normalization to the output of ``layer``.

    Each example is standardized over all its features by a
    :class:`StandardizationLayer` (without its own ``beta``/``gamma``), followed by a
    :class:`~plasagne.layers.ScaleLayer` and a :class:`~plasagne.layers.BiasLayer` with
    ``shared_axes='auto'`` (one value per unit of a dense layer, per channel of a
    convolution layer). ``layer``'s bias is removed and its nonlinearity moved to a
    ``NonlinearityLayer`` on top.

    Parameters
    ----------
    layer : Layer
        The layer to normalize.
    **kwargs
        Passed to :class:`StandardizationLayer`. Names default to ``"<name>_ln"`` with
        ``_scale``, ``_bias`` and ``_nonlin`` suffixes for the added layers.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer, get_all_params
    >>> top = layer_norm(DenseLayer(InputLayer((None, 10)), 5, name="fc"))
    >>> [p.name for p in get_all_params(top)]
    ['fc.W', 'fc_ln_scale.scales', 'fc_ln_bias.b']
    """
    from .special import BiasLayer, ScaleLayer

    nonlinearity = _detach_bias_and_nonlinearity(layer)
    name = kwargs.pop("name", None) or (getattr(layer, "name", None) and f"{layer.name}_ln")
    out: Layer = StandardizationLayer(
        layer, axes="features", beta=None, gamma=None, name=name, **kwargs
    )
    out = ScaleLayer(out, shared_axes="auto", name=name and f"{name}_scale")
    out = BiasLayer(out, shared_axes="auto", name=name and f"{name}_bias")
    return _add_nonlinearity(out, nonlinearity, name)
