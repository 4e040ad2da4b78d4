"""Machine code only for the Numba libraries that are run, not for those only linked.

Numba turns every function it compiles into machine code as soon as it is compiled, even
one that can only be called from other compiled code (PyTensor's node kernels and
Numba's own helpers, compiled without a Python entry point): such a function's LLVM
module is linked into each caller, which emits its own copy, and the function's own
machine code is never run. Numba also runs LLVM's full module pipeline on it before
linking, and again on each caller's module, which holds the linked copy. On a cold
compile of the Bayesian CNN's step the two were about a sixth of Numba's time
(``docs/ops.md``, "Machine code on demand").

Inside :func:`emitting_on_demand`, a library compiled without a Python entry point is
finalized (verified) but neither optimised as a module nor handed to LLVM's JIT; its
functions were optimised one by one as Numba always does. It is optimised and emitted
the first time anything needs its machine code: a function pointer (a C callback's
address) or its object code; its environment pointer is set once a module that defines
it has been emitted. Numba's disk cache stores such a library as its optimised LLVM
bitcode instead of object code (``CACHE_BITCODE``), so saving it emits nothing, and a
process that loads it in this block links it without emitting it either. Linking it
into callers needs only its LLVM module; a caller that skips the pipeline (a graph
function of :mod:`plasagne.ops.numba_linker`) gets it optimised first.
``DEFER_OPTIMISATION = False`` keeps Numba's per-library optimisation and defers only the
machine code. Numba also gives each of its overload helpers a C-callable wrapper that
nothing calls; inside the block they get none (``SKIP_HELPER_CFUNC_WRAPPERS``; C
callbacks and functions with a Python entry point keep theirs). Nothing changes when
Numba's internals differ from what this module expects.

Examples
--------
>>> import numba, numpy as np
>>> inner = numba.njit(no_cpython_wrapper=True)(lambda x: x + 1)
>>> outer = numba.njit(lambda x: inner(x) * 2)
>>> with emitting_on_demand():
...     value = outer(np.float64(1.0))
>>> float(value)
4.0
"""

from __future__ import annotations

import ctypes
import threading
import weakref
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Any

from .thread_switch import ThreadSwitch

__all__ = ["emitting_on_demand"]

#: Skip the final optimisation of link-only libraries too (their callers optimise the
#: code they link); False: optimise each library as Numba does.
DEFER_OPTIMISATION = True

#: Store link-only libraries in Numba's disk cache as optimised LLVM bitcode, without
#: emitting them; False: as machine code, which emits them first (Numba's way).
CACHE_BITCODE = True

#: Inside the block, compile no C-callable wrapper for functions that only compiled code
#: calls (Numba's overload helpers: no Python entry point, not a C callback); False:
#: Numba's way, a wrapper for every one of them, which nothing here ever calls.
SKIP_HELPER_CFUNC_WRAPPERS = True

_switch = ThreadSwitch()
# per thread: the libraries being finalized, innermost last
_state = threading.local()
# environment name -> environment, for environments whose global no emitted module
# defines yet (their function's module was not emitted)
_PENDING_ENVS: dict[str, Any] = {}


@contextmanager
def emitting_on_demand() -> Iterator[None]:
    """Libraries Numba compiles in this block without a Python entry point are emitted
    only when their machine code is needed (see the module's description).

    Examples
    --------
    >>> with emitting_on_demand():
    ...     pass
    """
    if not _install():
        yield
        return
    with _switch.on():
        yield


def _active() -> bool:
    return _switch.active()


_installed: bool | None = None


