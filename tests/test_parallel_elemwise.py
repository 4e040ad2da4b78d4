"""Elementwise loops with fast kernels on Numba's threads (plasagne.ops.parallel_elemwise)."""

import os
import subprocess
import sys
from contextlib import contextmanager

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.link.numba.linker import NumbaLinker
from pytensor.tensor.rewriting.fused_elemwise import FusedElemwise
from pytensor.tensor.rewriting.scalarize import ScalarizedElemwise

from plasagne.ops import blas_threads, parallel_elemwise
from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.parallel_elemwise import (
    caller_source,
    channel_caller_source,
    channel_loop_source,
    loop_source,
    rows_caller_source,
)

pytestmark = pytest.mark.skipif(
    not blas_threads.parallel_kernels(), reason=f"kernels serial: {blas_threads.why_serial()}"
)

F32 = "float32"


def update_outputs(rho, g, m, v, t):
    """An Adam-like update through a sigmoid, as PyMC's step has: three outputs, a step
    size computed from a scalar (PyTensor passes it as a native number)."""
    lr = 0.01 * pt.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    grad = g * pt.sigmoid(rho)
    m2 = 0.9 * m + 0.1 * grad
    v2 = 0.999 * v + 0.001 * grad * grad
    return [rho - lr * m2 / (pt.sqrt(v2) + 1e-8), m2, v2]


def update_numpy(rho, g, m, v, t):
    lr = 0.01 * np.sqrt(1 - 0.999**t) / (1 - 0.9**t)
    grad = g.astype(np.float64) / (1 + np.exp(-rho.astype(np.float64)))
    m2 = 0.9 * m + 0.1 * grad
    v2 = 0.999 * v + 0.001 * grad * grad
    return [rho - lr * m2 / (np.sqrt(v2) + 1e-8), m2, v2]


def softplus_and_entropy(rho, eps):
    """sigma = softplus(rho) and the entropy-like sum of PyMC's mean-field step, fused into
    one loop with an elementwise output and a sum."""
    sigma = pt.softplus(rho)
    return [sigma, ((-0.5 * pt.sqr(eps)) - pt.log(sigma)).sum(acc_dtype="float64")]


def softplus_numpy(x):
    return np.logaddexp(0.0, x.astype(np.float64))


@contextmanager
def recorded_lowerings():
    """Record ``(Op type name, lowered)`` for each node the parallel lowering is asked
    about while compiling inside."""
    lowered = []
    original = parallel_elemwise._lower

    def recording(op, node):
        result = original(op, node)
        lowered.append((type(op).__name__, result is not None))
        return result

    parallel_elemwise._lower = recording
    try:
        yield lowered
    finally:
        parallel_elemwise._lower = original


@pytest.fixture(scope="module")
def compiled():
    """Functions of vectors of any length, compiled once for the module: which of their
    nodes got the parallel loop is recorded."""
    mode = fast_math_mode("NUMBA")
    with recorded_lowerings() as lowered:
        with pytensor.config.change_flags(floatX=F32):
            x, y, rho, g, m, v = (pt.vector(n, dtype=F32) for n in ("x", "y", "rho", "g", "m", "v"))
            t = pt.scalar("t", dtype=F32)
            h = pt.tensor3("h", dtype=F32)
            row, noise = (pt.matrix(n, dtype=F32, shape=(1, None)) for n in ("row", "noise"))
            bias = pt.tensor3("bias", dtype=F32, shape=(1, None, 1))
            graphs = {
                "softplus": ([x], pt.softplus(x)),
                "times_tanh": ([x, y], pt.tanh(x) * y + 1),
                "update": ([rho, g, m, v, t], update_outputs(rho, g, m, v, t)),
                "entropy": ([x, y], ((-0.5 * pt.sqr(x)) - pt.log(y)).sum(acc_dtype="float64")),
                "hidden": ([h, bias, t], pt.tanh(h + bias) * t),
                "softplus_and_entropy": ([row, noise], softplus_and_entropy(row, noise)),
            }
            functions = {k: pytensor.function(*graph, mode=mode) for k, graph in graphs.items()}
            # the same graphs with PyTensor's own lowering: the reference implementation
            pytensors = Mode(linker=NumbaLinker(), optimizer=mode.provided_optimizer)
            references = {k: pytensor.function(*g, mode=pytensors) for k, g in graphs.items()}
    return functions, lowered, references


def nodes(f):
    return [type(n.op) for n in f.maker.fgraph.apply_nodes]


def test_the_loops_of_every_kind_are_lowered(compiled):
    functions, lowered, _ = compiled
    assert ("Elemwise", True) in lowered
    assert ("ScalarizedElemwise", True) in lowered  # the update with its native step size
    assert ("FusedElemwise", True) in lowered  # the entropy's sum
    assert ScalarizedElemwise in nodes(functions["update"])
    assert FusedElemwise in nodes(functions["entropy"])
    assert sum(done for _, done in lowered) == len(functions), lowered


