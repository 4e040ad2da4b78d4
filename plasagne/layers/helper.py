"""Functions that walk a network graph: outputs, shapes, parameters and their values."""

from __future__ import annotations

import os
from collections import OrderedDict, deque
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from ..utils import collect_shared_vars, unique
from .base import Layer, MergeLayer
from .input import InputLayer

__all__ = [
    "get_all_layers",
    "get_output",
    "get_output_shape",
    "get_all_params",
    "count_params",
    "get_all_param_values",
    "set_all_param_values",
    "save_param_values",
    "load_param_values",
]


def _as_list(layer_or_layers: Any) -> tuple[list, bool]:
    if isinstance(layer_or_layers, (list, tuple)):
        return list(layer_or_layers), True
    return [layer_or_layers], False


def _incoming(layer: Any) -> list:
    if isinstance(layer, MergeLayer):
        return [lay for lay in layer.input_layers if lay is not None]
    if isinstance(layer, Layer) and layer.input_layer is not None:
        return [layer.input_layer]
    return []


def get_all_layers(layer: Any, treat_as_input: list | None = None) -> list:
    """Return every layer below (and including) ``layer``, in topological order.

    Parameters
    ----------
    layer : Layer or list of Layer
        The output layer(s) of the network.
    treat_as_input : list of Layer, optional
        Layers whose inputs are not followed.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l_in = InputLayer((None, 3))
    >>> l_out = DenseLayer(l_in, 2)
    >>> get_all_layers(l_out) == [l_in, l_out]
    True
    """
    layers, _ = _as_list(layer)
    stop = set(treat_as_input or [])
    done: set = set()
    result: list = []
    # Iterative depth-first post-order traversal, so deep networks do not hit
    # the recursion limit.
    stack = deque((lay, False) for lay in reversed(layers))
    while stack:
        current, expanded = stack.pop()
        if current in done:
            continue
        if expanded:
            done.add(current)
            result.append(current)
            continue
        stack.append((current, True))
        if current not in stop:
            for child in reversed(_incoming(current)):
                if child not in done:
                    stack.append((child, False))
    return result


def get_output(layer_or_layers: Any, inputs: Any = None, **kwargs: Any) -> Any:
    """Compute the symbolic output of a network.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
        The layer(s) whose output to build.
    inputs : None, expression, array or dict, optional
        ``None`` uses each :class:`InputLayer`'s own variable. A single
        expression (or array) replaces the single input layer. A dict maps
        layers (of any kind) to expressions standing in for their output.
    **kwargs
        Passed to every layer's ``get_output_for`` (e.g. ``deterministic=True``).

    Returns
    -------
    expression or list of expressions

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l_out = DenseLayer(InputLayer((None, 3)), 2)
    >>> x = pt.matrix("x")
    >>> get_output(l_out, x).ndim
    2
    """
    from .input import InputLayer

    layers, as_list = _as_list(layer_or_layers)
    treat_as_input = list(inputs.keys()) if isinstance(inputs, dict) else []
    all_layers = get_all_layers(layers, treat_as_input)

    outputs: dict = {}
    for lay in all_layers:
        if isinstance(lay, InputLayer) and lay not in treat_as_input:
            outputs[lay] = lay.input_var
    if isinstance(inputs, dict):
        for lay, expr in inputs.items():
            outputs[lay] = pt.as_tensor_variable(expr)
    elif inputs is not None:
        input_layers = [lay for lay in all_layers if isinstance(lay, InputLayer)]
        if len(input_layers) > 1:
            raise ValueError(
                "get_output was given a single input expression, but the network has "
                f"{len(input_layers)} input layers; pass a dict mapping each InputLayer "
                "to its expression"
            )
        for lay in input_layers:
            outputs[lay] = pt.as_tensor_variable(inputs)

    for lay, expr in list(outputs.items()):
        if isinstance(lay, InputLayer) and isinstance(expr, Variable):
            if expr.ndim != len(lay.shape):
                raise ValueError(
                    f"{lay._label()}: expected an input with {len(lay.shape)} dimensions "
                    f"(shape {lay.shape}), got {expr.ndim} dimensions ({expr.type})"
                )

    accepted: set[str] = set()
    for lay in all_layers:
        if lay in outputs:
            continue
        accepted.update(getattr(lay, "get_output_kwargs", []))
        try:
            if isinstance(lay, MergeLayer):
                layer_inputs = [outputs[inc] for inc in lay.input_layers]
            else:
                layer_inputs = outputs[lay.input_layer]
        except KeyError:
            raise ValueError(
                f"get_output() was called without giving an input expression for the free-floating "
                f"input shape of {lay._label()}; pass it in the `inputs` dict"
            ) from None
        outputs[lay] = lay.get_output_for(layer_inputs, **kwargs)

    unused = set(kwargs) - accepted - {"deterministic"}
    if unused:
        import warnings

        warnings.warn(
            f"get_output() was called with unused keyword arguments {sorted(unused)}; no layer "
            "in the network uses them",
            stacklevel=2,
        )
    results = [outputs[lay] for lay in layers]
    return results if as_list else results[0]


