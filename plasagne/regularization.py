"""Weight penalties: L1/L2 and helpers that apply them to layers and whole networks.

As in Lasagne, the layer and network helpers penalise what ``get_params`` /
``get_all_params`` return with their default ``unwrap_shared=True``: the shared
variables the (tagged) parameters are made of. A weight given as ``W=exp(log_w)`` is
penalised on ``log_w``; a tied weight (``W=encoder.W.T``) counts once, on the encoder's
shared variable; a parameter that is a PyMC random variable with no shared variable in
it contributes nothing (its prior already regularises it). To penalise an expression as
the layer uses it, pass it to :func:`apply_penalty` directly, e.g.
``apply_penalty(layer.W, l2)``.

Examples
--------
>>> from plasagne.layers import InputLayer, DenseLayer
>>> net = DenseLayer(InputLayer((None, 2)), 3, W=np.full((2, 3), 0.5))
>>> float(regularize_network_params(net, l2).eval())  # six weights 0.5, bias excluded
1.5
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import Any

import pytensor
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .layers.base import Layer
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
    """L1 penalty: the sum of absolute values of ``x``.

    Examples
    --------
    >>> float(l1(np.array([-1.0, 2.0])).eval())
    3.0
    """
    return pt.sum(pt.abs(pt.as_tensor_variable(x)))


def l2(x: Any) -> Any:
    """Squared L2 penalty: the sum of squares of ``x`` (no factor 1/2, as in Lasagne).

    Examples
    --------
    >>> float(l2(np.array([-1.0, 2.0])).eval())
    5.0
    """
    return pt.sum(pt.sqr(pt.as_tensor_variable(x)))


def apply_penalty(tensor_or_tensors: Any, penalty: Callable, **kwargs: Any) -> Any:
    """Apply ``penalty(x, **kwargs)`` to one tensor, or sum it over several.

    Parameters
    ----------
    tensor_or_tensors : expression or iterable of expressions
    penalty : callable
        Maps one expression to a scalar expression, e.g. :func:`l1` or :func:`l2`.
    **kwargs
        Passed on to ``penalty``.

    Returns
    -------
    scalar expression
        An empty list gives the constant 0 (in floatX).

    Examples
    --------
    >>> float(apply_penalty([np.array([1.0]), np.array([2.0, 2.0])], l2).eval())
    9.0
    >>> float(apply_penalty(pt.constant(3.0), l1).eval())
    3.0
    """
    if not callable(penalty):
        raise TypeError(f"apply_penalty: penalty must be callable (e.g. l2), got {penalty!r}")
    if isinstance(tensor_or_tensors, Variable) or not hasattr(tensor_or_tensors, "__iter__"):
        return penalty(tensor_or_tensors, **kwargs)
    if hasattr(tensor_or_tensors, "ndim") and hasattr(tensor_or_tensors, "dtype"):
        return penalty(tensor_or_tensors, **kwargs)  # a numpy array is one tensor
    return _sum([penalty(x, **kwargs) for x in tensor_or_tensors])


def _sum(terms: list) -> Any:
    # Start from the first term, not from 0, so float32 penalties stay float32.
    if not terms:
        return pt.constant(0, dtype=pytensor.config.floatX)
    total = pt.as_tensor_variable(terms[0])
    for term in terms[1:]:
        total = total + term
    return total


def _layer_params(layer: Any, tags: Mapping[str, bool]) -> list:
    if not isinstance(layer, Layer):
        raise TypeError(f"expected a Layer, got {type(layer).__name__} {layer!r}")
    return layer.get_params(**tags)


def regularize_layer_params(
    layer: Any,
    penalty: Callable,
    tags: Mapping[str, bool] = {"regularizable": True},  # noqa: B006 (read only, as Lasagne)
    **kwargs: Any,
) -> Any:
    """Penalty summed over the tagged parameters of one layer or a list of layers.

    Parameters
    ----------
    layer : Layer or list of Layer
    penalty : callable
    tags : dict
        Tag filter passed to ``get_params`` (default: regularizable parameters, so
        weights but not biases).
    **kwargs
        Passed on to ``penalty``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> layer = DenseLayer(InputLayer((None, 2)), 2, W=np.ones((2, 2)))
    >>> float(regularize_layer_params(layer, l2).eval())
    4.0
    """
    layers = [layer] if isinstance(layer, Layer) else list(layer)
    params = [p for lay in layers for p in _layer_params(lay, tags)]
    return apply_penalty(params, penalty, **kwargs)


def regularize_layer_params_weighted(
    layers: Mapping[Any, Any],
    penalty: Callable,
    tags: Mapping[str, bool] = {"regularizable": True},  # noqa: B006 (read only, as Lasagne)
    **kwargs: Any,
) -> Any:
    """Sum of per-layer penalties, each multiplied by its coefficient.

    Parameters
    ----------
    layers : dict
        ``{layer: coefficient}``; coefficients may be numbers or symbolic scalars.
    penalty : callable
    tags : dict
        Tag filter passed to each layer's ``get_params``.
    **kwargs
        Passed on to ``penalty``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> layer = DenseLayer(InputLayer((None, 2)), 2, W=np.ones((2, 2)))
    >>> float(regularize_layer_params_weighted({layer: 0.5}, l2).eval())
    2.0
    """
    if not isinstance(layers, Mapping):
        raise TypeError(
            "regularize_layer_params_weighted: layers must be a dict {layer: coefficient}, "
            f"got {type(layers).__name__}"
        )
    return _sum(
        [
            coeff * apply_penalty(_layer_params(layer, tags), penalty, **kwargs)
            for layer, coeff in layers.items()
        ]
    )


def regularize_network_params(
    layer: Any,
    penalty: Callable,
    tags: Mapping[str, bool] = {"regularizable": True},  # noqa: B006 (read only, as Lasagne)
    **kwargs: Any,
) -> Any:
    """Penalty summed over the tagged parameters of every layer below ``layer``, each once.

    Parameters
    ----------
    layer : Layer or list of Layer
        The output layer(s) of the network.
    penalty : callable
    tags : dict
        Tag filter passed to ``get_all_params``.
    **kwargs
        Passed on to ``penalty``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> hidden = DenseLayer(InputLayer((None, 2)), 2, W=np.ones((2, 2)))
    >>> out = DenseLayer(hidden, 1, W=np.ones((2, 1)))
    >>> float(regularize_network_params(out, l1).eval())
    6.0
    """
    return apply_penalty(get_all_params(layer, **tags), penalty, **kwargs)