def _install() -> bool:
    """Wrap Numba's library finalization (once per process); False if Numba differs."""
    global _installed
    if _installed is not None:
        return _installed
    try:
        from numba.core import codegen, cpu, typed_passes

        library_class = codegen.JITCodeLibrary
        codegen_class = codegen.JITCPUCodegen
        context_class = cpu.CPUContext
        get_executable = context_class.get_executable
        set_env = codegen_class.set_env
        codegen_class._add_module  # noqa: B018 - used by _emit
        codegen.CPUCodeLibrary._optimize_final_module  # noqa: B018
        original = {
            name: getattr(library_class, name)
            for name in (
                "finalize",
                "_finalize_final_module",
                "_finalize_specific",
                "_finalize_dynamic_globals",
                "_verify_declare_only_symbols",
                "get_pointer_to_function",
                "_get_compiled_object",
                "_get_module_for_linking",
                "serialize_using_bitcode",
                "serialize_using_object_code",
            )
        }
        unserialize = library_class._unserialize.__func__
        lowering_pass = typed_passes.BaseNativeLowering
        run_lowering = lowering_pass.run_pass
    except (ImportError, AttributeError):  # pragma: no cover - another Numba
        _installed = False
        return False

    def run_lowering_wrapper(self: Any, state: Any) -> Any:
        flags = state.flags
        # a C callback (numba.cfunc) compiles with no_compile; overload helpers do not
        skip = (
            SKIP_HELPER_CFUNC_WRAPPERS
            and _active()
            and flags.no_cpython_wrapper
            and not flags.no_cfunc_wrapper
            and not flags.no_compile
        )
        if not skip:
            return run_lowering(self, state)
        flags.no_cfunc_wrapper = True
        try:
            return run_lowering(self, state)
        finally:
            flags.no_cfunc_wrapper = False

    def get_executable_wrapper(self: Any, library: Any, fndesc: Any, env: Any) -> Any:
        # right after lowering, before the library is finalized: a function without
        # a Python entry point is only linked into callers unless asked for its code
        if _active() and not library._finalized:
            library._plasagne_link_only = not _defines(library, fndesc.llvm_cpython_wrapper_name)
        return get_executable(self, library, fndesc, env)

    def finalize_wrapper(self: Any) -> None:
        _state.finalizing = [*getattr(_state, "finalizing", []), self]
        try:
            original["finalize"](self)
        finally:
            _state.finalizing = _state.finalizing[:-1]

    def optimize_final_module_wrapper(self: Any) -> None:
        if DEFER_OPTIMISATION and getattr(self, "_plasagne_link_only", False):
            # its callers optimise the code they link (unless they skip the pipeline)
            self._plasagne_unoptimised = True
            return
        codegen.CPUCodeLibrary._optimize_final_module(self)

    def module_for_linking_wrapper(self: Any) -> Any:
        self._ensure_finalized()
        finalizing = getattr(_state, "finalizing", [])
        if not finalizing or not _optimises_what_it_links(finalizing[-1]):
            _ensure_optimised(self)
        return original["_get_module_for_linking"](self)

    def serialize_using_bitcode_wrapper(self: Any) -> Any:
        self._ensure_finalized()
        _ensure_optimised(self)
        return original["serialize_using_bitcode"](self)

    def serialize_using_object_code_wrapper(self: Any) -> Any:
        # Numba's disk cache stores object code; a library never emitted is stored as
        # its (optimised) LLVM bitcode instead, which is all its callers link
        if CACHE_BITCODE and getattr(self, "_plasagne_unemitted", False):
            return serialize_using_bitcode_wrapper(self)
        return original["serialize_using_object_code"](self)

    def unserialize_wrapper(cls: Any, codegen: Any, state: Any) -> Any:
        name, kind, data = state
        if kind != "bitcode" or not _active():
            return unserialize(cls, codegen, state)
        # optimised when it was stored: made ready for linking, emitted on demand
        from llvmlite import binding

        library = codegen.create_library(name)
        library._final_module = binding.parse_bitcode(data)
        library._plasagne_link_only = True
        library._finalize_final_module()
        return library

    def finalize_final_module_wrapper(self: Any) -> None:
        if not getattr(self, "_plasagne_link_only", False):
            original["_finalize_final_module"](self)
            return
        # Numba's steps without adding the module to the JIT and emitting it
        self._finalize_dynamic_globals()
        self._verify_declare_only_symbols()
        self._plasagne_unemitted = True
        self._finalized = True

    def finalize_specific_wrapper(self: Any) -> None:
        original["_finalize_specific"](self)
        _set_pending_envs(self._codegen)

    def get_pointer_wrapper(self: Any, name: str) -> int:
        if getattr(self, "_plasagne_unemitted", False):
            if not _defines(self, name):
                return 0
            _emit(self)
        return original["get_pointer_to_function"](self, name)

    def get_compiled_object_wrapper(self: Any) -> Any:
        if getattr(self, "_plasagne_unemitted", False):
            _emit(self)
        return original["_get_compiled_object"](self)

    def set_env_wrapper(self: Any, env_name: str, env: Any) -> None:
        if not self._engine.is_symbol_defined(env_name):
            _PENDING_ENVS[env_name] = env
            return
        set_env(self, env_name, env)

    context_class.get_executable = get_executable_wrapper
    lowering_pass.run_pass = run_lowering_wrapper
    library_class.finalize = finalize_wrapper
    library_class._optimize_final_module = optimize_final_module_wrapper
    library_class._get_module_for_linking = module_for_linking_wrapper
    library_class.serialize_using_bitcode = serialize_using_bitcode_wrapper
    library_class.serialize_using_object_code = serialize_using_object_code_wrapper
    library_class._unserialize = classmethod(unserialize_wrapper)
    library_class._finalize_final_module = finalize_final_module_wrapper
    library_class._finalize_specific = finalize_specific_wrapper
    library_class.get_pointer_to_function = get_pointer_wrapper
    library_class._get_compiled_object = get_compiled_object_wrapper
    codegen_class.set_env = set_env_wrapper
    _installed = True
    return True


def _defines(library: Any, name: str) -> bool:
    try:
        return not library._final_module.get_function(name).is_declaration
    except NameError:
        return False


def _emit(library: Any) -> None:
    """Hand ``library``'s module to the JIT and emit it (what Numba does at finalize)."""
    _ensure_optimised(library)
    library._plasagne_unemitted = False
    library._final_module._CPUCodeLibrary__library = weakref.proxy(library)
    cleanup = library._codegen._add_module(library._final_module)
    if cleanup:
        weakref.finalize(library, cleanup)
    library._finalize_specific()


def _ensure_optimised(library: Any) -> None:
    """Run the final optimisation a link-only library skipped, if it did."""
    if getattr(library, "_plasagne_unoptimised", False):
        from numba.core import codegen

        library._plasagne_unoptimised = False
        codegen.CPUCodeLibrary._optimize_final_module(library)
        library._final_module.verify()
        library._shared_module = None  # made again from the optimised module


def _optimises_what_it_links(consumer: Any) -> bool:
    """Whether ``consumer`` runs LLVM's pipeline over the modules it links (not a graph
    function of :mod:`plasagne.ops.numba_linker`, which skips it)."""
    from .numba_linker import skips_pipeline

    return not skips_pipeline(consumer)


def _set_pending_envs(codegen: Any) -> None:
    """Point environment globals defined by the modules emitted so far at their
    environments."""
    if not _PENDING_ENVS:
        return
    engine = codegen._engine
    for name in [name for name in _PENDING_ENVS if engine.is_symbol_defined(name)]:
        address = engine.get_global_value_address(name)
        if address:
            env = _PENDING_ENVS.pop(name)
            ctypes.c_void_p.from_address(address).value = id(env)
