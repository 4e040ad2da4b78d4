"""Keep freed memory in the process, so per-step buffers are not re-faulted from the kernel.

A compiled training step allocates and frees the same large intermediates every call: a
convolutional network's patch matrices and their gradients are tens of megabytes each.
glibc's ``malloc`` serves blocks above its mmap threshold (at most 32 MiB) with fresh
``mmap`` calls and returns them with ``munmap``, and it trims freed memory at the top of
the heap; either way the next step touches new pages, and the kernel zeroes every one of
them on the first touch. For the 2016 post's CNN at batch 500 that page-fault work took
40% of each ADVI step on this project's 2-core machine (330 ms per step, 187 ms without).

:func:`reuse_freed_memory` turns both off for the rest of the process (``mallopt``:
``M_MMAP_MAX = 0``, ``M_TRIM_THRESHOLD`` as large as it goes), so freed blocks stay in the
heap and are reused. The price: the process keeps its peak heap until it exits.
:func:`plasagne.pymc_bridge.fit` and :class:`plasagne.pymc_bridge.PosteriorPredictive`
call it unless given ``reuse_memory=False``. On a C library without ``mallopt`` (macOS,
musl) it does nothing and returns False.
"""

from __future__ import annotations

import ctypes
import ctypes.util

__all__ = ["reuse_freed_memory"]

_M_TRIM_THRESHOLD = -1
_M_MMAP_MAX = -4
_state: dict[str, bool] = {}


def reuse_freed_memory() -> bool:
    """Make glibc keep freed memory for reuse instead of returning it to the kernel.

    Process-wide and idempotent; see the module's description for why and what it costs.

    Returns
    -------
    bool
        True if the C library accepted the settings (glibc), False where it has no
        ``mallopt``.

    Examples
    --------
    >>> import sys
    >>> reuse_freed_memory() == sys.platform.startswith("linux")
    True
    """
    if "applied" not in _state:
        _state["applied"] = _apply()
    return _state["applied"]


def _apply() -> bool:
    try:
        libc = ctypes.CDLL(ctypes.util.find_library("c"))
        mallopt = libc.mallopt
    except (OSError, AttributeError, TypeError):
        return False
    mallopt.argtypes = [ctypes.c_int, ctypes.c_int]
    mallopt.restype = ctypes.c_int
    no_mmap = mallopt(_M_MMAP_MAX, 0) == 1
    no_trim = mallopt(_M_TRIM_THRESHOLD, 2**31 - 1) == 1
    return no_mmap and no_trim