lengths = st.sampled_from([0, 1, 2, 7, 16383, 16384, 16385, 65537, 200001])


@given(lengths, st.integers(0, 2**31))
def test_softplus_and_products_equal_numpy(compiled, n, seed):
    functions, _, references = compiled
    rng = np.random.default_rng(seed)
    x = (rng.standard_normal(n) * 8).astype(F32)
    y = rng.standard_normal(n).astype(F32)
    got = functions["softplus"](x)
    np.testing.assert_allclose(got, softplus_numpy(x), rtol=2e-7, atol=1e-30)
    np.testing.assert_array_equal(got, references["softplus"](x))
    got = functions["times_tanh"](x, y)
    np.testing.assert_allclose(got, np.tanh(x.astype(np.float64)) * y + 1, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(got, references["times_tanh"](x, y), rtol=2e-7, atol=1e-7)


@given(lengths, st.integers(0, 2**31), st.sampled_from([1.0, 3.0, 250.0]))
def test_update_with_three_outputs_equals_numpy(compiled, n, seed, t):
    functions, _, references = compiled
    rng = np.random.default_rng(seed)
    rho, g, m = (rng.standard_normal(n).astype(F32) for _ in range(3))
    v = np.abs(rng.standard_normal(n)).astype(F32)
    got = functions["update"](rho.copy(), g, m.copy(), v.copy(), np.float32(t))
    reference = references["update"](rho.copy(), g, m.copy(), v.copy(), np.float32(t))
    for a, b, c in zip(got, reference, update_numpy(rho, g, m, v, t), strict=True):
        assert a.dtype == np.float32 and a.shape == (n,)
        np.testing.assert_allclose(a, b, rtol=3e-7, atol=1e-7)
        np.testing.assert_allclose(a, c, rtol=1e-4, atol=1e-5)


@given(lengths, st.integers(0, 2**31))
def test_sum_of_a_fused_loop_equals_numpy(compiled, n, seed):
    functions, _, references = compiled
    rng = np.random.default_rng(seed)
    x = rng.standard_normal(n).astype(F32)
    y = (np.abs(rng.standard_normal(n)) + 0.01).astype(F32)
    want = (-0.5 * x.astype(np.float64) ** 2 - np.log(y.astype(np.float64))).sum()
    got = functions["entropy"](x, y)
    np.testing.assert_allclose(got, want, rtol=1e-5, atol=1e-4)
    np.testing.assert_allclose(got, references["entropy"](x, y), rtol=1e-5, atol=1e-4)


@given(st.sampled_from([0, 1, 3, 40, 300]), st.integers(0, 2**31))
def test_rows_with_a_broadcast_bias_equal_numpy(compiled, n, seed):
    """tanh(h + bias) * t, bias broadcast over rows and the last axis, t a number: blocks
    of rows."""
    functions, lowered, references = compiled
    rng = np.random.default_rng(seed)
    h = rng.standard_normal((n, 64, 30)).astype(F32)
    bias = rng.standard_normal((1, 64, 1)).astype(F32)
    got = functions["hidden"](h, bias, np.float32(1.5))
    want = np.tanh(h.astype(np.float64) + bias) * 1.5
    assert got.shape == (n, 64, 30)
    np.testing.assert_allclose(got, want, rtol=2e-6, atol=1e-6)
    np.testing.assert_allclose(got, references["hidden"](h, bias, np.float32(1.5)), 3e-7, 1e-7)
    with pytest.raises(ValueError):
        functions["hidden"](h, np.zeros((1, 63, 1), F32), np.float32(1.5))


def test_large_loop_without_fast_kernels():
    """A loop bound by memory over a parameter vector's known length (mu + sigma * eps)."""
    n = 2**20 + 3
    mu, sigma, eps = (pt.matrix(name, dtype=F32, shape=(1, n)) for name in ("mu", "s", "e"))
    with recorded_lowerings() as lowered:
        f = pytensor.function([mu, sigma, eps], mu + sigma * eps, mode=fast_math_mode("NUMBA"))
    assert [done for _, done in lowered] == [True]
    rng = np.random.default_rng(5)
    values = [rng.standard_normal((1, n)).astype(F32) for _ in range(3)]
    want = values[0] + values[1] * values[2]
    np.testing.assert_allclose(f(*values), want, rtol=1e-6, atol=1e-6)


@given(lengths, st.integers(0, 2**31))
def test_a_fused_loop_with_an_elementwise_output_and_a_sum(compiled, n, seed):
    functions, _, references = compiled
    assert FusedElemwise in nodes(functions["softplus_and_entropy"])
    rng = np.random.default_rng(seed)
    rho = (rng.standard_normal((1, n)) * 3 - 3).astype(F32)
    eps = rng.standard_normal((1, n)).astype(F32)
    sigma, total = functions["softplus_and_entropy"](rho, eps)
    want_sigma = softplus_numpy(rho)
    want_total = (-0.5 * eps.astype(np.float64) ** 2 - np.log(want_sigma)).sum()
    np.testing.assert_allclose(sigma, want_sigma, rtol=2e-7, atol=1e-30)
    np.testing.assert_allclose(total, want_total, rtol=1e-5, atol=1e-4)
    ref_sigma, ref_total = references["softplus_and_entropy"](rho, eps)
    np.testing.assert_array_equal(sigma, ref_sigma)
    np.testing.assert_allclose(total, ref_total, rtol=1e-5, atol=1e-4)


@pytest.mark.parametrize("keepdims", [False, True])
def test_sums_that_keep_the_channel_axis(keepdims):
    """A convolution's bias gradient: ``(x >= 0) * g`` and its sum over axes 0, 2, 3, known
    to be long (2^20 elements or more), against numpy and PyTensor's own lowering."""
    shape = (70, 33, 15, 31)  # 1,074,150 elements, axis 0 not a multiple of the blocks
    x, g = (pt.tensor(name, dtype=F32, shape=shape) for name in ("x", "g"))
    gated = (x >= 0) * g
    outputs = [gated, gated.sum(axis=(0, 2, 3), keepdims=keepdims)]
    mode = fast_math_mode("NUMBA")
    with recorded_lowerings() as lowered:
        f = pytensor.function([x, g], outputs, mode=mode)
    assert lowered == [("FusedElemwise", True)]
    rng = np.random.default_rng(11)
    xv, gv = (rng.standard_normal(shape).astype(F32) for _ in range(2))
    got_gated, got_sum = f(xv, gv)
    want = (xv >= 0) * gv.astype(np.float64)
    np.testing.assert_array_equal(got_gated, want.astype(F32))
    want_sum = want.sum(axis=(0, 2, 3), keepdims=keepdims)
    assert got_sum.shape == want_sum.shape and got_sum.dtype == F32
    np.testing.assert_allclose(got_sum, want_sum, rtol=1e-5, atol=1e-4)
    pytensors = Mode(linker=NumbaLinker(), optimizer=mode.provided_optimizer)
    reference = pytensor.function([x, g], outputs, mode=pytensors)(xv, gv)
    np.testing.assert_allclose(got_sum, reference[1], rtol=1e-5, atol=1e-4)


def test_channel_sums_of_an_empty_batch_and_of_mismatched_inputs():
    x, g = (pt.tensor(name, dtype=F32, shape=(None, 4, 2**10, 2**10)) for name in ("x", "g"))
    gated = (x >= 0) * g
    shape = (2, 4, 2**10, 2**10)
    f = pytensor.function([x, g], [gated, gated.sum(axis=(0, 2, 3))], mode=fast_math_mode("NUMBA"))
    got, total = f(np.zeros((0, 4, 2**10, 2**10), F32), np.zeros((0, 4, 2**10, 2**10), F32))
    assert got.shape == (0, 4, 2**10, 2**10)
    np.testing.assert_array_equal(total, np.zeros(4, F32))
    ones = np.ones(shape, F32)
    np.testing.assert_array_equal(f(ones, ones)[1], np.full(4, 2 * 2**20, F32))
    with pytest.raises(ValueError):
        f(ones, np.ones((1, 4, 2**10, 2**10), F32))


def test_inputs_of_different_shapes_are_an_error(compiled):
    functions, _, references = compiled
    with pytest.raises(ValueError):
        functions["times_tanh"](np.zeros(70000, F32), np.zeros(70001, F32))


def test_strided_and_matrix_inputs():
    """A transposed view is copied to a contiguous array first; matrices are flattened."""
    x = pt.matrix("x", dtype=F32)
    f = pytensor.function([x], pt.softplus(x.T) * 2, mode=fast_math_mode("NUMBA"))
    value = np.random.default_rng(0).standard_normal((300, 500)).astype(F32)
    np.testing.assert_allclose(f(value), 2 * softplus_numpy(value.T), rtol=2e-7)


def test_which_nodes_are_lowerable():
    """Decided from the graph: fast kernels, full or single-number inputs, not small."""
    mode = Mode(linker="py", optimizer=fast_math_mode("NUMBA").provided_optimizer)
    x = pt.matrix("x", dtype=F32, shape=(None, 800))
    bias = pt.matrix("b", dtype=F32, shape=(1, 800))
    number = pt.scalar("c", dtype=F32)
    small = pt.vector("s", dtype=F32, shape=(1000,))
    large = pt.matrix("l", dtype=F32, shape=(1, 2**20))
    double = pt.matrix("d", dtype="float64")
    big = pt.tensor4("big", dtype=F32, shape=(500, 32, 12, 12))
    conv = pt.tensor4("conv", dtype=F32, shape=(50, 32, 12, 12))
    gate, small_gate = (big >= 0) * (big + 1), (conv >= 0) * (conv + 1)
    cases = {
        "softplus": ([x], pt.softplus(x), True),
        "times one number": ([x, number], pt.tanh(x) * number, True),
        "row broadcast": ([x, bias], pt.tanh(x + bias), True),
        "row broadcast of a sum": ([x, bias], (pt.tanh(x + bias)).sum(axis=1), False),
        "no fast kernel": ([x], x * 2 + 1, False),
        "no fast kernel, large": ([large], large * 2 + 1, True),
        "no fast kernel, large sum": ([large], (large * 2 + 1).sum(), False),
        "large sums over axes 0, 2, 3": ([big], [gate, gate.sum(axis=(0, 2, 3))], True),
        "large sums over axes 1, 2, 3": ([big], [gate, gate.sum(axis=(1, 2, 3))], False),
        "small sums over axes 0, 2, 3": (
            [conv],
            [small_gate, small_gate.sum(axis=(0, 2, 3))],
            False,
        ),
        "small": ([small], pt.softplus(small), False),
        "float64": ([double], pt.softplus(double), False),
        "complex output": ([x], pt.softplus(x) * pt.complex(x, x), False),
    }
    for name, (inputs, expr, expected) in cases.items():
        if "sums over" in name:  # Numba's fusion makes the loop holding the sum; it decides
            f = pytensor.function(inputs, expr, mode=fast_math_mode("NUMBA"))
            graph = [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, FusedElemwise)]
            assert len(graph) == 1, name
        else:
            graph = pytensor.function(inputs, expr, mode=mode).maker.fgraph.apply_nodes
        assert any(parallel_elemwise.lowerable(n) for n in graph) == expected, name


