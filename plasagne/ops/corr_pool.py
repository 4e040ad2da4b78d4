"""A first convolution and the max pooling after it as one pass: Numba's fused kernels.

A network's first convolution has the largest output of all (the post's CNN: 32 channels
of 24x24 for each of 500 images, 37 MB in float32), and on Numba most of its time went to
moving that output through memory: the correlation wrote it, the pooling read it, the
pooling's gradient read it again with the pooled gradient and wrote a gradient as large,
which the filter gradient read back. The two Ops here keep it in the cache instead,
one example at a time:

- :class:`ChunkedCorrMaxPool` ``(x, w) -> (pooled, argmax)``: per example, gather the
  patches, one product with the filter matrix into a small buffer, then the maximum of
  each pooling window and which of the window's entries held it (``uint8``, counted in
  the order :class:`~plasagne.ops.pool_op.MaxPoolKernelGrad` gives a tie's gradient: the
  first maximum along the last axis, then the middle one, then the first);
- :class:`ChunkedCorrMaxPoolGradFilters` ``(x, argmax, g) -> dw``: per example, the
  pooled gradient put back at the recorded positions in a small zeroed buffer, the
  patches gathered again, their product added to the filter gradient.

Pooling windows tile the correlation's output (stride equal to the pool size, no
padding, a partial last window ignored, as Lasagne's default ``ignore_border=True``).

The rewrite (tag :data:`CORR_MAX_POOL_TAG`, and ``numba``) runs before the correlation and
pooling nodes become kernels: it replaces a :class:`~plasagne.ops.corr_op.CorrNd` whose
output only a :class:`~plasagne.ops.pool_op.MaxPoolNd` over all its spatial axes and
that pooling's gradient use, when nothing uses the correlation's input gradient (a first
layer: the data need none) and its patches are narrow (``channels * taps`` below
``WIDE_DEPTH``). With ``pool_first`` layers the post's convolutions pool before their bias
and ReLU, so its first layer matches. Values equal the unfused kernels' (the pooled output
bitwise; the filter gradient up to the order of additions).

Each Op has a numpy ``perform`` and a pullback written with the chunked Ops and a
one-hot graph of ``argmax``, so both differentiate to any order on every backend.

Examples
--------
>>> x = pt.constant(np.arange(8.0).reshape(1, 1, 1, 1, 8))
>>> w = pt.constant(np.array([1.0, -1.0]).reshape(1, 1, 1, 1, 2))
>>> op = ChunkedCorrMaxPool((1, 1, 2), (1, 1, 1), (1, 1, 1), (1, 1, 2))
>>> op(x, w)[0].eval().ravel().tolist()
[-1.0, -1.0, -1.0]
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.compile import optdb
from pytensor.gradient import disconnected_type
from pytensor.graph.basic import Apply
from pytensor.graph.rewriting.basic import GraphRewriter

from .blas_threads import parallel_kernels, register_symbols
from .chunked_corr import (
    WIDE_DEPTH,
    ChunkedCorr,
    ChunkedCorrGradInput,
    _drop_unit_axes,
    _numba_kernels,
    _spatial_5d,
    chunked_settings,
    padded_input_5d,
    static_lengths,
)
from .corr_op import CorrNd, CorrNdGrad
from .direct_corr import direct_applies, source_salt
from .im2col import _PatchOp, output_lengths, patches_numpy
from .opaque_calls import kernel_salt, node_loop_behind_call
from .pool_op import MaxPoolNd, MaxPoolNdGrad
from .wide_rows import wide_kernels

__all__ = [
    "ChunkedCorrMaxPool",
    "ChunkedCorrMaxPoolGradFilters",
    "CORR_MAX_POOL_TAG",
    "FuseCorrMaxPool",
]

#: The rewrite's tag: ``mode.including(CORR_MAX_POOL_TAG)`` adds it to a Numba mode.
CORR_MAX_POOL_TAG = "corr_max_pool"

# salt for Numba's on-disk cache keys: bump when a kernel's code changes
_KERNEL_VERSION = 6

# the batch is split into this many blocks (for Numba's threads, and the filter
# gradient's shares, added in block order whatever the thread count)
_BLOCKS = 16


class _CorrPoolOp(_PatchOp):
    """Correlation settings (three spatial axes) and a pooling window that tiles."""

    __props__ = ("kernel", "stride", "dilation", "pool")

    def __init__(self, kernel, stride, dilation, pool) -> None:
        super().__init__(kernel, stride, dilation)
        self.pool = tuple(int(p) for p in pool)
        if len(self.pool) != 3 or min(self.pool) < 1:
            raise ValueError(f"{type(self).__name__}: pool must be 3 positive ints, got {pool}")
        if int(np.prod(self.pool)) > 255:
            raise ValueError(
                f"{type(self).__name__}: a pooling window of {int(np.prod(self.pool))} "
                "entries does not fit uint8 positions (at most 255)"
            )


def _check_5d(who: str, **tensors: Any) -> None:
    for name, value in tensors.items():
        if value.ndim != 5:
            raise ValueError(f"{who}: {name} must be 5-d, got {value.ndim}-d")


def _windows_last(a: np.ndarray, pool: tuple) -> np.ndarray:
    """``(..., d, h, w)`` cropped to whole windows, as ``(..., qd, qh, qw, window)`` with a
    window's entries in (last, middle, first) axis order."""
    pd, ph, pw = pool
    qd, qh, qw = (n // p for n, p in zip(a.shape[-3:], pool))
    lead = a.shape[:-3]
    a = a[..., : qd * pd, : qh * ph, : qw * pw].reshape(*lead, qd, pd, qh, ph, qw, pw)
    k = len(lead)
    order = (*range(k), k, k + 2, k + 4, k + 5, k + 3, k + 1)
    return a.transpose(order).reshape(*lead, qd, qh, qw, pd * ph * pw)


def _unpool_numpy(arg: np.ndarray, g: np.ndarray, pool: tuple, lengths: tuple) -> np.ndarray:
    """The pooled gradient ``g`` at the window positions ``arg``, zeros elsewhere."""
    pd, ph, pw = pool
    qd, qh, qw = arg.shape[-3:]
    lead = arg.shape[:-3]
    onehot = (arg[..., None] == np.arange(pd * ph * pw)) * g[..., None]
    k = len(lead)
    tiles = onehot.reshape(*lead, qd, qh, qw, pw, ph, pd)
    tiles = tiles.transpose(*range(k), k, k + 5, k + 1, k + 4, k + 2, k + 3)
    full = np.zeros((*lead, *lengths), dtype=g.dtype)
    full[..., : qd * pd, : qh * ph, : qw * pw] = tiles.reshape(*lead, qd * pd, qh * ph, qw * pw)
    return full


def _unpool_graph(arg: Any, g: Any, pool: tuple, lengths: Any) -> Any:
    """:func:`_unpool_numpy` as a PyTensor graph (``lengths``: symbolic full lengths)."""
    pd, ph, pw = pool
    lead = [g.shape[0], g.shape[1]]
    qd, qh, qw = g.shape[2], g.shape[3], g.shape[4]
    onehot = pt.eq(arg[..., None], pt.arange(pd * ph * pw)).astype(g.dtype) * g[..., None]
    tiles = onehot.reshape([*lead, qd, qh, qw, pw, ph, pd], ndim=8)
    tiles = tiles.transpose(0, 1, 2, 7, 3, 6, 4, 5).reshape(
        [*lead, qd * pd, qh * ph, qw * pw], ndim=5
    )
    full = pt.zeros([*lead, *lengths], dtype=g.dtype)
    return pt.set_subtensor(full[:, :, : qd * pd, : qh * ph, : qw * pw], tiles)


def _pool_at_graph(arg: Any, y: Any, pool: tuple) -> Any:
    """The entries of ``y`` (a correlation output) at the window positions ``arg``."""
    pd, ph, pw = pool
    lead = [y.shape[0], y.shape[1]]
    qd, qh, qw = arg.shape[2], arg.shape[3], arg.shape[4]
    tiles = y[:, :, : qd * pd, : qh * ph, : qw * pw].reshape(
        [*lead, qd, pd, qh, ph, qw, pw], ndim=8
    )
    windows = tiles.transpose(0, 1, 2, 4, 6, 7, 5, 3).reshape(
        [*lead, qd, qh, qw, pd * ph * pw], ndim=6
    )
    onehot = pt.eq(arg[..., None], pt.arange(pd * ph * pw)).astype(y.dtype)
    return (windows * onehot).sum(axis=-1)


class ChunkedCorrMaxPool(_CorrPoolOp):
    """``(x, w) -> (pooled, argmax)``: max pooling of :class:`ChunkedCorr`'s output.

    ``pooled[b, f, i, j, k]`` is the largest entry of window ``(i, j, k)`` of the
    correlation (NaN wins), ``argmax`` its position in the window (``uint8``, first
    maximum in (last, middle, first) axis order).

    Examples
    --------
    >>> x, w = pt.tensor5("x"), pt.tensor5("w")
    >>> pooled, argmax = ChunkedCorrMaxPool((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 2, 2))(x, w)
    >>> argmax.dtype
    'uint8'
    """

    def make_node(self, x: Any, w: Any) -> Apply:
        x, w = pt.as_tensor_variable(x), pt.as_tensor_variable(w)
        _check_5d("ChunkedCorrMaxPool", input=x, filters=w)
        if x.dtype != w.dtype:
            raise TypeError(f"ChunkedCorrMaxPool: input {x.dtype} and filters {w.dtype} differ")
        lengths = static_lengths(self, x.type.shape[2:])
        pooled = tuple(None if n is None else n // p for n, p in zip(lengths, self.pool))
        shape = (x.type.shape[0], w.type.shape[0], *pooled)
        return Apply(
            self,
            [x, w],
            [pt.tensor(dtype=x.dtype, shape=shape), pt.tensor(dtype="uint8", shape=shape)],
        )

    def perform(self, node, inputs, output_storage) -> None:
        x, w = inputs
        cols = patches_numpy(x, self.kernel, self.stride, self.dilation)
        lengths = output_lengths(x.shape[2:], self.kernel, self.stride, self.dilation)
        out = (w.reshape(w.shape[0], -1) @ cols).reshape(w.shape[0], x.shape[0], *lengths)
        windows = _windows_last(out.transpose(1, 0, 2, 3, 4), self.pool)
        output_storage[0][0] = np.ascontiguousarray(windows.max(axis=-1))
        output_storage[1][0] = windows.argmax(axis=-1).astype(np.uint8)

    def infer_shape(self, node, shapes):
        x_shape, w_shape = shapes
        lengths = output_lengths(x_shape[2:], self.kernel, self.stride, self.dilation)
        pooled = (x_shape[0], w_shape[0], *(n // p for n, p in zip(lengths, self.pool)))
        return [pooled, pooled]

    def connection_pattern(self, node):
        return [[True, False], [True, False]]

    def pullback(self, inputs, outputs, cotangents):
        x, w = inputs
        _, argmax = outputs
        g = cotangents[0]
        settings = (self.kernel, self.stride, self.dilation)
        lengths = output_lengths(x.shape[2:], *settings)
        full = _unpool_graph(argmax, g, self.pool, lengths)
        return [
            ChunkedCorrGradInput(*settings)(w, full, x),
            ChunkedCorrMaxPoolGradFilters(*settings, self.pool)(x, argmax, g),
        ]


class ChunkedCorrMaxPoolGradFilters(_CorrPoolOp):
    """The filter gradient of :class:`ChunkedCorrMaxPool`'s pooled output, given its
    gradient ``g`` and the ``argmax`` positions.

    Examples
    --------
    >>> x, g = pt.tensor5("x"), pt.tensor5("g")
    >>> argmax = pt.tensor5("argmax", dtype="uint8")
    >>> op = ChunkedCorrMaxPoolGradFilters((1, 3, 3), (1, 1, 1), (1, 1, 1), (1, 2, 2))
    >>> op(x, argmax, g).type.ndim
    5
    """

    def make_node(self, x: Any, argmax: Any, g: Any) -> Apply:
        x, argmax, g = (pt.as_tensor_variable(v) for v in (x, argmax, g))
        _check_5d("ChunkedCorrMaxPoolGradFilters", input=x, argmax=argmax, output_gradient=g)
        if argmax.dtype != "uint8":
            raise TypeError(
                f"ChunkedCorrMaxPoolGradFilters: argmax must be uint8, got {argmax.dtype}"
            )
        if x.dtype != g.dtype:
            raise TypeError(
                f"ChunkedCorrMaxPoolGradFilters: input {x.dtype} and gradient {g.dtype} differ"
            )
        shape = (g.type.shape[1], x.type.shape[1], *self.kernel)
        return Apply(self, [x, argmax, g], [pt.tensor(dtype=x.dtype, shape=shape)])

    def perform(self, node, inputs, output_storage) -> None:
        x, argmax, g = inputs
        lengths = output_lengths(x.shape[2:], self.kernel, self.stride, self.dilation)
        full = _unpool_numpy(argmax, g, self.pool, lengths)
        cols = patches_numpy(x, self.kernel, self.stride, self.dilation)
        rows = full.transpose(1, 0, 2, 3, 4).reshape(g.shape[1], -1)
        output_storage[0][0] = (rows @ cols.T).reshape(g.shape[1], x.shape[1], *self.kernel)

    def infer_shape(self, node, shapes):
        x_shape, _, g_shape = shapes
        return [(g_shape[1], x_shape[1], *self.kernel)]

    def connection_pattern(self, node):
        return [[True], [False], [True]]

    def pullback(self, inputs, outputs, cotangents):
        x, argmax, g = inputs
        (dw_bar,) = cotangents
        settings = (self.kernel, self.stride, self.dilation)
        lengths = output_lengths(x.shape[2:], *settings)
        full = _unpool_graph(argmax, g, self.pool, lengths)
        return [
            ChunkedCorrGradInput(*settings)(dw_bar, full, x),
            disconnected_type(),
            _pool_at_graph(argmax, ChunkedCorr(*settings)(x, dw_bar), self.pool),
        ]


# ---------------------------------------------------------------------- the rewrite


def _fusible_pool(op: Any, n: int) -> tuple | None:
    """The 3-entry pool window of a MaxPoolNd that tiles all ``n`` spatial axes, or None."""
    if len(op.pool_size) != n or tuple(op.stride) != tuple(op.pool_size):
        return None
    if any(op.pad) or not op.ignore_border or int(np.prod(op.pool_size)) > 255:
        return None
    return (1,) * (3 - n) + tuple(op.pool_size)


class FuseCorrMaxPool(GraphRewriter):
    """Replace a first convolution followed by a max pooling with the fused Ops.

    A :class:`CorrNd` output qualifies when every client is a :class:`MaxPoolNd` whose
    windows tile all its spatial axes, or that pooling's :class:`MaxPoolNdGrad`, whose
    gradient only :class:`CorrNdGrad` nodes of the same correlation use, none of them for
    their input gradient; and its patches are narrow (filters with a known number of
    channels, ``channels * taps`` below ``WIDE_DEPTH``): the fused forward takes one
    product per example, which for the post's second layer (depth 800) made prediction
    slower than the chunked kernel's one product per chunk (28.4 against 24.2 ms per 500
    images).
    """

    def add_requirements(self, fgraph) -> None:
        from pytensor.graph.features import ReplaceValidate

        fgraph.attach_feature(ReplaceValidate())

    def apply(self, fgraph) -> None:
        for node in list(fgraph.toposort()):
            if isinstance(node.op, CorrNd) and node in fgraph.apply_nodes:
                replacements = self._replacements(fgraph, node)
                if replacements:
                    fgraph.replace_all_validate(replacements, reason="fuse_corr_max_pool")

    @staticmethod
    def _replacements(fgraph, corr: Apply) -> list | None:
        x, w = corr.inputs
        (out,) = corr.outputs
        n = x.ndim - 2
        if n > 3 or x.dtype not in ("float32", "float64") or w.dtype != x.dtype:
            return None
        channels = w.type.shape[1]
        if channels is None or channels * int(np.prod(corr.op.kernel_shape)) >= WIDE_DEPTH:
            return None  # one product per example is fast only for narrow patches
        pools, corr_grads = [], []
        window = None
        for client, _ in fgraph.clients[out]:
            if not isinstance(client, Apply):
                return None
            if isinstance(client.op, MaxPoolNd | MaxPoolNdGrad):
                this = _fusible_pool(client.op, n)
                if this is None or (window is not None and this != window):
                    return None
                window = this
                if isinstance(client.op, MaxPoolNd):
                    pools.append(client)
                    continue
                if client.inputs[0] is not out or client.inputs[1].dtype != x.dtype:
                    return None
                for user, _ in fgraph.clients[client.outputs[0]]:
                    if not (
                        isinstance(user, Apply)
                        and isinstance(user.op, CorrNdGrad)
                        and user.op.settings() == corr.op.settings()
                        and user.inputs[0] is x
                        and user.inputs[1] is w
                        and user.inputs[2] is client.outputs[0]
                        and not fgraph.clients[user.outputs[0]]
                    ):
                        return None
                    corr_grads.append(user)
            else:
                return None
        if not pools:
            return None
        settings = (*chunked_settings(corr.op, n), window)
        x5 = padded_input_5d(x, corr.op, n)
        pooled5, argmax5 = ChunkedCorrMaxPool(*settings)(x5, _spatial_5d(w, n))
        pooled = _drop_unit_axes(pooled5, n)
        replacements = [(pool.outputs[0], pooled) for pool in pools]
        for user in corr_grads:
            pool_grad = user.inputs[2].owner
            g5 = _spatial_5d(pool_grad.inputs[1], n)
            dw5 = ChunkedCorrMaxPoolGradFilters(*settings)(x5, argmax5, g5)
            replacements.append((user.outputs[1], _drop_unit_axes(dw5, n)))
        return replacements


# before the max-pool kernels (optdb 0.5) and the chunked correlation (48.4) take the
# nodes apart
optdb.register(
    "plasagne_fuse_corr_max_pool",
    FuseCorrMaxPool(),
    CORR_MAX_POOL_TAG,
    "numba",
    position=0.45,
)


# ---------------------------------------------------------------------- Numba kernels


def _register_numba() -> None:
    from numba import prange
    from pytensor.link.numba.dispatch.basic import (
        numba_njit,
        register_funcify_default_op_cache_key,
    )

    register_symbols()

    def pieces(op: _CorrPoolOp) -> tuple:
        parallel = parallel_kernels()
        lengths, offsets, walk, _, taps = _numba_kernels(op, numba_njit, parallel)
        return lengths, offsets, walk, taps, parallel, kernel_salt(_KERNEL_VERSION, parallel)

    def window_offsets(op: _CorrPoolOp, numba_njit: Any) -> Any:
        pd, ph, pw = op.pool

        @numba_njit
        def offset(q, oh, ow):
            """Flat offset in the correlation output of window entry ``q``."""
            c, rest = divmod(np.uint64(q), np.uint64(ph * pd))
            y, z = divmod(rest, np.uint64(pd))
            return (z * np.uint64(oh) + y) * np.uint64(ow) + c

        return offset

    def wide_pieces(op, node):
        """The wide-row kernels (:mod:`.wide_rows`) for ``node``, whether they run in
        parallel and their cache salt, when they serve it (stride and dilation 1, depth 1
        in the kernel, the input and the pooling); else None."""
        if not direct_applies(op, node) or op.pool[0] != 1:
            return None
        parallel = parallel_kernels()
        sources = source_salt("wide_rows.py", "simd.py", "corr_pool.py")
        salt = kernel_salt(_KERNEL_VERSION, parallel) + 10**6 * sources
        return wide_kernels(op, numba_njit, node.outputs[0].dtype), parallel, salt

    def pool_example_kernel(op):
        """The windows of one example's ``(filters, positions)`` product, rows ``ow``
        apart (the correlation's width, or the wide rows' input width)."""
        pd, ph, pw = op.pool

        @numba_njit
        def pool_example(product, pooled, argmax, b, oh, ow):
            """Windows of one example's ``(filters, positions)`` product.

            Window loops of constant length, selects instead of branches, and unsigned
            indices (Numba adds no negative-index branch for them), so LLVM vectorises the
            loop over a row of windows: 2.9x faster than with signed indices."""
            qd, qh, qw = pooled.shape[2], pooled.shape[3], pooled.shape[4]
            for f in range(pooled.shape[1]):  # the product may have padding rows
                row = product[f]
                for i in range(qd):
                    for j in range(qh):
                        values = pooled[b, f, i, j]
                        positions = argmax[b, f, i, j]
                        base = np.uint64(((i * pd) * oh + j * ph) * ow)
                        for k in range(qw):
                            start = base + np.uint64(k * pw)
                            top = row[start]
                            nan = top != top
                            best = 0
                            q = 0
                            for c in range(pw):
                                for y in range(ph):
                                    for z in range(pd):
                                        v = row[start + np.uint64((z * oh + y) * ow + c)]
                                        larger = v > top
                                        top = v if larger else top
                                        best = q if larger else best
                                        nan = nan | (v != v)
                                        q += 1
                            values[np.uint64(k)] = np.nan if nan else top
                            positions[np.uint64(k)] = best

        return pool_example

    def wide_corr_max_pool(op, node, kernels, parallel, salt):
        """The forward Op with the wide-row correlation: per example, the wide output,
        then the pooling of its rows (``width`` apart)."""
        _, kh, kw = op.kernel
        _, ph, pw = op.pool
        pool_example = pool_example_kernel(op)
        operands, sizes, layout, forward = (
            kernels["operands"],
            kernels["sizes"],
            kernels["layout"],
            kernels["forward"],
        )

        def wide_pool_loop(x, wmat, offsets, pooled, argmax, blocks):
            n = x.shape[0]
            oh, width = x.shape[3] - kh + 1, x.shape[4]
            positions, scratch = sizes(x.shape)
            for block in prange(blocks):
                index = np.int64(block)
                xs = np.zeros(scratch, dtype=x.dtype)
                out = np.empty((wmat.shape[0], positions), dtype=x.dtype)
                for b in range(n * index // blocks, n * (index + 1) // blocks):
                    layout(x, b, xs)
                    forward(xs, wmat, offsets, out)
                    pool_example(out, pooled, argmax, b, oh, width)

        spec = [(None, 5), (None, 2), ("int64", 1), (None, 5), ("uint8", 5), "int64"]
        all_blocks = node_loop_behind_call(
            op, node, salt, wide_pool_loop, numba_njit, parallel, spec
        )

        @numba_njit
        def wide_corr_max_pool(x, w):
            if w.shape[1] != x.shape[1]:
                raise ValueError("ChunkedCorrMaxPool: filters' channels differ from the input's")
            if w.shape[2:] != (1, kh, kw) or x.shape[2] != 1:
                raise ValueError("ChunkedCorrMaxPool: filters or input differ from the kernel size")
            if x.shape[3] < kh or x.shape[4] < kw:
                raise ValueError("ChunkedCorrMaxPool: input smaller than the dilated kernel")
            x = np.ascontiguousarray(x)
            wmat, offsets = operands(w, x.shape[3], x.shape[4])
            oh, ow = x.shape[3] - kh + 1, x.shape[4] - kw + 1
            shape = (x.shape[0], w.shape[0], 1, oh // ph, ow // pw)
            pooled = np.empty(shape, dtype=x.dtype)
            argmax = np.empty(shape, dtype=np.uint8)
            all_blocks(x, wmat, offsets, pooled, argmax, max(1, min(x.shape[0], _BLOCKS)))
            return pooled, argmax

        return wide_corr_max_pool, salt

    def wide_corr_max_pool_grad_filters(op, node, kernels, parallel, salt):
        """The filter gradient with the wide-row kernels: per example, the pooled gradient
        put back at the recorded positions of a zeroed wide buffer, then the tiles."""
        _, kh, kw = op.kernel
        _, ph, pw = op.pool
        sizes, layout = kernels["sizes"], kernels["layout"]
        filters_accumulate, filters_result = (
            kernels["filters_accumulate"],
            kernels["filters_result"],
        )
        filters_operands = kernels["filters_operands"]

        def wide_filters_loop(x, argmax, g, offsets, shares):
            n = x.shape[0]
            blocks = shares.shape[0]
            width = x.shape[4]
            filters, qh, qw = g.shape[1], g.shape[3], g.shape[4]
            positions, scratch = sizes(x.shape)
            for block in prange(blocks):
                index = np.int64(block)
                xs = np.zeros(scratch, dtype=x.dtype)
                gw = np.zeros((shares.shape[1], positions), dtype=x.dtype)
                share = shares[index]
                flat_share = share.reshape(-1)
                for i in range(flat_share.shape[0]):
                    flat_share[i] = 0
                for b in range(n * index // blocks, n * (index + 1) // blocks):
                    layout(x, b, xs)
                    for f in range(filters):
                        row = gw[f]
                        for i in range(positions):
                            row[i] = 0
                        for j in range(qh):
                            for k in range(qw):
                                c, y = divmod(np.int64(argmax[b, f, 0, j, k]), ph)
                                row[(j * ph + y) * width + k * pw + c] = g[b, f, 0, j, k]
                    filters_accumulate(xs, gw, offsets, share)

        spec = [(None, 5), ("uint8", 5), (None, 5), ("int64", 1), (None, 4)]
        all_blocks = node_loop_behind_call(
            op, node, salt, wide_filters_loop, numba_njit, parallel, spec
        )

        @numba_njit
        def wide_corr_max_pool_grad_filters(x, argmax, g):
            oh, ow = x.shape[3] - kh + 1, x.shape[4] - kw + 1
            expected = (x.shape[0], g.shape[1], 1, oh // ph, ow // pw)
            if g.shape != expected or argmax.shape != expected or x.shape[2] != 1:
                raise ValueError(
                    "ChunkedCorrMaxPoolGradFilters: gradient or argmax does not match the "
                    "pooled output"
                )
            filters, channels = g.shape[1], x.shape[1]
            blocks = max(1, min(x.shape[0], _BLOCKS))
            offsets, shares = filters_operands(x, filters, blocks)
            all_blocks(
                np.ascontiguousarray(x),
                np.ascontiguousarray(argmax),
                np.ascontiguousarray(g),
                offsets,
                shares,
            )
            return filters_result(shares, filters, channels)

        return wide_corr_max_pool_grad_filters, salt

    @register_funcify_default_op_cache_key(ChunkedCorrMaxPool)
    def numba_corr_max_pool(op, node=None, **kwargs):
        wide = wide_pieces(op, node)
        if wide is not None:
            return wide_corr_max_pool(op, node, *wide)
        lengths, offsets, walk, taps, parallel, salt = pieces(op)
        pd, ph, pw = op.pool
        pool_example = pool_example_kernel(op)

        @numba_njit
        def forward_block(x, w_mat, pooled, argmax, first, stop):
            od, oh, ow = lengths(x.shape)
            positions = od * oh * ow
            cols = np.empty((w_mat.shape[1], positions), dtype=x.dtype)
            product = np.empty((w_mat.shape[0], positions), dtype=x.dtype)
            tables = offsets(x.shape)
            for b in range(first, stop):
                walk(x, b, 1, cols, True, tables)
                np.dot(w_mat, cols, product)
                pool_example(product, pooled, argmax, b, oh, ow)

        def block_loop(x, w_mat, pooled, argmax, blocks):
            n = x.shape[0]
            for block in prange(blocks):
                index = np.int64(block)
                forward_block(
                    x, w_mat, pooled, argmax, n * index // blocks, n * (index + 1) // blocks
                )

        spec = [(None, 5), (None, 2), (None, 5), ("uint8", 5), "int64"]
        all_blocks = node_loop_behind_call(
            op, node, salt, block_loop, numba_njit, parallel, spec, True
        )

        @numba_njit
        def corr_max_pool(x, w):
            if w.shape[1] != x.shape[1]:
                raise ValueError("ChunkedCorrMaxPool: filters' channels differ from the input's")
            od, oh, ow = lengths(x.shape)
            if min(od, oh, ow) < 1:
                raise ValueError("ChunkedCorrMaxPool: input smaller than the dilated kernel")
            filters = w.shape[0]
            w_mat = np.ascontiguousarray(w).reshape((filters, x.shape[1] * taps))
            shape = (x.shape[0], filters, od // pd, oh // ph, ow // pw)
            pooled = np.empty(shape, dtype=x.dtype)
            argmax = np.empty(shape, dtype=np.uint8)
            blocks = max(1, min(x.shape[0], _BLOCKS))
            all_blocks(np.ascontiguousarray(x), w_mat, pooled, argmax, blocks)
            return pooled, argmax

        return corr_max_pool, salt

    @register_funcify_default_op_cache_key(ChunkedCorrMaxPoolGradFilters)
    def numba_corr_max_pool_grad_filters(op, node=None, **kwargs):
        wide = wide_pieces(op, node)
        if wide is not None:
            return wide_corr_max_pool_grad_filters(op, node, *wide)
        lengths, offsets, walk, taps, parallel, salt = pieces(op)
        pd, ph, pw = op.pool
        offset = window_offsets(op, numba_njit)
        kd, kh, kw = op.kernel

        @numba_njit
        def block_share(x, argmax, g, first, stop, share):
            """Examples ``first:stop``'s share of the filter gradient, written into
            ``share`` (element loops, not array assignments: those compile Numba's shape
            error formatting, seconds on a cold cache)."""
            od, oh, ow = lengths(x.shape)
            size = od * oh * ow
            filters, depth = share.shape
            qd, qh, qw = g.shape[2], g.shape[3], g.shape[4]
            cols = np.empty((depth, size), dtype=x.dtype)
            full = np.empty((filters, size), dtype=x.dtype)
            tables = offsets(x.shape)
            for f in range(filters):
                for t in range(depth):
                    share[f, t] = 0
            for b in range(first, stop):
                for f in range(filters):
                    target = full[f]
                    for p in range(size):
                        target[p] = 0
                    for i in range(qd):
                        for j in range(qh):
                            recorded = argmax[b, f, i, j]
                            source = g[b, f, i, j]
                            base = np.uint64(((i * pd) * oh + j * ph) * ow)
                            for k in range(qw):
                                at = base + np.uint64(k * pw) + offset(recorded[k], oh, ow)
                                target[at] = source[np.uint64(k)]
                walk(x, b, 1, cols, True, tables)
                product = np.dot(full, cols.T)
                for f in range(filters):
                    for t in range(depth):
                        share[f, t] += product[f, t]

        def block_loop(x, argmax, g, shares):
            n = x.shape[0]
            blocks = shares.shape[0]
            for block in prange(blocks):
                index = np.int64(block)
                first, stop = n * index // blocks, n * (index + 1) // blocks
                block_share(x, argmax, g, first, stop, shares[index])

        spec = [(None, 5), ("uint8", 5), (None, 5), (None, 3)]
        all_blocks = node_loop_behind_call(
            op, node, salt, block_loop, numba_njit, parallel, spec, True
        )

        @numba_njit
        def corr_max_pool_grad_filters(x, argmax, g):
            od, oh, ow = lengths(x.shape)
            expected = (x.shape[0], g.shape[1], od // pd, oh // ph, ow // pw)
            if g.shape != expected or argmax.shape != expected:
                raise ValueError(
                    "ChunkedCorrMaxPoolGradFilters: gradient or argmax does not match the "
                    "pooled output"
                )
            filters, channels = g.shape[1], x.shape[1]
            shares = np.empty(
                (max(1, min(x.shape[0], _BLOCKS)), filters, channels * taps), dtype=x.dtype
            )
            all_blocks(
                np.ascontiguousarray(x),
                np.ascontiguousarray(argmax),
                np.ascontiguousarray(g),
                shares,
            )
            dw = np.zeros((filters, channels * taps), dtype=x.dtype)
            for index in range(shares.shape[0]):  # in block order, whatever the threads
                for f in range(filters):
                    for t in range(channels * taps):
                        dw[f, t] += shares[index, f, t]
            return dw.reshape((filters, channels, kd, kh, kw))

        return corr_max_pool_grad_filters, salt


try:
    _register_numba()
except ImportError:  # pragma: no cover - numba is optional for PyTensor
    pass
