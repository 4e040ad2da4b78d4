"""Max pooling as one node, with direct Numba kernels for it and its gradient.

:func:`plasagne.ops.pool.pool_nd` builds max pooling as one :class:`MaxPoolNd` node, a
PyTensor ``FusibleSymbolicOp`` whose inner graph is the strided-slice graph of
:func:`plasagne.ops.pool.pool_graph`; its gradient is one :class:`MaxPoolNdGrad` node. Two
rewrites run before PyTensor's canonicalisation: Numba modes (tag ``numba``, or
:data:`MAX_POOL_KERNEL_TAG`, which :func:`plasagne.ops.fast_math.fast_math_mode` adds) swap
both nodes for two kernel Ops that visit every window once, and every other optimising
mode (C, JAX) then replaces them by their slice graphs, which go through all rewrites as
when ``pool_nd`` built them directly. Unoptimised modes run the inner graphs.

- :class:`MaxPoolKernel` ``x (n, d, h, w) -> out``: the largest entry of each window,
  positions outside the input (padding, a partial last window) ignored; NaN wins, as with
  ``np.maximum``;
- :class:`MaxPoolKernelGrad` ``(x, g) -> dx``: each window's output gradient added to
  the input position holding the window's maximum; on ties to the one the slice graph's
  gradient picks (PyTensor's ``maximum`` sends a tie's gradient to its first argument,
  so, pooling one axis after another, the first maximum along the last pooled axis, then
  the one before). Theano's max pooling gave a tie's gradient to every maximum instead.

Leading axes are folded into one and missing pooled axes added as unit axes, so the
kernels handle 1-3 pooled axes of any input; float inputs only (integer pooling keeps
the slice graph). Windows inside the input run loops of constant length with no branch,
which LLVM unrolls and vectorises; the few windows that padding or a partial end clips
take a general path. When the windows tile the input (stride = pool size, no padding)
the gradient writes every position once instead of adding into a zeroed array. Measured
on the post's first pooling (2x2 of a ``(500, 32, 24, 24)`` float32 activation): forward
3.3 ms, gradient 8.0 ms; comparisons written as branches ran 3-8x slower (after a ReLU,
ties and zeros make them unpredictable). In the CNN's ADVI step, alternating the two in
one process: 112 ms with the kernels, 120 ms with the slice graphs. When
:func:`plasagne.ops.blas_threads.parallel_kernels` allows, both kernels split the folded
leading axis into blocks over Numba's threads (each position belongs to one row, so the
blocks never write the same place).

Examples
--------
>>> x = pt.constant(np.arange(16.0).reshape(1, 1, 4, 4))
>>> op = MaxPoolNd(pool_size=(2, 2), stride=(2, 2), pad=(0, 0), ignore_border=True)
>>> op(x).eval()[0, 0].tolist()
[[5.0, 7.0], [13.0, 15.0]]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.compile.rewriting import inline_ofg_node
from pytensor.graph.basic import Apply
from pytensor.graph.op import Op
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter
from pytensor.tensor.symbolic import FusibleSymbolicOp

from .blas_threads import parallel_kernels, register_symbols
from .opaque_calls import kernel_salt, node_loop_behind_call
from .pool import _out_length, pool_graph, pool_output_length

__all__ = [
    "MaxPoolNd",
    "MaxPoolNdGrad",
    "MaxPoolKernel",
    "MaxPoolKernelGrad",
    "MAX_POOL_KERNEL_TAG",
]

#: The rewrite's tag: ``mode.including(MAX_POOL_KERNEL_TAG)`` adds it to a Numba mode.
MAX_POOL_KERNEL_TAG = "max_pool_kernel"

# salt for Numba's on-disk cache keys: bump when a kernel's code changes
_KERNEL_VERSION = 15

# the folded leading axis is split into this many blocks for Numba's threads
_BLOCKS = 64


class _PoolSettings:
    """Pool size, stride, padding and border rule, one entry per pooled axis."""

    __props__ = ("pool_size", "stride", "pad", "ignore_border")

    def _set(self, pool_size, stride, pad, ignore_border) -> None:
        self.pool_size = tuple(int(s) for s in pool_size)
        self.stride = tuple(int(s) for s in stride)
        self.pad = tuple(int(p) for p in pad)
        self.ignore_border = bool(ignore_border)

    def settings(self) -> dict:
        return {name: getattr(self, name) for name in self.__props__}

    def reference(self, x: Any) -> Any:
        return pool_graph(x, self.pool_size, self.stride, self.pad, self.ignore_border, "max")


class MaxPoolNd(_PoolSettings, FusibleSymbolicOp):
    """Max pooling of the last ``len(pool_size)`` axes (settings checked by ``pool_nd``).

    Examples
    --------
    >>> op = MaxPoolNd(pool_size=(2,), stride=(2,), pad=(0,), ignore_border=False)
    >>> op(pt.constant(np.array([[1.0, 3.0, 2.0]]))).eval().tolist()
    [[3.0, 2.0]]
    """

    __props__ = _PoolSettings.__props__

    def __init__(self, *, pool_size, stride, pad, ignore_border, **kwargs: Any) -> None:
        self._set(pool_size, stride, pad, ignore_border)
        super().__init__(**kwargs)

    def build_inner_graph(self, x: Any) -> list:
        return [self.reference(x)]

    def pullback(self, inputs: list, outputs: list, output_grads: list) -> list:
        (x,) = inputs
        if not x.dtype.startswith("float"):
            return [pt.zeros_like(x, dtype=pytensor.config.floatX)]
        return [MaxPoolNdGrad(**self.settings())(x, output_grads[0])]


class MaxPoolNdGrad(_PoolSettings, FusibleSymbolicOp):
    """The gradient of :class:`MaxPoolNd` with respect to its input, given the output's.

    Examples
    --------
    >>> op = MaxPoolNdGrad(pool_size=(2,), stride=(2,), pad=(0,), ignore_border=True)
    >>> op(pt.constant(np.array([[1.0, 3.0]])), pt.constant(np.array([[5.0]]))).eval().tolist()
    [[0.0, 5.0]]
    """

    __props__ = _PoolSettings.__props__

    def __init__(self, *, pool_size, stride, pad, ignore_border, **kwargs: Any) -> None:
        self._set(pool_size, stride, pad, ignore_border)
        super().__init__(**kwargs)

    def build_inner_graph(self, x: Any, g: Any) -> list:
        out = self.reference(x)
        return [pytensor.grad(None, x, known_grads={out: g})]


# ---------------------------------------------------------------------- kernel Ops


def _output_lengths(op: Any, spatial: tuple) -> tuple:
    """Windows along each pooled axis of an input with spatial shape ``spatial``."""
    return tuple(
        pool_output_length(length, size, stride, pad, op.ignore_border)
        for length, size, stride, pad in zip(spatial, op.pool_size, op.stride, op.pad)
    )


def _static_output_lengths(op: Any, spatial: tuple) -> tuple:
    """:func:`_output_lengths` of static lengths, None where a length is unknown (or
    leaves no window)."""
    lengths = []
    for length, size, stride, pad in zip(spatial, op.pool_size, op.stride, op.pad):
        if length is None:
            lengths.append(None)
            continue
        n = pool_output_length(length, size, stride, pad, op.ignore_border)
        lengths.append(n if n >= 1 else None)
    return tuple(lengths)


def _windows(op: Any, spatial: tuple):
    """Yield ``(output index, tuple of input slices)`` for every window, clipped to the input."""
    lengths = _output_lengths(op, spatial)
    for index in np.ndindex(*lengths):
        yield (
            index,
            tuple(
                slice(max(0, i * st - p), min(n, i * st - p + k))
                for i, st, p, k, n in zip(index, op.stride, op.pad, op.pool_size, spatial)
            ),
        )


class _KernelSettings(_PoolSettings):
    def __init__(self, pool_size, stride, pad, ignore_border) -> None:
        self._set(pool_size, stride, pad, ignore_border)
        if len(self.pool_size) != 3 or len(self.stride) != 3 or len(self.pad) != 3:
            raise ValueError(
                f"{type(self).__name__}: pool_size, stride and pad must have 3 entries, "
                f"got {self.pool_size}, {self.stride}, {self.pad}"
            )

    def out_shape(self, shape: tuple) -> tuple:
        return (shape[0], *_output_lengths(self, tuple(shape[1:])))


def _check_4d(who: str, **tensors: Any) -> None:
    for name, value in tensors.items():
        if value.ndim != 4 or not value.dtype.startswith("float"):
            raise TypeError(
                f"{who}: {name} must be a 4-d float tensor (n, d, h, w), got "
                f"{value.ndim}-d {value.dtype}"
            )


class MaxPoolKernel(_KernelSettings, Op):
    """Max pooling of the last three axes of a ``(n, d, h, w)`` float tensor.

    Examples
    --------
    >>> op = MaxPoolKernel((1, 1, 2), (1, 1, 2), (0, 0, 0), True)
    >>> op(pt.constant(np.array([1.0, 3.0, 2.0, 0.0]).reshape(1, 1, 1, 4))).eval().ravel()
    array([3., 2.])
    """

    __props__ = _PoolSettings.__props__

    def make_node(self, x: Any) -> Apply:
        x = pt.as_tensor_variable(x)
        _check_4d("MaxPoolKernel", input=x)
        shape = (x.type.shape[0], *_static_output_lengths(self, x.type.shape[1:]))
        return Apply(self, [x], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage) -> None:
        (x,) = inputs
        out = np.empty(self.out_shape(x.shape), dtype=x.dtype)
        for index, window in _windows(self, x.shape[1:]):
            out[(slice(None), *index)] = x[(slice(None), *window)].max(axis=(1, 2, 3))
        output_storage[0][0] = out

    def infer_shape(self, node, shapes):
        (shape,) = shapes
        lengths = [
            _out_length(length, size, stride, pad, self.ignore_border)
            for length, size, stride, pad in zip(shape[1:], self.pool_size, self.stride, self.pad)
        ]
        return [(shape[0], *lengths)]

    def pullback(self, inputs, outputs, cotangents):
        (x,) = inputs
        return [MaxPoolKernelGrad(**self.settings())(x, cotangents[0])]


class MaxPoolKernelGrad(_KernelSettings, Op):
    """The gradient of :class:`MaxPoolKernel`: each window's gradient to one maximum.

    On ties the first maximum along the last axis, then the middle one, then the first
    (the recipient of the strided-slice graph's ``maximum`` gradients, which PyTensor
    gives to the first argument on ties).

    Examples
    --------
    >>> op = MaxPoolKernelGrad((1, 1, 2), (1, 1, 2), (0, 0, 0), True)
    >>> x = pt.constant(np.array([1.0, 3.0]).reshape(1, 1, 1, 2))
    >>> op(x, pt.constant(np.full((1, 1, 1, 1), 5.0))).eval().ravel()
    array([0., 5.])
    """

    __props__ = _PoolSettings.__props__

    def make_node(self, x: Any, g: Any) -> Apply:
        x, g = pt.as_tensor_variable(x), pt.as_tensor_variable(g)
        _check_4d("MaxPoolKernelGrad", input=x, output_gradient=g)
        return Apply(self, [x, g], [x.type()])

    def perform(self, node, inputs, output_storage) -> None:
        x, g = inputs
        dx = np.zeros_like(x)
        rows = np.arange(x.shape[0])
        for index, window in _windows(self, x.shape[1:]):
            block = x[(slice(None), *window)]
            # the first maximum in (last, middle, first) axis order, as the slice graph
            first = block.transpose(0, 3, 2, 1).reshape(len(block), -1).argmax(axis=1)
            height, depth = block.shape[2], block.shape[1]
            c, rest = np.divmod(first, height * depth)
            y, z = np.divmod(rest, depth)
            starts = [w.start for w in window]
            np.add.at(
                dx,
                (rows, z + starts[0], y + starts[1], c + starts[2]),
                g[(slice(None), *index)],
            )
        output_storage[0][0] = dx

    def infer_shape(self, node, shapes):
        return [shapes[0]]


# ---------------------------------------------------------------------- the rewrite


def _as_kernel_input(x: Any, n: int) -> Any:
    """Fold the leading axes into one and add ``3 - n`` unit pooled axes."""
    lead = x.ndim - n
    folded = pt.prod([x.shape[i] for i in range(lead)]) if lead else 1
    return x.reshape([folded, *([1] * (3 - n)), *[x.shape[lead + i] for i in range(n)]])


def _kernel_settings(op: Any) -> tuple:
    missing = 3 - len(op.pool_size)
    return (
        (1,) * missing + op.pool_size,
        (1,) * missing + op.stride,
        (0,) * missing + op.pad,
        op.ignore_border,
    )


@node_rewriter([MaxPoolNd, MaxPoolNdGrad])
def use_max_pool_kernel(fgraph: Any, node: Apply) -> list | None:
    """Swap a float :class:`MaxPoolNd` or :class:`MaxPoolNdGrad` for the kernel Ops."""
    op = node.op
    x = node.inputs[0]
    n = len(op.pool_size)
    if n > 3 or not all(v.dtype == x.dtype for v in node.inputs):
        return None
    if x.dtype not in ("float32", "float64"):
        return None
    x4 = _as_kernel_input(x, n)
    settings = _kernel_settings(op)
    lead = [x.shape[i] for i in range(x.ndim - n)]
    if isinstance(op, MaxPoolNd):
        out4 = MaxPoolKernel(*settings)(x4)
        return [out4.reshape([*lead, *[out4.shape[4 - n + i] for i in range(n)]], ndim=x.ndim)]
    g4 = _as_kernel_input(node.inputs[1], n)
    dx4 = MaxPoolKernelGrad(*settings)(x4, g4)
    return [dx4.reshape(x.shape, ndim=x.ndim)]


@node_rewriter([MaxPoolNd, MaxPoolNdGrad])
def inline_max_pool(fgraph: Any, node: Apply) -> list | None:
    """Replace a :class:`MaxPoolNd` or :class:`MaxPoolNdGrad` node by its slice graph."""
    return inline_ofg_node(node)


# Before canonicalisation (optdb 1): Numba modes swap the nodes for the kernels first
# (0.5), every other optimising mode then inlines them (0.55), so the slice graphs go
# through every rewrite, as when pool_nd built them directly. (Left to the fusion pass,
# which inlines fusible symbolic Ops after the other rewrites, the CNN's Numba step took
# 138 ms against 121 ms with the graph built directly.)
optdb.register(
    "plasagne_use_max_pool_kernel",
    dfs_rewriter(use_max_pool_kernel),
    MAX_POOL_KERNEL_TAG,
    "numba",
    position=0.5,
)
optdb.register(
    "plasagne_inline_max_pool",
    dfs_rewriter(inline_max_pool),
    "fast_run",
    position=0.55,
)


def _register_numba() -> None:
    from numba import prange
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    register_symbols()

    def window_walk(op: _KernelSettings):
        """The forward and backward ``prange`` loops for ``op``'s settings (each Op puts
        its loop behind a C call, on C-contiguous inputs), whether they run in parallel,
        and the cache salt. Windows inside the input run loops of constant length
        without branches (LLVM unrolls them; with the data's ties and zeros after a ReLU,
        branching on comparisons cost 3-8x); windows that padding or a partial end clips
        take a general path."""
        kd, kh, kw = op.pool_size
        sd, sh, sw = op.stride
        pd, ph, pw = op.pad
        ignore_border = op.ignore_border
        tiles = op.stride == op.pool_size and op.pad == (0, 0, 0)
        parallel = parallel_kernels()

        @numba_njit
        def out_length(length, size, stride, pad):
            if ignore_border:
                return (length + 2 * pad - size) // stride + 1
            if stride >= size:
                return (length + stride - 1) // stride
            return max(0, (length - size + stride - 1) // stride) + 1

        @numba_njit
        def lengths(shape):
            return (
                out_length(shape[1], kd, sd, pd),
                out_length(shape[2], kh, sh, ph),
                out_length(shape[3], kw, sw, pw),
            )

        @numba_njit
        def window_maximum(x, b, z0, y0, c0):
            """The largest entry of the window at ``(z0, y0, c0)`` (inside the input)."""
            top = x[b, z0, y0, c0]
            for c in range(kw):
                for y in range(kh):
                    for z in range(kd):
                        v = x[b, z0 + z, y0 + y, c0 + c]
                        top = v if (v > top or v != v) else top  # NaN wins, as np.maximum
            return top

        @numba_njit
        def interior(stride, pad, size, length, count):
            """Window indices ``[low, high)`` whose windows lie inside ``[0, length)``."""
            low = min(count, (pad + stride - 1) // stride)
            high = max(low, min(count, (length + pad - size) // stride + 1))
            return low, high

        @numba_njit
        def clipped(i, stride, pad, size, length):
            start = i * stride - pad
            return max(start, 0), min(start + size, length)

        @numba_njit
        def layout(shape):
            """Output lengths and, per axis, the output range whose windows lie inside."""
            _, d, h, w = shape
            od, oh, ow = lengths(shape)
            i_low, i_high = interior(sd, pd, kd, d, od)
            j_low, j_high = interior(sh, ph, kh, h, oh)
            k_low, k_high = interior(sw, pw, kw, w, ow)
            return od, oh, ow, i_low, i_high, j_low, j_high, k_low, k_high

        @numba_njit
        def clipped_window(i, j, k, shape):
            """Bounds ``za, zb, ya, yb, ca, cb`` of window ``(i, j, k)`` inside the input."""
            _, d, h, w = shape
            za, zb = clipped(i, sd, pd, kd, d)
            ya, yb = clipped(j, sh, ph, kh, h)
            ca, cb = clipped(k, sw, pw, kw, w)
            return za, zb, ya, yb, ca, cb

        @numba_njit
        def clipped_maximum(x, b, i, j, k, shape):
            za, zb, ya, yb, ca, cb = clipped_window(i, j, k, shape)
            top = x[b, za, ya, ca]
            for c in range(ca, cb):
                for y in range(ya, yb):
                    for z in range(za, zb):
                        v = x[b, z, y, c]
                        top = v if (v > top or v != v) else top
            return top

        @numba_njit
        def forward(x, out, first, stop):
            od, oh, ow, i_low, i_high, j_low, j_high, k_low, k_high = layout(x.shape)
            for b in range(first, stop):
                for i in range(od):
                    z0 = i * sd - pd
                    for j in range(oh):
                        y0 = j * sh - ph
                        row = out[b, i, j]
                        if i_low <= i < i_high and j_low <= j < j_high:
                            for k in range(k_low, k_high):  # no branch: LLVM vectorises
                                row[k] = window_maximum(x, b, z0, y0, k * sw - pw)
                            for k in range(k_low):
                                row[k] = clipped_maximum(x, b, i, j, k, x.shape)
                            for k in range(k_high, ow):
                                row[k] = clipped_maximum(x, b, i, j, k, x.shape)
                        else:
                            for k in range(ow):
                                row[k] = clipped_maximum(x, b, i, j, k, x.shape)

        @numba_njit
        def first_maximum(x, b, z0, y0, c0):
            """Position (counted in (last, middle, first) axis order) of the first maximum
            of the window at ``(z0, y0, c0)``, which lies inside the input."""
            top = x[b, z0, y0, c0]
            best = 0
            q = 0
            for c in range(kw):
                for y in range(kh):
                    for z in range(kd):
                        v = x[b, z0 + z, y0 + y, c0 + c]
                        larger = v > top
                        top = v if larger else top
                        best = q if larger else best
                        q += 1
            return best

        @numba_njit
        def to_inside(x, g, dx, b, i, j, k, assign):
            """One inside window's gradient to its first maximum."""
            z0, y0, c0 = i * sd - pd, j * sh - ph, k * sw - pw
            best = first_maximum(x, b, z0, y0, c0)
            grad = g[b, i, j, k]
            if assign:
                q = 0
                for c in range(kw):
                    for y in range(kh):
                        for z in range(kd):
                            dx[b, z0 + z, y0 + y, c0 + c] = grad if q == best else 0
                            q += 1
            else:
                c, rest = divmod(best, kh * kd)
                y, z = divmod(rest, kd)
                dx[b, z0 + z, y0 + y, c0 + c] += grad

        @numba_njit
        def to_clipped(x, g, dx, b, i, j, k, assign):
            """A clipped window's gradient to its first maximum."""
            za, zb, ya, yb, ca, cb = clipped_window(i, j, k, x.shape)
            top = x[b, za, ya, ca]
            best_z, best_y, best_c = za, ya, ca
            for c in range(ca, cb):
                for y in range(ya, yb):
                    for z in range(za, zb):
                        v = x[b, z, y, c]
                        if assign:
                            dx[b, z, y, c] = 0
                        if v > top:
                            top = v
                            best_z, best_y, best_c = z, y, c
            dx[b, best_z, best_y, best_c] += g[b, i, j, k]

        @numba_njit
        def backward(x, g, dx, assign, first, stop):
            """Each window's gradient to its first maximum in (last, middle, first) axis
            order, the strided-slice graph's recipient on ties. With ``assign`` (windows
            that tile the input, ``dx`` uninitialised) every position is written once;
            otherwise gradients are added to a zeroed ``dx``. Rows ``first:stop`` of the
            folded leading axis."""
            od, oh, ow, i_low, i_high, j_low, j_high, k_low, k_high = layout(x.shape)
            for b in range(first, stop):
                for i in range(od):
                    for j in range(oh):
                        if i_low <= i < i_high and j_low <= j < j_high:
                            for k in range(k_low, k_high):
                                to_inside(x, g, dx, b, i, j, k, assign)
                            for k in range(k_low):
                                to_clipped(x, g, dx, b, i, j, k, assign)
                            for k in range(k_high, ow):
                                to_clipped(x, g, dx, b, i, j, k, assign)
                        else:
                            for k in range(ow):
                                to_clipped(x, g, dx, b, i, j, k, assign)

        def forward_loop(x, out):
            n = x.shape[0]
            blocks = min(n, _BLOCKS)
            for block in prange(blocks):
                index = np.int64(block)
                forward(x, out, n * index // blocks, n * (index + 1) // blocks)

        def backward_loop(x, g, dx, assign):
            n = x.shape[0]
            blocks = min(n, _BLOCKS)
            for block in prange(blocks):
                index = np.int64(block)
                backward(x, g, dx, assign, n * index // blocks, n * (index + 1) // blocks)

        return (
            lengths,
            forward_loop,
            backward_loop,
            tiles,
            parallel,
            kernel_salt(_KERNEL_VERSION, parallel),
        )

    @register_funcify_default_op_cache_key(MaxPoolKernel)
    def numba_max_pool(op, node=None, **kwargs):
        lengths, forward_loop, _, _, parallel, salt = window_walk(op)
        forward = node_loop_behind_call(
            op, node, salt, forward_loop, numba_njit, parallel, [(None, 4)] * 2
        )

        @numba_njit
        def max_pool(x):
            od, oh, ow = lengths(x.shape)
            out = np.empty((x.shape[0], od, oh, ow), dtype=x.dtype)
            forward(np.ascontiguousarray(x), out)
            return out

        return max_pool, salt

    @register_funcify_default_op_cache_key(MaxPoolKernelGrad)
    def numba_max_pool_grad(op, node=None, **kwargs):
        lengths, _, backward_loop, tiles, parallel, salt = window_walk(op)
        kd, kh, kw = op.pool_size
        backward = node_loop_behind_call(
            op, node, salt, backward_loop, numba_njit, parallel, [(None, 4)] * 3 + ["int64"]
        )

        @numba_njit
        def max_pool_grad(x, g):
            n, d, h, w = x.shape
            od, oh, ow = lengths(x.shape)
            if g.shape != (n, od, oh, ow):
                raise ValueError("MaxPoolKernelGrad: gradient does not match the output")
            covered = tiles and od * kd >= d and oh * kh >= h and ow * kw >= w
            dx = np.empty(x.shape, dtype=x.dtype) if covered else np.zeros(x.shape, x.dtype)
            backward(np.ascontiguousarray(x), np.ascontiguousarray(g), dx, np.int64(covered))
            return dx

        return max_pool_grad, salt


try:
    _register_numba()
except ImportError:  # pragma: no cover - numba is optional for PyTensor
    pass
