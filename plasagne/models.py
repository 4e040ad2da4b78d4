"""The 2016 post's networks, written the post's way: ``build_ann(init) -> output layer``.

Each builder takes one parameter spec (an initializer for a deterministic network, a
prior from :mod:`plasagne.pymc_bridge` for a Bayesian one) and uses it for every weight
and bias, exactly as the post passed ``W=init`` to every layer.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from .layers import Conv2DLayer, DenseLayer, InputLayer, Layer, MaxPool2DLayer
from .nonlinearities import rectify, softmax, tanh

__all__ = ["build_mlp", "build_cnn", "MODELS", "default_prior"]


def build_mlp(
    init: Any, input_shape: tuple = (None, 1, 28, 28), n_hidden: int = 800, n_classes: int = 10
) -> Layer:
    """The post's MLP: two tanh layers of ``n_hidden`` units and a softmax output.

    Examples
    --------
    >>> build_mlp(np.zeros, n_hidden=16).output_shape
    (None, 10)
    """
    l_in = InputLayer(input_shape, name="input")
    l_h1 = DenseLayer(l_in, n_hidden, W=init, b=init, nonlinearity=tanh, name="hidden1")
    l_h2 = DenseLayer(l_h1, n_hidden, W=init, b=init, nonlinearity=tanh, name="hidden2")
    return DenseLayer(l_h2, n_classes, W=init, b=init, nonlinearity=softmax, name="out")


def build_cnn(
    init: Any,
    input_shape: tuple = (None, 1, 28, 28),
    n_filters: int = 32,
    n_dense: int = 256,
    n_classes: int = 10,
) -> Layer:
    """The post's CNN: conv(5x5) - maxpool 2 - conv(5x5) - maxpool 2 - dense - softmax.

    Examples
    --------
    >>> build_cnn(np.zeros, n_filters=4, n_dense=8).output_shape
    (None, 10)
    """
    l_in = InputLayer(input_shape, name="input")
    net = Conv2DLayer(l_in, n_filters, (5, 5), W=init, b=init, nonlinearity=rectify, name="conv1")
    net = MaxPool2DLayer(net, (2, 2), name="pool1")
    net = Conv2DLayer(net, n_filters, (5, 5), W=init, b=init, nonlinearity=rectify, name="conv2")
    net = MaxPool2DLayer(net, (2, 2), name="pool2")
    net = DenseLayer(net, n_dense, W=init, b=init, nonlinearity=rectify, name="dense")
    return DenseLayer(net, n_classes, W=init, b=init, nonlinearity=softmax, name="out")


MODELS: dict[str, Callable[..., Layer]] = {
    "mlp": build_mlp,
    "hier-mlp": build_mlp,
    "cnn": build_cnn,
}


def default_prior(model: str) -> Any:
    """The post's priors: Normal(0, 0.1) weights, or per-layer HalfNormal scale hyperpriors
    for ``"hier-mlp"``.

    Examples
    --------
    >>> type(default_prior("hier-mlp")).__name__
    'HierarchicalGaussWeights'
    """
    from .pymc_bridge import GaussWeights, HierarchicalGaussWeights

    if model not in MODELS:
        raise ValueError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if model == "hier-mlp":
        return HierarchicalGaussWeights()
    return GaussWeights(0.1)