def test_loop_and_caller_sources():
    loop = loop_source("demo", (True, False, False), (False, False))
    assert "_vectorized(core_writing" in loop and "(in0[low:high], in1, in2, out0[low:high]" in loop
    summed = loop_source("demo", (True,), (True,))
    assert "sum0 += ACC0(value)" in summed and "out0[index] = sum0" in summed
    mixed = loop_source("demo", (True,), (False, True))
    assert "part_out0[i] = value[0]" in mixed and "sum1 += ACC1(value[1])" in mixed
    assert "out1[index] = sum1" in mixed and "out0[index]" not in mixed
    caller = caller_source(("full", "number"), {}, (None,), (True,))
    assert "a1 = np.full(1, x1, dtype=IN1)" in caller
    assert "result0 = OUT0(out0.sum())" in caller
    inplace = caller_source(("full", "full"), {1: 0}, (2, 2), (False, False))
    assert "out1 = a0" in inplace and "out0 = np.empty(a0.shape, dtype=OUT0)" in inplace
    patterns = ((True, False, False), (False, False, False), (True, True, True))
    rows = rows_caller_source(("part", "full", "number"), patterns, {0: 1}, 1)
    assert "a2 = np.full((1, 1, 1, ), x2, dtype=IN2)" in rows
    assert "if a0.shape[1] != a1.shape[1]:" in rows and "a0.shape[0]" not in rows
    assert "out0 = a1" in rows
    channels = channel_loop_source("demo", 2, (True, False))
    assert "value = core(row_in0[j], row_in1[j])" in channels
    assert "out0[index, c] += sum0" in channels and "row_out1[j] = value[1]" in channels
    kept = channel_caller_source(2, (4, 4), (True, False))
    assert "result0 = total0.astype(OUT0).reshape((1, n1, 1, 1))" in kept
    assert "if a1.shape != a0.shape:" in kept


FORKED = """
import os
import numpy as np, pytensor, pytensor.tensor as pt
import plasagne
from plasagne.ops.fast_math import fast_math_mode
x = pt.vector("x", dtype="float32")
f = pytensor.function([x], pt.softplus(x) * 3, mode=fast_math_mode("NUMBA"))
value = np.linspace(-20, 20, 300001).astype("float32")
want = f(value)
pid = os.fork()
if pid == 0:
    os._exit(0 if np.array_equal(f(value), want) else 3)
print(os.waitstatus_to_exitcode(os.waitpid(pid, 0)[1]))
"""


@pytest.mark.backend
def test_a_forked_process_runs_the_loop_serially():
    if not hasattr(os, "fork"):
        pytest.skip("needs fork")
    done = subprocess.run(
        [sys.executable, "-W", "ignore", "-c", FORKED], capture_output=True, text=True, timeout=300
    )
    assert done.returncode == 0, done.stderr[-2000:]
    assert done.stdout.strip().splitlines()[-1] == "0", done.stderr[-2000:]
