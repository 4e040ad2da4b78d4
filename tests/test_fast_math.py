"""The vectorised float32 Numba kernels (plasagne.ops.fast_math) against numpy in float64."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.compile.mode import get_mode
from pytensor.gradient import verify_grad
from pytensor.tensor.elemwise import Elemwise
from scipy.special import expit

from plasagne.ops.fast_math import (
    FAST_MATH_TAG,
    FastExp,
    FastLog,
    FastSigmoid,
    FastSoftplus,
    FastTanh,
    fast_math_mode,
)
from plasagne.pymc_bridge.fit import resolve_mode

FUNCTIONS = {
    "tanh": (pt.tanh, np.tanh, FastTanh),
    "softplus": (pt.softplus, lambda v: np.logaddexp(0.0, v), FastSoftplus),
    "sigmoid": (pt.sigmoid, expit, FastSigmoid),
    "exp": (pt.exp, np.exp, FastExp),
    "log": (pt.log, np.log, FastLog),
}


@pytest.fixture(scope="module")
def fast_functions():
    """All five functions of one float32 vector, compiled once with the fast kernels."""
    x = pt.vector("x", dtype="float32")
    outs = [fn(x) for fn, _, _ in FUNCTIONS.values()]
    return pytensor.function([x], outs, mode=fast_math_mode("NUMBA"))


def _ordered(values: np.ndarray) -> np.ndarray:
    """float32 bit patterns as integers that count ulps across zero."""
    bits = values.view(np.int32).astype(np.int64)
    return np.where(bits < 0, -(bits & 0x7FFFFFFF), bits)


def _check_against_numpy(fast_functions, xs: np.ndarray) -> None:
    xs = np.asarray(xs, dtype=np.float32)
    results = fast_functions(xs)
    with np.errstate(all="ignore"):
        for (name, (_, reference, _)), got in zip(FUNCTIONS.items(), results):
            want = reference(xs.astype(np.float64)).astype(np.float32)
            assert got.dtype == np.float32, name
            np.testing.assert_array_equal(np.isnan(got), np.isnan(want), err_msg=name)
            special = np.isinf(want) | (want == 0)
            np.testing.assert_array_equal(got[special], want[special], err_msg=name)
            finite = np.isfinite(want) & ~special
            ulps = np.abs(_ordered(got[finite]) - _ordered(want[finite]))
            assert ulps.max(initial=0) <= 1, (name, xs[finite][ulps.argmax()], ulps.max())


def test_kernels_within_one_ulp_on_a_dense_grid(fast_functions):
    magnitudes = np.geomspace(1e-45, 3.4e38, 1_000_001)
    near_one = 1.0 + np.linspace(-0.01, 0.01, 200_001)  # log's cancellation region
    body = np.linspace(-120.0, 120.0, 1_000_001)
    specials = [0.0, -0.0, np.inf, -np.inf, np.nan, 88.72, 88.73, -103.9, -104.0, 9.0, -9.0]
    xs = np.concatenate([magnitudes, -magnitudes, near_one, body, specials])
    _check_against_numpy(fast_functions, xs)


@given(st.lists(st.integers(0, 2**32 - 1), min_size=1, max_size=200))
def test_kernels_within_one_ulp_on_random_bit_patterns(fast_functions, bits):
    xs = np.asarray(bits, dtype=np.uint32).view(np.float32)
    _check_against_numpy(fast_functions, xs)


def _scalar_op_types(fn) -> set:
    found = set()
    for node in fn.maker.fgraph.apply_nodes:
        scalar = getattr(node.op, "scalar_op", None)
        if scalar is None and hasattr(node.op, "inner_fgraph"):  # fused loops
            scalar_nodes = node.op.inner_fgraph.apply_nodes
            found |= {type(getattr(n.op, "scalar_op", n.op)) for n in scalar_nodes}
        elif hasattr(scalar, "fgraph"):  # Composite
            found |= {type(n.op) for n in scalar.fgraph.apply_nodes}
        else:
            found.add(type(scalar))
    return found


def test_rewrite_swaps_float32_functions_in_numba_mode_only():
    mode = fast_math_mode("NUMBA")
    x32 = pt.vector("x", dtype="float32")
    x64 = pt.vector("x", dtype="float64")
    fused = pytensor.function([x32], pt.tanh(2 * x32) + pt.exp(x32), mode=mode)
    assert {FastTanh, FastExp} <= _scalar_op_types(fused)
    wide = pytensor.function([x64], pt.tanh(x64), mode=mode)
    assert not any(issubclass(t, FastTanh) for t in _scalar_op_types(wide))
    plain = pytensor.function([x32], pt.tanh(x32), mode="NUMBA")
    assert FastTanh not in _scalar_op_types(plain)
    v = np.linspace(-3, 3, 7)
    np.testing.assert_allclose(wide(v), np.tanh(v), rtol=1e-15)


def test_fast_math_mode_leaves_other_backends_alone():
    assert fast_math_mode("FAST_COMPILE") is get_mode("FAST_COMPILE")
    assert FAST_MATH_TAG not in getattr(fast_math_mode("CVM").provided_optimizer, "include", ())
    assert FAST_MATH_TAG in resolve_mode("numba").provided_optimizer.include
    explicit = get_mode("NUMBA")
    assert resolve_mode(explicit) is explicit  # a Mode object is used as given


def test_float64_fallback_is_pytensors_own_lowering():
    """A fast Op on float64 (built by hand) compiles to the parent's kernel."""
    x = pt.vector("x", dtype="float64")
    ops = [Elemwise(cls(pytensor.scalar.upgrade_to_float)) for _, _, cls in FUNCTIONS.values()]
    f = pytensor.function([x], [op(x) for op in ops], mode=get_mode("NUMBA"))
    v = np.array([0.25, 1.5, 7.0])
    for got, (_, reference, _) in zip(f(v), FUNCTIONS.values()):
        np.testing.assert_allclose(got, reference(v), rtol=1e-14)


