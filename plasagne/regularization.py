"""Weight penalties: L1/L2 and helpers that apply them to layers and whole networks.

As in Lasagne, penalties apply to the shared variables a network's parameters are made of
(what ``get_all_params`` returns): a weight given as ``exp(log_w)`` is penalised on
``log_w``, and a tied weight (``encoder.W.T``) counts once. To penalise an expression as the
layer uses it, pass it to :func:`apply_penalty` directly.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import pytensor.tensor as pt

from .layers.helper import get_all_params

__all__ = [
    "l1",
    "l2",
    "apply_penalty",
    "regularize_layer_params",
    "regularize_layer_params_weighted",
    "regularize_network_params",
]


def l1(x: Any) -> Any:
    """Sum of absolute values.

    Examples
    --------
    >>> float(l1(pt.constant(np.array([-1.0, 2.0]))).eval())
    3.0
    """
    return pt.sum(pt.abs(x))


def l2(x: Any) -> Any:
    """Sum of squares (no factor 1/2, as in Lasagne).

    Examples
    --------
    >>> float(l2(pt.constant(np.array([-1.0, 2.0]))).eval())
    5.0
    """
    return pt.sum(x**2)


def apply_penalty(tensor_or_tensors: Any, penalty: Callable, **kwargs: Any) -> Any:
    """Sum ``penalty(t, **kwargs)`` over one tensor or a list of tensors.

    Examples
    --------
    >>> float(apply_penalty([pt.constant(1.0), pt.constant(2.0)], l2).eval())
    5.0
    """
    if isinstance(tensor_or_tensors, (list, tuple)):
        return sum(penalty(x, **kwargs) for x in tensor_or_tensors)
    return penalty(tensor_or_tensors, **kwargs)


def regularize_layer_params(
    layer: Any, penalty: Callable, tags: dict | None = None, **kwargs: Any
) -> Any:
    """Penalty over the (tagged) parameters of one layer or a list of layers.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l = DenseLayer(InputLayer((None, 2)), 2, W=np.ones((2, 2)))
    >>> float(regularize_layer_params(l, l2).eval())
    4.0
    """
    tags = {"regularizable": True} if tags is None else tags
    layers = layer if isinstance(layer, (list, tuple)) else [layer]
    params = [p for lay in layers for p in lay.get_params(**tags)]
    return apply_penalty(params, penalty, **kwargs)


def regularize_layer_params_weighted(
    layers: dict, penalty: Callable, tags: dict | None = None, **kwargs: Any
) -> Any:
    """Weighted sum of per-layer penalties, ``{layer: coefficient}``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l = DenseLayer(InputLayer((None, 2)), 2, W=np.ones((2, 2)))
    >>> float(regularize_layer_params_weighted({l: 0.5}, l2).eval())
    2.0
    """
    return sum(
        coeff * regularize_layer_params(layer, penalty, tags, **kwargs)
        for layer, coeff in layers.items()
    )


def regularize_network_params(
    layer: Any, penalty: Callable, tags: dict | None = None, **kwargs: Any
) -> Any:
    """Penalty over the (tagged) parameters of every layer in a network, each once.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l1_ = DenseLayer(InputLayer((None, 2)), 2, W=np.ones((2, 2)))
    >>> l2_ = DenseLayer(l1_, 1, W=np.ones((2, 1)))
    >>> float(regularize_network_params(l2_, l1).eval())
    6.0
    """
    tags = {"regularizable": True} if tags is None else tags
    return apply_penalty(get_all_params(layer, **tags), penalty, **kwargs)
