"""Idle-thread settings (plasagne._thread_pools) and BLAS thread control in Numba kernels
(plasagne.ops.blas_threads), each in a fresh process where import order matters."""

import json
import os
import subprocess
import sys

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from plasagne.ops import blas_threads

SETTINGS = (
    "OPENBLAS_THREAD_TIMEOUT",
    "OMP_WAIT_POLICY",
    "NUMBA_THREADING_LAYER",
    "PLASAGNE_PARALLEL_KERNELS",
)

REPORT = """
import json, os
{imports}
from plasagne import _thread_pools
from plasagne.ops import blas_threads
print(json.dumps({{
    "settled": _thread_pools.SETTLED,
    "reason": _thread_pools.SETTLED_REASON,
    "parallel": blas_threads.parallel_kernels(),
    "why_serial": blas_threads.why_serial(),
    "timeout": os.environ.get("OPENBLAS_THREAD_TIMEOUT"),
    "policy": os.environ.get("OMP_WAIT_POLICY"),
}}))
"""


def report(imports, **env):
    """What a fresh Python process reports after ``imports`` with ``env`` set."""
    clean = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    clean.update(env)
    done = subprocess.run(
        [sys.executable, "-c", REPORT.format(imports=imports)],
        env=clean,
        capture_output=True,
        text=True,
        check=True,
    )
    return json.loads(done.stdout.strip().splitlines()[-1])


def test_importing_plasagne_first_sets_both_idle_settings():
    got = report("import plasagne")
    assert got["settled"] and got["reason"] == ""
    assert (got["timeout"], got["policy"]) == ("4", "passive")


def test_settings_the_user_made_are_kept():
    got = report("import plasagne", OPENBLAS_THREAD_TIMEOUT="6")
    assert got["settled"] and (got["timeout"], got["policy"]) == ("6", "passive")


def test_scipy_blas_loaded_first_leaves_kernels_serial_and_says_why():
    got = report("import scipy.linalg\nimport plasagne")
    assert not got["settled"] and not got["parallel"]
    assert "SciPy's BLAS was loaded before plasagne" in got["reason"]
    assert got["why_serial"] == got["reason"]
    assert got["timeout"] is None  # too late to matter: not set


def test_late_import_is_fine_when_the_user_set_both_settings():
    got = report(
        "import scipy.linalg\nimport plasagne",
        OPENBLAS_THREAD_TIMEOUT="4",
        OMP_WAIT_POLICY="passive",
    )
    assert got["settled"] and got["reason"] == ""


def test_opting_out_leaves_the_environment_alone():
    got = report("import plasagne", PLASAGNE_PARALLEL_KERNELS="0")
    assert not got["settled"] and not got["parallel"]
    assert got["reason"] == "PLASAGNE_PARALLEL_KERNELS=0"
    assert got["timeout"] is None and got["policy"] is None


def test_one_numba_thread_means_serial_kernels():
    got = report("import plasagne", NUMBA_NUM_THREADS="1")
    assert got["settled"] and not got["parallel"]
    assert got["why_serial"] == "Numba has one thread"


def test_override_forces_either_way(monkeypatch):
    monkeypatch.setattr(blas_threads, "PARALLEL_KERNELS", False)
    assert not blas_threads.parallel_kernels()
    assert "PARALLEL_KERNELS is False" in blas_threads.why_serial()
    monkeypatch.setattr(blas_threads, "PARALLEL_KERNELS", True)
    assert blas_threads.parallel_kernels() == (blas_threads.blas_thread_functions() is not None)


def test_without_openblas_there_is_no_thread_control(monkeypatch):
    monkeypatch.setattr(blas_threads, "_find_openblas_controls", lambda: None)
    blas_threads.blas_thread_functions.cache_clear()
    try:
        assert blas_threads.blas_thread_functions() is None
        monkeypatch.setattr(blas_threads, "PARALLEL_KERNELS", True)
        assert not blas_threads.parallel_kernels()
        assert "not OpenBLAS" in blas_threads.why_serial()
    finally:
        blas_threads.blas_thread_functions.cache_clear()


