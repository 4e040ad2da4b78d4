"""Kernels behind a C call boundary on Numba: compiled once, not again in every caller.

Numba links the compiled code of every function a function calls into it, and LLVM
optimises and emits that linked code again for each caller: a convolution kernel's loops
were optimised and turned into machine code once for the kernel, again for PyTensor's
cached wrapper of its Op and again for the graph function of every compiled step, which
on the Bayesian CNN made the step function's own compile (kernels cached) about 10 s.

:func:`opaque_call` compiles a kernel as a C callback (``numba.cfunc``, cached on disk in
PyTensor's Numba cache under the kernel's key) and returns a small ``njit`` function that
calls it, passing each array as a data pointer and its shape. The caller finds the
callback's address on its first call, asking Python (one registered function) by the
kernel's number, and keeps it in a private cell. Callers then hold an indirect call, like
a call into BLAS, and their compiles no longer see the kernel's code; their cached code
names only the kernel's number, which the kernel's Op registers again in every process
(its Numba funcify runs before any compiled graph is loaded). Since a kernel is needed
only at its caller's first call, it may be built later (:func:`deferred_kernels`), or by
another process into the disk cache (:mod:`plasagne.ops.kernel_worker`).

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

import ctypes
import threading
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from functools import cache
from hashlib import sha256
from typing import Any

__all__ = [
    "opaque_call",
    "kernel_key",
    "kernel_salt",
    "node_loop_behind_call",
    "threads_behind_call",
]

# cache key (kernel key and fast-math setting) -> the njit caller made for it: one
# registration per kernel, setting and process
_CALLERS: dict[str, Any] = {}
# cache key -> its compiled C callback (kept alive: LLVM holds only its address)
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


def kernel_salt(version: int, parallel: bool) -> int:
    """The cache salt of an Op whose kernels go behind C calls: its kernel version, serial
    or parallel, and this module's code version (the Op's cached function holds the caller,
    which names the kernel's number, so it must change when the numbering does).

    Examples
    --------
    >>> kernel_salt(3, True) != kernel_salt(3, False) != kernel_salt(4, False)
    True
    """
    return (2 * version + int(parallel)) * 1000 + _CODE_VERSION


def _fastmath() -> Any:
    """The fast-math flags PyTensor's ``numba_njit`` compiles kernels with."""
    from pytensor.configdefaults import config

    if not config.numba__fastmath:
        return False
    return {"arcp", "contract", "afn", "reassoc", "nsz"}


