"""For every layer: get_output_shape agrees with the compiled output's shape, over
hypothesis-generated input sizes (with and without a free batch size)."""

import numpy as np
import pytensor
import pytensor.tensor as pt
import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from plasagne import layers as L

# name -> (builder(l_in) for a 4-D (batch, channels, rows, cols) input, needs fixed batch)
LAYERS = {
    "Dense": lambda l: L.DenseLayer(l, 3),
    "NIN": lambda l: L.NINLayer(l, 3),
    "Conv2D-same": lambda l: L.Conv2DLayer(l, 2, 3, pad="same"),
    "Conv2D-full-stride": lambda l: L.Conv2DLayer(l, 2, 2, stride=2, pad="full"),
    "TransposedConv2D": lambda l: L.TransposedConv2DLayer(l, 2, 3, stride=2, crop=1),
    "DilatedConv2D": lambda l: L.DilatedConv2DLayer(l, 2, 2, dilation=(2, 1)),
    "LocallyConnected2D": lambda l: L.LocallyConnected2DLayer(l, 2, 3),
    "MaxPool2D": lambda l: L.MaxPool2DLayer(l, 2, ignore_border=False),
    "Pool2D-avg": lambda l: L.Pool2DLayer(l, 3, stride=1, pad=1, mode="average_exc_pad"),
    "Upscale2D": lambda l: L.Upscale2DLayer(l, (2, 3)),
    "GlobalPool": lambda l: L.GlobalPoolLayer(l),
    "FeaturePool": lambda l: L.FeaturePoolLayer(l, 2, axis=1),
    "FeatureWTA": lambda l: L.FeatureWTALayer(l, 2, axis=1),
    "SPP": lambda l: L.SpatialPyramidPoolingLayer(l, [2, 1]),
    "Reshape": lambda l: L.ReshapeLayer(l, ([0], -1)),
    "Flatten": lambda l: L.FlattenLayer(l, 3),
    "Dimshuffle": lambda l: L.DimshuffleLayer(l, (0, 3, "x", 2, 1)),
    "Pad": lambda l: L.PadLayer(l, [(1, 2), 3]),
    "Slice": lambda l: L.SliceLayer(l, slice(1, None), axis=2),
    "Concat": lambda l: L.ConcatLayer([l, l], axis=1),
    "ElemwiseSum": lambda l: L.ElemwiseSumLayer([l, l], coeffs=[1, -1]),
    "Nonlinearity": lambda l: L.NonlinearityLayer(l),
    "Bias": lambda l: L.BiasLayer(l),
    "Scale": lambda l: L.ScaleLayer(l),
    "Expression": lambda l: L.ExpressionLayer(l, lambda x: x[:, :, ::2], "auto"),
    "PReLU": lambda l: L.ParametricRectifierLayer(l),
    "RReLU": lambda l: L.RandomizedRectifierLayer(l),
    "LRN": lambda l: L.LocalResponseNormalization2DLayer(l, n=3),
    "BatchNorm": lambda l: L.BatchNormLayer(l),
    "Standardization": lambda l: L.StandardizationLayer(l),
    "Dropout": lambda l: L.DropoutLayer(l, p=0.3),
    "GaussianNoise": lambda l: L.GaussianNoiseLayer(l),
    "Transformer": lambda l: L.TransformerLayer(l, L.DenseLayer(l, 6), downsample_factor=2),
}


@pytest.mark.parametrize("name", sorted(LAYERS))
@settings(max_examples=10)
@given(
    batch=st.integers(1, 3),
    channels=st.sampled_from([2, 4]),
    rows=st.integers(4, 7),
    cols=st.integers(4, 7),
    free_batch=st.booleans(),
)
def test_shape_inference_matches_output(name, batch, channels, rows, cols, free_batch):
    shape = (batch, channels, rows, cols)
    l_in = L.InputLayer(((None,) if free_batch else (batch,)) + shape[1:])
    layer = LAYERS[name](l_in)
    f = pytensor.function([l_in.input_var], L.get_output(layer))
    out = f(np.random.randn(*shape))
    assert L.get_output_shape(layer, shape) == out.shape
    declared = layer.output_shape
    assert len(declared) == out.ndim
    assert all(d is None or d == o for d, o in zip(declared, out.shape))


@given(batch=st.integers(1, 3), length=st.integers(1, 6))
def test_embedding_shape(batch, length):
    l_in = L.InputLayer((None, length), input_var=pt.imatrix())
    layer = L.EmbeddingLayer(l_in, 7, 3)
    out = pytensor.function([l_in.input_var], L.get_output(layer))(
        np.random.randint(0, 7, (batch, length)).astype("int32")
    )
    assert L.get_output_shape(layer, (batch, length)) == out.shape
