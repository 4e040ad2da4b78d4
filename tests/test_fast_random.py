"""The counter-based float32 normal draws (plasagne.ops.fast_random) and the late sum removal."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.compile.mode import Mode, get_mode
from pytensor.tensor.math import Sum
from scipy import stats

from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.fast_random import FAST_NORMAL_TAG, FastNormalDraws, draw_key, normals_from_key
from plasagne.ops.graph_cleanup import LATE_REDUCE_TAG

MASK64 = (1 << 64) - 1


def hand_hash(key: int, i: int) -> int:
    """SplitMix64's finaliser of ``key + (i + 1) * gamma``, in Python integers."""
    z = (key + (i + 1) * 0x9E3779B97F4A7C15) & MASK64
    z = ((z ^ (z >> 30)) * 0xBF58476D1CE4E5B9) & MASK64
    z = ((z ^ (z >> 27)) * 0x94D049BB133111EB) & MASK64
    return z ^ (z >> 31)


def hand_normals(key: int, n: int) -> np.ndarray:
    """Box-Muller on the hashes, written out with Python's math per pair."""
    half = n // 2
    pairs = []
    for i in range(half + n % 2):
        h = hand_hash(key, i)
        u = ((h >> 32) + 0.5) / 2**32
        low = h & 0xFFFFFFFF
        theta = ((low >> 30) + ((low & 0x3FFFFFFF) + 0.5) / 2**30 - 0.5) * np.pi / 2
        r = np.sqrt(-2.0 * np.log(u))
        pairs.append((r * np.cos(theta), r * np.sin(theta)))
    cos_part = [c for c, _ in pairs]
    sin_part = [s for _, s in pairs[:half]]
    return np.array(cos_part[:half] + sin_part + cos_part[half:])


def first_key(seed: int) -> int:
    """The key of the first draw from a generator seeded with ``seed``: the top 32 bits of
    two uniform numbers."""
    g = np.random.default_rng(seed)
    high, low = int(g.random() * 2**32), int(g.random() * 2**32)
    return high * 2**32 + low


def test_draw_key_is_the_hand_written_key():
    assert draw_key(np.random.default_rng(6)) == first_key(6)


@pytest.fixture(scope="module")
def numba_mode():
    return fast_math_mode("NUMBA")


def compiled_normal(mode, seed, size, loc=0.0, scale=1.0, update=True, dtype="float32"):
    rng = pytensor.shared(np.random.default_rng(seed))
    next_rng, z = pt.random.normal(
        loc, scale, size=size, rng=rng, dtype=dtype, return_next_rng=True
    )
    updates = {rng: next_rng} if update else None
    return pytensor.function([], z, updates=updates, mode=mode), rng


def fast_nodes(f):
    return [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, FastNormalDraws)]


@pytest.mark.parametrize("n", [0, 1, 2, 7, 10])
def test_reference_matches_hand_written_formula(n):
    np.testing.assert_allclose(normals_from_key(123456789, n), hand_normals(123456789, n))


def test_numba_kernel_matches_reference(numba_mode):
    f, _ = compiled_normal(numba_mode, 5, (3, 40001), loc=0.5, scale=2.0)
    assert len(fast_nodes(f)) == 1
    got = f()
    assert got.dtype == np.float32 and got.shape == (3, 40001)
    want = 0.5 + 2.0 * normals_from_key(first_key(5), 3 * 40001)
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-6, atol=2e-6)
    # 60,001 pairs: drawn in blocks on Numba's threads, behind a C call
    from plasagne.ops import blas_threads, opaque_calls

    if blas_threads.parallel_kernels():
        keys = [kernel.key for kernel in opaque_calls._KERNELS.values()]
        assert any(key.startswith("plasagne-fast-normal-fill") for key in keys)


def test_perform_matches_numba(numba_mode):
    """The Python implementation (C and Python backends) draws the same numbers."""
    op = FastNormalDraws(ndim=1, static_shape=(None,))
    rng = pytensor.shared(np.random.default_rng(9))
    _, z = op(rng, pt.as_tensor([1001]), pt.constant(-1.0), pt.constant(0.5))
    python = pytensor.function([], z, mode="FAST_COMPILE")()
    numba = pytensor.function([], z, mode=numba_mode)()
    np.testing.assert_allclose(python, numba, rtol=1e-6, atol=1e-6)
    np.testing.assert_allclose(python, -1.0 + 0.5 * normals_from_key(first_key(9), 1001), 1e-6)


