"""Kernels behind a C call boundary on Numba: compiled once, not again in every caller.

Numba links the compiled code of every function a function calls into it, and LLVM
optimises and emits that linked code again for each caller: a convolution kernel's loops
were optimised and turned into machine code once for the kernel, again for PyTensor's
cached wrapper of its Op and again for the graph function of every compiled step, which
on the Bayesian CNN made the step function's own compile (kernels cached) about 10 s.

:func:`opaque_call` compiles a kernel as a C callback (``numba.cfunc``, cached on disk in
PyTensor's Numba cache under the kernel's key), registers its address with LLVM under a
name made from that key, and returns a small ``njit`` function that calls it by that
name, passing each array as a data pointer and its shape. Callers then hold a call to an
external symbol, like a call into BLAS, and their compiles no longer see the kernel's
code; their cached code names the symbol, which the kernel's Op registers again in every
process (its Numba funcify runs before any compiled graph is loaded).

Arrays must be C-contiguous (the caller raises otherwise) and the kernel must not raise:
an exception inside a C callback cannot reach the caller, so checks stay in the caller.

Examples
--------
>>> import numba, numpy as np
>>> @numba.njit
... def double(x, out, times):
...     for i in range(x.shape[0]):
...         out[i] = x[i] * times
>>> call = opaque_call(double, (("float64", 1), ("float64", 1), "int64"), "doctest-double")
>>> out = np.zeros(3)
>>> numba.njit(lambda x, out: call(x, out, 2))(np.arange(3.0), out)
>>> out.tolist()
[0.0, 2.0, 4.0]
"""

from __future__ import annotations

from collections.abc import Sequence
from hashlib import sha256
from typing import Any

__all__ = ["opaque_call", "kernel_key", "threads_behind_call"]

# kernel key -> the njit caller made for it (one registration per key and process)
_CALLERS: dict[str, Any] = {}
# kernel key -> its compiled C callback (kept alive: LLVM holds only its address)
_CALLBACKS: dict[str, Any] = {}

ArgSpec = tuple[str, int] | str


def kernel_key(op: Any, dtype: str, salt: int, part: str) -> str:
    """A key naming one compiled kernel: the Op's type and settings, the dtype, the Op's
    cache salt (kernel version, serial or parallel) and which of its kernels.

    Examples
    --------
    >>> class Op:
    ...     __props__ = ("size",)
    ...     size = 3
    >>> kernel_key(Op(), "float32", 7, "forward")
    'Op(3,)-float32-7-forward'
    """
    props = tuple(getattr(op, name) for name in getattr(op, "__props__", ()))
    return f"{type(op).__name__}{props}-{dtype}-{salt}-{part}"


