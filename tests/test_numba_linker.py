"""DirectNumbaLinker: the same values as PyTensor's Numba linker, and a disk cache that hits."""

import json
import os
import re
import subprocess
import sys
import textwrap

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.mode import Mode, get_mode
from pytensor.link.numba.linker import NumbaLinker

from plasagne.ops import numba_linker
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.numba_linker import DirectNumbaLinker


def _graph():
    x = pt.matrix("x")
    w = pt.matrix("w")
    h = pt.tanh(x @ w + 1.0)
    return [x, w], [h.sum(axis=0), pt.grad(h.sum(), w), h.max()]


def test_direct_linker_matches_numpy_and_pytensor_linker():
    inputs, outputs = _graph()
    direct = pytensor.function(
        inputs, outputs, mode=Mode(linker=DirectNumbaLinker(), optimizer="fast_run")
    )
    plain = pytensor.function(
        inputs, outputs, mode=Mode(linker=NumbaLinker(), optimizer="fast_run")
    )
    rng = np.random.default_rng(0)
    x = rng.normal(size=(5, 3))
    w = rng.normal(size=(3, 4))
    h = np.tanh(x @ w + 1.0)
    want = [h.sum(axis=0), x.T @ (1.0 - h**2), h.max()]
    for got, same, ref in zip(direct(x, w), plain(x, w), want):
        np.testing.assert_allclose(got, ref, rtol=1e-12)
        np.testing.assert_array_equal(got, same)
    assert isinstance(direct.vm, type(plain.vm))


def test_fast_math_mode_uses_direct_linker_on_numba_only():
    assert type(fast_math_mode("NUMBA").linker) is DirectNumbaLinker
    assert fast_math_mode("FAST_COMPILE") is get_mode("FAST_COMPILE")

    class OwnLinker(NumbaLinker):
        pass

    own = Mode(linker=OwnLinker(), optimizer="fast_run")
    assert type(fast_math_mode(own).linker) is OwnLinker
    # the swapped linker keeps the given one's settings
    kept = fast_math_mode(Mode(linker=NumbaLinker(allow_gc=False), optimizer="fast_run"))
    assert type(kept.linker) is DirectNumbaLinker and kept.linker.allow_gc is False


_CHILD = textwrap.dedent(
    """
    import json, sys
    import numpy as np, pytensor, pytensor.tensor as pt
    from pytensor.compile.mode import Mode
    from plasagne.ops.numba_linker import DirectNumbaLinker
    x = pt.vector("x")
    f = pytensor.function(
        [x], pt.exp(x).sum() + 2 * x.max(),
        mode=Mode(linker=DirectNumbaLinker(), optimizer="fast_run"),
    )
    value = float(f(np.arange(3.0)))
    stats = f.vm.jit_fn.stats
    print(json.dumps({"value": value, "hits": sum(stats.cache_hits.values()),
                      "misses": sum(stats.cache_misses.values())}))
    """
)


def test_graph_function_is_cached_between_processes(tmp_path):
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"base_compiledir={tmp_path}"  # an empty cache, not FAST_COMPILE
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba_own")
    runs = []
    for _ in range(2):
        out = subprocess.run(
            [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
        )
        runs.append(json.loads(out.stdout.strip().splitlines()[-1]))
    want = float(np.exp(np.arange(3.0)).sum() + 4.0)
    assert [run["value"] for run in runs] == [want, want]
    assert (runs[0]["hits"], runs[0]["misses"]) == (0, 1)  # compiled and written
    assert (runs[1]["hits"], runs[1]["misses"]) == (1, 0)  # loaded from the disk cache
    names = [p.name for p in (tmp_path / "numba").iterdir()]
    assert any("plasagne_graph_function" in n and n.startswith("string.") for n in names), names


def test_direct_linker_without_numba_cache():
    inputs, outputs = _graph()
    with pytensor.config.change_flags(numba__cache=False):
        f = pytensor.function(
            inputs, outputs, mode=Mode(linker=DirectNumbaLinker(), optimizer="fast_run")
        )
    x = np.arange(6.0).reshape(2, 3) / 10
    w = np.ones((3, 4))
    h = np.tanh(x @ w + 1.0)
    np.testing.assert_allclose(f(x, w)[0], h.sum(axis=0), rtol=1e-12)
    assert type(f.vm.jit_fn._cache).__name__ == "NullCache"  # Numba writes no cache entry


def _graph_function_ir(f) -> str:
    ir = next(iter(f.vm.jit_fn.inspect_llvm().values()))
    match = re.search(r"define[^\n]*plasagne_graph_function[^\n]*\{(.*?)\n\}", ir, re.S)
    assert match, "the graph function is not in its own module"
    return match.group(1)


def test_graph_function_skips_llvm_optimisation_unless_asked(monkeypatch):
    """The graph function's linked module goes to machine code without LLVM's pipeline
    (its nodes were optimised when compiled): its own IR keeps stack slots that the
    pipeline's mem2reg removes. Values are the same either way. (No matrix product here:
    the pipeline inlines the nodes, and a BLAS call's scalar slots stay on the stack.)"""
    x = pt.matrix("x")
    w = pt.matrix("w")
    inputs, outputs = [x, w], [pt.tanh(x * 2.0 + 1.0).sum(axis=0), pt.exp(w).max()]
    values = [np.linspace(-1.0, 1.0, 6).reshape(2, 3), np.arange(12.0).reshape(3, 4) / 10]
    reference = pytensor.function(inputs, outputs, mode="FAST_COMPILE")(*values)
    allocas = {}
    for reoptimise in (False, True):
        monkeypatch.setattr(numba_linker, "REOPTIMISE_GRAPH", reoptimise)
        with pytensor.config.change_flags(numba__cache=False):
            f = pytensor.function(
                inputs, outputs, mode=Mode(linker=DirectNumbaLinker(), optimizer="fast_run")
            )
        for got, want in zip(f(*values), reference):
            np.testing.assert_allclose(got, want)
        allocas[reoptimise] = _graph_function_ir(f).count("alloca")
    assert allocas[False] > allocas[True], allocas


def test_graph_functions_with_and_without_the_pipeline_are_cached_apart(monkeypatch):
    from pytensor.graph.fg import FunctionGraph
    from pytensor.link.numba.cache import CACHED_SRC_FUNCTIONS

    x = pt.vector("x")
    fgraph = FunctionGraph([x], [pt.exp(x) * 2.0], clone=True)
    keys = []
    for reoptimise in (False, True):
        monkeypatch.setattr(numba_linker, "REOPTIMISE_GRAPH", reoptimise)
        py_func, cache_key = DirectNumbaLinker().fgraph_convert(fgraph)
        assert cache_key is not None and py_func.__name__ == "plasagne_graph_function"
        keys.append(CACHED_SRC_FUNCTIONS[py_func])
    assert keys[0] != keys[1] and keys[1].endswith("_reoptimised")