@pytest.mark.parametrize("name", list(FUNCTIONS))
def test_inherited_gradients(name):
    """The fast Ops differentiate like their parents (float64, reference mode)."""
    cls = FUNCTIONS[name][2]
    op = Elemwise(cls(pytensor.scalar.upgrade_to_float))
    rng = np.random.default_rng(0)
    point = rng.uniform(0.2, 2.0, size=5)
    verify_grad(op, [point], rng=rng)


def test_compiled_float32_gradients_match_numpy():
    x = pt.vector("x", dtype="float32")
    total = pt.tanh(x).sum() + pt.softplus(x).sum() + pt.log(pt.exp(x) + 1.0).sum()
    f = pytensor.function([x], pytensor.grad(total, x), mode=fast_math_mode("NUMBA"))
    v = np.linspace(-4.0, 4.0, 33).astype(np.float32)
    t = np.tanh(v.astype(np.float64))
    s = 1.0 / (1.0 + np.exp(-v.astype(np.float64)))
    np.testing.assert_allclose(f(v), (1 - t**2) + 2 * s, rtol=2e-6, atol=2e-7)


def test_composites_of_two_fast_kernels_are_lowered_inline_and_exact():
    """A fused loop holding two fast kernels (the local estimator's entropy term: log of
    softplus, summed, next to softplus and mean + softplus * noise) is lowered with every
    call forced inline, so LLVM can vectorise it, and still matches numpy."""
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    rho, eps, mu = (pt.vector(name, dtype="float32") for name in ("rho", "eps", "mu"))
    sigma = pt.softplus(rho)
    outputs = [pt.log(sigma).sum(acc_dtype="float64"), sigma, mu + sigma * eps]
    f = pytensor.function([rho, eps, mu], outputs, mode=fast_math_mode("NUMBA"))
    composites = [
        inner
        for n in f.maker.fgraph.apply_nodes
        for inner in _composite_nodes(n)
        if any(isinstance(i.op, (FastSoftplus, FastLog)) for i in inner.op.fgraph.apply_nodes)
    ]
    assert composites, "softplus and log should sit in one fused composite"
    for node in composites:
        lowered, key = numba_funcify_and_cache_key(node.op, node=node)
        assert lowered.targetoptions.get("forceinline") is True
        assert key is not None
    rng = np.random.default_rng(0)
    values = [rng.normal(size=1001).astype("float32") for _ in range(3)]
    total, got_sigma, got_w = f(*values)
    want_sigma = np.logaddexp(0.0, values[0].astype(np.float64))
    np.testing.assert_allclose(got_sigma, want_sigma, rtol=2e-7)
    np.testing.assert_allclose(got_w, values[2] + want_sigma * values[1], rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(total, np.log(want_sigma).sum(), rtol=1e-6)


def _composite_nodes(node):
    """Scalar Composite apply nodes inside an Elemwise or a fused node (any nesting)."""
    from pytensor.scalar.basic import Composite

    op = node.op
    if isinstance(op, Composite):
        return [node]
    scalar_op = getattr(op, "scalar_op", None)
    if isinstance(scalar_op, Composite):
        fake = scalar_op.make_node(*[i.type.to_scalar_type()() for i in node.inputs])
        return [fake]
    inner = getattr(op, "fgraph", None)
    if inner is None:
        return []
    return [c for n in inner.apply_nodes for c in _composite_nodes(n)]
