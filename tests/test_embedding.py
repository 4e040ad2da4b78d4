"""EmbeddingLayer against numpy indexing."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st
from pytensor.gradient import verify_grad

from plasagne.layers import EmbeddingLayer, InputLayer, get_all_params, get_output, get_output_shape
from plasagne.utils import ParameterError

RNG = np.random.RandomState(3)


def int_input(shape, dtype="int32"):
    var = pt.tensor("idx", dtype=dtype, shape=(None,) * len(shape))
    return InputLayer(shape, input_var=var)


@pytest.mark.parametrize(
    "shape, dtype, input_size, output_size",
    [
        ((5,), "int32", 7, 3),
        ((2, 4), "int64", 10, 5),
        ((2, 3, 2), "int8", 4, 1),
        ((3, 3), "uint8", 1, 6),
        ((), "int32", 5, 2),
    ],
)
def test_embedding_matches_numpy_indexing(shape, dtype, input_size, output_size):
    l_in = int_input((None,) + shape[1:] if shape else shape, dtype)
    layer = EmbeddingLayer(l_in, input_size, output_size)
    idx = RNG.randint(0, input_size, size=shape).astype(dtype)
    out = pytensor.function([l_in.input_var], get_output(layer))(idx)
    W = layer.W.get_value()
    expected = np.empty(shape + (output_size,))
    for pos in np.ndindex(*shape):
        expected[pos] = W[int(idx[pos])]
    np.testing.assert_array_equal(out, expected)
    assert layer.output_shape == l_in.output_shape + (output_size,)


def test_embedding_with_expression_and_given_matrix():
    log_W = pytensor.shared(RNG.randn(4, 3), name="log_W")
    l_in = int_input((None, 2))
    layer = EmbeddingLayer(l_in, 4, 3, W=pt.exp(log_W))
    idx = np.array([[3, 0], [1, 1]], dtype="int32")
    out = pytensor.function([l_in.input_var], get_output(layer))(idx)
    np.testing.assert_allclose(out, np.exp(log_W.get_value())[idx])
    assert get_all_params(layer) == [log_W]
    given_W = RNG.randn(4, 3)
    layer2 = EmbeddingLayer(l_in, 4, 3, W=given_W, name="emb")
    assert layer2.W.name == "emb.W"
    out2 = pytensor.function([l_in.input_var], get_output(layer2))(idx)
    np.testing.assert_array_equal(out2, given_W[idx])


def test_embedding_gradient_accumulates_repeated_indices():
    idx = np.array([[0, 2, 2], [2, 1, 0]], dtype="int32")

    def f(W):
        return EmbeddingLayer(int_input((None, 3)), 3, 2, W=W).get_output_for(pt.as_tensor(idx))

    verify_grad(f, [RNG.randn(3, 2)], rng=np.random.RandomState(0))
    # the gradient of the sum: each row receives its count of occurrences
    W = pytensor.shared(RNG.randn(3, 2))
    g = pytensor.grad(f(W).sum(), W).eval()
    counts = np.bincount(idx.ravel(), minlength=3)
    np.testing.assert_array_equal(g, np.repeat(counts[:, None], 2, axis=1))


def test_embedding_errors_name_the_layer():
    with pytest.raises(TypeError, match="'emb'.*integer indices.*float64"):
        get_output(EmbeddingLayer(InputLayer((None, 4)), 10, 5, name="emb"))
    with pytest.raises(ParameterError, match="EmbeddingLayer.*W.*\\(10, 5\\).*\\(5, 10\\)"):
        EmbeddingLayer(int_input((None, 4)), 10, 5, W=np.zeros((5, 10)))
    with pytest.raises(ValueError, match="EmbeddingLayer.*input_size.*positive int.*0"):
        EmbeddingLayer(int_input((None, 4)), 0, 5)
    with pytest.raises(ValueError, match="EmbeddingLayer.*output_size.*2.5"):
        EmbeddingLayer(int_input((None, 4)), 3, 2.5)


@settings(max_examples=15)
@given(
    shape=st.lists(st.integers(1, 4), min_size=0, max_size=3).map(tuple),
    input_size=st.integers(1, 5),
    output_size=st.integers(1, 4),
)
def test_embedding_shape_inference(shape, input_size, output_size):
    l_in = int_input((None,) * len(shape))
    layer = EmbeddingLayer(l_in, input_size, output_size)
    idx = RNG.randint(0, input_size, size=shape).astype("int32")
    out = pytensor.function([l_in.input_var], get_output(layer))(idx)
    assert get_output_shape(layer, shape) == out.shape == shape + (output_size,)
