"""Where plasagne's own Numba lowerings of PyTensor Ops apply: inside our linker only.

Some PyTensor Ops get a lowering on Numba that is quicker to compile than PyTensor's
(:mod:`plasagne.ops.simple_sum`, :mod:`plasagne.ops.dimshuffle_view`,
:mod:`plasagne.ops.blas_dot`), registered with :func:`register_lowering`. The graph keeps
PyTensor's Ops; only their Numba code differs, and only while
:class:`plasagne.ops.numba_linker.DirectNumbaLinker` converts a graph, inside
:func:`plasagne_lowerings`. PyTensor's own linker, and any code outside the block, keep
PyTensor's lowering.

Examples
--------
>>> with plasagne_lowerings():
...     lowering_active()
True
>>> lowering_active()
False
"""

from __future__ import annotations

from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

from .thread_switch import ThreadSwitch

__all__ = ["lowering_active", "plasagne_lowerings", "register_lowering"]

_switch = ThreadSwitch()
# Op classes given a plasagne lowering (each registered once per process)
_registered: set[type] = set()


@contextmanager
def plasagne_lowerings() -> Iterator[None]:
    """Ops Numba-funcified in this block (in this thread) get plasagne's lowerings.

    Examples
    --------
    >>> with plasagne_lowerings():
    ...     with plasagne_lowerings():
    ...         pass
    ...     lowering_active()
    True
    """
    with _switch.on():
        yield


def lowering_active() -> bool:
    """Whether this thread is inside :func:`plasagne_lowerings`.

    Examples
    --------
    >>> lowering_active()
    False
    """
    return _switch.active()


def register_lowering(op_type: type, lower: Callable[[Any, Any], tuple | None]) -> None:
    """Give ``op_type`` plasagne's lowering ``lower`` in PyTensor's Numba dispatch (once).

    Inside :func:`plasagne_lowerings`, ``lower(op, node)`` returns the ``(function,
    cache_key)`` PyTensor's dispatch expects, or None to keep PyTensor's lowering of that
    node; outside, PyTensor's lowering is used.

    Parameters
    ----------
    op_type : type
        The Op class (its subclasses too, unless they have lowerings of their own).
    lower : callable
        ``lower(op, node) -> (function, key) or None``.

    Examples
    --------
    >>> from pytensor.graph.op import Op
    >>> from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    >>> class Twice(Op):
    ...     __props__ = ()
    >>> register_lowering(Twice, lambda op, node: None)  # always PyTensor's, here
    >>> numba_funcify_and_cache_key.dispatch(Twice).__name__
    'lower_under_plasagne_linker'
    """
    from pytensor.link.numba.dispatch.basic import (
        numba_funcify_and_cache_key,
        register_funcify_and_cache_key,
    )

    if op_type in _registered:
        return
    pytensor_lowering = numba_funcify_and_cache_key.dispatch(op_type)

    @register_funcify_and_cache_key(op_type)
    def lower_under_plasagne_linker(op: Any, node: Any, **kwargs: Any) -> tuple:
        if lowering_active():
            lowered = lower(op, node)
            if lowered is not None:
                return lowered
        return pytensor_lowering(op, node=node, **kwargs)

    _registered.add(op_type)