def test_draws_are_standard_normal(numba_mode):
    f, _ = compiled_normal(numba_mode, 0, (400_000,))
    z = np.concatenate([f(), f()]).astype(np.float64)
    assert stats.kstest(z, "norm").pvalue > 1e-3
    assert abs(z.mean()) < 5 / np.sqrt(z.size)
    assert abs(z.var() - 1.0) < 5 * np.sqrt(2 / z.size)
    assert abs(stats.skew(z)) < 5 * np.sqrt(6 / z.size)
    assert abs(stats.kurtosis(z)) < 5 * np.sqrt(24 / z.size)
    # the radius's 32-bit uniform bounds the tails
    assert np.abs(z).max() <= np.sqrt(-2 * np.log(0.5 / 2**32)) + 1e-6
    # tail mass beyond 3 sigma as for a normal
    tail = np.mean(np.abs(z) > 3)
    expected = 2 * stats.norm.sf(3)
    assert abs(tail - expected) < 5 * np.sqrt(expected / z.size)


def test_draws_are_uncorrelated(numba_mode):
    f, _ = compiled_normal(numba_mode, 1, (200_000,))
    a, b = f(), f()
    half = a.size // 2
    bound = 5 / np.sqrt(half)
    # the two halves (cosines and sines of the same pairs), neighbours, successive calls
    assert abs(np.corrcoef(a[:half], a[half:])[0, 1]) < bound
    assert abs(np.corrcoef(a[:-1], a[1:])[0, 1]) < bound
    assert abs(np.corrcoef(a, b)[0, 1]) < bound
    # squares are independent too (Box-Muller pairs share a radius: r^2 = x^2 + y^2)
    assert abs(np.corrcoef(a[:half] ** 2, a[half:] ** 2)[0, 1]) < 2 * bound


def test_generator_advances_and_seed_reproduces(numba_mode):
    f, rng = compiled_normal(numba_mode, 3, (1000,))
    first, second = f(), f()
    assert not np.allclose(first, second)
    g, _ = compiled_normal(numba_mode, 3, (1000,))
    np.testing.assert_array_equal(g(), first)
    np.testing.assert_array_equal(g(), second)
    # two keys taken: the shared generator is where a numpy generator is after four uniforms
    expected = np.random.default_rng(3)
    expected.random(4)
    assert rng.get_value().bit_generator.state == expected.bit_generator.state


def test_without_update_the_generator_is_not_advanced(numba_mode):
    f, rng = compiled_normal(numba_mode, 4, (50,), update=False)
    [node] = fast_nodes(f)
    assert not node.op.inplace
    np.testing.assert_array_equal(f(), f())
    assert rng.get_value().bit_generator.state == np.random.default_rng(4).bit_generator.state


@given(
    shape=st.lists(st.integers(0, 7), min_size=1, max_size=3),
    loc=st.floats(-3, 3),
    scale=st.floats(0.01, 3),
)
def test_any_shape_and_parameters(numba_mode, shape, loc, scale):
    f, _ = compiled_normal(numba_mode, 11, tuple(shape), loc=loc, scale=scale)
    got = f()
    assert got.shape == tuple(shape) and got.dtype == np.float32
    want = loc + scale * normals_from_key(first_key(11), int(np.prod(shape)))
    np.testing.assert_allclose(got.ravel(), want, rtol=1e-5, atol=1e-5)


def test_symbolic_size_and_parameters(numba_mode):
    rows = pt.iscalar("rows")
    loc = pt.scalar("loc", dtype="float32")
    rng = pytensor.shared(np.random.default_rng(2))
    _, z = pt.random.normal(
        loc, 2.0, size=(rows, 3), rng=rng, return_next_rng=True, dtype="float32"
    )
    f = pytensor.function([rows, loc], z, mode=numba_mode)
    assert len(fast_nodes(f)) == 1
    got = f(4, np.float32(1.5))
    np.testing.assert_allclose(got.ravel(), 1.5 + 2.0 * normals_from_key(first_key(2), 12), 1e-5)


@pytest.mark.parametrize(
    "case",
    ["float64", "vector_loc", "no_size", "other_mode", "mode_without_tag"],
)
def test_rewrite_applies_only_where_it_should(numba_mode, case):
    rng = pytensor.shared(np.random.default_rng(0))
    mode = numba_mode
    if case == "float64":
        _, z = pt.random.normal(0, 1, size=(5,), rng=rng, return_next_rng=True, dtype="float64")
    elif case == "vector_loc":
        _, z = pt.random.normal(
            np.zeros(5, "float32"), 1, size=(5,), rng=rng, return_next_rng=True, dtype="float32"
        )
    elif case == "no_size":
        _, z = pt.random.normal(0, 1, rng=rng, return_next_rng=True, dtype="float32")
    elif case == "other_mode":
        _, z = pt.random.normal(0, 1, size=(5,), rng=rng, return_next_rng=True, dtype="float32")
        mode = fast_math_mode(Mode(linker="py", optimizer="fast_run"))
    else:
        _, z = pt.random.normal(0, 1, size=(5,), rng=rng, return_next_rng=True, dtype="float32")
        mode = get_mode("NUMBA")
    f = pytensor.function([], z, mode=mode)
    assert not fast_nodes(f)
    assert f().dtype == z.dtype


def test_fast_math_mode_includes_the_tags():
    include = fast_math_mode("NUMBA").provided_optimizer.include
    assert FAST_NORMAL_TAG in include and LATE_REDUCE_TAG in include
    assert fast_math_mode("JAX") is get_mode("JAX")


