"""Where plasagne's own Numba lowerings of PyTensor Ops apply: inside our linker only.

Some PyTensor Ops get a lowering on Numba that is quicker to compile than PyTensor's
(:mod:`plasagne.ops.simple_sum`, :mod:`plasagne.ops.dimshuffle_view`). The graph keeps
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

import threading
from collections.abc import Iterator
from contextlib import contextmanager

__all__ = ["lowering_active", "plasagne_lowerings"]

_state = threading.local()


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
    depth = getattr(_state, "depth", 0)
    _state.depth = depth + 1
    try:
        yield
    finally:
        _state.depth = depth


def lowering_active() -> bool:
    """Whether this thread is inside :func:`plasagne_lowerings`.

    Examples
    --------
    >>> lowering_active()
    False
    """
    return getattr(_state, "depth", 0) > 0