def get_output_shape(layer_or_layers: Any, input_shapes: Any = None) -> Any:
    """Compute the output shape of a network, optionally for other input shapes.

    Parameters
    ----------
    layer_or_layers : Layer or list of Layer
    input_shapes : None, tuple or dict, optional
        Like ``inputs`` in :func:`get_output`, but with shape tuples.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l_out = DenseLayer(InputLayer((None, 3)), 2)
    >>> get_output_shape(l_out, (10, 3))
    (10, 2)
    """
    layers, as_list = _as_list(layer_or_layers)
    if input_shapes is None or input_shapes == {}:
        shapes = [lay.output_shape for lay in layers]
        return shapes if as_list else shapes[0]

    treat_as_input = list(input_shapes.keys()) if isinstance(input_shapes, dict) else []
    all_layers = get_all_layers(layers, treat_as_input)
    known: dict = {}
    if isinstance(input_shapes, dict):
        known.update({lay: tuple(s) for lay, s in input_shapes.items()})
    else:
        for lay in all_layers:
            if isinstance(lay, InputLayer):
                known[lay] = tuple(input_shapes)
    for lay in all_layers:
        if lay in known:
            continue
        if isinstance(lay, InputLayer):
            known[lay] = lay.shape
        elif isinstance(lay, MergeLayer):
            known[lay] = lay.get_output_shape_for([known[inc] for inc in lay.input_layers])
        else:
            known[lay] = lay.get_output_shape_for(known[lay.input_layer])
    shapes = [known[lay] for lay in layers]
    return shapes if as_list else shapes[0]


def get_all_params(layer: Any, unwrap_shared: bool = True, **tags: bool) -> list:
    """Return the parameters of every layer in the network, each once.

    With ``unwrap_shared=True`` parameters given as expressions contribute the
    shared variables they depend on, so a tied weight or an ``exp(log_w)``
    parameter lists ``log_w`` once.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l1 = DenseLayer(InputLayer((None, 3)), 4, name="h")
    >>> l2 = DenseLayer(l1, 2, name="out")
    >>> [p.name for p in get_all_params(l2, trainable=True)]
    ['h.W', 'h.b', 'out.W', 'out.b']
    """
    layers = get_all_layers(layer)
    params = unique(p for lay in layers for p in lay.get_params(unwrap_shared=False, **tags))
    if unwrap_shared:
        return unique(v for p in params for v in collect_shared_vars(p))
    return params


def count_params(layer: Any, **tags: bool) -> int:
    """Count the scalar values in all (shared-variable) parameters of a network.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> count_params(DenseLayer(InputLayer((None, 3)), 2))
    8
    """
    params = get_all_params(layer, **tags)
    return int(sum(np.prod(p.get_value(borrow=True).shape) for p in params))


def get_all_param_values(layer: Any, **tags: bool) -> list[np.ndarray]:
    """Return copies of the values of all shared-variable parameters of a network.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> [v.shape for v in get_all_param_values(DenseLayer(InputLayer((None, 3)), 2))]
    [(3, 2), (2,)]
    """
    return [p.get_value() for p in get_all_params(layer, **tags)]


def set_all_param_values(layer: Any, values: list, **tags: bool) -> None:
    """Set the values of all shared-variable parameters, checking count and shapes.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l = DenseLayer(InputLayer((None, 3)), 2)
    >>> set_all_param_values(l, [np.zeros((3, 2)), np.ones(2)])
    >>> l.b.get_value().tolist()
    [1.0, 1.0]
    """
    params = get_all_params(layer, **tags)
    if len(params) != len(values):
        raise ValueError(f"mismatch: got {len(values)} values to set {len(params)} parameters")
    for p, v in zip(params, values):
        current = p.get_value(borrow=True)
        if current.shape != np.shape(v):
            raise ValueError(
                f"mismatch: parameter '{p.name}' has shape {current.shape} but value to set "
                f"has shape {np.shape(v)}"
            )
        p.set_value(np.asarray(v, dtype=current.dtype))


def _param_keys(params: list) -> list[str]:
    return [f"{i:04d}:{p.name or 'param'}" for i, p in enumerate(params)]


def save_param_values(layer: Any, path: str | os.PathLike, **tags: bool) -> None:
    """Save all parameter values of a network to an ``.npz`` file (no pickle).

    The values load back bit-identical with :func:`load_param_values`.

    Examples
    --------
    >>> import tempfile, os
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l = DenseLayer(InputLayer((None, 3)), 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "params.npz")
    >>> save_param_values(l, path)
    """
    params = get_all_params(layer, **tags)
    arrays = OrderedDict(zip(_param_keys(params), (p.get_value() for p in params)))
    tmp = f"{os.fspath(path)}.tmp.npz"
    np.savez(tmp, **arrays)
    os.replace(tmp, path)


def load_param_values(layer: Any, path: str | os.PathLike, **tags: bool) -> None:
    """Load values written by :func:`save_param_values` into a network.

    The number, order, names and shapes of the parameters must match.

    Examples
    --------
    >>> import tempfile, os
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> l = DenseLayer(InputLayer((None, 3)), 2)
    >>> path = os.path.join(tempfile.mkdtemp(), "params.npz")
    >>> save_param_values(l, path)
    >>> load_param_values(l, path)
    """
    params = get_all_params(layer, **tags)
    with np.load(path, allow_pickle=False) as data:
        keys = sorted(data.files)
        expected = _param_keys(params)
        if len(keys) != len(expected):
            raise ValueError(
                f"{os.fspath(path)} holds {len(keys)} parameters, the network has {len(expected)}"
            )
        values = []
        for key, want in zip(keys, expected):
            if key.split(":", 1)[1] != want.split(":", 1)[1]:
                raise ValueError(
                    f"{os.fspath(path)}: parameter {key!r} does not match the network's {want!r}"
                )
            values.append(data[key])
    set_all_param_values(layer, values, **tags)