def test_make_node_checks_its_inputs():
    op = FastNormalDraws(ndim=1, static_shape=(None,))
    rng = pytensor.shared(np.random.default_rng(0))
    with pytest.raises(TypeError, match="loc must hold a single number"):
        op(rng, pt.as_tensor([3]), pt.zeros(3), pt.constant(1.0))
    with pytest.raises(TypeError, match="size must be a vector"):
        op(rng, pt.as_tensor(3), pt.constant(0.0), pt.constant(1.0))


def test_inplace_op_draws_like_the_copying_one():
    rng = np.random.default_rng(8)
    outs = []
    for inplace in (False, True):
        op = FastNormalDraws(ndim=1, static_shape=(None,), inplace=inplace)
        node = op.make_node(pytensor.shared(rng).type(), pt.as_tensor([6]), 0.0, 1.0)
        storage = [[None], [None]]
        given_rng = np.random.default_rng(8)
        op.perform(node, [given_rng, np.array([6]), np.array(0.0), np.array(1.0)], storage)
        advanced = given_rng.bit_generator.state != np.random.default_rng(8).bit_generator.state
        assert advanced == inplace
        outs.append(storage[1][0])
    np.testing.assert_array_equal(outs[0], outs[1])


def test_sum_over_length_one_axis_is_removed_before_fusion():
    """The shape (1, n) known only late: the Sum over it is gone with the tag, kept without."""
    rows = pt.iscalar("rows")
    x = pt.vector("x", dtype="float32")
    broadcast = pt.specify_shape(pt.alloc(x, rows, x.shape[0]), (1, None))
    y = (broadcast * 2).sum(axis=0, acc_dtype="float64")
    data = np.arange(4, dtype="float32")
    sums = {}
    for tagged in (True, False):
        mode = get_mode("FAST_RUN")
        mode = mode.including(LATE_REDUCE_TAG) if tagged else mode
        f = pytensor.function([x, rows], y, mode=mode)
        np.testing.assert_allclose(f(data, 1), 2 * data)
        sums[tagged] = [n for n in f.maker.fgraph.apply_nodes if isinstance(n.op, Sum)]
    assert not sums[True]


@pytest.mark.parametrize("with_plasagne_rewrites", [True, False])
def test_pymc_step_uses_fast_draws_and_no_length_one_sum(with_plasagne_rewrites):
    """PyMC's ADVI step compiled as fit compiles it: fast draws, no Sum over the sample axis;
    with PyTensor's Numba mode alone, both are still there."""
    import pymc as pm

    from plasagne.pymc_bridge.fit import resolve_mode

    mode = resolve_mode("numba") if with_plasagne_rewrites else get_mode("NUMBA")
    with pytensor.config.change_flags(floatX="float32"), pm.Model():
        w = pm.Normal("w", 0, 1, shape=(50,))
        pm.Normal("obs", w.sum(), 1, observed=np.float32(1.0))
        step = pm.ADVI(random_seed=0).objective.step_function(
            obj_optimizer=pm.adam(learning_rate=0.01), score=True, compile_kwargs={"mode": mode}
        )
        nodes = step.maker.fgraph.apply_nodes
        sample_axis_sums = [
            n for n in nodes if isinstance(n.op, Sum) and n.inputs[0].type.shape[:1] == (1,)
        ]
        fast = [n for n in nodes if isinstance(n.op, FastNormalDraws)]
        assert bool(fast) == with_plasagne_rewrites
        assert bool(sample_axis_sums) != with_plasagne_rewrites
        assert np.isfinite(step()).all()


def test_one_cached_kernel_serves_every_size():
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key

    from plasagne.ops.fast_random import register_numba

    register_numba()

    def key(op):
        rng = pytensor.shared(np.random.default_rng(0))
        size = pt.as_tensor(list(n or 5 for n in op.static_shape), dtype="int64")
        node = op(rng, size, pt.constant(0.0), pt.constant(1.0))[1].owner
        return numba_funcify_and_cache_key(op, node=node)[1]

    small, large = FastNormalDraws(2, (1, 10)), FastNormalDraws(2, (1, 1276810))
    assert key(small) == key(large) is not None
    assert key(FastNormalDraws(2, (None, None))) == key(small)
    # what the kernel's code depends on does change the key
    assert key(FastNormalDraws(1, (10,))) != key(small)
    assert key(FastNormalDraws(2, (1, 10), inplace=True)) != key(small)


def test_draws_of_two_sizes_in_one_process_each_match_the_reference(numba_mode):
    for seed, shape in ((3, (7,)), (4, (1000, 3))):
        f, _ = compiled_normal(numba_mode, seed, shape)
        want = normals_from_key(first_key(seed), int(np.prod(shape)))
        np.testing.assert_allclose(f().ravel(), want, rtol=1e-6, atol=2e-6)