def _data_pointer() -> Any:
    """A Numba intrinsic: an array's data pointer, typed by its dtype."""
    from numba.core import types
    from numba.extending import intrinsic

    @intrinsic
    def data_pointer(typingctx: Any, array: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return context.make_array(signature.args[0])(context, builder, value=args[0]).data

        return types.CPointer(array.dtype)(array), codegen

    return data_pointer


_DATA_POINTER: Any = None


def _fastmath() -> Any:
    """The fast-math flags PyTensor's ``numba_njit`` compiles kernels with."""
    from pytensor.configdefaults import config

    if not config.numba__fastmath:
        return False
    return {"arcp", "contract", "afn", "reassoc", "nsz"}


def opaque_call(kernel: Any, arg_spec: Sequence[ArgSpec], key: str) -> Any:
    """``kernel`` compiled as a C callback once, and an ``njit`` function that calls it.

    Parameters
    ----------
    kernel : numba dispatcher
        An ``njit`` function returning nothing, whose arguments are C-contiguous arrays and
        integers; it must not raise.
    arg_spec : sequence
        One entry per argument: ``(dtype, ndim)`` for an array, ``"int64"`` for an integer.
    key : str
        Names this kernel uniquely (settings, dtype, version: :func:`kernel_key`); its
        cache entries and its symbol are found by it.

    Returns
    -------
    numba dispatcher
        ``call(*args)``: checks the arrays are C-contiguous, then calls the kernel.

    Examples
    --------
    >>> import numba, numpy as np
    >>> @numba.njit
    ... def fill(out, value):
    ...     out[:] = value
    >>> call = opaque_call(fill, (("int64", 2), "int64"), "doctest-fill")
    >>> out = np.zeros((2, 2), dtype=np.int64)
    >>> numba.njit(lambda out: call(out, 5))(out)
    >>> out.tolist()
    [[5, 5], [5, 5]]
    """
    if key in _CALLERS:
        return _CALLERS[key]
    global _DATA_POINTER
    import llvmlite.binding as llvm
    import numba
    import numpy as np
    from numba.core import types
    from numba.core.ccallback import CFunc
    from pytensor.configdefaults import config
    from pytensor.link.numba.cache import compile_numba_function_src
    from pytensor.link.numba.dispatch.basic import numba_njit

    if _DATA_POINTER is None:
        _DATA_POINTER = _data_pointer()
    digest = sha256(key.encode()).hexdigest()[:32]
    symbol = f"plasagne_kernel_{digest}"

    entry_params, c_types, views, call_params, caller_args, checks = [], [], [], [], [], []
    for i, spec in enumerate(arg_spec):
        if isinstance(spec, str):
            entry_params.append(f"a{i}")
            c_types.append(getattr(types, spec))
            views.append(f"a{i}")
            call_params.append(f"a{i}")
            caller_args.append(f"a{i}")
            continue
        dtype, ndim = spec
        dims = [f"a{i}_{d}" for d in range(ndim)]
        entry_params += [f"a{i}", *dims]
        c_types += [types.CPointer(numba.from_dtype(np.dtype(dtype)))] + [types.int64] * ndim
        views.append(f"carray(a{i}, ({', '.join(dims)},))")
        call_params.append(f"a{i}")
        caller_args += [f"data_pointer(a{i})"] + [f"a{i}.shape[{d}]" for d in range(ndim)]
        checks.append(
            f"    if not a{i}.flags.c_contiguous:\n"
            f"        raise ValueError('{key}: argument {i} is not C-contiguous')\n"
        )

    cache_key = f"plasagne_opaque_{digest}_fastmath{int(bool(config.numba__fastmath))}"
    entry = compile_numba_function_src(
        f"def entry({', '.join(entry_params)}):\n    kernel({', '.join(views)})\n    return 0\n",
        "entry",
        {"__name__": __name__, "kernel": kernel, "carray": numba.carray},
        cache_key=f"{cache_key}_entry",
    )
    # an int result (always 0): Numba declares a void external function as returning a
    # pointer, which would not match the callback's C signature
    signature = types.int64(*c_types)
    callback = CFunc(entry, (signature.args, signature.return_type), {}, {"fastmath": _fastmath()})
    if config.numba__cache:
        callback.enable_caching()
    callback.compile()
    llvm.add_symbol(symbol, callback.address)
    _CALLBACKS[key] = callback

    external = types.ExternalFunction(symbol, signature)
    caller = compile_numba_function_src(
        f"def call({', '.join(call_params)}):\n"
        + "".join(checks)
        + f"    external({', '.join(caller_args)})\n",
        "call",
        {"__name__": __name__, "external": external, "data_pointer": _DATA_POINTER},
        cache_key=f"{cache_key}_call",
    )
    compiled = numba_njit(caller, cache=config.numba__cache)
    _CALLERS[key] = compiled
    return compiled


def threads_behind_call(
    loop: Any,
    numba_njit: Any,
    parallel: bool,
    arg_spec: Sequence[ArgSpec],
    key: str,
    single_threaded_blas: bool = False,
) -> Any:
    """A ``prange`` loop made by :func:`~plasagne.ops.blas_threads.threads_or_serial`,
    compiled once behind a C call (:func:`opaque_call`).

    Examples
    --------
    >>> import numba, numpy as np
    >>> def fill(out):
    ...     for i in numba.prange(out.shape[0]):
    ...         out[i] = i
    >>> run = threads_behind_call(fill, numba.njit, True, [("float64", 1)], "doctest-loop")
    >>> out = np.zeros(3)
    >>> numba.njit(lambda out: run(out))(out)
    >>> out.tolist()
    [0.0, 1.0, 2.0]
    """
    from .blas_threads import threads_or_serial

    run = threads_or_serial(loop, numba_njit, parallel, single_threaded_blas=single_threaded_blas)
    return opaque_call(run, arg_spec, key)
