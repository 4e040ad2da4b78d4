"""BLAS thread control inside Numba kernels, for kernels that run their own threads.

A kernel that splits its work over Numba's threads and calls BLAS in each must run BLAS
single-threaded meanwhile: two OpenBLAS thread teams on two cores ran the parallel chunk
loop of :mod:`plasagne.ops.chunked_corr` 1.8x slower than the serial one. Numba's BLAS is
SciPy's (``scipy.linalg.cython_blas``); this module looks up that library's
``openblas_get_num_threads``/``openblas_set_num_threads`` (under any of the names OpenBLAS
builds export them as), registers them with LLVM under fixed names and declares them as
Numba external functions, so kernels that call them can still be cached on disk (the
cached code names the symbol, which is registered again in every process).

:func:`parallel_kernels` says whether parallel kernels run: the BLAS is OpenBLAS, Numba
has more than one thread, and the idle-thread environment (:mod:`plasagne._thread_pools`)
took effect; when only the import order stands in the way, it warns once.
``PARALLEL_KERNELS`` overrides it for kernels compiled afterwards (it is part
of their cache key).

Examples
--------
>>> isinstance(parallel_kernels(), bool)
True
"""

from __future__ import annotations

import ctypes
import os
import warnings
from functools import cache
from typing import Any

from .. import _thread_pools

__all__ = [
    "PARALLEL_KERNELS",
    "PRANGE_ONLY",
    "blas_thread_functions",
    "register_symbols",
    "threads_usable_function",
    "parallel_kernels",
    "why_serial",
]

#: None: decide automatically (:func:`parallel_kernels`); True or False: force it for
#: kernels compiled from now on (parallel needs OpenBLAS's thread functions).
PARALLEL_KERNELS: bool | None = None

#: ``numba.njit(parallel=PRANGE_ONLY)``: of Numba's parallel passes only the one that
#: turns ``prange`` loops into threads (the kernels parallelise their own loops).
PRANGE_ONLY = {
    "prange": True,
    "comprehension": False,
    "reduction": False,
    "setitem": False,
    "inplace_binop": False,
    "numpy": False,
    "stencil": False,
    "fusion": False,
}

_GET_SYMBOL = "plasagne_blas_get_num_threads"
_SET_SYMBOL = "plasagne_blas_set_num_threads"

# the names OpenBLAS builds export (plain, SciPy's prefixed builds, 64-bit integer builds)
_OPENBLAS_PREFIXES = ("openblas", "scipy_openblas", "scipy_openblas64_", "openblas64_")


def _find_openblas_controls() -> tuple[int, int] | None:
    """Addresses of the get/set thread functions of Numba's BLAS, or None."""
    try:
        import scipy.linalg.cython_blas as cython_blas
    except ImportError:  # pragma: no cover - SciPy is a dependency
        return None
    library = ctypes.CDLL(cython_blas.__file__)
    for prefix in _OPENBLAS_PREFIXES:
        for suffix in ("", "64_"):
            get_name = f"{prefix}_get_num_threads{suffix}"
            set_name = f"{prefix}_set_num_threads{suffix}"
            if hasattr(library, get_name) and hasattr(library, set_name):
                get_address = ctypes.cast(getattr(library, get_name), ctypes.c_void_p).value
                set_address = ctypes.cast(getattr(library, set_name), ctypes.c_void_p).value
                return get_address, set_address
    return None


@cache
def blas_thread_functions() -> tuple[Any, Any] | None:
    """Numba external functions ``(get_num_threads() -> int, set_num_threads(int))``.

    Returns
    -------
    tuple or None
        The two functions for use inside ``numba.njit`` code, or None when Numba's BLAS is
        not OpenBLAS.

    Examples
    --------
    >>> import numba
    >>> functions = blas_thread_functions()
    >>> functions is None or numba.njit(lambda: functions[0]())() >= 1
    True
    """
    addresses = _find_openblas_controls()
    if addresses is None:
        return None
    import llvmlite.binding as llvm
    from numba.core import types

    llvm.add_symbol(_GET_SYMBOL, addresses[0])
    llvm.add_symbol(_SET_SYMBOL, addresses[1])
    get_threads = types.ExternalFunction(_GET_SYMBOL, types.intc())
    set_threads = types.ExternalFunction(_SET_SYMBOL, types.void(types.intc))
    return get_threads, set_threads


