"""Locally connected layers: convolutions whose filters differ at every output position."""

from __future__ import annotations

import itertools
from typing import Any

from .. import init, nonlinearities
from ..ops.conv import pad_spatial
from .conv import Conv2DLayer

__all__ = ["LocallyConnected2DLayer"]


class LocallyConnected2DLayer(Conv2DLayer):
    """2-D locally connected layer: a convolution without weight sharing.

    Every output position has its own filter bank::

        out[b, f, y, x] = sum_{c, i, j} W[f, c, i, j, y, x] * padded[b, c, y + i, x + j]

    (with ``flip_filters=True`` the taps ``i, j`` are reversed, as in a convolution), then
    the biases and the nonlinearity are applied. A subclass of :class:`Conv2DLayer`, as in
    Lasagne.

    Parameters
    ----------
    incoming : Layer or tuple
        Input of shape ``(batch, channels, rows, columns)``; all but the batch size must be
        known (they fix the weight shape).
    num_filters : int
        Number of output channels.
    filter_size : int or tuple of int
    stride : int or tuple of int
        Default 1, the only value Lasagne supports; larger strides work here too.
    pad : 'same', 'valid', 'full', int or tuple of int
        Default 'same' (odd filter sizes), the only value Lasagne supports.
    untie_biases : bool
        If True, ``b`` has shape ``(num_filters, out_rows, out_columns)``.
    W : parameter spec
        Shape ``(num_filters, channels, rows, columns, out_rows, out_columns)``, or with
        ``channelwise=True`` ``(num_filters, rows, columns, out_rows, out_columns)``.
    b, nonlinearity
        As for :class:`Conv2DLayer`.
    flip_filters : bool
        True (default) reverses the filter taps, like a convolution.
    channelwise : bool
        If True, output channel ``k`` sees only input channel ``k``; ``num_filters`` must
        equal the number of input channels.
    **kwargs
        Passed to :class:`Layer` (``name``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, LocallyConnected2DLayer
    >>> l = LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 4, 3)
    >>> l.output_shape, l.W.get_value().shape
    ((None, 4, 6, 6), (4, 3, 3, 3, 6, 6))
    >>> LocallyConnected2DLayer(InputLayer((None, 3, 6, 6)), 3, 3, channelwise=True).get_W_shape()
    (3, 3, 3, 6, 6)
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
        self.channelwise = channelwise
        super().__init__(
            incoming,
            num_filters,
            filter_size,
            stride=stride,
            pad=pad,
            untie_biases=untie_biases,
            W=W,
            b=b,
            nonlinearity=nonlinearity,
            flip_filters=flip_filters,
            **kwargs,
        )

    def get_W_shape(self) -> tuple:
        """``(num_filters, channels, *filter_size, *output_spatial)`` (channelwise: no channels).

        Examples
        --------
        >>> from plasagne.layers import InputLayer, LocallyConnected2DLayer
        >>> LocallyConnected2DLayer(InputLayer((None, 2, 5, 4)), 3, 3, pad="valid").get_W_shape()
        (3, 2, 3, 3, 3, 2)
        """
        if any(s is None for s in self.input_shape[1:]):
            raise ValueError(
                f"{self._label()}: needs a fixed input shape except for the batch size, got "
                f"{self.input_shape}"
            )
        channels = self.input_shape[1]
        out = self.get_output_shape_for(self.input_shape)[2:]
        if self.channelwise:
            if self.num_filters != channels:
                raise ValueError(
                    f"{self._label()}: channelwise=True needs num_filters equal to the number "
                    f"of input channels ({channels}), got num_filters={self.num_filters}"
                )
            return (self.num_filters, *self.filter_size, *out)
        return (self.num_filters, channels, *self.filter_size, *out)

    def convolve(self, input: Any, **kwargs: Any) -> Any:
        """The locally connected product, without biases and nonlinearity.

        One strided slice of the padded input per filter tap, multiplied by that tap's
        weights at every position and summed (Python loops over the taps only).

        Examples
        --------
        >>> from plasagne.layers import InputLayer, LocallyConnected2DLayer
        >>> layer = LocallyConnected2DLayer(InputLayer((1, 1, 1, 3)), 1, 1,
        ...                                 W=np.array([1.0, 2.0, 3.0]).reshape(1, 1, 1, 1, 1, 3))
        >>> layer.convolve(pt.constant(np.ones((1, 1, 1, 3)))).eval().tolist()
        [[[[1.0, 2.0, 3.0]]]]
        """
        oh, ow = self.get_output_shape_for(self.input_shape)[2:]
        kh, kw = self.filter_size
        sh, sw = self.stride
        x = pad_spatial(input, [(p, p) for p in self._pads()])
        out = None
        for i, j in itertools.product(range(kh), range(kw)):
            patch = x[:, :, i : i + (oh - 1) * sh + 1 : sh, j : j + (ow - 1) * sw + 1 : sw]
            ti, tj = (kh - 1 - i, kw - 1 - j) if self.flip_filters else (i, j)
            if self.channelwise:
                term = patch * self.W[:, ti, tj].dimshuffle("x", 0, 1, 2)
            else:
                # (batch, 1, channels, oh, ow) * (1, filters, channels, oh, ow), summed over c
                term = (
                    patch.dimshuffle(0, "x", 1, 2, 3)
                    * self.W[:, :, ti, tj].dimshuffle("x", 0, 1, 2, 3)
                ).sum(axis=2)
            out = term if out is None else out + term
        return out
