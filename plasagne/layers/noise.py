"""Noise layers: dropout in its variants and additive Gaussian noise.

Noise is drawn only in training; ``get_output(..., deterministic=True)`` passes the input
through. Each layer seeds its own random stream from :func:`plasagne.random.get_rng` when
built, and a plain ``pytensor.function`` draws fresh noise on every call.
"""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt

from ..random import new_random_stream
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
    """Set inputs to zero with probability ``p``, scaling the rest by ``1 / (1 - p)``.

    Parameters
    ----------
    p : float or scalar expression
        Probability of dropping an input.
    rescale : bool
        Scale kept inputs by ``1 / (1 - p)`` so the expectation is unchanged.
    shared_axes : tuple of int
        Axes along which the mask is shared (e.g. ``(2, 3)`` drops whole feature maps).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DropoutLayer
    >>> DropoutLayer(InputLayer((None, 10)), p=0.2).output_shape
    (None, 10)
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
        self.p = p
        self.rescale = rescale
        self.shared_axes = tuple(shared_axes)
        if not isinstance(p, pt.TensorVariable) and not 0 <= p < 1:
            raise ValueError(f"{self._label()}: p must be in [0, 1), got {p}")

    def get_output_for(self, input: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        if deterministic or (not isinstance(self.p, pt.TensorVariable) and self.p == 0):
            return input
        retain = pt.cast(1 - pt.as_tensor_variable(self.p), input.dtype)
        if self.rescale:
            input = input / retain
        axes = [a % input.ndim for a in self.shared_axes]
        mask_shape = tuple(1 if a in axes else input.shape[a] for a in range(input.ndim))
        mask = self._srng.binomial(1, retain, size=mask_shape, dtype=input.dtype)
        if axes:
            mask = pt.specify_broadcastable(mask, *axes)
        return input * mask


dropout = DropoutLayer


def dropout_channels(incoming: Any, *args: Any, **kwargs: Any) -> DropoutLayer:
    """Dropout of whole channels: the mask is shared over all axes after the second.

    Examples
    --------
    >>> from plasagne.layers import InputLayer
    >>> dropout_channels(InputLayer((None, 4, 5, 5))).shared_axes
    (2, 3)
    """
    ndim = len(incoming if isinstance(incoming, tuple) else incoming.output_shape)
    kwargs["shared_axes"] = tuple(range(2, ndim))
    return DropoutLayer(incoming, *args, **kwargs)


spatial_dropout = dropout_channels


def dropout_locations(incoming: Any, *args: Any, **kwargs: Any) -> DropoutLayer:
    """Dropout of whole locations: the mask is shared over the channel axis.

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

    Examples
    --------
    >>> from plasagne.layers import InputLayer, GaussianNoiseLayer
    >>> GaussianNoiseLayer(InputLayer((None, 3)), sigma=0.5).sigma
    0.5
    """

    def __init__(self, incoming: Any, sigma: Any = 0.1, **kwargs: Any) -> None:
        super().__init__(incoming, **kwargs)
        self._srng = new_random_stream()
        self.sigma = sigma

    def get_output_for(self, input: Any, deterministic: bool = False, **kwargs: Any) -> Any:
        if deterministic or (not isinstance(self.sigma, pt.TensorVariable) and self.sigma == 0):
            return input
        return input + self._srng.normal(0.0, self.sigma, size=input.shape, dtype=input.dtype)
