"""Convolution layers (1-D, 2-D, 3-D, transposed and dilated), channels-first layout.

Inputs are ``(batch, channels, *spatial)``. All the arithmetic goes through
:func:`plasagne.ops.conv.corr_nd` (and :func:`plasagne.ops.conv.corr_nd_transpose`, built
on it), looked up on the module at graph-building time, so replacing that function swaps
the kernel of every layer.
"""

from __future__ import annotations

from numbers import Integral
from typing import Any

import pytensor.tensor as pt
from pytensor.graph.basic import Variable

from .. import init, nonlinearities
from ..ops import conv as conv_ops
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
    """Padding on each side of one axis for a pad mode or amount."""
    if isinstance(pad, str):
        if pad == "valid":
            return 0
        if pad == "full":
            return filter_size - 1
        if pad == "same":
            return filter_size // 2
    elif isinstance(pad, Integral) and not isinstance(pad, bool):
        return int(pad)
    raise ValueError(f"Invalid pad: {pad!r}; expected 'valid', 'full', 'same' or an int")


def conv_output_length(
    input_length: int | None, filter_size: int, stride: int, pad: Any = 0
) -> int | None:
    """Output length of a convolution along one axis.

    Parameters
    ----------
    input_length : int or None
        ``None`` (unknown) gives ``None``.
    filter_size, stride : int
    pad : 'valid', 'full', 'same' or int
        ``'valid'`` is no padding, ``'full'`` pads ``filter_size - 1`` on both sides,
        ``'same'`` keeps the length (before striding); an int pads that much on both sides.

    Returns
    -------
    int or None
        ``ceil((input_length + 2 * pad - filter_size + 1) / stride)``.

    Examples
    --------
    >>> conv_output_length(28, 5, 1, "valid"), conv_output_length(28, 5, 2, "same")
    (24, 14)
    >>> conv_output_length(None, 3, 1, "full") is None
    True
    """
    if input_length is None:
        return None
    if pad == "same":
        output_length = input_length
    else:
        output_length = input_length + 2 * _pad_amount(pad, filter_size) - filter_size + 1
    return (output_length + stride - 1) // stride


def conv_input_length(
    output_length: int | None, filter_size: int, stride: int, pad: Any = 0
) -> int | None:
    """Smallest input length a convolution maps to ``output_length``.

    This is the output length of the transposed convolution.

    Parameters
    ----------
    output_length : int or None
        ``None`` (unknown) gives ``None``.
    filter_size, stride : int
    pad : 'valid', 'full', 'same' or int
        As for :func:`conv_output_length`.

    Returns
    -------
    int or None
        ``(output_length - 1) * stride - 2 * pad + filter_size``.

    Examples
    --------
    >>> conv_input_length(24, 5, 1, "valid"), conv_input_length(14, 5, 2, "same")
    (28, 27)
    """
    if output_length is None:
        return None
    return (output_length - 1) * stride - 2 * _pad_amount(pad, filter_size) + filter_size


def _flip_spatial(W: Any, n: int) -> Any:
    return W[(slice(None), slice(None)) + (slice(None, None, -1),) * n]


