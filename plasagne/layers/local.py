"""Locally connected layers: convolutions whose filters differ at every output position."""

from __future__ import annotations

import itertools
from typing import Any

import pytensor.tensor as pt

from .. import init, nonlinearities
from ..ops.conv import pad_spatial
from ..utils import as_tuple
from .base import Layer
from .conv import conv_output_length

__all__ = ["LocallyConnected2DLayer"]


class LocallyConnected2DLayer(Layer):
    """2-D locally connected layer: like :class:`Conv2DLayer`, but with a separate filter
    for every output position (unshared weights).

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, rows, columns)`` with fixed spatial size.
    num_filters : int
    filter_size : int or tuple of int
    stride : int or tuple
        Only 1 is supported, as in Lasagne.
    pad : 'same', 'valid' or int/tuple
        'same' (odd filters) keeps the spatial size.
    untie_biases : bool
        One bias per filter and position.
    W : parameter spec
        Shape ``(num_filters, channels, rows, columns, out_rows, out_columns)``, or with
        ``channelwise=True`` ``(num_filters, rows, columns, out_rows, out_columns)`` (each
        output channel sees only its own input channel; needs ``num_filters == channels``).
    flip_filters : bool
        True (default) flips the filter taps like a convolution.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, LocallyConnected2DLayer
    >>> l = LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 4, 3)
    >>> l.output_shape, l.W.get_value().shape
    ((None, 4, 6, 6), (4, 3, 3, 3, 6, 6))
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = (1, 1),
        pad: Any = "same",
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = True,
        channelwise: bool = False,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        if len(self.input_shape) != 4:
            raise ValueError(f"{self._label()}: expected a 4-D input, got {self.input_shape}")
        if any(s is None for s in self.input_shape[1:]):
            raise ValueError(
                f"{self._label()}: needs fixed channel and spatial sizes, got {self.input_shape}"
            )
        self.num_filters = int(num_filters)
        self.filter_size = as_tuple(filter_size, 2, int)
        self.stride = as_tuple(stride, 2, int)
        if self.stride != (1, 1):
            raise NotImplementedError(f"{self._label()}: only stride (1, 1) is supported")
        if pad == "same" and any(s % 2 == 0 for s in self.filter_size):
            raise NotImplementedError(f"{self._label()}: 'same' padding requires odd filters")
        self.pad = pad if pad in ("same", "valid") else as_tuple(pad, 2, int)
        self.untie_biases = untie_biases
        self.flip_filters = flip_filters
        self.channelwise = channelwise
        channels = self.input_shape[1]
        if channelwise and self.num_filters != channels:
            raise ValueError(
                f"{self._label()}: channelwise needs num_filters == input channels "
                f"({channels}), got {self.num_filters}"
            )
        out = self.output_shape[2:]
        if channelwise:
            w_shape = (self.num_filters, *self.filter_size, *out)
        else:
            w_shape = (self.num_filters, channels, *self.filter_size, *out)
        self.W = self.add_param(W, w_shape, name="W")
        if b is None:
            self.b = None
        else:
            b_shape = (self.num_filters, *out) if untie_biases else (self.num_filters,)
            self.b = self.add_param(b, b_shape, name="b", regularizable=False)

    def _pads(self) -> tuple:
        if self.pad == "same":
            return tuple(f // 2 for f in self.filter_size)
        if self.pad == "valid":
            return (0, 0)
        return self.pad

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        pad = self.pad if isinstance(self.pad, str) else self.pad
        pads = (pad, pad) if isinstance(pad, str) else pad
        spatial = tuple(
            conv_output_length(i, f, 1, p)
            for i, f, p in zip(input_shape[2:], self.filter_size, pads)
        )
        return (input_shape[0], self.num_filters, *spatial)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        oh, ow = self.output_shape[2:]
        x = pad_spatial(input, [(p, p) for p in self._pads()])
        taps = [
            x[:, :, i : i + oh, j : j + ow]
            for i, j in itertools.product(range(self.filter_size[0]), range(self.filter_size[1]))
        ]
        patches = pt.stack(taps, axis=2)  # (batch, channels, taps, oh, ow)
        n_taps = len(taps)
        W = self.W
        if self.flip_filters:
            if self.channelwise:
                W = W[:, ::-1, ::-1]
            else:
                W = W[:, :, ::-1, ::-1]
        if self.channelwise:
            W = W.reshape((self.num_filters, n_taps, oh, ow))
            out = (patches * W[None]).sum(axis=2)
        else:
            W = W.reshape((self.num_filters, self.input_shape[1], n_taps, oh, ow))
            out = (patches[:, None] * W[None]).sum(axis=(2, 3))
        if self.b is not None:
            out = out + (self.b[None] if self.untie_biases else self.b[None, :, None, None])
        return self.nonlinearity(out)
