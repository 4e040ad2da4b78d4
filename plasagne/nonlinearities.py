"""Nonlinearities (activation functions) as plain functions of expressions."""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt

__all__ = [
    "sigmoid",
    "softmax",
    "tanh",
    "ScaledTanH",
    "ScaledTanh",
    "rectify",
    "LeakyRectify",
    "leaky_rectify",
    "very_leaky_rectify",
    "elu",
    "SELU",
    "selu",
    "softplus",
    "linear",
    "identity",
]


def sigmoid(x: Any) -> Any:
    """Logistic sigmoid ``1 / (1 + exp(-x))``.

    Examples
    --------
    >>> float(sigmoid(pt.constant(0.0)).eval())
    0.5
    """
    return pt.sigmoid(x)


def softmax(x: Any) -> Any:
    """Row-wise softmax over the last axis of a matrix.

    Examples
    --------
    >>> import numpy as np
    >>> softmax(pt.constant(np.zeros((1, 4)))).eval().tolist()
    [[0.25, 0.25, 0.25, 0.25]]
    """
    return pt.special.softmax(x, axis=-1)


def tanh(x: Any) -> Any:
    """Hyperbolic tangent.

    Examples
    --------
    >>> float(tanh(pt.constant(0.0)).eval())
    0.0
    """
    return pt.tanh(x)


class ScaledTanH:
    """Scaled tanh ``scale_out * tanh(scale_in * x)``; LeCun's choice is 2/3 and 1.7159.

    Examples
    --------
    >>> f = ScaledTanH(scale_in=0.5, scale_out=2.0)
    >>> round(float(f(pt.constant(2.0)).eval()), 4)
    1.5232
    """

    def __init__(self, scale_in: float = 1, scale_out: float = 1) -> None:
        self.scale_in = scale_in
        self.scale_out = scale_out

    def __call__(self, x: Any) -> Any:
        return pt.tanh(x * self.scale_in) * self.scale_out


ScaledTanh = ScaledTanH


def rectify(x: Any) -> Any:
    """Rectified linear unit ``max(0, x)``.

    Examples
    --------
    >>> import numpy as np
    >>> rectify(pt.constant(np.array([-1.0, 2.0]))).eval().tolist()
    [0.0, 2.0]
    """
    return pt.maximum(x, 0.0)


class LeakyRectify:
    """Leaky rectifier ``max(leakiness * x, x)``.

    Examples
    --------
    >>> float(LeakyRectify(0.1)(pt.constant(-2.0)).eval())
    -0.2
    """

    def __init__(self, leakiness: float = 0.01) -> None:
        self.leakiness = leakiness

    def __call__(self, x: Any) -> Any:
        return pt.switch(pt.ge(x, 0), x, self.leakiness * x)


leaky_rectify = LeakyRectify(0.01)
very_leaky_rectify = LeakyRectify(1.0 / 3)


def elu(x: Any) -> Any:
    """Exponential linear unit: ``x`` if positive else ``exp(x) - 1``.

    Examples
    --------
    >>> float(elu(pt.constant(0.0)).eval())
    0.0
    """
    return pt.switch(x > 0, x, pt.expm1(x))


class SELU:
    """Scaled exponential linear unit ``scale * (x if x > 0 else scale_neg * (exp(x) - 1))``.

    Examples
    --------
    >>> round(float(SELU()(pt.constant(1.0)).eval()), 4)
    1.0507
    """

    def __init__(
        self,
        scale: float = 1.0507009873554804934193349852946,
        scale_neg: float = 1.6732632423543772848170429916717,
    ) -> None:
        self.scale = scale
        self.scale_neg = scale_neg

    def __call__(self, x: Any) -> Any:
        return self.scale * pt.switch(x > 0.0, x, self.scale_neg * pt.expm1(x))


selu = SELU()


def softplus(x: Any) -> Any:
    """Softplus ``log(1 + exp(x))``.

    Examples
    --------
    >>> round(float(softplus(pt.constant(0.0)).eval()), 4)
    0.6931
    """
    return pt.softplus(x)


def linear(x: Any) -> Any:
    """The identity: returns ``x`` unchanged.

    Examples
    --------
    >>> x = pt.vector()
    >>> linear(x) is x
    True
    """
    return x


identity = linear