class BaseConvLayer(Layer):
    """Shared machinery of the n-dimensional convolution layers.

    Subclasses may override :meth:`get_W_shape`, :meth:`get_output_shape_for` and
    :meth:`convolve`; :meth:`get_output_for` adds the biases and applies the nonlinearity.
    Unlike Lasagne's, this base class convolves by itself (through
    :func:`plasagne.ops.conv.corr_nd`), so it can be used directly for any ``n``.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, *spatial)``; the channel count must be known.
    num_filters : int
        Number of filters (output channels).
    filter_size : int or tuple of int
        Spatial size of the filters.
    stride : int or tuple of int
        Step between filter applications.
    pad : 'valid', 'full', 'same', int or tuple of int
        Zero padding: ``'valid'`` (or 0) none, ``'full'`` ``filter_size - 1`` on both sides,
        ``'same'`` (odd filter sizes only) ``filter_size // 2`` so that the size is kept for
        stride 1; an int or tuple pads that much on both sides.
    untie_biases : bool
        If True, one bias per filter and output position: ``b`` has shape
        ``(num_filters, *output_spatial)``; else ``(num_filters,)``.
    W : array, shared variable, expression or callable
        Filters of shape :meth:`get_W_shape`, ``(num_filters, num_input_channels,
        *filter_size)`` here; any PyTensor expression (e.g. a PyMC random variable) works.
    b : array, shared variable, expression, callable or None
        Biases; ``None`` for none.
    nonlinearity : callable or None
        Applied to the output; ``None`` means linear.
    flip_filters : bool
        True (default) flips the filters' spatial axes: a true convolution, as Theano's and
        Lasagne's ``Conv*Layer``; False slides them unflipped (cross-correlation), as most
        other libraries do.
    n : int, optional
        Number of spatial dimensions; default ``input ndim - 2``.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, BaseConvLayer
    >>> layer = BaseConvLayer(InputLayer((None, 3, 8, 8)), 4, 3)
    >>> layer.get_W_shape(), layer.output_shape
    ((4, 3, 3, 3), (None, 4, 6, 6))
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
        ndim = len(self.input_shape)
        if n is None:
            n = ndim - 2
        elif n != ndim - 2:
            raise ValueError(
                f"{self._label()}: tried to create a {n}D convolution layer with input shape "
                f"{self.input_shape}; expected {n + 2} input dimensions (batch, channels, "
                f"{n} spatial)"
            )
        if n < 1:
            raise ValueError(
                f"{self._label()}: input shape {self.input_shape} has no spatial axes; expected "
                "(batch, channels, *spatial)"
            )
        self.n = n
        if not isinstance(num_filters, Integral) or num_filters < 1:
            raise ValueError(
                f"{self._label()}: num_filters must be a positive int, got {num_filters!r}"
            )
        self.num_filters = int(num_filters)
        self.filter_size = self._int_tuple("filter_size", filter_size, 1)
        self.stride = self._int_tuple("stride", stride, 1)
        self.flip_filters = flip_filters
        self.untie_biases = untie_biases
        if isinstance(pad, str):
            if pad not in ("valid", "full", "same"):
                raise ValueError(
                    f"{self._label()}: invalid pad {pad!r}; expected 'valid', 'full', 'same', "
                    f"an int or a tuple of {n} ints"
                )
            if pad == "same" and any(s % 2 == 0 for s in self.filter_size):
                raise NotImplementedError(
                    f"{self._label()}: 'same' padding requires odd filter sizes, got "
                    f"filter_size={self.filter_size}"
                )
            self.pad = (0,) * n if pad == "valid" else pad
        else:
            self.pad = self._int_tuple("pad", pad, 0)
        if self.input_shape[1] is None:
            raise ValueError(
                f"{self._label()}: the channel axis (axis 1) must have a fixed size, got input "
                f"shape {self.input_shape}"
            )
        out_spatial = self.get_output_shape_for(self.input_shape)[2:]
        if any(o is not None and o <= 0 for o in out_spatial):
            raise ValueError(
                f"{self._label()}: filter size {self.filter_size} does not fit the input "
                f"{self.input_shape[2:]} (stride {self.stride}, pad/crop "
                f"{getattr(self, 'pad', None)!r}): the output would have spatial shape "
                f"{out_spatial}"
            )
        self.W = self.add_param(W, self.get_W_shape(), name="W")
        if b is None:
            self.b = None
        else:
            if self.untie_biases:
                if any(s is None for s in out_spatial):
                    raise ValueError(
                        f"{self._label()}: untie_biases=True needs a fixed output size, got "
                        f"output spatial shape {out_spatial}"
                    )
                biases_shape = (self.num_filters, *out_spatial)
            else:
                biases_shape = (self.num_filters,)
            self.b = self.add_param(b, biases_shape, name="b", regularizable=False)

    def _int_tuple(self, name: str, value: Any, minimum: int) -> tuple:
        try:
            values = tuple(value) if not isinstance(value, Integral) else (value,) * self.n
        except TypeError:
            values = (value,)
        if len(values) != self.n or not all(
            isinstance(v, Integral) and not isinstance(v, bool) and v >= minimum for v in values
        ):
            raise ValueError(
                f"{self._label()}: {name} must be an int >= {minimum} or a tuple of {self.n} "
                f"such ints, got {value!r}"
            )
        return tuple(int(v) for v in values)

    def get_W_shape(self) -> tuple:
        """Shape of the filters: ``(num_filters, num_input_channels, *filter_size)``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, Conv1DLayer
        >>> Conv1DLayer(InputLayer((None, 2, 10)), 4, 3).get_W_shape()
        (4, 2, 3)
        """
        return (self.num_filters, self.input_shape[1], *self.filter_size)

    def _pads(self) -> tuple:
        """Padding amounts per spatial axis."""
        pad = getattr(self, "crop", getattr(self, "pad", None))
        if isinstance(pad, str):
            return tuple(_pad_amount(pad, f) for f in self.filter_size)
        return tuple(pad)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        """``(batch, num_filters, *out)`` with :func:`conv_output_length` on every axis.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, Conv2DLayer
        >>> Conv2DLayer(InputLayer((None, 1, 9, 9)), 2, 3, stride=2).get_output_shape_for(
        ...     (5, 1, 7, 9))
        (5, 2, 3, 4)
        """
        pad = self.pad if isinstance(self.pad, tuple) else (self.pad,) * self.n
        spatial = tuple(
            conv_output_length(i, f, s, p)
            for i, f, s, p in zip(input_shape[2:], self.filter_size, self.stride, pad)
        )
        return (input_shape[0], self.num_filters, *spatial)

    def get_output_for(self, input: Any, **kwargs: Any) -> Any:
        """``nonlinearity(convolve(input) + b)``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, Conv1DLayer
        >>> layer = Conv1DLayer(InputLayer((1, 1, 4)), 1, 2, W=np.ones((1, 1, 2)),
        ...                     b=np.array([0.5]), nonlinearity=None)
        >>> layer.get_output_for(pt.constant(np.arange(4.0).reshape(1, 1, 4))).eval().tolist()
        [[[1.5, 3.5, 5.5]]]
        """
        conved = self.convolve(input, **kwargs)
        if self.b is None:
            activation = conved
        elif self.untie_biases:
            activation = conved + pt.shape_padleft(self.b, 1)
        else:
            activation = conved + self.b.dimshuffle("x", 0, *(["x"] * self.n))
        return self.nonlinearity(activation)

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        """The convolution itself, without biases and nonlinearity.

        Uses the layer's ``convolution`` callable when one was given (see
        :class:`Conv2DLayer`), else :func:`plasagne.ops.conv.corr_nd`.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, Conv1DLayer
        >>> layer = Conv1DLayer(InputLayer((1, 1, 3)), 1, 2, W=np.array([[[1.0, 0.0]]]))
        >>> layer.convolve(pt.constant(np.array([[[1.0, 2.0, 3.0]]]))).eval().tolist()
        [[[2.0, 3.0]]]
        """
        convolution = getattr(self, "convolution", None)
        if convolution is not None:
            border_mode = "half" if self.pad == "same" else self.pad
            return convolution(
                input,
                self.W,
                self.input_shape,
                self.get_W_shape(),
                subsample=self.stride,
                border_mode=border_mode,
                filter_flip=self.flip_filters,
            )
        W = _flip_spatial(self.W, self.n) if self.flip_filters else self.W
        return conv_ops.corr_nd(input, W, self.filter_size, stride=self.stride, pad=self._pads())


class Conv1DLayer(BaseConvLayer):
    """1-D convolution over inputs of shape ``(batch, channels, length)``.

    Parameters
    ----------
    incoming, num_filters, filter_size, stride, pad, untie_biases, W, b, nonlinearity, flip_filters
        As for :class:`BaseConvLayer`; ``W`` has shape ``(num_filters, channels,
        filter_size)``.
    convolution : callable, optional
        A replacement kernel, called as Lasagne does: ``convolution(input, W,
        input_shape, W_shape, subsample=stride, border_mode=pad ('half' for 'same'),
        filter_flip=flip_filters)``. Default: :func:`plasagne.ops.conv.corr_nd`.
    **kwargs
        Passed to :class:`Layer` (``name``).

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
            n=1,
            **kwargs,
        )
        self.convolution = convolution


