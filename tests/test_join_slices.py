"""Vectors written slice by slice into zeros become a Join (plasagne.ops.join_slices)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given
from hypothesis import strategies as st
from pytensor.compile.mode import Mode
from pytensor.gradient import verify_grad
from pytensor.tensor.basic import Join
from pytensor.tensor.subtensor import IncSubtensor

from plasagne.ops.fast_math import fast_math_mode
from plasagne.ops.join_slices import JOIN_SLICES_TAG


def python_mode(tagged: bool = True) -> Mode:
    """PyTensor's full rewrites (fusion included) on the Python linker: nothing to compile."""
    mode = Mode(linker="py", optimizer="fast_run")
    return mode.including(JOIN_SLICES_TAG) if tagged else mode


def op_types(f) -> set[type]:
    return {type(node.op) for node in f.maker.fgraph.apply_nodes}


@st.composite
def slice_plans(draw):
    """A vector length and disjoint slices of it, each written by set or by increment."""
    length = draw(st.integers(1, 12))
    cuts = sorted(draw(st.lists(st.integers(0, length), min_size=2, max_size=8, unique=True)))
    spans = [(a, b) for a, b in zip(cuts[:-1], cuts[1:], strict=True)]
    chosen = [span for span in spans if draw(st.booleans())] or spans[:1]
    order = draw(st.permutations(chosen))
    plan = []
    for start, stop in order:
        written = draw(st.sampled_from(["set", "inc"]))
        negative = draw(st.booleans())  # the same slice spelled with negative bounds
        bounds = (start - length, stop - length if stop < length else None) if negative else None
        plan.append((start, stop, written, bounds))
    return length, plan, draw(st.sampled_from(["float32", "float64"]))


@given(slice_plans())
def test_disjoint_slices_into_zeros_equal_numpy_and_become_a_join(case):
    length, plan, dtype = case
    rng = np.random.default_rng(length)
    pieces = [
        pt.vector(f"p{i}", shape=(stop - start,), dtype=dtype)
        for i, (start, stop, *_) in enumerate(plan)
    ]
    values = [rng.normal(size=stop - start).astype(dtype) for start, stop, *_ in plan]
    vector = pt.zeros((length,), dtype=dtype)
    expected = np.zeros(length, dtype=dtype)
    for piece, value, (start, stop, written, bounds) in zip(pieces, values, plan, strict=True):
        index = slice(*bounds) if bounds else slice(start, stop)
        write = pt.set_subtensor if written == "set" else pt.inc_subtensor
        vector = write(vector[index], piece)
        expected[start:stop] = value if written == "set" else expected[start:stop] + value
    f = pytensor.function(pieces, vector * 1, mode=python_mode())
    result = f(*values)
    assert result.dtype == dtype
    np.testing.assert_array_equal(result, expected)
    assert IncSubtensor not in op_types(f)


def test_without_the_tag_the_incsubtensors_stay():
    a, b = pt.vector("a", shape=(2,)), pt.vector("b", shape=(3,))
    vector = pt.inc_subtensor(pt.inc_subtensor(pt.zeros(5)[:2], a)[2:], b)
    f = pytensor.function([a, b], vector, mode=python_mode(tagged=False))
    assert IncSubtensor in op_types(f)


def test_gap_is_filled_with_zeros_and_scalars_broadcast():
    a, s = pt.vector("a", shape=(2,)), pt.scalar("s")
    vector = pt.set_subtensor(pt.inc_subtensor(pt.zeros(8)[1:3], a)[5:7], s)
    f = pytensor.function([a, s], vector, mode=python_mode())
    expected = np.array([0, 1, 2, 0, 0, 7, 7, 0], dtype=pytensor.config.floatX)
    np.testing.assert_array_equal(f(np.array([1.0, 2.0]), 7.0), expected)
    assert Join in op_types(f) and IncSubtensor not in op_types(f)


@pytest.mark.parametrize(
    "build",
    [
        # overlapping increments add up
        lambda a, b, z: pt.inc_subtensor(pt.inc_subtensor(z[:3], a)[1:4], b),
        # a base that is not zeros
        lambda a, b, z: pt.inc_subtensor(pt.inc_subtensor((z + 1)[:3], a)[3:], b),
        # a slice with a step
        lambda a, b, z: pt.inc_subtensor(pt.inc_subtensor(z[0:6:2], a)[3:], b),
    ],
    ids=["overlap", "nonzero-base", "step"],
)
def test_chains_the_rewrite_must_leave_alone_keep_their_values(build):
    a, b = pt.vector("a", shape=(3,)), pt.vector("b", shape=(3,))
    vector = build(a, b, pt.zeros(6))
    values = [np.array([1.0, 2.0, 3.0]), np.array([10.0, 20.0, 30.0])]
    tagged = pytensor.function([a, b], vector, mode=python_mode())
    reference = pytensor.function([a, b], vector, mode=Mode(linker="py", optimizer=None))
    np.testing.assert_array_equal(tagged(*values), reference(*values))
    assert IncSubtensor in op_types(tagged)