@pytest.mark.backend
def test_parallel_kernel_runs_numba_threads_and_restores_blas_threads(monkeypatch):
    functions = blas_threads.blas_thread_functions()
    if functions is None:
        pytest.skip("Numba's BLAS is not OpenBLAS")
    import numba

    get_threads, set_threads = functions
    read = numba.njit(lambda: get_threads())
    write = numba.njit(lambda n: set_threads(n))
    from plasagne.ops.chunked_corr import ChunkedCorr

    settings_3d = ((1, 3, 3), (1, 1, 1), (1, 1, 1))
    x, w = pt.tensor5("x"), pt.tensor5("w")
    rng = np.random.default_rng(0)
    xv, wv = rng.standard_normal((40, 8, 1, 12, 12)), rng.standard_normal((6, 8, 1, 3, 3))
    values = {}
    before = read()
    try:
        write(2)  # what the kernel must put back
        for parallel in (False, True):
            monkeypatch.setattr(blas_threads, "PARALLEL_KERNELS", parallel)
            f = pytensor.function([x, w], ChunkedCorr(*settings_3d)(x, w), mode="NUMBA")
            values[parallel] = f(xv, wv)
            assert read() == 2
    finally:
        write(before)
    # the parallel kernel started Numba's threads (threading_layer raises before that)
    assert numba.threading_layer() in ("omp", "tbb", "workqueue")
    np.testing.assert_allclose(values[True], values[False], rtol=1e-12, atol=1e-12)


CACHED_KERNEL = """
import numpy as np, pytensor, pytensor.tensor as pt
import plasagne
from plasagne.ops import blas_threads
from plasagne.ops.chunked_corr import ChunkedCorr
from plasagne.ops.fast_math import fast_math_mode
blas_threads.PARALLEL_KERNELS = True
x, w = pt.tensor5("x"), pt.tensor5("w")
# more than one node: PyTensor caches the whole graph function, the kernel inside it
out = pt.exp(ChunkedCorr((1, 3, 3), (1, 1, 1), (1, 1, 1))(x, w) * 0.1)
f = pytensor.function([x, w], out, mode=fast_math_mode("NUMBA"))  # what fit compiles with
rng = np.random.default_rng(0)
out = f(rng.standard_normal((30, 4, 1, 9, 9)), rng.standard_normal((5, 4, 1, 3, 3)))
print(repr(float(np.abs(out).sum())))
"""


@pytest.mark.backend
def test_parallel_kernel_loads_from_the_disk_cache_in_a_new_process(tmp_path):
    """The second process loads the compiled graph function (the kernel inside it) from
    disk: the BLAS functions it calls by symbol must be registered before it runs."""
    if blas_threads.blas_thread_functions() is None:
        pytest.skip("Numba's BLAS is not OpenBLAS")
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    env["PYTENSOR_FLAGS"] = f"base_compiledir={tmp_path}"
    env["NUMBA_CACHE_DIR"] = str(tmp_path / "numba")
    runs = [
        subprocess.run(
            [sys.executable, "-c", CACHED_KERNEL],
            env=env,
            capture_output=True,
            text=True,
            timeout=300,
        )
        for _ in range(2)
    ]
    for run in runs:
        assert run.returncode == 0, run.stderr[-2000:]
    assert runs[0].stdout == runs[1].stdout
    assert any(tmp_path.rglob("*.nbc")), "nothing was cached on disk"


def test_deciding_on_parallel_kernels_starts_numbas_threads():
    """Cached graph functions call the thread pool's entry points by symbol; Numba
    registers them when it starts its threads, which parallel_kernels() does."""
    code = (
        "import plasagne, numba\n"
        "from plasagne.ops import blas_threads\n"
        "blas_threads.PARALLEL_KERNELS = True\n"
        "ok = blas_threads.parallel_kernels()\n"
        "print(ok, numba.threading_layer() if ok else '-')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    done = subprocess.run(
        [sys.executable, "-c", code], env=env, capture_output=True, text=True, check=True
    )
    ok, layer = done.stdout.split()
    if ok == "False":
        pytest.skip("Numba's BLAS is not OpenBLAS")
    assert layer in ("omp", "tbb", "workqueue")


def test_numba_threads_started_first_is_too_late(monkeypatch):
    from plasagne import _thread_pools

    for name in ("scipy.linalg._fblas", "scipy.linalg.cython_blas"):
        monkeypatch.delitem(sys.modules, name, raising=False)
    monkeypatch.setattr(_thread_pools, "_loaded_libraries", lambda: "/x/numba/omppool.so\n")
    assert "Numba's threads had started before plasagne" in _thread_pools._too_late()
    monkeypatch.setattr(_thread_pools, "_loaded_libraries", lambda: "/usr/lib/libc.so.6\n")
    assert _thread_pools._too_late() == ""


