"""Cross-correlation in cache-sized batch chunks: Numba's kernels for :class:`CorrNd`.

The im2col graph (:func:`plasagne.ops.conv.im2col_corr_nd`) gathers the patches of the
whole minibatch into one ``(channels * taps, batch * positions)`` matrix before its one
matrix product; for the post's second convolution on 500 images that matrix holds 102 MB,
written and read back from main memory by the gather, the product, the scatter of its
gradient and two layout transposes. The three Ops here do the same arithmetic a few
examples at a time instead, so each chunk's patches stay in the processor's cache between
the gather and the product that uses them:

- :class:`ChunkedCorr` ``(x, w) -> out``: per chunk, gather the patches (one column per
  output position), one product ``w @ patches``, each example's columns copied out;
- :class:`ChunkedCorrGradFilters` ``(x, g) -> dw``: per chunk, gather the patches again
  and add ``patches @ g_chunk.T`` to the filter gradient;
- :class:`ChunkedCorrGradInput` ``(w, g, like) -> dx``: per example, the patches'
  gradient ``w.T @ g[b]`` added back to the input positions they came from.

Patches are columns so that gather and scatter copy runs as long as an output row (the
same values lie side by side in the input), not as short as a kernel row: the post's CNN
took 59.4 ms per ADVI step against 62.4 ms with one row per output position.

When :func:`plasagne.ops.blas_threads.parallel_kernels` allows, the chunks (half as
large) run on Numba's threads, each with its own patch buffer and BLAS set to one thread
for the loop; the filter gradient adds the chunks' shares in a fixed order, so results do
not depend on the thread count.

All three take five-dimensional ``(batch, channels, d, h, w)`` inputs and filters
``(num_filters, channels, kd, kh, kw)`` already zero-padded, with the kernel size, stride
and dilation as Op settings (compiled into the Numba kernels). Each has a numpy
``perform`` (other backends) and a pullback in terms of the other two, so they
differentiate to any order.

A rewrite (tag :data:`CHUNKED_CORR_TAG`, and the ``numba`` tag of PyTensor's ``NUMBA``
mode) swaps every float :class:`~plasagne.ops.corr_op.CorrNd` and
:class:`~plasagne.ops.corr_op.CorrNdGrad` for them before the fusion pass would inline the
im2col graph; the input gradient is built only when something uses it (the first layer's
never is). :func:`plasagne.ops.fast_math.fast_math_mode`, which ``fit`` and ``predict``
use, includes the tag for Numba; JAX keeps XLA's convolution and the C backend the im2col
graph.

Examples
--------
>>> x = pt.constant(np.arange(5.0).reshape(1, 1, 1, 1, 5))
>>> w = pt.constant(np.array([1.0, -1.0]).reshape(1, 1, 1, 1, 2))
>>> ChunkedCorr((1, 1, 2), (1, 1, 1), (1, 1, 1))(x, w).eval().ravel().tolist()
[-1.0, -1.0, -1.0, -1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import dfs_rewriter, node_rewriter

from .blas_threads import parallel_kernels, register_symbols
from .conv import pad_spatial
from .corr_op import CorrNd, CorrNdGrad
from .direct_corr import direct_applies, direct_kernels, direct_salt
from .im2col import (
    _PatchOp,
    add_patches_numpy,
    numba_output_lengths,
    output_lengths,
    patches_numpy,
)
from .opaque_calls import kernel_salt, node_loop_behind_call

__all__ = [
    "uses_direct_kernels",
    "ChunkedCorr",
    "ChunkedCorrGradFilters",
    "ChunkedCorrGradInput",
    "CHUNKED_CORR_TAG",
    "CHUNK_BYTES",
]

#: The rewrite's tag: ``mode.including(CHUNKED_CORR_TAG)`` adds it to a Numba mode.
CHUNKED_CORR_TAG = "chunked_corr"

#: Patch bytes per chunk (about 4 MB: a few chunks fit the 32 MB L3 cache of the
#: machine the figures in docs/performance.md come from; 1-32 examples per chunk of the
#: post's second convolution measured within 10% of each other, the whole batch 2x slower)
CHUNK_BYTES = 4 * 2**20

WIDE_DEPTH = 64

# salt for Numba's on-disk cache keys: bump when a kernel's code changes
_KERNEL_VERSION = 23


def _check_operands(who: str, **tensors: Any) -> None:
    """Every operand 5-d, and the first two (the product's factors) of one dtype."""
    for name, value in tensors.items():
        if value.ndim != 5:
            raise ValueError(
                f"{who}: {name} must be 5-d (batch or filters, channels, d, h, w), "
                f"got {value.ndim}-d"
            )
    (a_name, a), (b_name, b) = list(tensors.items())[:2]
    if a.dtype != b.dtype:
        raise TypeError(f"{who}: {a_name} {a.dtype} and {b_name} {b.dtype} differ")


def static_lengths(op: Any, spatial: tuple) -> tuple:
    """The output lengths known from the static spatial lengths of an input (None where
    one is unknown or leaves no position; the kernels raise for the latter).

    Examples
    --------
    >>> static_lengths(ChunkedCorr((1, 5, 5), (1, 1, 1), (1, 1, 1)), (1, None, 28))
    (1, None, 24)
    """
    lengths = []
    for size, k, s, d in zip(spatial, op.kernel, op.stride, op.dilation):
        n = None if size is None else output_lengths((size,), (k,), (s,), (d,))[0]
        lengths.append(n if n is not None and n >= 1 else None)
    return tuple(lengths)


def uses_direct_kernels(node: Apply) -> bool:
    """Whether Numba runs ``node`` (of a chunked Op) with the direct SIMD kernels of
    :mod:`plasagne.ops.direct_corr`: their settings (:func:`direct_applies`), and the axis
    their vectors run along (the filters for the forward, the channels for the gradients)
    not known to be narrower than 8 (the chunked kernels were faster for the gradients of
    the post's one-channel first layer).

    Examples
    --------
    >>> x = pt.tensor("x", shape=(None, 1, 1, None, None))
    >>> w = pt.tensor("w", shape=(32, 1, 1, 5, 5))
    >>> uses_direct_kernels(ChunkedCorr((1, 5, 5), (1, 1, 1), (1, 1, 1))(x, w).owner)
    True
    >>> g = pt.tensor("g", shape=(None, 32, 1, None, None))
    >>> uses_direct_kernels(ChunkedCorrGradFilters((1, 5, 5), (1, 1, 1), (1, 1, 1))(x, g).owner)
    False
    """
    op = node.op
    if isinstance(op, ChunkedCorr):
        width = node.inputs[1].type.shape[0]  # the filters
    else:
        width = node.inputs[0].type.shape[1]  # the channels (of x, or of the filters w)
    return direct_applies(op, node) and (width is None or width >= 8)


def _as_product_rows(g: np.ndarray) -> np.ndarray:
    """An output (gradient) as the ``(num_filters, batch * positions)`` im2col product."""
    return g.transpose(1, 0, 2, 3, 4).reshape(g.shape[1], -1)


class ChunkedCorr(_PatchOp):
    """``out[b, f, p] = sum_{c, t} w[f, c, t] * x[b, c, p * stride + t * dilation]``.

    Examples
    --------
    >>> x, w = pt.tensor5("x"), pt.tensor5("w")
    >>> ChunkedCorr((1, 3, 3), (1, 1, 1), (1, 1, 1))(x, w).type.ndim
    5
    """

    def make_node(self, x: Any, w: Any) -> Apply:
        x, w = pt.as_tensor_variable(x), pt.as_tensor_variable(w)
        _check_operands("ChunkedCorr", input=x, filters=w)
        shape = (x.type.shape[0], w.type.shape[0], *static_lengths(self, x.type.shape[2:]))
        return Apply(self, [x, w], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage) -> None:
        x, w = inputs
        cols = patches_numpy(x, self.kernel, self.stride, self.dilation)
        lengths = output_lengths(x.shape[2:], self.kernel, self.stride, self.dilation)
        out = (w.reshape(w.shape[0], -1) @ cols).reshape(w.shape[0], x.shape[0], *lengths)
        output_storage[0][0] = np.ascontiguousarray(out.transpose(1, 0, 2, 3, 4))

    def infer_shape(self, node, shapes):
        x_shape, w_shape = shapes
        lengths = output_lengths(x_shape[2:], self.kernel, self.stride, self.dilation)
        return [(x_shape[0], w_shape[0], *lengths)]

    def pullback(self, inputs, outputs, cotangents):
        x, w = inputs
        (g,) = cotangents
        settings = (self.kernel, self.stride, self.dilation)
        return [ChunkedCorrGradInput(*settings)(w, g, x), ChunkedCorrGradFilters(*settings)(x, g)]


class ChunkedCorrGradFilters(_PatchOp):
    """The filter gradient of :class:`ChunkedCorr` given its output's gradient ``g``.

    ``dw[f, c, t] = sum_{b, p} g[b, f, p] * x[b, c, p * stride + t * dilation]``.

    Examples
    --------
    >>> x, g = pt.tensor5("x"), pt.tensor5("g")
    >>> ChunkedCorrGradFilters((1, 3, 3), (1, 1, 1), (1, 1, 1))(x, g).type.ndim
    5
    """

    def make_node(self, x: Any, g: Any) -> Apply:
        x, g = pt.as_tensor_variable(x), pt.as_tensor_variable(g)
        _check_operands("ChunkedCorrGradFilters", input=x, output_gradient=g)
        shape = (g.type.shape[1], x.type.shape[1], *self.kernel)
        return Apply(self, [x, g], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage) -> None:
        x, g = inputs
        cols = patches_numpy(x, self.kernel, self.stride, self.dilation)
        dw = _as_product_rows(g) @ cols.T
        output_storage[0][0] = dw.reshape(g.shape[1], x.shape[1], *self.kernel)

    def infer_shape(self, node, shapes):
        x_shape, g_shape = shapes
        return [(g_shape[1], x_shape[1], *self.kernel)]

    def pullback(self, inputs, outputs, cotangents):
        x, g = inputs
        (dw_bar,) = cotangents
        settings = (self.kernel, self.stride, self.dilation)
        return [ChunkedCorrGradInput(*settings)(dw_bar, g, x), ChunkedCorr(*settings)(x, dw_bar)]


class ChunkedCorrGradInput(_PatchOp):
    """The input gradient of :class:`ChunkedCorr`, shaped like ``like`` (the input).

    ``dx[b, c, p * stride + t * dilation] += sum_f g[b, f, p] * w[f, c, t]``; ``like``
    only lends its shape.

    Examples
    --------
    >>> w, g, x = pt.tensor5("w"), pt.tensor5("g"), pt.tensor5("x")
    >>> ChunkedCorrGradInput((1, 3, 3), (1, 1, 1), (1, 1, 1))(w, g, x).type.ndim
    5
    """

    def make_node(self, w: Any, g: Any, like: Any) -> Apply:
        w, g, like = (pt.as_tensor_variable(v) for v in (w, g, like))
        _check_operands("ChunkedCorrGradInput", filters=w, output_gradient=g, like=like)
        return Apply(self, [w, g, like], [pt.tensor(dtype=w.dtype, shape=like.type.shape)])

    def perform(self, node, inputs, output_storage) -> None:
        w, g, like = inputs
        dcols = w.reshape(w.shape[0], -1).T @ _as_product_rows(g)
        output_storage[0][0] = add_patches_numpy(
            dcols, like.shape, self.kernel, self.stride, self.dilation
        )

    def infer_shape(self, node, shapes):
        return [shapes[2]]

    def connection_pattern(self, node):
        return [[True], [True], [False]]

    def pullback(self, inputs, outputs, cotangents):
        w, g, like = inputs
        (dx_bar,) = cotangents
        settings = (self.kernel, self.stride, self.dilation)
        return [
            ChunkedCorrGradFilters(*settings)(dx_bar, g),
            ChunkedCorr(*settings)(dx_bar, w),
            disconnected_type(),
        ]


def _spatial_5d(x: Any, n: int) -> Any:
    """Add ``3 - n`` unit spatial axes after the first two axes."""
    return x.dimshuffle(0, 1, *(["x"] * (3 - n)), *range(2, 2 + n))


def _drop_unit_axes(x5: Any, n: int) -> Any:
    """Undo :func:`_spatial_5d` with a reshape: the result stays C-contiguous for the loops
    after it (an index into the unit axis makes a view Numba cannot type as contiguous)."""
    if n == 3:
        return x5
    return x5.reshape(
        [x5.shape[0], x5.shape[1], *(x5.shape[5 - n + i] for i in range(n))], ndim=n + 2
    )


def chunked_settings(op: Any, n: int) -> tuple:
    """A ``CorrNd``/``CorrNdGrad``'s kernel, stride and dilation for ``n`` spatial axes, as
    the chunked Ops' three-axis settings (unit axes first)."""
    pad3 = (1,) * (3 - n)
    return pad3 + op.kernel_shape, pad3 + op.stride, pad3 + op.dilation


def padded_input_5d(x: Any, op: Any, n: int) -> Any:
    """A ``CorrNd``'s input zero-padded by its pads, with unit axes up to three spatial."""
    return _spatial_5d(pad_spatial(x, op.pads), n)


@node_rewriter([CorrNd, CorrNdGrad])
def use_chunked_corr(fgraph: Any, node: Apply) -> Any:
    """Swap a float :class:`CorrNd` or :class:`CorrNdGrad` for the chunked Ops."""
    op = node.op
    dtypes = {v.dtype for v in node.inputs}
    if len(dtypes) != 1 or dtypes.pop() not in ("float32", "float64"):
        return None
    x, w = node.inputs[:2]
    n = x.ndim - 2
    if n > 3:
        return None
    settings = chunked_settings(op, n)
    x5, w5 = padded_input_5d(x, op, n), _spatial_5d(w, n)
    if isinstance(op, CorrNd):
        return [_drop_unit_axes(ChunkedCorr(*settings)(x5, w5), n)]
    g5 = _spatial_5d(node.inputs[2], n)
    grad_x, grad_w = node.outputs
    replacements = {grad_w: _drop_unit_axes(ChunkedCorrGradFilters(*settings)(x5, g5), n)}
    if fgraph.clients.get(grad_x):
        dx_padded = _drop_unit_axes(ChunkedCorrGradInput(*settings)(w5, g5, x5), n)
        if any(any(pad) for pad in op.pads):
            crop = tuple(slice(a, a + x.shape[2 + i]) for i, (a, _) in enumerate(op.pads))
            dx_padded = dx_padded[(slice(None), slice(None)) + crop]
        replacements[grad_x] = dx_padded
    return replacements


# before the fusion pass (optdb 49), whose first step inlines CorrNd's im2col graph
optdb.register(
    "plasagne_use_chunked_corr",
    dfs_rewriter(use_chunked_corr),
    CHUNKED_CORR_TAG,
    "numba",
    position=48.4,
)


def _numba_kernels(op: _PatchOp, numba_njit: Any, parallel: bool) -> tuple:
    """Gather, scatter and the chunk size for ``op``'s kernel size, stride and dilation.

    Patches are columns: row ``channel * taps + tap``, column
    ``example_in_chunk * positions + position``. Along a row the values of one output row
    of one tap lie next to each other in the input as well (stride 1), so gather and
    scatter copy runs of the output width (24 floats for the post's first layer, 8 for its
    second) rather than runs of the kernel width; indices are unsigned (Numba adds a
    negative-index branch to every signed one). Parallel kernels take chunks of half the
    size, so two threads' chunks share the cache and short batches still split.
    """
    kd, kh, kw = op.kernel
    sd, sh, sw = op.stride
    dd, dh, dw = op.dilation
    taps = kd * kh * kw
    lengths = numba_output_lengths(op, numba_njit)
    budget = CHUNK_BYTES // 2 if parallel else CHUNK_BYTES

    @numba_njit
    def offsets(shape):
        """The walk's tables for inputs of ``shape``: each patch row's flat offset within an
        example, and each output line's. Built once per chunk or block, not per walk."""
        u = np.uint64
        od, oh, _ = lengths(shape)
        channels, depth, height, width = u(shape[1]), u(shape[2]), u(shape[3]), u(shape[4])
        row_offsets = np.empty(shape[1] * taps, dtype=np.uint64)
        r = 0
        for c in range(channels):
            for a in range(u(kd)):
                for e in range(u(kh)):
                    for f in range(u(kw)):
                        row_offsets[r] = ((c * depth + a * u(dd)) * height + e * u(dh)) * width
                        row_offsets[r] += f * u(dw)
                        r += 1
        line_offsets = np.empty(od * oh, dtype=np.uint64)
        r = 0
        for i in range(u(od)):
            for j in range(u(oh)):
                line_offsets[r] = (i * u(sd) * height + j * u(sh)) * width
                r += 1
        return row_offsets, line_offsets

    @numba_njit
    def walk(x, first, count, cols, gather, tables):
        """Copy patches of examples ``first:first + count`` into ``cols`` (``gather``) or
        add ``cols`` back into ``x``; both C-contiguous, indexed flat through ``tables``
        (:func:`offsets` of ``x.shape``). A four-deep loop nest: with the seven loops of
        the offsets' terms LLVM took twice as long to compile each kernel that calls this
        (it optimises the callee again at every level)."""
        u = np.uint64
        row_offsets, line_offsets = tables
        ow = lengths(x.shape)[2]
        example_size = u(x.shape[1] * x.shape[2] * x.shape[3] * x.shape[4])
        lines = line_offsets.shape[0]
        positions = u(lines * ow)
        row_length = u(cols.shape[1])
        flat_x = x.reshape(-1)
        flat_cols = cols.reshape(-1)
        for n in range(u(count)):
            origin = (u(first) + n) * example_size
            for row in range(u(row_offsets.shape[0])):
                p = row * row_length + n * positions
                row_origin = origin + row_offsets[row]
                for line in range(u(lines)):
                    start = row_origin + line_offsets[line]
                    if gather:
                        for k in range(u(ow)):
                            flat_cols[p + k] = flat_x[start + k * u(sw)]
                    else:
                        for k in range(u(ow)):
                            flat_x[start + k * u(sw)] += flat_cols[p + k]
                    p += u(ow)

    @numba_njit
    def chunk_size(shape, itemsize):
        od, oh, ow = lengths(shape)
        if min(od, oh, ow) < 1:
            raise ValueError("chunked correlation: input smaller than the dilated kernel")
        per_example = od * oh * ow * shape[1] * taps * itemsize
        return max(1, min(shape[0], budget // max(per_example, 1)))

    return lengths, offsets, walk, chunk_size, taps


def _register_numba() -> None:
    from numba import prange
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    register_symbols()

    def kernel_pieces(op):
        """The kernels' shared pieces, whether they run in parallel, and the cache salt."""
        parallel = parallel_kernels()
        salt = kernel_salt(_KERNEL_VERSION, parallel)
        return _numba_kernels(op, numba_njit, parallel), parallel, salt

    def behind_call(op, node, salt, loop, parallel, ndims):
        """``loop`` (arrays of the node's dtype with these ``ndims``, then the chunk size)
        threaded or serial behind a C call, BLAS single-threaded inside."""
        spec = [(None, ndim) for ndim in ndims] + ["int64"]
        return node_loop_behind_call(op, node, salt, loop, numba_njit, parallel, spec, True)

    def direct_pieces(op, node, which, loop_spec):
        """The direct kernels for ``node`` when they serve it (:func:`uses_direct_kernels`),
        with the loop ``which`` behind a C call; else None."""
        if not uses_direct_kernels(node):
            return None
        parallel = parallel_kernels()
        # its own cache entries, keyed by the direct kernels' source as well
        salt = kernel_salt(_KERNEL_VERSION, parallel) + 10**6 * direct_salt()
        kernels = direct_kernels(op, numba_njit, node.outputs[0].dtype)
        loop = node_loop_behind_call(
            op, node, salt, kernels[which], numba_njit, parallel, loop_spec
        )
        return kernels, loop, salt

    @register_funcify_default_op_cache_key(ChunkedCorr)
    def numba_chunked_corr(op, node=None, **kwargs):
        direct = direct_pieces(
            op, node, "forward_loop", [(None, 5), (None, 2), ("int64", 1), (None, 5)]
        )
        if direct is not None:
            kernels, loop, salt = direct
            forward_operands = kernels["forward_operands"]
            _, op_kh, op_kw = op.kernel

            @numba_njit
            def direct_corr(x, w):
                if w.shape[1] != x.shape[1]:
                    raise ValueError("ChunkedCorr: filters' channels differ from the input's")
                if w.shape[2:] != (1, op_kh, op_kw) or x.shape[2] != 1:
                    raise ValueError("ChunkedCorr: filters or input differ from the kernel size")
                if x.shape[3] < op_kh or x.shape[4] < op_kw:
                    raise ValueError("chunked correlation: input smaller than the kernel")
                x = np.ascontiguousarray(x)
                wk, offsets, oh, ow = forward_operands(x, w)
                out = np.empty((x.shape[0], w.shape[0], 1, oh, ow), dtype=x.dtype)
                loop(x, wk, offsets, out)
                return out

            return direct_corr, salt
        (lengths, offsets, walk, chunk_size, taps), parallel, salt = kernel_pieces(op)

        @numba_njit
        def forward_chunk(x, w_mat, flat, chunk, index):
            """This chunk's ``w_mat @ patches``, each example's columns copied out."""
            first = index * chunk
            count = min(chunk, x.shape[0] - first)
            positions = flat.shape[2]
            cols = np.empty((w_mat.shape[1], count * positions), dtype=x.dtype)
            walk(x, first, count, cols, True, offsets(x.shape))
            product = np.dot(w_mat, cols)
            for n in range(count):
                target = flat[first + n]
                start = n * positions
                for f in range(w_mat.shape[0]):
                    row = product[f]
                    out_row = target[f]
                    for p in range(positions):
                        out_row[p] = row[start + p]

        def chunk_loop(x, w_mat, flat, chunk):
            for index in prange((x.shape[0] + chunk - 1) // chunk):
                forward_chunk(x, w_mat, flat, chunk, np.int64(index))

        all_chunks = behind_call(op, node, salt, chunk_loop, parallel, (5, 2, 3))

        @numba_njit
        def chunked_corr(x, w):
            batch, channels = x.shape[0], x.shape[1]
            filters = w.shape[0]
            if w.shape[1] != channels:
                raise ValueError("ChunkedCorr: filters' channels differ from the input's")
            od, oh, ow = lengths(x.shape)
            positions = od * oh * ow
            w_mat = np.ascontiguousarray(w).reshape((filters, channels * taps))
            chunk = chunk_size(x.shape, x.itemsize)
            out = np.empty((batch, filters, od, oh, ow), dtype=x.dtype)
            flat = out.reshape((batch, filters, positions))
            all_chunks(np.ascontiguousarray(x), w_mat, flat, chunk)
            return out

        return chunked_corr, salt

    @register_funcify_default_op_cache_key(ChunkedCorrGradFilters)
    def numba_chunked_corr_grad_filters(op, node=None, **kwargs):
        direct = direct_pieces(
            op,
            node,
            "filters_loop",
            [(None, 5), (None, 5), ("int64", 1), (None, 3), "int64"],
        )
        if direct is not None:
            kernels, loop, salt = direct
            filters_operands, filters_result = (
                kernels["filters_operands"],
                kernels["filters_result"],
            )
            _, op_kh, op_kw = op.kernel

            @numba_njit
            def direct_corr_grad_filters(x, g):
                batch, channels, filters = x.shape[0], x.shape[1], g.shape[1]
                oh, ow = x.shape[3] - op_kh + 1, x.shape[4] - op_kw + 1
                if g.shape[0] != batch or g.shape[2:] != (1, oh, ow) or x.shape[2] != 1:
                    raise ValueError("ChunkedCorrGradFilters: gradient does not match the output")
                x, g = np.ascontiguousarray(x), np.ascontiguousarray(g)
                offsets, group, shares = filters_operands(x, g)
                loop(x, g, offsets, shares, group)
                return filters_result(shares, channels, filters)

            return direct_corr_grad_filters, salt
        (lengths, offsets, walk, chunk_size, taps), parallel, salt = kernel_pieces(op)
        kd, kh, kw = op.kernel

        @numba_njit
        def filters_chunk(x, g, chunk, index, shares):
            """This chunk's share of the filter gradient into ``shares[index]``."""
            first = index * chunk
            chunk_share(x, g, first, min(chunk, x.shape[0] - first), shares[index])

        @numba_njit
        def chunk_share(x, g, first, count, share):
            """``patches @ g_chunk.T``, ``(channels * taps, filters)``, into ``share``
            (``np.dot`` with ``out`` and element loops: array assignments and ``+=``
            compile Numba's shape-error formatting, seconds on a cold cache)."""
            filters = g.shape[1]
            positions = g.shape[2] * g.shape[3] * g.shape[4]
            depth = x.shape[1] * taps
            # narrow patches: one product per example with its gradient as it lies; wide:
            # one per chunk with the gradient's rows copied side by side. One call of
            # ``walk`` either way (each call site is a copy of it to compile)
            narrow = depth < WIDE_DEPTH
            step = 1 if narrow else max(count, 1)
            cols = np.empty((depth, step * positions), dtype=x.dtype)
            g_rows = np.empty((filters, step * positions), dtype=x.dtype)
            tables = offsets(x.shape)
            if narrow:  # the wide product overwrites the share
                for t in range(depth):
                    for f in range(filters):
                        share[t, f] = 0
            for part in range(count // step):
                walk(x, first + part * step, step, cols, True, tables)
                if narrow:
                    example = g[first + part].reshape((filters, positions))
                    product = np.dot(cols, example.T)
                    for t in range(depth):
                        for f in range(filters):
                            share[t, f] += product[t, f]
                    continue
                for n in range(count):
                    example = g[first + n].reshape((filters, positions))
                    start = n * positions
                    for f in range(filters):
                        source = example[f]
                        target = g_rows[f]
                        for p in range(positions):
                            target[start + p] = source[p]
                np.dot(cols, g_rows.T, share)

        def chunk_loop(x, g, shares, chunk):
            for index in prange(shares.shape[0]):
                filters_chunk(x, g, chunk, np.int64(index), shares)

        all_chunks = behind_call(op, node, salt, chunk_loop, parallel, (5, 5, 3))

        @numba_njit
        def chunked_corr_grad_filters(x, g):
            batch, channels = x.shape[0], x.shape[1]
            filters = g.shape[1]
            od, oh, ow = lengths(x.shape)
            if g.shape[0] != batch or g.shape[2:] != (od, oh, ow):
                raise ValueError("ChunkedCorrGradFilters: gradient does not match the output")
            depth = channels * taps
            chunk = chunk_size(x.shape, x.itemsize)
            chunks = (batch + chunk - 1) // chunk
            shares = np.empty((chunks, depth, filters), dtype=x.dtype)
            all_chunks(np.ascontiguousarray(x), np.ascontiguousarray(g), shares, chunk)
            dw = np.zeros((filters, depth), dtype=x.dtype)
            for index in range(chunks):  # in chunk order, whatever thread made each share
                for t in range(depth):
                    for f in range(filters):
                        dw[f, t] += shares[index, t, f]
            return dw.reshape((filters, channels, kd, kh, kw))

        return chunked_corr_grad_filters, salt

    @register_funcify_default_op_cache_key(ChunkedCorrGradInput)
    def numba_chunked_corr_grad_input(op, node=None, **kwargs):
        direct = direct_pieces(op, node, "input_loop", [(None, 2), (None, 5), (None, 5)])
        if direct is not None:
            kernels, loop, salt = direct
            input_operands = kernels["input_operands"]
            _, op_kh, op_kw = op.kernel

            @numba_njit
            def direct_corr_grad_input(w, g, like):
                batch, channels, filters = like.shape[0], like.shape[1], w.shape[0]
                oh, ow = like.shape[3] - op_kh + 1, like.shape[4] - op_kw + 1
                if (
                    g.shape[0] != batch
                    or g.shape[1] != filters
                    or g.shape[2:] != (1, oh, ow)
                    or w.shape[1] != channels
                ):
                    raise ValueError("ChunkedCorrGradInput: gradient does not match the output")
                if w.shape[2:] != (1, op_kh, op_kw):
                    raise ValueError("ChunkedCorrGradInput: filters differ from the kernel size")
                dx = np.empty(like.shape, dtype=w.dtype)
                loop(input_operands(w), np.ascontiguousarray(g), dx)
                return dx

            return direct_corr_grad_input, salt
        (lengths, offsets, walk, chunk_size, taps), parallel, salt = kernel_pieces(op)

        @numba_njit
        def input_chunk(w_t, g, dx, chunk, index):
            """Add this chunk's patch gradients back into ``dx``: each example's
            ``w.T @ g[b]`` (its gradient as it lies; no copy of it)."""
            first = index * chunk
            count = min(chunk, dx.shape[0] - first)
            filters = g.shape[1]
            positions = g.shape[2] * g.shape[3] * g.shape[4]
            cols = np.empty((w_t.shape[0], positions), dtype=w_t.dtype)
            tables = offsets(dx.shape)
            for n in range(count):
                np.dot(w_t, g[first + n].reshape((filters, positions)), cols)
                walk(dx, first + n, 1, cols, False, tables)

        def chunk_loop(w_t, g, dx, chunk):
            for index in prange((dx.shape[0] + chunk - 1) // chunk):
                input_chunk(w_t, g, dx, chunk, np.int64(index))

        all_chunks = behind_call(op, node, salt, chunk_loop, parallel, (2, 5, 5))

        @numba_njit
        def chunked_corr_grad_input(w, g, like):
            batch, channels = like.shape[0], like.shape[1]
            filters = w.shape[0]
            od, oh, ow = lengths(like.shape)
            if g.shape[0] != batch or g.shape[1] != filters or g.shape[2:] != (od, oh, ow):
                raise ValueError("ChunkedCorrGradInput: gradient does not match the output")
            w_t = np.ascontiguousarray(w).reshape((filters, channels * taps)).T.copy()
            chunk = chunk_size(like.shape, w.itemsize)
            dx = np.zeros(like.shape, dtype=w.dtype)
            all_chunks(w_t, np.ascontiguousarray(g), dx, chunk)
            return dx

        return chunked_corr_grad_input, salt


try:
    _register_numba()
except ImportError:  # pragma: no cover - numba is optional for PyTensor
    pass