def test_piece_of_unknown_length_is_left_to_pytensor():
    a, b = pt.vector("a"), pt.vector("b", shape=(3,))
    vector = pt.inc_subtensor(pt.inc_subtensor(pt.zeros(5)[:2], a)[2:], b)
    f = pytensor.function([a, b], vector, mode=python_mode())
    np.testing.assert_array_equal(f([1.0, 2.0], [3.0, 4.0, 5.0]), [1, 2, 3, 4, 5])
    with pytest.raises(ValueError):
        f([1.0, 2.0, 3.0], [3.0, 4.0, 5.0])
    assert IncSubtensor in op_types(f)


def test_intermediate_value_used_elsewhere_keeps_the_chain():
    a, b = pt.vector("a", shape=(2,)), pt.vector("b", shape=(3,))
    first = pt.inc_subtensor(pt.zeros(5)[:2], a)
    vector = pt.inc_subtensor(first[2:], b)
    f = pytensor.function([a, b], [vector, first * 2], mode=python_mode())
    whole, doubled = f([1.0, 2.0], [3.0, 4.0, 5.0])
    np.testing.assert_array_equal(whole, [1, 2, 3, 4, 5])
    np.testing.assert_array_equal(doubled, [2, 4, 0, 0, 0])


@pytest.mark.parametrize("index", [0, -1])
@pytest.mark.parametrize("written", ["set", "inc"])
def test_zeros_with_leading_length_one_axes_become_expand_dims(index, written):
    y = pt.vector("y", shape=(4,), dtype="float32")
    write = pt.set_subtensor if written == "set" else pt.inc_subtensor
    matrix = write(pt.zeros((1, 1, 4), dtype="float64")[index, index], y)
    f = pytensor.function([y], [matrix, matrix[0, 0] * 2], mode=python_mode())
    value = np.arange(4, dtype="float32")
    out, doubled = f(value)
    assert out.dtype == "float64" and out.shape == (1, 1, 4)
    np.testing.assert_array_equal(out[0, 0], value)
    np.testing.assert_array_equal(doubled, 2 * value)
    assert IncSubtensor not in op_types(f)


def test_zeros_index_into_a_longer_axis_is_left_alone():
    y = pt.vector("y", shape=(3,))
    matrix = pt.set_subtensor(pt.zeros((2, 3))[1], y)
    f = pytensor.function([y], matrix, mode=python_mode())
    np.testing.assert_array_equal(f([1.0, 2.0, 3.0]), [[0, 0, 0], [1, 2, 3]])
    assert IncSubtensor in op_types(f)


def flat_network_loss(theta_row):
    """A small network whose weights are slices of one flat row, as PyMC flattens them."""
    theta = theta_row[0]
    weights = theta[:12].reshape((3, 4))
    bias = theta[12:16]
    out_weights = theta[16:20]
    x = pt.constant(np.linspace(-1, 1, 15).reshape(5, 3))
    hidden = pt.tanh(x @ weights + bias)
    return (pt.sqr(hidden @ out_weights - 0.5)).sum()


def test_gradient_of_a_flat_parameter_row_is_a_join_and_verifies():
    theta = pt.matrix("theta", shape=(1, 20))
    grad = pytensor.grad(flat_network_loss(theta), theta)
    tagged = pytensor.function([theta], grad[0] * 1, mode=python_mode())
    plain = pytensor.function([theta], grad[0] * 1, mode=Mode(linker="py", optimizer=None))
    value = np.random.default_rng(3).normal(size=(1, 20))
    np.testing.assert_allclose(tagged(value), plain(value), rtol=1e-12)
    assert IncSubtensor not in op_types(tagged) and Join in op_types(tagged)
    verify_grad(flat_network_loss, [value], rng=np.random.default_rng(4), mode=python_mode())


def test_fast_math_mode_includes_the_tag_on_numba_only():
    assert JOIN_SLICES_TAG in fast_math_mode("NUMBA").provided_optimizer.include
    assert JOIN_SLICES_TAG not in fast_math_mode("FAST_COMPILE").provided_optimizer.include


def test_unary_loop_of_a_vector_used_as_a_row_runs_on_the_row():
    """softplus(rho) used as a (1, n) row (with the draws) and as a vector (the update):
    computed on the row, it fuses with the row's loop; the vector reads a view of it."""
    rho = pt.vector("rho", shape=(5,))
    eps = pt.matrix("eps", shape=(1, 5))
    sigma = pt.softplus(rho)
    row = sigma[None] * eps
    outputs = [row, sigma * 2.0]
    values = [np.linspace(-2, 2, 5), np.arange(5.0).reshape(1, 5)]
    f = pytensor.function([rho, eps], outputs, mode=python_mode())
    plain = pytensor.function([rho, eps], outputs, mode=python_mode(tagged=False))
    for got, want in zip(f(*values), plain(*values), strict=True):
        np.testing.assert_allclose(got, want, rtol=1e-12)
    sigma_want = np.logaddexp(0.0, values[0])
    np.testing.assert_allclose(f(*values)[1], 2 * sigma_want, rtol=1e-12)
    # the softplus now runs on a (1, n) row (fused with the product), not on the vector
    softplus_ndims = [
        n.outputs[0].type.ndim for n in f.maker.fgraph.apply_nodes if holds_softplus(n)
    ]
    assert softplus_ndims == [2]


def holds_softplus(node) -> bool:
    scalar = getattr(node.op, "scalar_op", None)
    if scalar is None:
        return False
    inner = [m.op for m in scalar.fgraph.apply_nodes] if hasattr(scalar, "fgraph") else [scalar]
    return any("softplus" in type(op).__name__.lower() for op in inner)
