"""Convolution layers (1-D, 2-D, 3-D, transposed and dilated), NCHW layout.

All the arithmetic goes through :func:`plasagne.ops.conv.corr_nd`.
"""

from __future__ import annotations

from typing import Any

import pytensor.tensor as pt

from .. import init, nonlinearities
from ..ops.conv import corr_nd, dilate_spatial
from ..utils import as_tuple
from .base import Layer

__all__ = [
    "conv_output_length",
    "conv_input_length",
    "BaseConvLayer",
    "Conv1DLayer",
    "Conv2DLayer",
    "Conv3DLayer",
    "TransposedConv2DLayer",
    "Deconv2DLayer",
    "TransposedConv3DLayer",
    "Deconv3DLayer",
    "DilatedConv2DLayer",
]


def _pad_amount(pad: Any, filter_size: int) -> int:
    if pad == "valid":
        return 0
    if pad == "full":
        return filter_size - 1
    if pad == "same":
        return filter_size // 2
    if isinstance(pad, int):
        return pad
    raise ValueError(f"Invalid pad: {pad!r}; expected 'valid', 'full', 'same' or an int")


def conv_output_length(input_length: int | None, filter_size: int, stride: int, pad: Any = 0):
    """Output length of a convolution along one axis (``None`` stays ``None``).

    Examples
    --------
    >>> conv_output_length(28, 5, 1, "valid"), conv_output_length(28, 5, 2, "same")
    (24, 14)
    """
    if input_length is None:
        return None
    if pad == "same":
        output_length = input_length
    else:
        output_length = input_length + 2 * _pad_amount(pad, filter_size) - filter_size + 1
    return (output_length + stride - 1) // stride


def conv_input_length(output_length: int | None, filter_size: int, stride: int, pad: Any = 0):
    """Smallest input length a convolution maps to ``output_length`` (its transpose's output).

    Examples
    --------
    >>> conv_input_length(24, 5, 1, "valid")
    28
    """
    if output_length is None:
        return None
    return (output_length - 1) * stride - 2 * _pad_amount(pad, filter_size) + filter_size


class BaseConvLayer(Layer):
    """Shared machinery of the n-dimensional convolution layers.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, *spatial)``.
    num_filters : int
    filter_size : int or tuple of int
    stride : int or tuple of int
    pad : 'valid', 'full', 'same', int or tuple of int
        'same' (odd filter sizes only) keeps the size for stride 1; 'full' pads by
        ``filter_size - 1``.
    untie_biases : bool
        One bias per filter and output position instead of per filter.
    W, b : parameter specs
        ``W`` has shape :meth:`get_W_shape`; ``b=None`` for no biases.
    nonlinearity : callable or None
    flip_filters : bool
        True (default) computes a true convolution (filters flipped), False a correlation.
    n : int, optional
        Number of spatial dimensions (default: input ndim - 2).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, BaseConvLayer
    >>> BaseConvLayer(InputLayer((None, 3, 8, 8)), 4, 3).get_W_shape()
    (4, 3, 3, 3)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = 1,
        pad: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = True,
        n: int | None = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(incoming, **kwargs)
        self.nonlinearity = nonlinearities.identity if nonlinearity is None else nonlinearity
        if n is None:
            n = len(self.input_shape) - 2
        elif n != len(self.input_shape) - 2:
            raise ValueError(
                f"{self._label()}: tried to create a {n}D convolution layer with input shape "
                f"{self.input_shape}; expected {n + 2} input dimensions (batch, channels, "
                f"{n} spatial)"
            )
        if n < 1:
            raise ValueError(f"{self._label()}: input shape {self.input_shape} has no spatial axes")
        self.n = n
        self.num_filters = int(num_filters)
        self.filter_size = as_tuple(filter_size, n, int)
        self.flip_filters = flip_filters
        self.stride = as_tuple(stride, n, int)
        self.untie_biases = untie_biases
        if pad == "same":
            if any(s % 2 == 0 for s in self.filter_size):
                raise NotImplementedError(
                    f"{self._label()}: 'same' padding requires odd filter sizes, got "
                    f"{self.filter_size}"
                )
        if pad == "valid":
            self.pad = (0,) * n
        elif pad in ("full", "same"):
            self.pad = pad
        else:
            self.pad = as_tuple(pad, n, int)
        if self.input_shape[1] is None:
            raise ValueError(f"{self._label()}: the channel axis (axis 1) must have a fixed size")
        out_spatial = self.get_output_shape_for(self.input_shape)[2:]
        if any(o is not None and o <= 0 for o in out_spatial):
            raise ValueError(
                f"{self._label()}: filter size {self.filter_size} (pad {self.pad}, stride "
                f"{self.stride}) does not fit the input {self.input_shape[2:]}: the output "
                f"would have spatial shape {out_spatial}"
            )
        self.W = self.add_param(W, self.get_W_shape(), name="W")
        if b is None:
            self.b = None
        else:
            if self.untie_biases:
                out_spatial = self.output_shape[2:]
                if any(s is None for s in out_spatial):
                    raise ValueError(f"{self._label()}: untie_biases needs fixed spatial sizes")
                biases_shape = (self.num_filters, *out_spatial)
            else:
                biases_shape = (self.num_filters,)
            self.b = self.add_param(b, biases_shape, name="b", regularizable=False)

    def get_W_shape(self) -> tuple:
        """Shape of the weights: ``(num_filters, num_input_channels, *filter_size)``."""
        return (self.num_filters, self.input_shape[1], *self.filter_size)

    def _pads(self) -> tuple:
        if isinstance(self.pad, str):
            return tuple(_pad_amount(self.pad, f) for f in self.filter_size)
        return self.pad

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        pad = self.pad if isinstance(self.pad, tuple) else (self.pad,) * self.n
        spatial = tuple(
            conv_output_length(i, f, s, p)
            for i, f, s, p in zip(input_shape[2:], self.filter_size, self.stride, pad)
        )
        return (input_shape[0], self.num_filters, *spatial)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        conved = self.convolve(input, **kwargs)
        if self.b is None:
            activation = conved
        elif self.untie_biases:
            activation = conved + pt.shape_padleft(self.b, 1)
        else:
            activation = conved + self.b.dimshuffle("x", 0, *(["x"] * self.n))
        return self.nonlinearity(activation)

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        """The convolution itself, without bias and nonlinearity."""
        W = self.W
        if self.flip_filters:
            W = W[(slice(None), slice(None)) + (slice(None, None, -1),) * self.n]
        return corr_nd(input, W, self.filter_size, stride=self.stride, pad=self._pads())


class Conv1DLayer(BaseConvLayer):
    """1-D convolution over inputs of shape ``(batch, channels, length)``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv1DLayer
    >>> Conv1DLayer(InputLayer((None, 2, 10)), 4, 3).output_shape
    (None, 4, 8)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = 1,
        pad: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = True,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride,
            pad,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            n=1,
            **kwargs,
        )