class Conv2DLayer(BaseConvLayer):
    """2-D convolution over inputs of shape ``(batch, channels, rows, columns)``.

    Parameters
    ----------
    incoming, num_filters, filter_size, stride, pad, untie_biases, W, b, nonlinearity, flip_filters
        As for :class:`BaseConvLayer`; ``W`` has shape ``(num_filters, channels, rows,
        columns)``.
    convolution : callable, optional
        A replacement kernel, called as Lasagne does: ``convolution(input, W,
        input_shape, W_shape, subsample=stride, border_mode=pad ('half' for 'same'),
        filter_flip=flip_filters)``. Default: :func:`plasagne.ops.conv.corr_nd`.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv2DLayer
    >>> Conv2DLayer(InputLayer((None, 1, 28, 28)), 32, (5, 5)).output_shape
    (None, 32, 24, 24)
    >>> Conv2DLayer(InputLayer((None, 1, 28, 28)), 8, 3, stride=2, pad="same").output_shape
    (None, 8, 14, 14)
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
        self.convolution = convolution


class Conv3DLayer(BaseConvLayer):
    """3-D convolution over inputs of shape ``(batch, channels, depth, rows, columns)``.

    Parameters
    ----------
    incoming, num_filters, filter_size, stride, pad, untie_biases, W, b, nonlinearity, flip_filters
        As for :class:`BaseConvLayer`; ``W`` has shape ``(num_filters, channels, depth,
        rows, columns)``.
    convolution : callable, optional
        A replacement kernel, called as for :class:`Conv2DLayer`.
    **kwargs
        Passed to :class:`Layer` (``name``).

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
        self.convolution = convolution


