"""Thread settings that let plasagne's parallel Numba kernels share two thread pools.

The chunked correlation (:mod:`plasagne.ops.chunked_corr`) splits its chunks over Numba's
threads, each running single-threaded BLAS, between OpenBLAS's own multi-threaded products
elsewhere in the step. Both pools keep idle threads spinning after their work: OpenBLAS's
for about 2**28 cycles (a tenth of a second), OpenMP's (Numba's usual threading layer)
for a while too, and on a two-core machine a spinning pool takes a core from the other
one: measured, a parallel chunk loop between two products ran 1.5-2x slower than the
serial one instead of 1.4x faster. Both libraries read their idle setting from the
environment once, when they load, so this module (imported first by ``plasagne``, before
PyTensor brings in SciPy's BLAS) sets ``OPENBLAS_THREAD_TIMEOUT=4`` (idle workers sleep
after 2**4 cycles) and ``OMP_WAIT_POLICY=passive`` unless the user set them, and records
whether SciPy's OpenBLAS and Numba's threads were already loaded, in which case the
setting came too late and the kernels stay serial. (Numba's fork-safe ``workqueue``
layer instead of OpenMP cost 15-30% of the gain; the kernels run serially in forked
children instead, :func:`plasagne.ops.blas_threads.threads_usable_function`.)

Set ``PLASAGNE_PARALLEL_KERNELS=0`` to leave the environment alone and keep every kernel
serial.

Examples
--------
>>> from plasagne import _thread_pools
>>> isinstance(_thread_pools.SETTLED_REASON, str)
True
"""

from __future__ import annotations

import os
import sys

__all__ = [
    "SETTLED",
    "SETTLED_REASON",
    "IDLE_SETTINGS",
    "LATE_IMPORT_REASONS",
    "prepare_idle_settings",
]

#: The environment settings, each applied unless the user set it already.
IDLE_SETTINGS = {"OPENBLAS_THREAD_TIMEOUT": "4", "OMP_WAIT_POLICY": "passive"}


def _loaded_libraries() -> str:
    """The process's memory map (Linux), or an empty string where there is none."""
    try:
        with open("/proc/self/maps", encoding="utf-8", errors="replace") as maps:
            return maps.read()
    except OSError:
        return ""


#: The reasons :func:`prepare_idle_settings` gives when only the import order stands in
#: the way (:mod:`plasagne.ops.blas_threads` warns for these, once).
LATE_IMPORT_REASONS = (
    "SciPy's BLAS was loaded before plasagne (import plasagne first)",
    "Numba's threads had started before plasagne (import plasagne first)",
)


def _too_late() -> str:
    """Why the idle settings can no longer take effect, or an empty string."""
    scipy_blas_modules = ("scipy.linalg._fblas", "scipy.linalg.cython_blas")
    if any(name in sys.modules for name in scipy_blas_modules):
        return LATE_IMPORT_REASONS[0]
    maps = _loaded_libraries()
    if "omppool" in maps or "tbbpool" in maps or "workqueue" in maps:
        return LATE_IMPORT_REASONS[1]
    return ""


def prepare_idle_settings() -> tuple[bool, str]:
    """Set the thread environment if it can still matter; say whether it does.

    Returns
    -------
    tuple of (bool, str)
        Whether parallel kernels may run, and why not when they may not ("" when they may).

    Examples
    --------
    >>> ok, reason = prepare_idle_settings()
    >>> ok == (reason == "")
    True
    """
    if os.environ.get("PLASAGNE_PARALLEL_KERNELS", "1").strip() == "0":
        return False, "PLASAGNE_PARALLEL_KERNELS=0"
    late = _too_late()
    if late and not all(name in os.environ for name in IDLE_SETTINGS):
        return False, late
    for name, value in IDLE_SETTINGS.items():
        os.environ.setdefault(name, value)
    return True, ""


SETTLED, SETTLED_REASON = prepare_idle_settings()
