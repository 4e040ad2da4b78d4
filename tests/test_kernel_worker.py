"""Kernels compiled later or in a second process (plasagne.ops.opaque_calls.deferred_kernels,
plasagne.ops.kernel_worker): same values, built once, this process takes over whatever
the worker does not deliver."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import uuid

import numba
import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from plasagne.ops import kernel_worker, opaque_calls
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.kernel_worker import KernelWorker, hand_to_worker, worker_enabled
from plasagne.ops.opaque_calls import deferred_kernels, opaque_call
from plasagne.ops.pool_op import MaxPoolKernel


@numba.njit
def _cubes(x, out):
    for i in range(x.shape[0]):
        out[i] = x[i] ** 3


_SPEC = [("float64", 1), ("float64", 1)]


def _fresh_key(name: str) -> str:
    return f"test-{name}-{uuid.uuid4().hex}"


def _run(call, x):
    out = np.empty_like(x)
    numba.njit(lambda x, out: call(x, out))(x, out)
    return out


def test_a_deferred_kernel_compiles_on_its_first_call():
    key = _fresh_key("deferred")
    with deferred_kernels() as deferred:
        call = opaque_call(_cubes, _SPEC, key)
    assert opaque_calls._cache_key(key) not in opaque_calls._CALLBACKS
    assert [kernel.key for kernel in deferred.kernels] == [key]
    x = np.linspace(-2, 2, 7)
    np.testing.assert_array_equal(_run(call, x), x**3)
    assert opaque_calls._cache_key(key) in opaque_calls._CALLBACKS
    assert (
        deferred.kernels[0].address == opaque_calls._CALLBACKS[opaque_calls._cache_key(key)].address
    )


def test_build_cached_loads_what_the_disk_cache_holds_and_returns_the_rest(monkeypatch):
    cached_key, new_key = _fresh_key("cached"), _fresh_key("new")
    opaque_call(_cubes, _SPEC, cached_key)  # compiled and written to the disk cache
    monkeypatch.setattr(opaque_calls, "_CALLERS", {})  # as a new process would start
    with deferred_kernels() as deferred:
        cached_call = opaque_call(_cubes, _SPEC, cached_key)
        opaque_call(_cubes, _SPEC, new_key)
    missing = deferred.build_cached()
    assert [kernel.key for kernel in missing] == [new_key]
    assert missing[0].address is None
    assert opaque_calls._CALLBACKS[opaque_calls._cache_key(cached_key)].cache_hits == 1
    x = np.arange(4.0)
    np.testing.assert_array_equal(_run(cached_call, x), x**3)


def test_a_failing_worker_leaves_the_kernel_to_this_process():
    """The worker cannot rebuild the node (a 2-d input for a 4-d pooling Op): it reports
    the node failed, and the kernel is compiled here on its first call."""
    key = _fresh_key("fallback")
    with deferred_kernels() as deferred:
        call = opaque_call(_cubes, _SPEC, key)
    worker = KernelWorker(
        [(MaxPoolKernel((1, 2, 2), (1, 2, 2), (0, 0, 0), True), [pt.matrix().type])]
    )
    deferred.kernels[0].wait = lambda: worker.wait_for(0)
    x = np.arange(5.0)
    np.testing.assert_array_equal(_run(call, x), x**3)
    assert worker.wait_for(0) is False
    assert "must be a 4-d float tensor" in worker.log()


def test_a_forked_child_does_not_wait_for_its_parents_worker():
    worker = KernelWorker([])
    worker._owner = os.getpid() + 1  # what a child forked after the worker started sees
    assert worker.wait_for(0, timeout=60) is False
    worker._owner = os.getpid()
    worker.stop()


def test_the_worker_setting_and_numba_caching_switch_it(monkeypatch):
    monkeypatch.setenv(kernel_worker.KERNEL_WORKER_SETTING, "0")
    assert not worker_enabled()
    monkeypatch.setenv(kernel_worker.KERNEL_WORKER_SETTING, "1")
    assert worker_enabled() == bool(pytensor.config.numba__cache)
    with pytensor.config.change_flags(numba__cache=False):
        assert not worker_enabled()


def test_without_the_worker_the_linker_builds_every_kernel_at_conversion(monkeypatch):
    monkeypatch.setenv(kernel_worker.KERNEL_WORKER_SETTING, "0")
    x = pt.tensor4(dtype="float64")
    op = MaxPoolKernel((1, 2, 2), (1, 2, 2), (0, 0, 0), True)
    f = pytensor.function([x], op(x), mode=fast_math_mode("NUMBA"))
    assert f.maker.linker.kernel_worker is None
    value = np.random.default_rng(1).normal(size=(2, 3, 4, 6))
    np.testing.assert_array_equal(f(value), value.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)))


def test_hand_to_worker_with_nothing_deferred_starts_nothing():
    with deferred_kernels() as deferred:
        pass
    assert hand_to_worker(deferred) is None


_GRAPH = textwrap.dedent(
    """
    import numpy as np, pytensor, pytensor.tensor as pt
    from plasagne.ops import opaque_calls
    from plasagne.ops.fast_math import fast_math_mode
    from plasagne.ops.pool_op import MaxPoolKernel

    x = pt.tensor4(dtype="float64")
    op = MaxPoolKernel((1, 2, 2), (1, 2, 2), (0, 0, 0), True)
    f = pytensor.function([x], op(x), mode=fast_math_mode("NUMBA"))
    worker = f.maker.linker.kernel_worker
    value = np.random.default_rng(0).normal(size=(2, 3, 4, 6))
    same = np.array_equal(f(value), value.reshape(2, 3, 2, 2, 3, 2).max(axis=(3, 5)))
    hits = sorted(callback.cache_hits for callback in opaque_calls._CALLBACKS.values())
    print(worker is not None, same, hits, worker.wait_for(0) if worker else None)
    """
)


def test_a_cold_graph_gets_its_kernels_from_the_worker(tmp_path):
    """Fresh caches: the pooling kernel is compiled by the worker, this process loads it
    (a cache hit) and computes numpy's values; a second process finds it cached and
    starts no worker."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path}")
    env.pop(kernel_worker.KERNEL_WORKER_SETTING, None)
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _GRAPH], env=env, capture_output=True, text=True, check=True
        ).stdout.strip()
        for _ in range(2)
    ]
    assert outputs[0] == "True True [1] True"
    assert outputs[1] == "False True [1] None"


