"""DimShuffle lowered as one Numba intrinsic: the view is built in its caller's code.

PyTensor lowers each ``DimShuffle`` (transpose, expand or drop length-one axes) to an
``njit`` function that builds the new shape and strides and makes the view through an
overload of its own, so every DimShuffle of a graph is three small functions Numba
compiles one by one (the function, the view's overload, and PyTensor's cached wrapper of
the node). The Bayesian CNN's step holds 41 DimShuffles of 19 kinds; their functions took
3.7 s of its cold compile (Numba's compile events, 2026-12-06).

While :class:`plasagne.ops.numba_linker.DirectNumbaLinker` converts a graph
(:func:`plasagne.ops.lowering_scope.plasagne_lowerings`), a DimShuffle of an input with
at least one dimension to an output with at least one is lowered to an intrinsic whose
code goes straight into the node's wrapper: the view's shape and strides taken from the
input's (a new axis has length one and stride zero), the same data, owner and layout
PyTensor's lowering gives it (C or F kept when the order of the other axes is, else
A), and a ``ValueError`` when a dropped axis does not have length one. Only the
wrapper is compiled. Other DimShuffles keep PyTensor's lowering.

Examples
--------
>>> view_layout("C", (1, 0), frozenset())
'F'
>>> view_layout("C", (0, -1, 1), frozenset())
'C'
"""

from __future__ import annotations

from functools import cache
from hashlib import sha256
from typing import Any

from .lowering_scope import register_lowering

__all__ = ["register_numba", "view_layout"]

# changes the cache key of every DimShuffle lowered here
_KERNEL_VERSION = 1

_SQUEEZE_ERROR = "DimShuffle: Attempting to squeeze axes with size not equal to one"


def view_layout(in_layout: str, new_order: tuple[int, ...], unit_axes: frozenset[int]) -> str:
    """Numba's layout of the view: ``in_layout`` (C or F) when the kept axes of length
    other than one keep their order, the other one when they are reversed, else A.

    Parameters
    ----------
    in_layout : str
        The input's Numba layout (``"C"``, ``"F"`` or ``"A"``).
    new_order : tuple of int
        The output's axes as input axes, ``-1`` for a new axis.
    unit_axes : frozenset of int
        Input axes known to have length one (their strides do not matter).

    Returns
    -------
    str
        ``"C"``, ``"F"`` or ``"A"``.

    Examples
    --------
    >>> view_layout("C", (2, 0, 1), frozenset())
    'A'
    >>> view_layout("C", (2, 0, 1), frozenset({0, 1}))
    'C'
    """
    if in_layout not in ("C", "F"):
        return "A"
    kept = [axis for axis in new_order if axis != -1 and axis not in unit_axes]
    if kept == sorted(kept):
        return in_layout
    if kept == sorted(kept, reverse=True):
        return "F" if in_layout == "C" else "C"
    return "A"


@cache
def _view_intrinsic(
    new_order: tuple[int, ...], drop: tuple[int, ...], unit_axes: frozenset[int]
) -> Any:
    """The intrinsic making the view for one DimShuffle (one per distinct settings)."""
    from numba.core import cgutils, types
    from numba.core.imputils import impl_ret_borrowed
    from numba.extending import intrinsic

    @intrinsic
    def dimshuffle_view(typingctx: Any, x: Any) -> Any:
        if not isinstance(x, types.Array) or x.ndim == 0:
            return None
        out_type = types.Array(x.dtype, len(new_order), view_layout(x.layout, new_order, unit_axes))

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            in_type = signature.args[0]
            array = context.make_array(in_type)(context, builder, args[0])
            shape = cgutils.unpack_tuple(builder, array.shape, in_type.ndim)
            strides = cgutils.unpack_tuple(builder, array.strides, in_type.ndim)
            intp = context.get_value_type(types.intp)
            one, zero = intp(1), intp(0)
            for axis in drop:
                wrong = builder.icmp_signed("!=", shape[axis], one)
                with builder.if_then(wrong, likely=False):
                    context.call_conv.return_user_exc(builder, ValueError, (_SQUEEZE_ERROR,))
            view = context.make_array(out_type)(context, builder)
            context.populate_array(
                view,
                data=array.data,
                shape=cgutils.pack_array(
                    builder, [one if a == -1 else shape[a] for a in new_order], ty=intp
                ),
                strides=cgutils.pack_array(
                    builder, [zero if a == -1 else strides[a] for a in new_order], ty=intp
                ),
                itemsize=array.itemsize,
                meminfo=array.meminfo,
                parent=array.parent,
            )
            return impl_ret_borrowed(context, builder, out_type, view._getvalue())

        return out_type(x), codegen

    return dimshuffle_view


def _lower(op: Any, node: Any) -> tuple[Any, str]:
    """The intrinsic for the DimShuffle ``op`` of ``node``, and its cache key."""
    new_order = tuple(op._new_order)
    drop = tuple(op.drop)
    unit_axes = frozenset(
        axis for axis, length in enumerate(node.inputs[0].type.shape) if length == 1
    )
    settings = (new_order, drop, tuple(sorted(unit_axes)))
    key = sha256(str(("plasagne-dimshuffle-view", _KERNEL_VERSION, settings)).encode())
    return _view_intrinsic(new_order, drop, unit_axes), key.hexdigest()


def _lower_node(op: Any, node: Any) -> tuple[Any, str] | None:
    """The intrinsic for a DimShuffle from and to at least one dimension, or None."""
    if op.input_ndim > 0 and len(op._new_order) > 0:
        return _lower(op, node)
    return None


def register_numba() -> None:
    """Register the intrinsic lowering of DimShuffle with PyTensor's Numba dispatch (once;
    it applies only inside :func:`plasagne.ops.lowering_scope.plasagne_lowerings`).

    Examples
    --------
    >>> from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    >>> from pytensor.tensor.elemwise import DimShuffle
    >>> register_numba()
    >>> numba_funcify_and_cache_key.dispatch(DimShuffle).__name__
    'lower_under_plasagne_linker'
    """
    from pytensor.tensor.elemwise import DimShuffle

    register_lowering(DimShuffle, _lower_node)