class _TransposedConvNDLayer(BaseConvLayer):
    """Transposed convolution: the gradient of a forward convolution w.r.t. its input."""

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
        self.n = n
        self.output_size = self._check_output_size(output_size, n, kwargs.get("name"))
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
        # as Lasagne: the forward convolution's padding is this layer's crop
        self.crop = self.pad
        del self.pad
        if isinstance(self.output_size, tuple):
            natural = self._natural_size(self.input_shape)
            for axis, (size, smallest, s) in enumerate(zip(self.output_size, natural, self.stride)):
                if smallest is not None and not smallest <= size < smallest + s:
                    raise ValueError(
                        f"{self._label()}: output_size {self.output_size} is impossible along "
                        f"spatial axis {axis}: with input size {self.input_shape[2 + axis]}, "
                        f"filter size {self.filter_size[axis]}, stride {s} and crop "
                        f"{self._pads()[axis]} it must be in [{smallest}, {smallest + s - 1}]"
                    )

    def _check_output_size(self, output_size: Any, n: int, name: Any) -> Any:
        if output_size is None or isinstance(output_size, Variable):
            return output_size
        try:
            sizes = tuple(output_size) if not isinstance(output_size, Integral) else None
        except TypeError:
            sizes = None
        if sizes is None and isinstance(output_size, Integral):
            sizes = (output_size,) * n
        if (
            sizes is None
            or len(sizes) != n
            or not all(isinstance(s, Integral) and s > 0 for s in sizes)
        ):
            label = f"{type(self).__name__} '{name}'" if name else type(self).__name__
            raise ValueError(
                f"{label}: output_size must be None, a positive int, a tuple of {n} positive "
                f"ints or a symbolic vector, got {output_size!r}"
            )
        return tuple(int(s) for s in sizes)

    def _natural_size(self, input_shape: tuple) -> tuple:
        return tuple(
            conv_input_length(i, f, s, c)
            for i, f, s, c in zip(input_shape[2:], self.filter_size, self.stride, self._pads())
        )

    def get_W_shape(self) -> tuple:
        """Shape ``(num_input_channels, num_filters, *filter_size)``, as Lasagne.

        This is the weight shape of the forward convolution being transposed.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, TransposedConv2DLayer
        >>> TransposedConv2DLayer(InputLayer((None, 3, 4, 4)), 2, (3, 1)).get_W_shape()
        (3, 2, 3, 1)
        """
        return (self.input_shape[1], self.num_filters, *self.filter_size)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        """``output_size`` when given, else :func:`conv_input_length` on every axis.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, TransposedConv2DLayer
        >>> layer = TransposedConv2DLayer(InputLayer((None, 3, 4, 4)), 2, 3, stride=2)
        >>> layer.get_output_shape_for((7, 3, 5, 6))
        (7, 2, 11, 13)
        """
        if isinstance(self.output_size, Variable):
            return (input_shape[0], self.num_filters) + (None,) * self.n
        if self.output_size is not None:
            return (input_shape[0], self.num_filters, *self.output_size)
        return (input_shape[0], self.num_filters, *self._natural_size(input_shape))

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        """The transposed convolution, without biases and nonlinearity.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, TransposedConv2DLayer
        >>> layer = TransposedConv2DLayer(InputLayer((1, 1, 1, 2)), 1, (1, 2),
        ...                               W=np.array([[[[1.0, 2.0]]]]), flip_filters=True)
        >>> layer.convolve(pt.constant(np.array([[[[1.0, 10.0]]]]))).eval().tolist()
        [[[[1.0, 12.0, 20.0]]]]
        """
        # W is the forward convolution's filter bank (input channels here = its filters);
        # flip_filters=False transposes a forward *convolution* (flipped filters), as Lasagne
        W = self.W if self.flip_filters else _flip_spatial(self.W, self.n)
        return conv_ops.corr_nd_transpose(
            input,
            W,
            self.filter_size,
            stride=self.stride,
            crop=self._pads(),
            output_size=self.output_size,
        )


