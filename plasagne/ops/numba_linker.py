"""A Numba linker that compiles a function's graph once, not twice, on a cold cache.

PyTensor's ``NumbaLinker`` makes every cacheable kernel, the whole function graph included,
a small cached wrapper ``def f(*args): return kernel(*args)`` and then compiles a copy of
that wrapper with Python's calling convention. For the graph this means two Numba
libraries that each hold the code of every kernel: Numba links the kernels' LLVM modules
into each library, optimises the linked module again and emits its machine code again. On
the Bayesian CNN's first fit Numba's compile events put that second pass at 5 s of 48 s of
compiling; whole cold fits, alternated, moved by less than the machine's run-to-run spread
(``docs/ops.md``, "One compile of the graph function on Numba").

:class:`DirectNumbaLinker` compiles the generated graph function itself with Python's
calling convention and caches it under the graph's own cache key, so the linked module is
optimised once. The kernels of the nodes are compiled and cached as before. It is the
linker of :func:`plasagne.ops.fast_math.fast_math_mode` on Numba.
"""

from __future__ import annotations

import types
from typing import Any

from pytensor.link.numba.linker import NumbaLinker

# distinguishes this linker's cache entries from the wrapper PyTensor caches under the same key
_KEY_SUFFIX = "plasagne_direct_v1"


class DirectNumbaLinker(NumbaLinker):
    """``NumbaLinker`` that compiles the graph function directly, without a cached wrapper.

    Functions compute the same values as with ``NumbaLinker``; only the first compile of a
    graph is shorter. Caching works as PyTensor's: a graph whose kernels all have cache
    keys is cached on disk under a key made from them.

    Examples
    --------
    >>> import numpy as np
    >>> import pytensor
    >>> import pytensor.tensor as pt
    >>> from pytensor.compile.mode import Mode
    >>> x = pt.vector("x")
    >>> mode = Mode(linker=DirectNumbaLinker(), optimizer="fast_run")
    >>> f = pytensor.function([x], pt.exp(x).sum(), mode=mode)
    >>> bool(np.isclose(f(np.zeros(3)), 3.0))
    True
    """

    def fgraph_convert(self, fgraph: Any, **kwargs: Any) -> tuple[Any, str | None]:
        from pytensor.configdefaults import config
        from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS
        from pytensor.link.numba.dispatch.basic import (
            numba_funcify,
            numba_funcify_and_cache_key,
        )

        if not config.numba__cache:
            return numba_funcify(fgraph, **kwargs).py_func, None
        graph_function, cache_key = numba_funcify_and_cache_key(fgraph, **kwargs)
        if cache_key is None:
            return graph_function.py_func, None
        # PyTensor writes the generated source to a temporary file, whose random name Numba
        # would put in the cache entry's name: give the function a fixed file name instead
        py_func = graph_function.py_func
        py_func = types.FunctionType(
            py_func.__code__.replace(co_filename="<string>"),
            py_func.__globals__,
            py_func.__name__,
            py_func.__defaults__,
            py_func.__closure__,
        )
        # the locator PyTensor registers with Numba finds cache entries by this key
        fastmath = int(bool(config.numba__fastmath))
        CACHED_SRC_FUNCTIONS[py_func] = f"{cache_key}_fastmath{fastmath}_{_KEY_SUFFIX}"
        return py_func, cache_key

    def jit_compile(self, fn_and_cache: tuple[Any, str | None]) -> Any:
        from pytensor.link.numba.dispatch.basic import numba_njit

        py_func, cache_key = fn_and_cache
        return numba_njit(py_func, final_function=True, cache=cache_key is not None)
