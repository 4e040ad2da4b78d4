"""Kernels behind a C call (plasagne.ops.opaque_calls): same values, opaque to callers,
cached across processes, clear errors for arrays they cannot take."""

from __future__ import annotations

import os
import re
import subprocess
import sys
import textwrap
import uuid

import numba
import numpy as np
import pytensor
import pytest

from plasagne.ops import blas_threads, opaque_calls
from plasagne.ops.opaque_calls import kernel_key, opaque_call, threads_behind_call


@numba.njit
def _scaled_rows(x, out, scale):
    """out[i, j] = scale * x[i, j] + i, with a temporary (NRT allocation inside)."""
    for i in range(x.shape[0]):
        row = np.empty(x.shape[1], dtype=x.dtype)
        for j in range(x.shape[1]):
            row[j] = x[i, j] * scale
        for j in range(x.shape[1]):
            out[i, j] = row[j] + i


def _fresh_key(name: str) -> str:
    return f"test-{name}-{uuid.uuid4().hex}"


@pytest.mark.parametrize("dtype", ["float32", "float64", "int64"])
def test_opaque_call_matches_numpy(dtype):
    call = opaque_call(
        _scaled_rows, [(dtype, 2), (dtype, 2), "int64"], _fresh_key(f"scaled-{dtype}")
    )

    @numba.njit
    def use(x, scale):
        out = np.empty_like(x)
        call(x, out, scale)
        return out

    x = (np.arange(12).reshape(3, 4) - 5).astype(dtype)
    expected = x * 3 + np.arange(3)[:, None]
    np.testing.assert_array_equal(use(x, 3), expected.astype(dtype))
    empty = np.zeros((0, 4), dtype=dtype)
    assert use(empty, 3).shape == (0, 4)


def test_callers_do_not_hold_the_kernel_code():
    """The point of the boundary: a caller's module links none of the kernel's code; it
    asks Python for the kernel's address (one declared function) and calls it there."""
    key = _fresh_key("opaque")
    call = opaque_call(_scaled_rows, [("float64", 2), ("float64", 2), "int64"], key)

    @numba.njit
    def use(x, out):
        call(x, out, 2)

    x = np.ones((2, 2))
    use(x, np.empty_like(x))
    llvm = next(iter(use.inspect_llvm().values()))
    assert re.search(r"declare i64 @plasagne_resolve_kernel\(i64", llvm)
    assert "_scaled_rows" not in llvm
    direct = numba.njit(lambda x, out: _scaled_rows(x, out, 2))
    direct(x, np.empty_like(x))
    assert "_scaled_rows" in next(iter(direct.inspect_llvm().values()))


def test_non_contiguous_arrays_are_refused_with_the_kernel_named():
    key = _fresh_key("strided")
    call = opaque_call(_scaled_rows, [("float64", 2), ("float64", 2), "int64"], key)
    use = numba.njit(lambda x, out: call(x, out, 1))
    x = np.ones((4, 4))
    with pytest.raises(ValueError, match=f"{key}: argument 0 is not C-contiguous"):
        use(x[:, ::2], np.empty((4, 2)))


def test_one_caller_per_key_and_fast_math_setting():
    spec = [("float64", 2), ("float64", 2), "int64"]
    key = _fresh_key("same")
    first = opaque_call(_scaled_rows, spec, key)
    assert opaque_call(_scaled_rows, spec, key) is first
    with pytensor.config.change_flags(numba__fastmath=False):
        exact = opaque_call(_scaled_rows, spec, key)
    assert exact is not first
    x = np.arange(6.0).reshape(2, 3)
    outs = [np.empty_like(x), np.empty_like(x)]
    numba.njit(lambda x, a, b: (first(x, a, 2), exact(x, b, 2)))(x, *outs)
    np.testing.assert_array_equal(outs[0], outs[1])


def test_threaded_loop_behind_a_call_matches_serial():
    def fill(out, offset):
        for i in numba.prange(out.shape[0]):
            out[i] = i * i + offset

    run = threads_behind_call(
        fill, numba.njit, True, [("float64", 1), "int64"], _fresh_key("threads")
    )
    out = np.zeros(50)
    numba.njit(lambda out: run(out, 7))(out)
    np.testing.assert_array_equal(out, np.arange(50.0) ** 2 + 7)


def _squares(out, offset):
    for i in numba.prange(out.shape[0]):
        out[i] = i * i + offset