class TransposedConv2DLayer(_TransposedConvNDLayer):
    """2-D transposed convolution (also called deconvolution or fractionally strided).

    The output is the gradient of a forward :class:`Conv2DLayer` (with ``stride``,
    ``pad=crop``, the same ``W`` and ``flip_filters`` inverted) with respect to its input,
    applied to this layer's input: each input pixel adds its value times the filter to
    the output, ``stride`` apart, and ``crop`` is then removed from each border.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, rows, columns)``.
    num_filters : int
        Number of output channels.
    filter_size, stride : int or tuple of int
    crop : 'valid', 'full', 'same', int or tuple of int
        The padding of the forward convolution, removed from the output.
    untie_biases, b, nonlinearity
        As for :class:`BaseConvLayer`.
    W : parameter spec
        Shape ``(num_input_channels, num_filters, rows, columns)``, as Lasagne: the weight
        shape of the forward convolution, so ``W=conv.W`` ties the two.
    flip_filters : bool
        Default False: each input pixel stamps the filter flipped, i.e. the layer
        transposes a forward layer with ``flip_filters=True``. Inverted with respect to
        the forward layers, as in Lasagne.
    output_size : int, tuple of int or symbolic vector, optional
        With stride > 1 several output sizes invert the forward convolution; the default
        is the smallest, :func:`conv_input_length`. Static sizes are checked against the
        possible range; a symbolic vector makes the output's spatial shape ``None``.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, Conv2DLayer, TransposedConv2DLayer
    >>> TransposedConv2DLayer(InputLayer((None, 3, 8, 8)), 2, 3, stride=2).output_shape
    (None, 2, 17, 17)
    >>> conv = Conv2DLayer(InputLayer((None, 1, 28, 28)), 16, 3, stride=2)
    >>> deconv = TransposedConv2DLayer(conv, conv.input_shape[1], conv.filter_size,
    ...     stride=conv.stride, crop=conv.pad, W=conv.W, flip_filters=not conv.flip_filters,
    ...     output_size=28)
    >>> deconv.output_shape
    (None, 1, 28, 28)
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
    """3-D transposed convolution; see :class:`TransposedConv2DLayer`.

    Parameters
    ----------
    incoming, num_filters, filter_size, stride, crop, untie_biases, W, b, nonlinearity
        As for :class:`TransposedConv2DLayer`, with 3 spatial axes; ``W`` has shape
        ``(num_input_channels, num_filters, depth, rows, columns)``.
    flip_filters, output_size
        As for :class:`TransposedConv2DLayer`.
    **kwargs
        Passed to :class:`Layer` (``name``).

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

    ``out[b, f, y, x] = sum_{c, i, j} W[c, f, i, j] * input[b, c, y + i * dh, x + j * dw]``
    (with ``flip_filters=True`` the filter's spatial axes are reversed first).

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, rows, columns)``.
    num_filters : int
    filter_size : int or tuple of int
    dilation : int or tuple of int
        Spacing between filter taps (1: an ordinary convolution).
    pad : 0, (0, 0) or 'valid'
        Only no padding, as Lasagne (add a :class:`PadLayer` in front for padding).
    untie_biases, b, nonlinearity
        As for :class:`BaseConvLayer`.
    W : parameter spec
        Shape ``(num_input_channels, num_filters, rows, columns)``, as Lasagne.
    flip_filters : bool
        Default False (correlation), as Lasagne; True flips the filters (Lasagne refuses it).
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DilatedConv2DLayer
    >>> layer = DilatedConv2DLayer(InputLayer((None, 1, 10, 10)), 2, 3, dilation=2)
    >>> layer.output_shape, layer.get_W_shape()
    ((None, 2, 6, 6), (1, 2, 3, 3))
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
        self.name = kwargs.get("name")
        self.n = 2
        self.dilation = self._int_tuple("dilation", dilation, 1)
        if not (pad == "valid" or (not isinstance(pad, str) and tuple(_as_seq(pad)) in _ZERO)):
            raise NotImplementedError(
                f"{self._label()}: only pad=0 / (0, 0) / 'valid' is supported, got {pad!r}; "
                "put a PadLayer in front for a padded dilated convolution"
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
        """Shape ``(num_input_channels, num_filters, rows, columns)``, as Lasagne.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, DilatedConv2DLayer
        >>> DilatedConv2DLayer(InputLayer((None, 3, 9, 9)), 4, (2, 3)).get_W_shape()
        (3, 4, 2, 3)
        """
        return (self.input_shape[1], self.num_filters, *self.filter_size)

    def get_output_shape_for(self, input_shape: tuple) -> tuple:
        """Valid convolution with the dilated filter size ``(filter_size - 1) * dilation + 1``.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, DilatedConv2DLayer
        >>> layer = DilatedConv2DLayer(InputLayer((None, 1, 10, 10)), 2, 3, dilation=(2, 3))
        >>> layer.get_output_shape_for((4, 1, 12, 12))
        (4, 2, 8, 6)
        """
        spatial = tuple(
            conv_output_length(i, (f - 1) * d + 1, 1, 0)
            for i, f, d in zip(input_shape[2:], self.filter_size, self.dilation)
        )
        return (input_shape[0], self.num_filters, *spatial)

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        """The dilated convolution, without biases and nonlinearity.

        Examples
        --------
        >>> from plasagne.layers import InputLayer, DilatedConv2DLayer
        >>> layer = DilatedConv2DLayer(InputLayer((1, 1, 1, 5)), 1, (1, 2), dilation=(1, 3),
        ...                            W=np.array([[[[1.0, 10.0]]]]))
        >>> layer.convolve(pt.constant(np.arange(5.0).reshape(1, 1, 1, 5))).eval().tolist()
        [[[[30.0, 41.0]]]]
        """
        W = self.W.dimshuffle(1, 0, 2, 3)
        if self.flip_filters:
            W = _flip_spatial(W, 2)
        return conv_ops.corr_nd(input, W, self.filter_size, dilation=self.dilation)


_ZERO = {(0,), (0, 0)}


def _as_seq(value: Any) -> tuple:
    try:
        return tuple(value)
    except TypeError:
        return (value,)
