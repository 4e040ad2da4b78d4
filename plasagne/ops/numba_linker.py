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

The graph function is glue: one call per node, each node's code already optimised when
its own kernel was compiled. So its linked module skips LLVM's optimisation pipeline
(only the reference-count pruning and always-inline passes run) and goes straight to
machine code: on the Bayesian CNN the step function compiled 1.5-2.8 s faster (MLP 1.1 s)
with the same step time (``docs/ops.md``). ``REOPTIMISE_GRAPH = True`` restores the full
pipeline for graph functions compiled afterwards.

With Numba's cache on, the kernels behind C calls that the graph's nodes ask for are not
compiled while the graph is converted: cached ones are loaded, the others compile in a
worker process (:mod:`plasagne.ops.kernel_worker`, kept as ``linker.kernel_worker``) while
this one compiles the graph; and Numba emits machine code only for what runs
(:mod:`plasagne.ops.lazy_emission`, around the graph function's compile). While it
converts a graph, plasagne's quicker-to-compile lowerings of PyTensor's sums,
DimShuffles and matrix products apply (:mod:`plasagne.ops.lowering_scope`).
"""

from __future__ import annotations

import types
from typing import Any

from pytensor.link.numba.linker import NumbaLinker

# distinguishes this linker's cache entries from the wrapper PyTensor caches under the same key
_KEY_SUFFIX = "plasagne_direct_v2"

#: Run LLVM's full optimisation pipeline on the graph function's linked module as well
#: (Numba's default); False: only reference-count pruning, the nodes' code as compiled.
REOPTIMISE_GRAPH = False

# the name graph functions compiled by this linker get (and their Numba libraries)
_GRAPH_NAME = "plasagne_graph_function"


def _as_graph_function(py_func: Any) -> Any:
    """``py_func`` renamed :data:`_GRAPH_NAME`, with the fixed file name ``<string>``
    (PyTensor writes the generated source to a temporary file, whose random name Numba
    would put in the cache entry's name)."""
    code = py_func.__code__.replace(
        co_filename="<string>", co_name=_GRAPH_NAME, co_qualname=_GRAPH_NAME
    )
    renamed = types.FunctionType(
        code, py_func.__globals__, _GRAPH_NAME, py_func.__defaults__, py_func.__closure__
    )
    renamed.__qualname__ = _GRAPH_NAME
    return renamed


def skips_pipeline(library: Any) -> bool:
    """Whether Numba's final optimisation of ``library`` is skipped here (a graph
    function's, unless :data:`REOPTIMISE_GRAPH`).

    Examples
    --------
    >>> class Library:
    ...     name = "plasagne_graph_function"
    >>> skips_pipeline(Library())
    True
    """
    return not REOPTIMISE_GRAPH and library.name == _GRAPH_NAME


def _install_graph_passes() -> None:
    """Have Numba skip the optimisation pipeline for graph functions' final modules
    (once per process; nothing changes if Numba's internals differ from what we expect)."""
    try:
        from numba.core import codegen

        original = codegen.CPUCodeLibrary._optimize_final_module
    except (ImportError, AttributeError):  # pragma: no cover - another Numba
        return
    if getattr(original, "_plasagne_graph_passes", False):
        return

    def optimize_final_module(library: Any) -> None:
        if not skips_pipeline(library):
            original(library)
            return
        # level 0 with no vectorisers: always-inline, and refcount pruning when Numba
        # runs it as a pass; otherwise Numba's own pruning, as its pipeline would
        manager, builder = library._codegen._module_pass_manager(
            opt=0, loop_vectorize=False, slp_vectorize=False
        )
        manager.run(library._final_module, builder)
        from numba.core import config

        if not config.LLVM_REFPRUNE_PASS:
            library._final_module = codegen.remove_redundant_nrt_refct(library._final_module)

    optimize_final_module._plasagne_graph_passes = True  # type: ignore[attr-defined]
    codegen.CPUCodeLibrary._optimize_final_module = optimize_final_module


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

        from .kernel_worker import hand_to_worker
        from .lowering_scope import plasagne_lowerings
        from .opaque_calls import deferred_kernels

        _install_graph_passes()
        self.kernel_worker = None
        if not config.numba__cache:  # kernels compile at once, in this process
            with plasagne_lowerings():
                return _as_graph_function(numba_funcify(fgraph, **kwargs).py_func), None
        with deferred_kernels() as deferred, plasagne_lowerings():
            graph_function, cache_key = numba_funcify_and_cache_key(fgraph, **kwargs)
        # uncached kernels compile in a worker process while this one compiles the rest
        self.kernel_worker = hand_to_worker(deferred)
        if cache_key is None:
            return _as_graph_function(graph_function.py_func), None
        py_func = _as_graph_function(graph_function.py_func)
        # the locator PyTensor registers with Numba finds cache entries by this key
        fastmath = int(bool(config.numba__fastmath))
        passes = "_reoptimised" if REOPTIMISE_GRAPH else ""  # either is cached on its own
        CACHED_SRC_FUNCTIONS[py_func] = f"{cache_key}_fastmath{fastmath}_{_KEY_SUFFIX}{passes}"
        return py_func, cache_key

    def jit_compile(self, fn_and_cache: tuple[Any, str | None]) -> Any:
        from pytensor.link.numba.dispatch.basic import numba_njit

        from .lazy_emission import emitting_on_demand

        py_func, cache_key = fn_and_cache
        dispatcher = numba_njit(py_func, final_function=True, cache=cache_key is not None)
        compile_now = dispatcher.compile

        def compile_emitting_on_demand(signature: Any) -> Any:
            # Numba compiles on the first call: the graph and everything it calls
            with emitting_on_demand():
                return compile_now(signature)

        dispatcher.compile = compile_emitting_on_demand
        return dispatcher
