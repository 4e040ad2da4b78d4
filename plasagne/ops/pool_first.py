"""Max pooling moved in front of the activation it pools: ``max(f(z + b)) = f(max(z) + b)``.

A convolution layer's output is ``f(z + b)``: a non-decreasing nonlinearity ``f``
(``rectify``, ``tanh``, ``sigmoid``, ``softplus``, ``exp``, the identity) of the correlation
``z`` plus a bias that is the same at every position of a channel. The maximum over a
window commutes with both: ``f`` keeps the order of the window's values and the bias is one
number per window. :func:`pool_first` builds ``f(maxpool(z) + b)`` instead of
``maxpool(f(z + b))``, so the bias and the nonlinearity run on the pooled map, a quarter of
the size for 2 x 2 windows, in the forward pass and in the gradient; the gradient of the
bias sums the pooled map too. The values are the same (the maximum of the same numbers);
the gradient is the same except where ``f`` is flat over tied window values (``rectify``
below zero, ``tanh`` saturated in float32), where either position's gradient is zero.

The layers see nothing of this: :func:`plasagne.ops.pool.pool_nd` calls it for max pooling.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.scalar import math as ps_math
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.exceptions import NotScalarConstantError

__all__ = ["pool_first"]

# scalar functions of one argument that never decrease
_NON_DECREASING_UNARY = (ps.Tanh, ps.Exp, ps.Identity, ps_math.Sigmoid, ps_math.Softplus)


def pool_first(x: Any, n_pooled: int, pool: Callable[[Any], Any]) -> Any:
    """``pool(x)`` for a max pool, with the pool moved in front of what it commutes with.

    Parameters
    ----------
    x : TensorVariable
        The pooled expression.
    n_pooled : int
        How many trailing axes ``pool`` pools.
    pool : callable
        The max pool, a function of one tensor.

    Returns
    -------
    TensorVariable
        ``pool(x)``, computed as ``f(pool(z))`` when ``x = f(z)`` for a chain ``f`` of
        non-decreasing elementwise steps whose other operands are constant over the
        pooled axes (broadcastable there): adding or subtracting such a term, taking the
        maximum or minimum with it, multiplying or dividing by a positive constant,
        and ``tanh``, ``sigmoid``, ``softplus``, ``exp``.

    Examples
    --------
    >>> z = pt.tensor4("z")
    >>> b = pt.vector("b")
    >>> x = pt.maximum(z + b.dimshuffle("x", 0, "x", "x"), 0.0)
    >>> out = pool_first(x, 2, lambda v: v[:, :, ::2, ::2])
    >>> type(out.owner.op.scalar_op).__name__  # the maximum with zero now comes last
    'Maximum'
    """
    steps = []
    core = x
    while (peeled := _peel(core, n_pooled)) is not None:
        core, rebuild = peeled
        steps.append(rebuild)
    out = pool(core)
    for rebuild in reversed(steps):
        out = rebuild(out)
    return out


def _window_constant(v: Any, n_pooled: int) -> bool:
    return all(v.type.broadcastable[-n_pooled:])


def _positive_constant(v: Any) -> bool:
    """A constant above zero (zero would turn infinities into NaN on one side only)."""
    try:
        return bool(np.all(pt.get_underlying_scalar_constant_value(v) > 0))
    except NotScalarConstantError:
        return False


def _non_decreasing_in(scalar_op: Any, k: int, inputs: list) -> bool:
    """Whether ``scalar_op`` never decreases in input ``k`` (the others held fixed)."""
    if isinstance(scalar_op, _NON_DECREASING_UNARY):
        return True
    if isinstance(scalar_op, ps.Add | ps.ScalarMaximum | ps.ScalarMinimum):
        return True
    if isinstance(scalar_op, ps.Sub):
        return k == 0
    others = [v for i, v in enumerate(inputs) if i != k]
    if isinstance(scalar_op, ps.Mul):
        return all(_positive_constant(v) for v in others)
    if isinstance(scalar_op, ps.TrueDiv):
        return k == 0 and _positive_constant(inputs[1])
    return False


def _peel(v: Any, n_pooled: int) -> tuple[Any, Callable[[Any], Any]] | None:
    """``(z, rebuild)`` with ``v = rebuild(z)`` and ``pool(v) = rebuild(pool(z))``, or None."""
    node = v.owner
    if node is None or not isinstance(node.op, Elemwise) or len(node.outputs) != 1:
        return None
    if not v.dtype.startswith("float") or v.ndim < n_pooled:
        return None
    varying = [i for i, inp in enumerate(node.inputs) if not _window_constant(inp, n_pooled)]
    if len(varying) != 1:
        return None
    (k,) = varying
    core = node.inputs[k]
    if core.dtype != v.dtype or core.ndim != v.ndim:
        return None
    if not _non_decreasing_in(node.op.scalar_op, k, node.inputs):
        return None
    operands = list(node.inputs)

    def rebuild(pooled: Any) -> Any:
        return node.op(*operands[:k], pooled, *operands[k + 1 :])

    return core, rebuild