def test_prepare_sets_only_what_is_missing_and_only_in_time(monkeypatch):
    from plasagne import _thread_pools

    for name in SETTINGS:
        monkeypatch.delenv(name, raising=False)
    monkeypatch.setattr(_thread_pools, "_too_late", lambda: "too late for a test")
    assert _thread_pools.prepare_idle_settings() == (False, "too late for a test")
    assert "OPENBLAS_THREAD_TIMEOUT" not in os.environ
    monkeypatch.setattr(_thread_pools, "_too_late", lambda: "")
    monkeypatch.setenv("OMP_WAIT_POLICY", "active")
    assert _thread_pools.prepare_idle_settings() == (True, "")
    assert os.environ["OPENBLAS_THREAD_TIMEOUT"] == "4"
    assert os.environ["OMP_WAIT_POLICY"] == "active"


def test_late_import_warns_once_and_opting_out_does_not():
    code = (
        "import warnings\n"
        "import scipy.linalg\n"
        "import plasagne\n"
        "from plasagne.ops import blas_threads\n"
        "with warnings.catch_warnings(record=True) as caught:\n"
        "    warnings.simplefilter('always')\n"
        "    blas_threads.parallel_kernels(); blas_threads.parallel_kernels()\n"
        "print(len(caught), *[str(w.message) for w in caught], sep='|')\n"
    )
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    runs = {
        opt_out: subprocess.run(
            [sys.executable, "-c", code],
            env={**env, "PLASAGNE_PARALLEL_KERNELS": opt_out},
            capture_output=True,
            text=True,
            check=True,
        ).stdout.strip()
        for opt_out in ("1", "0")
    }
    count, message = runs["1"].split("|")
    assert count == "1"
    assert "run on one thread: SciPy's BLAS was loaded before plasagne" in message
    assert "OPENBLAS_THREAD_TIMEOUT=4" in message
    assert runs["0"] == "0"


FORKED = """
import os
import numpy as np, pytensor, pytensor.tensor as pt
import plasagne
from plasagne.ops import blas_threads
from plasagne.ops.chunked_corr import ChunkedCorr
blas_threads.PARALLEL_KERNELS = True
x, w = pt.tensor5("x"), pt.tensor5("w")
out = pt.exp(ChunkedCorr((1, 3, 3), (1, 1, 1), (1, 1, 1))(x, w) * 0.1)
f = pytensor.function([x, w], out, mode="NUMBA")
rng = np.random.default_rng(0)
xv, wv = rng.standard_normal((30, 4, 1, 9, 9)), rng.standard_normal((5, 4, 1, 3, 3))
want = f(xv, wv)
pid = os.fork()
if pid == 0:
    blas_threads.parallel_kernels()  # asked again in the child (compiling a new kernel)
    os._exit(0 if np.allclose(f(xv, wv), want) else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
import numba
print(numba.threading_layer())
"""


@pytest.mark.backend
def test_a_forked_process_runs_the_parallel_kernels():
    """PyMC's multi-chain sampling forks on Linux; GNU OpenMP aborts a forked child in
    its first parallel loop ("fork() called from a process already using GNU OpenMP"), so
    the kernels run their loops serially in a forked child."""
    if blas_threads.blas_thread_functions() is None or not hasattr(os, "fork"):
        pytest.skip("needs OpenBLAS and fork")
    env = {k: v for k, v in os.environ.items() if k not in SETTINGS}
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FORKED],
        env=env,
        capture_output=True,
        text=True,
        timeout=300,
    )
    assert done.returncode == 0, done.stderr[-2000:]
    child_exit, layer = done.stdout.strip().splitlines()[-2:]
    assert child_exit == "0", done.stderr[-2000:]
    assert layer in ("omp", "tbb", "workqueue")


def test_threads_are_usable_only_in_the_process_that_started_them(monkeypatch):
    monkeypatch.setattr(blas_threads, "_threads_started_by", None)
    assert blas_threads._threads_usable() == 0
    monkeypatch.setattr(blas_threads, "_threads_started_by", os.getpid() + 1)
    assert blas_threads._threads_usable() == 0  # as in a forked child
    monkeypatch.setattr(blas_threads, "_threads_started_by", os.getpid())
    assert blas_threads._threads_usable() == 1