def test_the_serial_variant_compiles_only_where_threads_are_unusable(monkeypatch):
    """A threaded kernel's serial variant (for children forked after Numba's threads
    started) is compiled on its first use, not with the kernel; both give the same values."""
    if not blas_threads.parallel_kernels():
        pytest.skip("kernels are serial here")
    key = _fresh_key("lazy")
    run = threads_behind_call(_squares, numba.njit, True, [("float64", 1), "int64"], key)
    use = numba.njit(lambda out: run(out, 3))
    threaded = np.zeros(40)
    use(threaded)
    np.testing.assert_array_equal(threaded, np.arange(40.0) ** 2 + 3)
    serial_kernel = opaque_calls._KERNELS[opaque_calls._kernel_id(f"{key}-serial")]
    assert serial_kernel.address is None
    monkeypatch.setattr(blas_threads, "_threads_started_by", os.getpid() + 1)  # as a child
    serial = np.zeros(40)
    use(serial)
    np.testing.assert_array_equal(serial, threaded)
    assert serial_kernel.address is not None


def test_a_serial_variant_that_cannot_compile_raises_in_the_caller(monkeypatch, capfd):
    if blas_threads.threads_usable_function() is None:
        pytest.skip("no thread check")
    key = _fresh_key("broken")

    def no_serial_kernel():
        raise RuntimeError("compiler unavailable")

    threaded = numba.njit(parallel=blas_threads.PRANGE_ONLY)(_squares)
    run = opaque_call(threaded, [("float64", 1), "int64"], key, serial=no_serial_kernel)
    use = numba.njit(lambda out: run(out, 0))
    monkeypatch.setattr(blas_threads, "_threads_started_by", os.getpid() + 1)
    with pytest.raises(RuntimeError, match=f"{key}: its serial kernel did not compile here"):
        use(np.zeros(4))
    assert "compiler unavailable" in capfd.readouterr().err


def test_kernel_key_names_settings_dtype_salt_and_part():
    class Settings:
        __props__ = ("kernel", "stride")
        kernel, stride = (3, 3), (1, 1)

    key = kernel_key(Settings(), "float32", 42, "chunk_loop")
    assert key == "Settings((3, 3), (1, 1))-float32-42-chunk_loop"
    assert kernel_key(Settings(), "float64", 42, "chunk_loop") != key


_CHILD = textwrap.dedent(
    """
    import numba, numpy as np
    from plasagne.ops.opaque_calls import opaque_call

    @numba.njit
    def add_one(x):
        for i in range(x.shape[0]):
            x[i] += 1.0

    call = opaque_call(add_one, [("float64", 1)], "test-cache-across-processes-v1")
    x = np.zeros(3)
    numba.njit(lambda x: call(x))(x)
    from plasagne.ops import opaque_calls
    key = opaque_calls._cache_key("test-cache-across-processes-v1")
    print(x.tolist(), opaque_calls._CALLBACKS[key].cache_hits)
    """
)


def test_kernels_and_callers_load_from_the_disk_cache(tmp_path):
    """A second process finds the compiled callback in PyTensor's Numba cache and its
    cached callers find the symbol again."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path}")
    outputs = [
        subprocess.run(
            [sys.executable, "-c", _CHILD], env=env, capture_output=True, text=True, check=True
        ).stdout.split()
        for _ in range(2)
    ]
    assert outputs[0] == ["[1.0,", "1.0,", "1.0]", "0"]
    assert outputs[1] == ["[1.0,", "1.0,", "1.0]", "1"]


def test_with_numba_caching_off_nothing_is_written(tmp_path):
    """``numba__cache=False``: the kernel and its caller compile in memory only."""
    child = _CHILD.replace("test-cache-across-processes-v1", "test-no-cache-v1")
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path},numba__cache=False")
    done = subprocess.run(
        [sys.executable, "-c", child], env=env, capture_output=True, text=True, check=True
    )
    assert done.stdout.split() == ["[1.0,", "1.0,", "1.0]", "0"]
    assert not any(path.suffix in (".nbi", ".nbc") for path in tmp_path.rglob("*"))


_THREADED_CHILD = textwrap.dedent(
    """
    import numba, numpy as np
    from plasagne.ops.opaque_calls import threads_behind_call

    def fill(out):
        for i in numba.prange(out.shape[0]):
            out[i] = i

    run = threads_behind_call(fill, numba.njit, True, [("float64", 1)], "test-threaded-cache")
    out = np.zeros(4)
    numba.njit(lambda out: run(out))(out)
    print(out.tolist())
    """
)


def test_a_threaded_kernel_loads_from_the_cache_before_any_thread_started(tmp_path):
    """A cached threaded callback calls Numba's thread pool by symbol: loading it in a
    process that has not started the pool (nothing parallel compiled yet) aborted."""
    env = dict(os.environ, PYTENSOR_FLAGS=f"base_compiledir={tmp_path}")
    for _ in range(2):
        done = subprocess.run(
            [sys.executable, "-c", _THREADED_CHILD], env=env, capture_output=True, text=True
        )
        assert done.returncode == 0, done.stderr[-2000:]
        assert done.stdout.split() == ["[0.0,", "1.0,", "2.0,", "3.0]"]