@pytest.mark.parametrize("setting", ["0", "off"])
def test_the_setting_accepts_the_usual_words_for_off(monkeypatch, setting):
    monkeypatch.setenv(kernel_worker.KERNEL_WORKER_SETTING, setting)
    assert not worker_enabled()


def test_an_op_that_does_not_pickle_is_compiled_here(monkeypatch):
    """No worker when the job cannot be written: the kernels are built at once."""

    def refuse(*args, **kwargs):
        raise TypeError("cannot pickle this Op")

    monkeypatch.setattr(kernel_worker.KernelWorker, "__init__", refuse)
    key = _fresh_key("unpicklable")
    with deferred_kernels() as deferred:
        call = opaque_call(_cubes, _SPEC, key)
    deferred.kernels[0].node = (object(), _FakeNode())
    assert hand_to_worker(deferred) is None
    assert deferred.kernels[0].address is not None
    x = np.arange(3.0)
    np.testing.assert_array_equal(_run(call, x), x**3)


class _FakeNode:
    inputs: list = []


def test_the_worker_imports_this_plasagne_from_a_source_tree_only(monkeypatch, tmp_path):
    monkeypatch.setenv("PYTHONPATH", "/elsewhere")
    source = kernel_worker._worker_environment(tmp_path / "checkout")
    assert source["PYTHONPATH"].split(os.pathsep) == [str(tmp_path / "checkout"), "/elsewhere"]
    installed = kernel_worker._worker_environment(tmp_path / "lib" / "site-packages")
    assert installed["PYTHONPATH"] == "/elsewhere"


def test_without_numba_caching_the_linker_has_no_worker():
    x = pt.tensor4(dtype="float64")
    op = MaxPoolKernel((1, 2, 2), (1, 2, 2), (0, 0, 0), True)
    with pytensor.config.change_flags(numba__cache=False):
        f = pytensor.function([x], op(x), mode=fast_math_mode("NUMBA"))
    assert f.maker.linker.kernel_worker is None
    value = np.random.default_rng(2).normal(size=(1, 2, 2, 4))
    np.testing.assert_array_equal(f(value), value.reshape(1, 2, 1, 2, 2, 2).max(axis=(3, 5)))