class Conv2DLayer(BaseConvLayer):
    """2-D convolution over inputs of shape ``(batch, channels, rows, columns)``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv2DLayer
    >>> Conv2DLayer(InputLayer((None, 1, 28, 28)), 32, (5, 5)).output_shape
    (None, 32, 24, 24)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = (1, 1),
        pad: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = True,
        convolution: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride,
            pad,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            n=2,
            **kwargs,
        )


class Conv3DLayer(BaseConvLayer):
    """3-D convolution over inputs of shape ``(batch, channels, depth, rows, columns)``.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv3DLayer
    >>> Conv3DLayer(InputLayer((None, 1, 5, 6, 7)), 2, 3, pad="same").output_shape
    (None, 2, 5, 6, 7)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = (1, 1, 1),
        pad: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = True,
        convolution: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride,
            pad,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            n=3,
            **kwargs,
        )


class _TransposedConvNDLayer(BaseConvLayer):
    """Transposed convolution: the gradient of a convolution w.r.t. its input."""

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any,
        crop: Any,
        untie_biases: bool,
        W: Any,
        b: Any,
        nonlinearity: Any,
        flip_filters: bool,
        output_size: Any,
        n: int,
        **kwargs: Any,
    ) -> None:
        self.crop = crop
        self.output_size = None if output_size is None else as_tuple(output_size, n, int)
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride,
            crop,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            n=n,
            **kwargs,
        )
        self.crop = self.pad
        del self.pad

    def get_W_shape(self) -> tuple:
        """Shape ``(num_input_channels, num_filters, *filter_size)``, as Lasagne."""
        return (self.input_shape[1], self.num_filters, *self.filter_size)

    def _crops(self) -> tuple:
        crop = self.crop
        if isinstance(crop, str):
            return tuple(_pad_amount(crop, f) for f in self.filter_size)
        return as_tuple(crop, self.n, int)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        if getattr(self, "output_size", None) is not None and not isinstance(self.output_size, int):
            return (input_shape[0], self.num_filters, *self.output_size)
        spatial = tuple(
            conv_input_length(i, f, s, c)
            for i, f, s, c in zip(input_shape[2:], self.filter_size, self.stride, self._crops())
        )
        return (input_shape[0], self.num_filters, *spatial)

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        # gradient of corr(x, W') w.r.t. x: dilate by the stride, pad by k - 1 - crop and
        # correlate with the spatially flipped, channel-swapped filters
        W = self.W.dimshuffle(1, 0, *range(2, 2 + self.n))
        if not self.flip_filters:
            W = W[(slice(None), slice(None)) + (slice(None, None, -1),) * self.n]
        x = dilate_spatial(input, self.stride)
        pads = []
        out_shape = self.get_output_shape_for(self.input_shape)[2:]
        for i, (f, c) in enumerate(zip(self.filter_size, self._crops())):
            before = after = f - 1 - c
            if self.output_size is not None:
                natural = conv_input_length(self.input_shape[2 + i], f, self.stride[i], c)
                if natural is not None and out_shape[i] is not None:
                    after += out_shape[i] - natural
            pads.append((before, after))
        return corr_nd(x, W, self.filter_size, pad=tuple(pads))