def opaque_call(
    kernel: Any,
    arg_spec: Sequence[ArgSpec],
    key: str,
    serial: Any = None,
    single_threaded_blas: bool = False,
) -> Any:
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
        cache entries and its number are made from it.
    serial : callable, optional
        For a ``kernel`` that runs on Numba's threads: a function returning the serial
        variant (an ``njit`` dispatcher), compiled only in a process that needs it (a
        child forked after the threads started; see :func:`threads_behind_call`).
    single_threaded_blas : bool
        With ``serial``: OpenBLAS set to one thread while ``kernel`` runs.

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
    # the fast-math setting is part of the compiled code: one caller and kernel for each
    cache_key = _cache_key(key)
    if cache_key in _CALLERS:
        return _CALLERS[cache_key]
    from pytensor.configdefaults import config
    from pytensor.link.numba.cache import compile_numba_function_src
    from pytensor.link.numba.dispatch.basic import numba_njit

    layout = _Layout(arg_spec)
    env = {"__name__": __name__, "kernel": kernel}
    body = f"    kernel({layout.views})\n"
    if serial is not None:
        from .blas_threads import blas_thread_functions, threads_usable_function

        # the serial loop is a kernel of its own, built only when a forked child asks
        serial_key = f"{key}-serial"
        serial_id = _kernel_id(serial_key)
        if serial_id not in _KERNELS:
            _new_kernel(
                serial_key,
                lambda: {"__name__": __name__, "kernel": serial()},
                layout,
                f"    kernel({layout.views})\n",
            )
        env.update(
            usable=threads_usable_function(),
            serial_address=_resolver_function(),
            call_address=_intrinsics()["call_address"],
        )
        threaded = f"        kernel({layout.views})\n"
        blas = blas_thread_functions() if single_threaded_blas else None
        if blas is not None:
            env.update(get_threads=blas[0], set_threads=blas[1])
            threaded = (
                f"        count = get_threads()\n        set_threads(1)\n{threaded}"
                "        set_threads(count)\n"
            )
        body = (
            "    if usable():\n"
            f"{threaded}"
            "    else:\n"
            f"        address = serial_address({serial_id})\n"
            "        if address == 0:\n"
            "            return 1\n"
            f"        call_address(address, ({layout.params},))\n"
        )

    kernel_id = _kernel_id(key)
    entry = _new_kernel(key, lambda: env, layout, body)
    collecting = _collecting()
    if collecting is None:
        _address_of(entry)
    else:
        collecting.kernels.append(entry)

    _resolver_symbol()
    caller = compile_numba_function_src(
        f"def call({layout.call_params}):\n"
        + layout.checks(key)
        + f"    address = kernel_address({kernel_id})\n"
        + "    if address == 0:\n"
        + f"        raise RuntimeError('{key}: its kernel did not compile in this process')\n"
        + f"    if call_address(address, ({layout.caller_args},)) != 0:\n"
        + f"        raise RuntimeError('{key}: its serial kernel did not compile here')\n",
        "call",
        {
            "__name__": __name__,
            "kernel_address": _intrinsics()["kernel_address"],
            "call_address": _intrinsics()["call_address"],
            "data_pointer": _intrinsics()["data_pointer"],
            "int64": _int64(),
        },
        cache_key=f"{cache_key}_call",
    )
    compiled = numba_njit(caller, cache=config.numba__cache)
    _CALLERS[cache_key] = compiled
    return compiled


class _Layout:
    """How an argument list crosses the C boundary: each array as its data pointer and
    its shape, each integer as itself; the source fragments that pack and unpack it."""

    def __init__(self, arg_spec: Sequence[ArgSpec]) -> None:
        import numba
        import numpy as np
        from numba.core import types

        entry, c_types, views, params, caller, self._arrays = [], [], [], [], [], []
        for i, spec in enumerate(arg_spec):
            params.append(f"a{i}")
            if isinstance(spec, str):
                entry.append(f"a{i}")
                c_types.append(getattr(types, spec))
                views.append(f"a{i}")
                caller.append(f"int64(a{i})")
                continue
            dtype, ndim = spec
            dims = [f"a{i}_{d}" for d in range(ndim)]
            entry += [f"a{i}", *dims]
            c_types += [types.CPointer(numba.from_dtype(np.dtype(dtype)))]
            c_types += [types.int64] * ndim
            views.append(f"carray(a{i}, ({', '.join(dims)},))")
            caller += [f"data_pointer(a{i})"] + [f"a{i}.shape[{d}]" for d in range(ndim)]
            self._arrays.append(i)
        self.params = ", ".join(entry)
        self.views = ", ".join(views)
        self.call_params = ", ".join(params)
        self.caller_args = ", ".join(caller)
        # an int result (0, or 1 for a serial kernel that could not compile): Numba
        # declares a void external function as returning a pointer, not matching C's void
        self.signature = types.int64(*c_types)

    def checks(self, key: str) -> str:
        return "".join(
            f"    if not a{i}.flags.c_contiguous:\n"
            f"        raise ValueError('{key}: argument {i} is not C-contiguous')\n"
            for i in self._arrays
        )


# part of every cache key here: bump when the generated entry or caller code, or the
# kernel numbering, changes (a cached caller asks for its kernel by number)
_CODE_VERSION = 5


class _Kernel:
    """One kernel's C callback: how to build it (compile it or load it from the disk
    cache), its address once built, and what to wait for first (a kernel worker)."""

    def __init__(self, key: str, build: Any) -> None:
        self.key = key
        self.build = build
        self.address: int | None = None
        self.wait: Any = None
        self.node: tuple[Any, Any] | None = None  # (op, node) that asked for it, if known


