"""Noise layers: dropout in its variants and additive Gaussian noise.

Noise is drawn only in training; ``get_output(..., deterministic=True)`` passes the input
through. Each layer creates its own random stream with
:func:`plasagne.random.new_random_stream` when built (so networks built after
``plasagne.random.set_rng(np.random.RandomState(seed))`` draw the same noise), and a plain
``pytensor.function`` draws fresh noise on every call.
"""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from ..random import new_random_stream
from ..utils import int_types
from .base import Layer

__all__ = [
    "DropoutLayer",
    "dropout",
    "dropout_channels",
    "spatial_dropout",
    "dropout_locations",
    "GaussianNoiseLayer",
]


class DropoutLayer(Layer):
    """Set input values to zero with probability ``p`` in training.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    p : float or scalar expression
        Probability of dropping a value; a number must lie in ``[0, 1)``. A symbolic
        scalar (e.g. a shared variable, to anneal it) is used as given.
    rescale : bool
        If True, the kept values are scaled by ``1 / (1 - p)`` so the expected output
        equals the input.
    shared_axes : tuple of int
        Axes along which the mask is shared: ``(2, 3)`` drops whole feature maps of a
        4-D input, ``(1,)`` whole locations. Negative axes count from the end.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DropoutLayer, get_output
    >>> l_in = InputLayer((None, 1000))
    >>> layer = DropoutLayer(l_in, p=0.2)
    >>> f = pytensor.function([l_in.input_var], get_output(layer))
    >>> out = f(np.ones((2, 1000)))
    >>> sorted(set(out.ravel().round(6).tolist()))
    [0.0, 1.25]
    >>> bool(0.15 < (out == 0).mean() < 0.25)
    True
    >>> get_output(layer, deterministic=True) is l_in.input_var
    True
    """

    def __init__(
        self,
        incoming: Any,
        p: Any = 0.5,
        rescale: bool = True,
        shared_axes: Any = (),
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self._srng = new_random_stream()
        if isinstance(p, Variable):
            if p.ndim != 0:
                raise ValueError(
                    f"{self._label()}: p must be a scalar, found an expression with "
                    f"{p.ndim} dimensions ({p})"
                )
        elif not 0 <= p < 1:
            raise ValueError(f"{self._label()}: p must be in [0, 1), found p={p!r}")
        self.p = p
        self.rescale = rescale
        ndim = len(self.input_shape)
        if isinstance(shared_axes, int_types):
            shared_axes = (shared_axes,)
        try:
            shared_axes = tuple(shared_axes)
        except TypeError:
            shared_axes = (shared_axes,)  # reported as not an integer below
        for a in shared_axes:
            if not isinstance(a, int_types) or not -ndim <= a < ndim:
                raise ValueError(
                    f"{self._label()}: shared_axes must be integers in [{-ndim}, {ndim}) for "
                    f"input shape {self.input_shape}, found shared_axes={shared_axes!r}"
                )
        self.shared_axes = tuple(int(a) for a in shared_axes)

    def get_output_for(self, input: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        if deterministic or (not isinstance(self.p, Variable) and self.p == 0):
            return input
        retain_prob = pt.cast(1 - pt.as_tensor_variable(self.p), input.dtype)
        if self.rescale:
            input = input / retain_prob
        # the mask follows the input's actual shape, which may differ from the declared one
        # (e.g. another batch size given to get_output)
        shared = {a % input.ndim for a in self.shared_axes}
        mask_shape = tuple(1 if a in shared else input.shape[a] for a in range(input.ndim))
        mask = self._srng.binomial(1, retain_prob, size=mask_shape, dtype=input.dtype)
        if shared:
            mask = pt.specify_broadcastable(mask, *sorted(shared))
        return input * mask


dropout = DropoutLayer


def dropout_channels(incoming: Any, *args: Any, **kwargs: Any) -> DropoutLayer:
    """Dropout of whole channels (spatial dropout): the mask is shared over all axes
    after the second, so each feature map is kept or dropped as a whole.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    *args, **kwargs
        Passed to :class:`DropoutLayer` (``shared_axes`` is set here).

    Examples
    --------
    >>> from plasagne.layers import InputLayer
    >>> dropout_channels(InputLayer((None, 4, 5, 5)), p=0.1).shared_axes
    (2, 3)
    """
    ndim = len(getattr(incoming, "output_shape", incoming))
    kwargs["shared_axes"] = tuple(range(2, ndim))
    return DropoutLayer(incoming, *args, **kwargs)


spatial_dropout = dropout_channels


def dropout_locations(incoming: Any, *args: Any, **kwargs: Any) -> DropoutLayer:
    """Dropout of whole locations: the mask is shared over the channel axis 1, so all
    channels at a position are kept or dropped together.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    *args, **kwargs
        Passed to :class:`DropoutLayer` (``shared_axes`` is set here).

    Examples
    --------
    >>> from plasagne.layers import InputLayer
    >>> dropout_locations(InputLayer((None, 4, 5, 5))).shared_axes
    (1,)
    """
    kwargs["shared_axes"] = (1,)
    return DropoutLayer(incoming, *args, **kwargs)


class GaussianNoiseLayer(Layer):
    """Add zero-mean Gaussian noise of standard deviation ``sigma`` in training.

    Parameters
    ----------
    incoming : Layer or tuple
        The layer feeding into this one, or the expected input shape.
    sigma : float or scalar expression
        Standard deviation of the noise; a number must not be negative.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, GaussianNoiseLayer, get_output
    >>> l_in = InputLayer((None, 3))
    >>> layer = GaussianNoiseLayer(l_in, sigma=0.5)
    >>> f = pytensor.function([l_in.input_var], get_output(layer))
    >>> bool((f(np.zeros((4, 3))) != 0).all())
    True
    >>> get_output(layer, deterministic=True) is l_in.input_var
    True
    """

    def __init__(self, incoming: Any, sigma: Any = 0.1, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        self._srng = new_random_stream()
        if isinstance(sigma, Variable):
            if sigma.ndim != 0:
                raise ValueError(
                    f"{self._label()}: sigma must be a scalar, found an expression with "
                    f"{sigma.ndim} dimensions ({sigma})"
                )
        elif not sigma >= 0:
            raise ValueError(f"{self._label()}: sigma must be >= 0, found sigma={sigma!r}")
        self.sigma = sigma

    def get_output_for(self, input: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        if deterministic or (not isinstance(self.sigma, Variable) and self.sigma == 0):
            return input
        noise = self._srng.normal(0.0, self.sigma, size=input.shape, dtype=input.dtype)
        return input + noise
