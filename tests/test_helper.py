"""Graph helpers: layer order, outputs, shapes, parameters and their values on disk."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest

from plasagne.layers import (
    DenseLayer,
    InputLayer,
    Layer,
    MergeLayer,
    count_params,
    get_all_layers,
    get_all_param_values,
    get_all_params,
    get_output,
    get_output_shape,
    load_param_values,
    save_param_values,
    set_all_param_values,
)


class AddLayer(MergeLayer):
    def get_output_shape_for(self, input_shapes):
        return input_shapes[0]

    def get_output_for(self, inputs, **kwargs):
        return inputs[0] + inputs[1]


class RecordingLayer(Layer):
    """Remembers the keyword arguments get_output passed it."""

    def __init__(self, incoming, **kwargs):
        super().__init__(incoming, **kwargs)
        self.seen = None

    def get_output_for(self, input, **kwargs):
        self.seen = kwargs
        return input * 2


def diamond():
    l_in = InputLayer((None, 3), name="in")
    a = DenseLayer(l_in, 4, name="a")
    b = DenseLayer(l_in, 4, name="b")
    top = AddLayer([a, b], name="top")
    return l_in, a, b, top


def test_get_all_layers_is_topological_and_unique():
    l_in, a, b, top = diamond()
    layers = get_all_layers(top)
    assert layers == [l_in, a, b, top]
    assert get_all_layers([a, top]) == [l_in, a, b, top]
    assert get_all_layers(top, treat_as_input=[a]) == [a, l_in, b, top]


def test_get_all_layers_handles_very_deep_networks():
    layer = InputLayer((None, 2))
    for _ in range(3000):
        layer = Layer(layer)
    assert len(get_all_layers(layer)) == 3001


def test_get_output_default_dict_and_single_expression():
    l_in, a, b, top = diamond()
    x = np.random.randn(5, 3)

    def expected(inp):
        ha = np.maximum(inp @ a.W.get_value() + a.b.get_value(), 0)
        hb = np.maximum(inp @ b.W.get_value() + b.b.get_value(), 0)
        return ha + hb

    f = pytensor.function([l_in.input_var], get_output(top))
    np.testing.assert_allclose(f(x), expected(x))
    y = pt.matrix("y")
    g = pytensor.function([y], get_output(top, y))
    np.testing.assert_allclose(g(x), expected(x))
    # a dict can replace an intermediate layer's output
    h = pytensor.function([y, l_in.input_var], get_output(top, {a: y}))
    hb = np.maximum(x @ b.W.get_value() + b.b.get_value(), 0)
    z = np.random.randn(5, 4)
    np.testing.assert_allclose(h(z, x), z + hb)
    outs = get_output([a, top], y)
    assert isinstance(outs, list) and len(outs) == 2


def test_get_output_passes_keyword_arguments_to_every_layer():
    rec = RecordingLayer(InputLayer((None, 2)))
    get_output(rec, deterministic=True)
    assert rec.seen == {"deterministic": True}


def test_get_output_checks_input_dimensions():
    l_in = InputLayer((None, 3), name="pixels")
    with pytest.raises(ValueError, match="InputLayer 'pixels'.*2 dimensions.*got 3"):
        get_output(DenseLayer(l_in, 2), pt.tensor3())


def test_get_output_shape_with_new_input_shapes():
    l_in, a, b, top = diamond()
    assert get_output_shape(top) == (None, 4)
    assert get_output_shape(top, (7, 3)) == (7, 4)
    assert get_output_shape([a, top], {l_in: (2, 3)}) == [(2, 4), (2, 4)]


def test_params_tags_count_and_values_roundtrip(tmp_path):
    l_in, a, b, top = diamond()
    params = get_all_params(top)
    assert [p.name for p in params] == ["a.W", "a.b", "b.W", "b.b"]
    assert [p.name for p in get_all_params(top, regularizable=True)] == ["a.W", "b.W"]
    assert count_params(top) == 2 * (3 * 4 + 4)
    assert count_params(top, regularizable=True) == 24
    values = get_all_param_values(top)
    new = [np.random.randn(*v.shape) for v in values]
    set_all_param_values(top, new)
    for p, v in zip(params, new):
        np.testing.assert_array_equal(p.get_value(), v)
    with pytest.raises(ValueError, match="mismatch: got 1 values to set 4 parameters"):
        set_all_param_values(top, new[:1])
    with pytest.raises(ValueError, match="'a.W' has shape"):
        set_all_param_values(top, [np.zeros((1, 1))] + new[1:])


@pytest.mark.parametrize("dtype", ["float32", "float64"])
def test_saved_parameters_load_back_bit_identical(tmp_path, dtype):
    with pytensor.config.change_flags(floatX=dtype):
        _, _, _, top = diamond()
        _, _, _, other = diamond()
    path = tmp_path / "params.npz"
    save_param_values(top, path)
    load_param_values(other, path)
    for p, q in zip(get_all_params(top), get_all_params(other)):
        assert p.get_value().dtype == q.get_value().dtype == np.dtype(dtype)
        assert p.get_value().tobytes() == q.get_value().tobytes()
    # the file holds plain arrays: it loads without pickle
    with np.load(path, allow_pickle=False) as data:
        assert len(data.files) == 4


def test_loading_into_a_different_network_fails_clearly(tmp_path):
    _, _, _, top = diamond()
    path = tmp_path / "params.npz"
    save_param_values(top, path)
    small = DenseLayer(InputLayer((None, 3)), 4, name="a")
    with pytest.raises(ValueError, match="holds 4 parameters, the network has 2"):
        load_param_values(small, path)
