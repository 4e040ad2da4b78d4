"""Vectors written slice by slice into zeros become one ``Join``, before fusion.

PyMC's ADVI step flattens every variational parameter into one vector, so the gradient
of that vector is assembled by PyTensor's gradient of ``Subtensor``: an ``Alloc`` of
zeros, then one ``IncSubtensor`` per layer parameter writing its gradient into its slice,
then once more into a ``(1, n)`` matrix of zeros (the sample axis) that the update
squeezes away. For a Bayesian MLP with 1.3 M parameters that is six passes over 5 MB
(two fills with zeros, two full copies) on a step whose elementwise work is bound by
memory. Two rewrites remove them:

- ``local_zero_slices_to_join``: a chain of ``IncSubtensor`` (set or increment) of
  constant, disjoint 1-D slices into a vector of zeros of known length becomes
  ``join(0, piece, ..., piece)``, with zeros for any gap: one copy instead of a fill and
  a copy.
- ``local_zero_index_to_expand_dims``: writing ``y`` at index ``0`` (or ``-1``) of the
  leading length-1 axes of zeros whose remaining shape is ``y``'s becomes
  ``expand_dims(y)``, a view; the following squeeze cancels it.

A third rewrite serves the same flat vectors on the way forward:
``local_unary_on_the_row`` computes a one-input elementwise function of a vector that is
also used as a ``(1, n)`` row (``softplus(rho)``, the standard deviations, which multiply
the draws' row) on the row instead, the vector's other users reading a view; fusion can
then merge it into the row's loops (one pass less over 5 MB for the MLP).

All three run under the tag ``plasagne_join_zero_slices`` after specialisation and before
elementwise fusion; :func:`plasagne.ops.fast_math.fast_math_mode` includes it for Numba.

Examples
--------
>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> from pytensor.compile.mode import get_mode
>>> a = pt.vector("a", shape=(2,)); b = pt.vector("b", shape=(3,))
>>> z = pt.zeros(6)
>>> v = pt.set_subtensor(pt.inc_subtensor(z[:2], a)[3:], b)
>>> f = pytensor.function([a, b], v, mode=get_mode("FAST_RUN").including(JOIN_SLICES_TAG))
>>> f(np.array([1.0, 2.0]), np.array([3.0, 4.0, 5.0])).tolist()
[1.0, 2.0, 0.0, 3.0, 4.0, 5.0]
"""

from __future__ import annotations

import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.graph.basic import Variable
from pytensor.graph.rewriting.basic import copy_stack_trace, in2out, node_rewriter
from pytensor.tensor.basic import get_underlying_scalar_constant_value
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.exceptions import NotScalarConstantError
from pytensor.tensor.rewriting.elemwise import local_dimshuffle_lift
from pytensor.tensor.subtensor import IncSubtensor, indices_from_subtensor

__all__ = ["JOIN_SLICES_TAG"]

JOIN_SLICES_TAG = "plasagne_join_zero_slices"


def _is_zeros(var: Variable) -> bool:
    try:
        return bool(get_underlying_scalar_constant_value(var) == 0)
    except NotScalarConstantError:
        return False


def _constant_int(var) -> int | None:
    if var is None:
        return None
    try:
        return int(get_underlying_scalar_constant_value(var))
    except (NotScalarConstantError, TypeError, ValueError):
        raise ValueError("not constant") from None


def _slice_bounds(node, length: int) -> tuple[int, int] | None:
    """``(start, stop)`` of a 1-D IncSubtensor's constant slice of unit step, else None."""
    if node.inputs[0].type.ndim != 1 or len(node.op.idx_list) != 1:
        return None
    [index] = indices_from_subtensor(node.inputs[2:], node.op.idx_list)
    if not isinstance(index, slice):
        return None
    try:
        start, stop, step = (_constant_int(v) for v in (index.start, index.stop, index.step))
    except ValueError:
        return None
    if step not in (None, 1):
        return None
    start, stop, _ = slice(start, stop).indices(length)
    return start, max(start, stop)


def _is_link(fgraph, node, length: int) -> bool:
    return isinstance(node.op, IncSubtensor) and _slice_bounds(node, length) is not None


