"""Machine code on demand (plasagne.ops.lazy_emission): link-only libraries are not
emitted, everything still runs, raises and caches as Numba would."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap

import numba
import numpy as np
import pytest

from plasagne.ops.lazy_emission import emitting_on_demand


def _pair():
    @numba.njit(no_cpython_wrapper=True)
    def inner(x):
        if x < 0:
            raise ValueError("negative input", x)
        return np.sqrt(x) + 1.0

    @numba.njit
    def outer(x):
        return inner(x) * 2.0

    return inner, outer


def test_a_link_only_library_is_not_emitted_and_its_caller_runs():
    inner, outer = _pair()
    with emitting_on_demand():
        outer.compile((numba.float64,))
    (inner_result,) = inner.overloads.values()
    (outer_result,) = outer.overloads.values()
    assert getattr(inner_result.library, "_plasagne_unemitted", False)
    assert not getattr(outer_result.library, "_plasagne_unemitted", False)
    assert outer(4.0) == pytest.approx(2.0 * (np.sqrt(4.0) + 1.0))


def test_outside_the_block_numba_emits_as_usual():
    inner, outer = _pair()
    outer.compile((numba.float64,))
    (inner_result,) = inner.overloads.values()
    assert not getattr(inner_result.library, "_plasagne_unemitted", False)


def test_an_exception_raised_in_linked_code_reaches_python():
    """The inner function's environment is set once the caller that holds its code is
    emitted: its exception, with a runtime value, arrives intact."""
    _, outer = _pair()
    with emitting_on_demand():
        outer.compile((numba.float64,))
    with pytest.raises(ValueError, match="negative input"):
        outer(-1.0)


def test_a_c_callback_compiled_inside_gets_its_machine_code():
    @numba.cfunc("float64(float64)")
    def halve(x):
        return x / 2.0

    with emitting_on_demand():
        callback = numba.cfunc("float64(float64)")(halve.__wrapped__)
    assert callback.ctypes(3.0) == 1.5


def test_functions_only_compiled_code_calls_get_no_c_wrapper_inside():
    """Numba's overload helpers (no Python entry point) get no C-callable wrapper inside
    the block, as nothing calls it; outside, and for C callbacks and functions with a
    Python entry point, Numba's wrappers stay."""
    from plasagne.ops import lazy_emission

    def wrapper_defined(dispatcher):
        (result,) = dispatcher.overloads.values()
        return lazy_emission._defines(result.library, result.fndesc.llvm_cfunc_wrapper_name)

    inside, caller = _pair()
    with emitting_on_demand():
        caller.compile((numba.float64,))
    outside, outside_caller = _pair()
    outside_caller.compile((numba.float64,))
    assert not wrapper_defined(inside) and wrapper_defined(outside)
    assert wrapper_defined(caller)  # a Python entry point: Numba's wrappers
    assert caller(4.0) == outside_caller(4.0) == pytest.approx(6.0)


_CACHED = textwrap.dedent(
    """
    import sys
    import numba, numpy as np
    from numba.core import codegen
    from plasagne.ops import lazy_emission
    from plasagne.ops.lazy_emission import emitting_on_demand

    lazy_emission.CACHE_BITCODE = sys.argv[1] == "bitcode"
    lazy_emission._install()  # its wrappers, which the recorders below call
    library_class = codegen.JITCodeLibrary
    kinds = []
    unserialize = library_class._unserialize.__func__

    def recording(cls, codegen, state):
        kinds.append(state[1])
        return unserialize(cls, codegen, state)

    library_class._unserialize = classmethod(recording)
    saved = []
    serialize = library_class.serialize_using_object_code

    def recording_save(library):
        state = serialize(library)
        saved.append(state[1])
        return state

    library_class.serialize_using_object_code = recording_save

    @numba.njit(no_cpython_wrapper=True, cache=True)
    def step(x):
        return x * 3.0 + 1.0

    @numba.njit
    def run(x):
        return step(x)

    with emitting_on_demand():
        run.compile((numba.float64[::1],))
    (library,) = [r.library for r in step.overloads.values()]
    emitted = not getattr(library, "_plasagne_unemitted", False)
    hits = sum(step.stats.cache_hits.values())
    print(run(np.arange(3.0)).tolist(), hits, saved, kinds, emitted)
    """
)


@pytest.mark.parametrize("storage", ["bitcode", "object"])
def test_a_cached_link_only_function_is_stored_and_loads_back(tmp_path, storage):
    """Stored as optimised bitcode, a link-only library is neither emitted for the disk
    cache nor when a second process loads it (its caller links it); as object code
    (CACHE_BITCODE off, Numba's way) it is emitted before it is saved."""
    script = tmp_path / "cached_step.py"
    script.write_text(_CACHED)
    env = dict(os.environ, NUMBA_CACHE_DIR=str(tmp_path / "cache"))
    first, second = (
        subprocess.run(
            [sys.executable, str(script), storage],
            env=env,
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for _ in range(2)
    )
    emitted = storage == "object"
    assert first == f"[1.0, 4.0, 7.0] 0 ['{storage}'] [] {emitted}"
    # the second process loads it from the cache and saves nothing
    assert second == f"[1.0, 4.0, 7.0] 1 [] ['{storage}'] {emitted}"


def _library(dispatcher):
    (result,) = dispatcher.overloads.values()
    return result.library


def test_a_link_only_library_skips_its_own_final_optimisation():
    """Its callers run LLVM's pipeline over the code they link; it need not run it too."""
    inner, outer = _pair()
    with emitting_on_demand():
        outer.compile((numba.float64,))
    assert getattr(_library(inner), "_plasagne_unoptimised", False)
    assert outer(9.0) == pytest.approx(8.0)


def test_a_graph_function_links_optimised_code():
    """The graph function skips the pipeline (plasagne.ops.numba_linker), so what it links
    is optimised first."""
    from plasagne.ops.numba_linker import _as_graph_function

    inner, _ = _pair()

    def graph(x):
        return inner(x) - 1.0

    compiled = numba.njit(_as_graph_function(graph))
    with emitting_on_demand():
        compiled.compile((numba.float64,))
    assert not getattr(_library(inner), "_plasagne_unoptimised", False)
    assert compiled(16.0) == pytest.approx(4.0)


def test_the_switch_keeps_numbas_own_optimisation(monkeypatch):
    from plasagne.ops import lazy_emission

    monkeypatch.setattr(lazy_emission, "DEFER_OPTIMISATION", False)
    inner, outer = _pair()
    with emitting_on_demand():
        outer.compile((numba.float64,))
    assert not getattr(_library(inner), "_plasagne_unoptimised", False)
    assert getattr(_library(inner), "_plasagne_unemitted", False)