# kernel number (stable across processes: compiled into cached callers) -> its kernel
_KERNELS: dict[int, _Kernel] = {}


def _kernel_id(key: str) -> int:
    """The number a caller asks for its kernel by (63 bits of the cache key's hash)."""
    return int(sha256(f"kernel-{_cache_key(key)}".encode()).hexdigest()[:15], 16)


def _new_kernel(key: str, make_env: Any, layout: Any, body: str) -> _Kernel:
    """Register (not build) the kernel whose C callback runs ``body`` over ``layout``'s
    arguments with the globals ``make_env()`` returns."""

    def build(cached_only: bool = False) -> int | None:
        callback = _compile_callback(make_env(), layout, body, key, cached_only)
        if callback is None:
            return None
        _CALLBACKS[_cache_key(key)] = callback
        return callback.address

    kernel = _KERNELS[_kernel_id(key)] = _Kernel(key, build)
    return kernel


def _address_of(kernel: _Kernel) -> int:
    """``kernel``'s callback address, built now if it was not (after what it waits for)."""
    if kernel.address is None:
        if kernel.wait is not None:
            wait, kernel.wait = kernel.wait, None
            wait()
        kernel.address = kernel.build()
    return kernel.address


def _address_callback(lookup: Any) -> Any:
    """``lookup(number) -> address`` as a C function compiled code can call; an exception
    (which cannot cross into C) is printed and answered with 0."""

    def answer(number: int) -> int:
        try:
            return lookup(number)
        except Exception:
            import traceback

            traceback.print_exc()
            return 0

    return ctypes.CFUNCTYPE(ctypes.c_int64, ctypes.c_int64)(answer)


def _register(callback: Any, symbol: str) -> str:
    """Make ``callback`` callable from compiled code under ``symbol``."""
    import llvmlite.binding as llvm

    llvm.add_symbol(symbol, ctypes.cast(callback, ctypes.c_void_p).value)
    return symbol


def _resolve(kernel_id: int) -> int:
    """A caller's first call asks here for its kernel's address; 0 if it cannot be built
    (the caller then raises)."""
    return _address_of(_KERNELS[kernel_id])


_RESOLVE_CALLBACK = _address_callback(_resolve)
_RESOLVE_SYMBOL = "plasagne_resolve_kernel"


@cache
def _resolver_symbol() -> str:
    """Register :func:`_resolve` with LLVM under its symbol (once per process)."""
    return _register(_RESOLVE_CALLBACK, _RESOLVE_SYMBOL)


@cache
def _resolver_function() -> Any:
    """:func:`_resolve` as a Numba external function ``resolve(number) -> address``."""
    from numba.core import types

    return types.ExternalFunction(_resolver_symbol(), types.int64(types.int64))


@cache
def _int64() -> Any:
    import numpy as np

    return np.int64


class DeferredKernels:
    """The kernels asked for inside :func:`deferred_kernels`, not compiled yet.

    Each is built when :meth:`build_cached` finds it in the disk cache, or on its caller's
    first call (after the wait a kernel worker sets, see
    :mod:`plasagne.ops.kernel_worker`), or by :meth:`build_all`.

    Examples
    --------
    >>> DeferredKernels().kernels
    []
    """

    def __init__(self) -> None:
        self.kernels: list[_Kernel] = []

    def build_cached(self) -> list[_Kernel]:
        """Load the kernels the disk cache holds; return the others (not built)."""
        missing = []
        for kernel in self.kernels:
            if kernel.address is None:
                kernel.address = kernel.build(cached_only=True)
            if kernel.address is None:
                missing.append(kernel)
        return missing

    def build_all(self) -> None:
        """Build every kernel now (waiting for whatever each waits for)."""
        for kernel in self.kernels:
            _address_of(kernel)


_collector = threading.local()


def _collecting() -> DeferredKernels | None:
    return getattr(_collector, "deferred", None)