class TransposedConv2DLayer(_TransposedConvNDLayer):
    """2-D transposed convolution (a.k.a. deconvolution, fractionally strided convolution).

    Parameters
    ----------
    crop : 'valid', 'full', 'same', int or tuple
        Undoes the padding of the corresponding forward convolution.
    output_size : tuple, optional
        Output size when several are possible (stride > 1); must be at least the
        natural size ``(in - 1) * stride - 2 * crop + filter_size``.
    flip_filters : bool
        Default False: the layer transposes a correlation.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, TransposedConv2DLayer
    >>> TransposedConv2DLayer(InputLayer((None, 3, 8, 8)), 2, 3, stride=2).output_shape
    (None, 2, 17, 17)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = (1, 1),
        crop: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = False,
        output_size: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride,
            crop,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            output_size,
            n=2,
            **kwargs,
        )


Deconv2DLayer = TransposedConv2DLayer


class TransposedConv3DLayer(_TransposedConvNDLayer):
    """3-D transposed convolution.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, TransposedConv3DLayer
    >>> TransposedConv3DLayer(InputLayer((None, 3, 4, 4, 4)), 2, 3).output_shape
    (None, 2, 6, 6, 6)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        stride: Any = (1, 1, 1),
        crop: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = False,
        output_size: Any = None,
        **kwargs: Any,
    ) -> None:
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride,
            crop,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            output_size,
            n=3,
            **kwargs,
        )


Deconv3DLayer = TransposedConv3DLayer


class DilatedConv2DLayer(BaseConvLayer):
    """2-D dilated (atrous) convolution: filter taps spaced ``dilation`` apart.

    ``W`` has shape ``(num_input_channels, num_filters, rows, columns)`` as in Lasagne;
    ``pad`` may be 0/'valid' only; ``flip_filters`` defaults to False.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DilatedConv2DLayer
    >>> DilatedConv2DLayer(InputLayer((None, 1, 10, 10)), 2, 3, dilation=2).output_shape
    (None, 2, 6, 6)
    """

    def __init__(
        self,
        incoming: Any,
        num_filters: int,
        filter_size: Any,
        dilation: Any = (1, 1),
        pad: Any = 0,
        untie_biases: bool = False,
        W: Any = init.GlorotUniform(),
        b: Any = init.Constant(0.0),
        nonlinearity: Any = nonlinearities.rectify,
        flip_filters: bool = False,
        **kwargs: Any,
    ) -> None:
        self.dilation = as_tuple(dilation, 2, int)
        if pad not in (0, (0, 0), [0, 0], "valid"):
            raise NotImplementedError(
                f"DilatedConv2DLayer{' ' + repr(kwargs.get('name')) if kwargs.get('name') else ''}"
                f": only pad=0/'valid' is supported, got {pad!r}"
            )
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            1,
            0,
            untie_biases,
            W,
            b,
            nonlinearity,
            flip_filters,
            n=2,
            **kwargs,
        )

    def get_W_shape(self) -> tuple:
        """Shape ``(num_input_channels, num_filters, *filter_size)``, as Lasagne."""
        return (self.input_shape[1], self.num_filters, *self.filter_size)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        spatial = tuple(
            None if i is None else i - (f - 1) * d
            for i, f, d in zip(input_shape[2:], self.filter_size, self.dilation)
        )
        return (input_shape[0], self.num_filters, *spatial)

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        W = self.W.dimshuffle(1, 0, 2, 3)
        if self.flip_filters:
            W = W[:, :, ::-1, ::-1]
        return corr_nd(input, W, self.filter_size, dilation=self.dilation)