@node_rewriter([IncSubtensor])
def local_zero_slices_to_join(fgraph, node):
    """The last IncSubtensor of a chain of disjoint constant slices into zeros -> ``join``."""
    out = node.outputs[0]
    length = out.type.shape[0] if out.type.ndim == 1 else None
    if length is None or not _is_link(fgraph, node, length):
        return None
    clients = fgraph.clients[out]
    if len(clients) == 1 and clients[0][1] == 0 and _is_link(fgraph, clients[0][0], length):
        return None  # not the last link: the chain is rewritten from its end
    pieces: list[tuple[int, int, Variable]] = []
    link = node
    while True:
        start, stop = _slice_bounds(link, length)
        piece = link.inputs[1]
        if piece.type.ndim > 1:
            return None
        if piece.type.ndim == 1 and piece.type.shape[0] != stop - start:
            return None  # unknown or broadcast length: leave it to PyTensor
        if stop > start:
            pieces.append((start, stop, piece))
        base = link.inputs[0]
        if _is_zeros(base):
            break
        owner = base.owner
        if owner is None or len(fgraph.clients[base]) != 1 or not _is_link(fgraph, owner, length):
            return None
        link = owner
    pieces.sort(key=lambda p: p[0])
    dtype = out.type.dtype
    parts: list[Variable] = []
    position = 0
    for start, stop, piece in pieces:
        if start < position:
            return None  # overlapping slices
        if start > position:
            parts.append(pt.zeros((start - position,), dtype=dtype))
        parts.append(pt.alloc(piece, stop - start) if piece.type.ndim == 0 else piece)
        position = stop
    if position < length:
        parts.append(pt.zeros((length - position,), dtype=dtype))
    parts = [p.astype(dtype) for p in parts]
    joined = parts[0] if len(parts) == 1 else pt.join(0, *parts)
    joined = pt.specify_shape(joined, (length,)) if joined.type.shape != (length,) else joined
    copy_stack_trace(out, joined)
    return [joined]


@node_rewriter([IncSubtensor])
def local_zero_index_to_expand_dims(fgraph, node):
    """``zeros[0].set(y)`` over leading length-1 axes with ``y`` the rest -> ``expand_dims(y)``."""
    x, y, *index_vars = node.inputs
    indices = indices_from_subtensor(index_vars, node.op.idx_list)
    lead = len(indices)
    if any(isinstance(index, slice) for index in indices):
        return None
    if any(s != 1 for s in x.type.shape[:lead]) or not _is_zeros(x):
        return None
    rest = x.type.shape[lead:]
    if None in rest or y.type.shape != rest:
        return None
    try:
        if any(_constant_int(index) not in (0, -1) for index in indices):
            return None
    except ValueError:
        return None
    expanded = pt.expand_dims(y.astype(x.type.dtype), tuple(range(lead)))
    copy_stack_trace(node.outputs[0], expanded)
    return [expanded]


@node_rewriter([Elemwise])
def local_unary_on_the_row(fgraph, node):
    """``f(x)`` of a vector also used as a ``(1, n)`` row -> ``f(x[None])[0]``: computed on
    the row, the loop can fuse with the row's other loops (PyMC's draws have the row's
    shape; the vector's other users read a view)."""
    if len(node.inputs) != 1 or len(node.outputs) != 1 or node.outputs[0].type.ndim != 1:
        return None
    out = node.outputs[0]
    if not any(
        isinstance(client.op, DimShuffle) and client.op.new_order == ("x", 0)
        for client, _ in fgraph.clients[out]
    ):
        return None
    on_row = node.op(node.inputs[0].dimshuffle("x", 0))
    vector = on_row.dimshuffle(1)
    copy_stack_trace(out, [on_row, vector])
    return [vector]


@node_rewriter([DimShuffle])
def local_merge_dimshuffle_pair(fgraph, node):
    """A DimShuffle of a DimShuffle -> one (or none), PyTensor's ``local_dimshuffle_lift``."""
    if node.inputs[0].owner is None or not isinstance(node.inputs[0].owner.op, DimShuffle):
        return None
    return local_dimshuffle_lift.transform(fgraph, node)


# after specialisation, before elementwise fusion (49)
optdb.register(
    "plasagne_join_zero_slices_before_fusion",
    in2out(
        local_zero_slices_to_join,
        local_zero_index_to_expand_dims,
        local_unary_on_the_row,
        local_merge_dimshuffle_pair,
    ),
    JOIN_SLICES_TAG,
    position=48.7,
)