@contextmanager
def deferred_kernels() -> Iterator[DeferredKernels]:
    """Kernels asked for inside this block are compiled later: on their callers' first
    call, or when the block's :class:`DeferredKernels` builds them.

    Examples
    --------
    >>> import numba, numpy as np
    >>> @numba.njit
    ... def negate(x, out):
    ...     for i in range(x.shape[0]):
    ...         out[i] = -x[i]
    >>> with deferred_kernels() as deferred:
    ...     call = opaque_call(negate, (("float64", 1), ("float64", 1)), "doctest-negate")
    >>> deferred.kernels[0].address is None
    True
    >>> out = np.zeros(2)
    >>> numba.njit(lambda x, out: call(x, out))(np.ones(2), out)
    >>> out.tolist(), deferred.kernels[0].address is not None
    ([-1.0, -1.0], True)
    """
    outer = _collecting()
    deferred = _collector.deferred = DeferredKernels()
    try:
        yield deferred
    finally:
        _collector.deferred = outer


def _cache_key(key: str) -> str:
    """The disk-cache key of ``key``'s callback and caller (with the fast-math setting)."""
    from pytensor.configdefaults import config

    digest = sha256(key.encode()).hexdigest()[:32]
    fastmath = int(bool(config.numba__fastmath))
    return f"plasagne_opaque_{digest}_v{_CODE_VERSION}_fastmath{fastmath}"


def _compile_callback(
    env: dict, layout: _Layout, body: str, key: str, cached_only: bool = False
) -> Any:
    """The C callback ``entry(<pointers and shapes>) -> int`` running ``body``, compiled or
    loaded from PyTensor's Numba cache; with ``cached_only``, None unless it is cached."""
    import numba
    from numba.core.ccallback import CFunc
    from pytensor.configdefaults import config
    from pytensor.link.numba.cache import compile_numba_function_src

    entry = compile_numba_function_src(
        f"def entry({layout.params}):\n{body}    return 0\n",
        "entry",
        {**env, "carray": numba.carray},
        cache_key=f"{_cache_key(key)}_entry",
    )
    signature = layout.signature
    callback = CFunc(entry, (signature.args, signature.return_type), {}, {"fastmath": _fastmath()})
    if config.numba__cache:
        callback.enable_caching()
    if cached_only:
        target = callback._targetdescr.target_context
        if callback._cache.load_overload(callback._sig, target) is None:
            return None
    from .lazy_emission import emitting_on_demand

    with emitting_on_demand():  # the kernel's own inner functions are only linked
        callback.compile()
    return callback