def why_serial() -> str:
    """Why kernels compiled now would be serial, or an empty string if parallel.

    Examples
    --------
    >>> why_serial() == "" or isinstance(why_serial(), str)
    True
    """
    if PARALLEL_KERNELS is False:
        return "plasagne.ops.blas_threads.PARALLEL_KERNELS is False"
    if blas_thread_functions() is None:
        return "Numba's BLAS is not OpenBLAS (no thread control)"
    if PARALLEL_KERNELS:
        return ""
    import numba

    if numba.config.NUMBA_NUM_THREADS < 2:
        return "Numba has one thread"
    return _thread_pools.SETTLED_REASON


_warned_late_import = False


def _warn_late_import(reason: str) -> None:
    """Warn once per process when import order alone keeps the kernels serial."""
    global _warned_late_import
    if reason not in _thread_pools.LATE_IMPORT_REASONS or _warned_late_import:
        return
    _warned_late_import = True
    warnings.warn(
        f"plasagne: the convolution and pooling kernels run on one thread: {reason}, or "
        "set OPENBLAS_THREAD_TIMEOUT=4 and OMP_WAIT_POLICY=passive before Python starts "
        "(docs/ops.md, 'Parallel kernels on Numba')",
        stacklevel=3,
    )


def parallel_kernels() -> bool:
    """Whether kernels compiled now split their work over Numba's threads.

    When they do, Numba's threading layer is started here: compiled parallel code calls
    the thread pool's entry points (``numba_parallel_for`` and its scheduler) by symbol,
    and Numba registers those symbols when it starts its threads. Compiling a parallel
    function starts them; loading a whole graph function from PyTensor's disk cache did
    not always (the CNN's cached im2col-graph step, whose parallel kernels are the
    pooling ones, jumped to address 0). Kernels ask this while PyTensor builds the
    graph's cache key, before anything is loaded.

    Examples
    --------
    >>> parallel_kernels() == (why_serial() == "")
    True
    """
    reason = why_serial()
    if reason:
        _warn_late_import(reason)
        return False
    from numba.np.ufunc.parallel import _launch_threads

    global _threads_started_by
    _launch_threads()
    if _threads_started_by is None:  # a forked child inherits the parent's: never its own
        _threads_started_by = os.getpid()
    return True


# the process that started Numba's threads, once known
_threads_started_by: int | None = None


def _threads_usable() -> int:
    """1 in the process that started Numba's threads, 0 in a child forked from it."""
    return int(os.getpid() == _threads_started_by)


_THREADS_USABLE_CALLBACK = ctypes.CFUNCTYPE(ctypes.c_int)(_threads_usable)
_USABLE_SYMBOL = "plasagne_threads_usable"


@cache
def threads_usable_function() -> Any:
    """A Numba external function ``threads_usable() -> int``: 0 in a forked child.

    GNU OpenMP, Numba's usual threading layer, is not fork-safe: a child forked after the
    parent's threads started (PyMC's multi-chain sampling forks on Linux) aborts in its
    first parallel loop. Parallel kernels ask this first and run their loops serially
    when it says 0. It calls back into Python (the kernels run holding the GIL), about a
    microsecond per kernel call.

    Examples
    --------
    >>> import numba
    >>> usable = threads_usable_function()
    >>> numba.njit(lambda: usable())() in (0, 1)
    True
    """
    import llvmlite.binding as llvm
    from numba.core import types

    address = ctypes.cast(_THREADS_USABLE_CALLBACK, ctypes.c_void_p).value
    llvm.add_symbol(_USABLE_SYMBOL, address)
    return types.ExternalFunction(_USABLE_SYMBOL, types.intc())


def register_symbols() -> None:
    """Register the functions kernels call by symbol (BLAS's thread count, the fork
    check, the serial kernels' addresses) with LLVM: called when the kernels register,
    before any kernel compiles or a cached one loads.

    Examples
    --------
    >>> register_symbols()
    """
    from .opaque_calls import _resolver_symbol

    blas_thread_functions()
    threads_usable_function()
    _resolver_symbol()