@cache
def _intrinsics() -> dict[str, Any]:
    """Numba intrinsics: ``data_pointer(array)`` (its data, typed by its dtype),
    ``call_address(address, args)`` (call the C function ``int64 f(*args)`` at an
    integer address with a tuple of C-typed arguments) and ``kernel_address(number)``
    (a kernel's callback address, asked of :func:`_resolve` on the first call only)."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    @intrinsic
    def data_pointer(typingctx: Any, array: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return context.make_array(signature.args[0])(context, builder, value=args[0]).data

        return types.CPointer(array.dtype)(array), codegen

    @intrinsic
    def call_address(typingctx: Any, address: Any, args: Any) -> Any:
        arg_types = list(args)

        def codegen(context: Any, builder: Any, signature: Any, llargs: Any) -> Any:
            target, packed = llargs
            values = [builder.extract_value(packed, i) for i in range(len(arg_types))]
            c_types = [context.get_value_type(t) for t in arg_types]
            function = ir.FunctionType(ir.IntType(64), c_types)
            return builder.call(builder.inttoptr(target, function.as_pointer()), values)

        return types.int64(address, args), codegen

    @intrinsic(prefer_literal=True)
    def kernel_address(typingctx: Any, kernel_id: Any) -> Any:
        if not isinstance(kernel_id, types.IntegerLiteral):
            return None
        number = kernel_id.literal_value

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            # a private cell per use, filled on the first call by asking Python
            i64 = ir.IntType(64)
            module = builder.module
            cell = cgutils.add_global_variable(module, i64, f"plasagne_kernel_{number}")
            cell.linkage = "private"
            cell.initializer = i64(0)
            cell.align = 8
            known = builder.load_atomic(cell, "acquire", 8)
            result = cgutils.alloca_once_value(builder, known)
            with builder.if_then(builder.icmp_signed("==", known, i64(0)), likely=False):
                resolve = cgutils.get_or_insert_function(
                    module, ir.FunctionType(i64, [i64]), _RESOLVE_SYMBOL
                )
                found = builder.call(resolve, [i64(number)])
                builder.store_atomic(found, cell, "release", 8)
                builder.store(found, result)
            return builder.load(result)

        return types.int64(kernel_id), codegen

    return {
        "data_pointer": data_pointer,
        "call_address": call_address,
        "kernel_address": kernel_address,
    }


def threads_behind_call(
    loop: Any,
    numba_njit: Any,
    parallel: bool,
    arg_spec: Sequence[ArgSpec],
    key: str,
    single_threaded_blas: bool = False,
) -> Any:
    """A ``prange`` loop on Numba's threads, compiled once behind a C call
    (:func:`opaque_call`).

    The threaded loop runs in the process that started Numba's threads, with OpenBLAS set
    to one thread meanwhile when ``single_threaded_blas`` (loops whose iterations call
    BLAS). A child forked from that process runs the loop serially (GNU OpenMP would
    abort it): that variant is compiled the first time a child needs it, not with every
    kernel. Without ``parallel`` only the serial loop is compiled.

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
    from .blas_threads import PRANGE_ONLY

    if not parallel:
        return opaque_call(numba_njit(loop), arg_spec, key)
    # a callback loaded from the disk cache calls Numba's thread pool by symbol, which
    # exists only once the pool has started (compiling a parallel function starts it)
    from numba.np.ufunc.parallel import _launch_threads

    _launch_threads()
    threaded = numba_njit(parallel=PRANGE_ONLY)(loop)
    return opaque_call(
        threaded,
        arg_spec,
        key,
        serial=lambda: numba_njit(loop),
        single_threaded_blas=single_threaded_blas,
    )


def node_loop_behind_call(
    op: Any,
    node: Any,
    salt: int,
    loop: Any,
    numba_njit: Any,
    parallel: bool,
    arg_spec: Sequence[tuple[str | None, int] | str],
    single_threaded_blas: bool = False,
    key: str | None = None,
) -> Any:
    """An Op's ``prange`` loop behind a C call (:func:`threads_behind_call`), keyed by the
    Op, its node's dtype, its cache salt and the loop's name (or by ``key``, for a loop
    that serves nodes of other settings too); an array entry of ``arg_spec`` with dtype
    None takes the node's dtype (its first input's). A kernel worker can build it from
    the node.

    Examples
    --------
    >>> import numba, numpy as np, pytensor.tensor as pt
    >>> node = pt.exp(pt.vector(dtype="float64")).owner
    >>> def fill(out):
    ...     for i in numba.prange(out.shape[0]):
    ...         out[i] = 2 * i
    >>> run = node_loop_behind_call(node.op, node, 0, fill, numba.njit, False, [(None, 1)])
    >>> out = np.zeros(3)
    >>> numba.njit(lambda out: run(out))(out)
    >>> out.tolist()
    [0.0, 2.0, 4.0]
    """
    dtype = getattr(node.inputs[0], "dtype", None)  # a random generator input has none
    spec = [
        entry if isinstance(entry, str) else (entry[0] or dtype, entry[1]) for entry in arg_spec
    ]
    key = key or kernel_key(op, dtype, salt, loop.__name__)
    call = threads_behind_call(loop, numba_njit, parallel, spec, key, single_threaded_blas)
    kernel = _KERNELS[_kernel_id(key)]
    if kernel.address is None:  # deferred: a kernel worker can build it from the node
        kernel.node = (op, node)
    return call
