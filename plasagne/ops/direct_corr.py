"""Direct 2-D cross-correlation with register-blocked SIMD kernels (Numba, stride 1).

The chunked kernels (:mod:`plasagne.ops.chunked_corr`) gather patches and call BLAS, whose
products with 32 filters ran at 78-126 GFLOP/s on two cores of a machine that multiplies
large matrices at about 290: a product that narrow spends its time packing, and the
gather costs about as much again. Here each of the three products reads the input where
it lies, in a channels-last copy of one example (``(height, width, channels)``, a few
tens of kilobytes), and keeps a tile of results in vector registers
(:mod:`plasagne.ops.simd`): ``rows`` output positions by ``vectors`` registers of
filters (8 by 2 of 16 float32 lanes with AVX-512), one fused multiply-add per register
and term, each input value broadcast once per tile row.

- forward ``out[b, f, y, x] = sum_{c, i, j} w[f, c, i, j] * x[b, c, y + i, x + j]``:
  per tile of ``rows`` positions along an output row, a loop over the ``(i, j, c)`` terms;
  a table holds each term's offset in the channels-last example;
- filter gradient ``dw[f, c, i, j] = sum_{b, y, x} x[b, c, y + i, x + j] * g[b, f, y, x]``:
  per tile of ``rows`` consecutive terms, a loop over every output position of a group of
  examples, the tile added to the group's share at the end; the shares are added in group
  order (the result does not depend on the number of threads);
- input gradient ``dx[b, c, y, x] = sum_{f, i, j} w[f, c, i, j] * g[b, f, y - i, x - j]``:
  per output row ``y`` of ``dx``, tile of ``rows`` positions and kernel column ``j``, a
  loop over the valid kernel rows and the filters; channels are the vectors; the tile is
  added to ``dx`` at the positions shifted by ``j``.

Vectors cover the filters (channels for the input gradient) padded with zeros to a
multiple of the lanes; tiles of output positions are padded to a multiple of ``rows``
(the padding computed and dropped). Kernels exist for stride 1, dilation 1 and one depth
(1-D and 2-D correlations, any kernel size), float32 and float64; the chunked Ops use
them when their node has these settings (:func:`direct_applies`).

Examples
--------
>>> from plasagne.ops.chunked_corr import ChunkedCorr
>>> op = ChunkedCorr((1, 3, 3), (1, 1, 1), (1, 1, 1))
>>> x = pt.tensor("x", shape=(None, 2, 1, None, None))
>>> w = pt.tensor("w", shape=(4, 2, 1, 3, 3))
>>> direct_applies(op, op(x, w).owner)
True
"""

from __future__ import annotations

from functools import cache
from hashlib import sha256
from pathlib import Path
from typing import Any

import numpy as np
import pytensor.tensor as pt  # noqa: F401  (the module example)

from .simd import (
    accumulate_source,
    fma_source,
    intrinsics,
    loads_source,
    vector_lanes,
    vector_registers,
)

__all__ = [
    "direct_applies",
    "tile_source",
    "direct_kernels",
    "direct_salt",
    "source_salt",
    "tile_rows",
    "ROWS",
]

#: Output positions (input-gradient: ``dx`` positions) per register tile with 32 vector
#: registers (AVX-512); half as many with 16 (:func:`tile_rows`).
ROWS = 8

#: How many parts the forward and input-gradient loops split a batch into (each part's
#: examples run in turn on one thread, with one scratch buffer)
PARTS = 16

#: Bytes of gradient rows per run of positions in the filter gradient (L1-sized)
SUB_BYTES = 16 * 2**10

#: Bytes of channels-last input per group of examples in the filter gradient (L2-sized).
GROUP_BYTES = 256 * 2**10


@cache
def source_salt(*names: str) -> int:
    """A number that changes with the source of the named modules of this package (file
    names beside this one): part of a kernel's cache keys, so that neither an edited
    kernel nor a cached caller naming an edited kernel is ever loaded stale from disk.

    Examples
    --------
    >>> source_salt("simd.py") == source_salt("simd.py") != source_salt("direct_corr.py")
    True
    """
    digest = sha256()
    for name in names:
        digest.update(Path(__file__).with_name(name).read_bytes())
    return int(digest.hexdigest()[:8], 16)


def direct_salt() -> int:
    """:func:`source_salt` of the direct kernels, their intrinsics and the chunked Ops'
    funcify that calls them.

    Examples
    --------
    >>> 0 <= direct_salt() < 2**32
    True
    """
    return source_salt("direct_corr.py", "simd.py", "chunked_corr.py")


def direct_applies(op: Any, node: Any) -> bool:
    """Whether the direct kernels serve ``node`` of chunked correlation ``op``: float32 or
    float64, stride 1, dilation 1, kernel depth 1 on inputs of static depth 1.

    Examples
    --------
    >>> from plasagne.ops.chunked_corr import ChunkedCorr
    >>> op = ChunkedCorr((1, 3, 3), (1, 2, 2), (1, 1, 1))
    >>> direct_applies(op, op(pt.tensor5("x"), pt.tensor5("w")).owner)
    False
    """
    if op.kernel[0] != 1 or set(op.stride) != {1} or set(op.dilation) != {1}:
        return False
    if node.outputs[0].dtype not in ("float32", "float64"):
        return False
    return all(v.type.shape[2] == 1 for v in node.inputs)


def _tile_names(vectors: int) -> tuple[str, str, str]:
    return f"forward_tile_{vectors}", f"filters_tile_{vectors}", f"input_tile_{vectors}"


def tile_source(rows: int, vectors: int, lanes: int) -> str:
    """Numba source of the three register tiles for ``rows`` by ``vectors`` registers of
    ``lanes`` lanes (each accumulator a local variable ``a{row}_{vector}``).

    Examples
    --------
    >>> print(tile_source(1, 1, 4).splitlines()[0])
    def forward_tile_1(xs, base, step, offsets, terms, wk, width, col, out, at):
    """
    acc = [(r, v) for r in range(rows) for v in range(vectors)]
    zero = "; ".join(f"a{r}_{v} = vzero(wk[0], {lanes})" for r, v in acc)
    forward_name, filters_name, input_name = _tile_names(vectors)

    def vector_loads(name: str, array: str, base: str) -> str:
        loads = [(f"{name}{v}", f"{base} + {v * lanes}") for v in range(vectors)]
        return loads_source(array, loads, lanes)

    def row_updates(indent: str, splat: Any, vector: str) -> str:
        return "\n".join(
            fma_source(
                indent,
                "s",
                f"vsplat_at({splat(r)}, {lanes})",
                [(f"a{r}_{v}", f"{vector}{v}") for v in range(vectors)],
            )
            for r in range(rows)
        )

    def tile_targets(row_index: str) -> list[tuple[str, str]]:
        return [(f"a{r}_{v}", f"{row_index.format(r=r)} + col + {v * lanes}") for r, v in acc]

    loads = vector_loads("w", "wk", "k * width + col")
    forward_terms = row_updates("        ", lambda r: f"xs, o + {r} * step", "w")
    forward_stores = "\n".join(
        f"    vstore(out, {index}, {name})" for name, index in tile_targets("at + {r} * width")
    )
    offset_loads = "; ".join(f"o{r} = offsets[first + {r}]" for r in range(rows))
    g_loads = vector_loads("g", "gs", "p * width + col")
    filters_terms = row_updates("        ", lambda r: f"xs, b + o{r}", "g")
    filters_adds = accumulate_source("share", tile_targets("(first + {r}) * width"), lanes)
    w_loads = vector_loads("w", "wg", "t + f * width + col")
    input_terms = row_updates("            ", lambda r: f"gs, gb + {r} * filters + f", "w")
    input_adds = accumulate_source("dxs", tile_targets("at + {r} * width"), lanes)
    return f"""\
def {forward_name}(xs, base, step, offsets, terms, wk, width, col, out, at):
    {zero}
    for k in range(terms):
        o = base + offsets[k]
        {loads}
{forward_terms}
{forward_stores}


def {filters_name}(xs, bases, count, offsets, first, gs, width, col, share):
    {zero.replace("wk[0]", "gs[0]")}
    {offset_loads}
    for p in range(count):
        b = bases[p]
        {g_loads}
{filters_terms}
{filters_adds}


def {input_name}(gs, filters, row_stride, gy0, gy1, wg, t0, t_step, width, col, dxs, at):
    {zero.replace("wk[0]", "wg[0]")}
    for gy in range(gy0, gy1):
        gb = gy * row_stride
        t = t0 - (gy - gy0) * t_step
        for f in range(filters):
            {w_loads}
{input_terms}
{input_adds}
"""


def tile_rows() -> int:
    """Rows per tile on this machine: :data:`ROWS` by two vectors of accumulators fit 32
    registers with the loaded vectors; with 16 registers, half as many rows.

    Examples
    --------
    >>> tile_rows() in (ROWS, ROWS // 2)
    True
    """
    return ROWS if vector_registers() >= 32 else ROWS // 2


def _compile_tiles(numba_njit: Any, lanes: int, rows: int) -> dict[str, Any]:
    """The tiles for 2 vectors and for 1, compiled by ``numba_njit``, and per kind a tile
    taking either by its column (``forward_tile(..., width, col, ...)`` runs 2 vectors
    from ``col`` when they fit in ``width``, else 1)."""
    scope = intrinsics()
    for vectors in (2, 1):
        source = tile_source(rows, vectors, lanes)
        exec(compile(source, f"<plasagne direct tiles {vectors}x{lanes}>", "exec"), scope)
    for vectors in (2, 1):
        for name in _tile_names(vectors):
            scope[name] = numba_njit(scope[name])
    dispatchers = []
    for kind_2, kind_1 in zip(_tile_names(2), _tile_names(1), strict=True):
        code = scope[kind_2].py_func.__code__
        params = ", ".join(code.co_varnames[: code.co_argcount])
        dispatchers.append(
            f"def {kind_2[:-2]}({params}):\n"
            f"    if col + {2 * lanes} <= width:\n        {kind_2}({params})\n"
            f"    else:\n        {kind_1}({params})\n"
        )
    exec(compile("\n".join(dispatchers), "<plasagne direct tile columns>", "exec"), scope)
    return {name[:-2]: numba_njit(scope[name[:-2]]) for name in _tile_names(2)}


def _padded(n: int, step: int) -> int:
    return -(-n // step) * step


def direct_kernels(op: Any, numba_njit: Any, dtype: str, rows: int | None = None) -> dict[str, Any]:
    """The direct kernels' loops and helpers for ``op``'s kernel size and ``dtype``, with
    tiles of ``rows`` positions (:func:`tile_rows` when None).

    Returns ``forward_loop(x, wk, offsets, out)``, ``filters_loop(x, g, offsets, shares,
    group)`` and ``input_loop(wg, g, dx)`` (``prange`` loops over examples or groups,
    arrays C-contiguous) and the host-side ``forward_operands(x, w)``,
    ``filters_operands(x, g) -> (offsets, group, shares)``,
    ``filters_result(shares, channels, filters)`` and
    ``input_operands(w)`` that prepare their operands; and the pieces other kernels
    build on: ``channels_last``, ``term_offsets``, ``forward_product`` and
    ``filters_accumulate``.

    Examples
    --------
    >>> import numba
    >>> from plasagne.ops.chunked_corr import ChunkedCorr
    >>> op = ChunkedCorr((1, 2, 2), (1,) * 3, (1,) * 3)
    >>> "forward_loop" in direct_kernels(op, numba.njit, "float64")
    True
    """
    from numba import prange

    _, kh, kw = op.kernel
    itemsize = np.dtype(dtype).itemsize
    lanes = vector_lanes(itemsize)
    rows = rows or tile_rows()
    block = 2 * lanes
    tiles = _compile_tiles(numba_njit, lanes, rows)
    forward_tile, filters_tile, input_tile = (tiles[n[:-2]] for n in _tile_names(2))
    u = np.uint64
    padded = numba_njit(_padded)

    @numba_njit
    def channels_last(x, b, xs, at, width):
        """Example ``b`` of ``x`` (5-d, depth 1) into ``xs[at:]`` as ``(h, width, c)``."""
        channels, height, w_in = x.shape[1], x.shape[3], x.shape[4]
        flat = x[b].reshape(-1)
        for c in range(u(channels)):
            for y in range(u(height)):
                source = (c * u(height) + y) * u(w_in)
                target = u(at) + y * u(width) * u(channels) + c
                for i in range(u(w_in)):
                    xs[target + i * u(channels)] = flat[source + i]

    @numba_njit
    def forward_operands(x, w):
        """Filters as ``(terms, padded filters)`` rows of ``(i, j, c)`` terms, and each
        term's offset in a channels-last example of the padded width."""
        filters, channels = w.shape[0], w.shape[1]
        oh, ow = x.shape[3] - kh + 1, x.shape[4] - kw + 1
        width = padded(ow, rows) + kw - 1
        wk = np.zeros((kh * kw * channels, padded(filters, lanes)), dtype=w.dtype)
        offsets = np.empty(kh * kw * channels, dtype=np.int64)
        for i in range(kh):
            for j in range(kw):
                for c in range(channels):
                    t = (i * kw + j) * channels + c
                    offsets[t] = (i * width + j) * channels + c
                    for f in range(filters):
                        wk[t, f] = w[f, c, 0, i, j]
        return wk, offsets, oh, ow

    def forward_loop(x, wk, offsets, out):
        channels, height = x.shape[1], x.shape[3]
        oh, ow = out.shape[3], out.shape[4]
        padded_ow = padded(ow, rows)
        width = padded_ow + kw - 1
        wk_flat = wk.reshape(-1)
        batch = x.shape[0]
        per_part = max(1, -(-batch // PARTS))
        for part in prange(-(-batch // per_part)):
            # scratch per part, not per example (allocations in threads are slow)
            xs = np.zeros(height * width * channels, dtype=x.dtype)
            os = np.empty(oh * padded_ow * wk.shape[1], dtype=x.dtype)
            for b in range(part * per_part, min(batch, (part + 1) * per_part)):
                forward_product(x, b, xs, width, wk_flat, offsets, padded_ow, oh, os)
                channels_first(os, padded_ow, out, b)

    @numba_njit
    def forward_product(x, b, xs, width, wk_flat, offsets, padded_ow, oh, os):
        """Example ``b``'s correlation into ``os``, ``(oh * padded_ow, padded filters)``
        (channels last; ``xs`` is scratch for the channels-last example)."""
        channels = x.shape[1]
        terms = offsets.shape[0]
        padded_filters = os.shape[0] // (oh * padded_ow)
        channels_last(x, b, xs, 0, width)
        for y in range(oh):
            for x0 in range(0, padded_ow, rows):
                base = (y * width + x0) * channels
                at = (y * padded_ow + x0) * padded_filters
                for col in range(0, padded_filters, block):
                    forward_tile(
                        xs, base, channels, offsets, terms, wk_flat, padded_filters, col, os, at
                    )

    @numba_njit
    def channels_first(os, padded_ow, out, b):
        """``os`` (:func:`forward_product`'s layout) into example ``b`` of ``out``."""
        filters, oh, ow = u(out.shape[1]), u(out.shape[3]), u(out.shape[4])
        padded_filters = u(os.shape[0]) // (oh * u(padded_ow))
        target = out[b].reshape(-1)
        for f in range(filters):
            for y in range(oh):
                for i in range(ow):
                    source = (y * u(padded_ow) + i) * padded_filters + f
                    target[(f * oh + y) * ow + i] = os[source]

    @numba_njit
    def term_offsets(channels, width):
        """Each ``(i, j, c)`` term's offset in a channels-last example ``width`` wide,
        padded to whole tiles (the padding reads offset 0)."""
        offsets = np.zeros(padded(kh * kw * channels, rows), dtype=np.int64)
        for i in range(kh):
            for j in range(kw):
                for c in range(channels):
                    offsets[(i * kw + j) * channels + c] = (i * width + j) * channels + c
        return offsets

    @numba_njit
    def filters_operands(x, g):
        """The terms' offsets (:func:`term_offsets`), how many examples make a group, and
        the groups' shares to fill, ``(groups, padded terms, padded filters)``."""
        channels, height, w_in = x.shape[1], x.shape[3], x.shape[4]
        offsets = term_offsets(channels, w_in)
        padded_filters = padded(g.shape[1], lanes)
        positions = g.shape[3] * g.shape[4]
        per_example = max(1, (height * w_in * channels + positions * padded_filters) * x.itemsize)
        # at least eight groups (two threads' work balances), whatever the thread count
        group = max(1, min(-(-x.shape[0] // 8), GROUP_BYTES // per_example))
        groups = -(-x.shape[0] // group)
        shares = np.empty((groups, offsets.shape[0], padded_filters), dtype=x.dtype)
        return offsets, group, shares

    def filters_loop(x, g, offsets, shares, group):
        channels, height, w_in = x.shape[1], x.shape[3], x.shape[4]
        filters, oh, ow = g.shape[1], g.shape[3], g.shape[4]
        padded_filters = shares.shape[2]
        example = height * w_in * channels
        positions = oh * ow
        for index in prange(shares.shape[0]):
            first = index * group
            count = min(group, x.shape[0] - first)
            xs = np.empty(count * example, dtype=x.dtype)
            gs = np.zeros(count * positions * padded_filters, dtype=x.dtype)
            bases = np.empty(count * positions, dtype=np.int64)
            share = shares[index].reshape(-1)
            for i in range(share.shape[0]):
                share[i] = 0
            for e in range(count):
                channels_last(x, first + e, xs, e * example, w_in)
                source = g[first + e].reshape(-1)
                for f in range(u(filters)):
                    for p in range(u(positions)):
                        at = (u(e * positions) + p) * u(padded_filters) + f
                        gs[at] = source[f * u(positions) + p]
                for y in range(oh):
                    for i in range(ow):
                        bases[e * positions + y * ow + i] = e * example + (y * w_in + i) * channels
            filters_accumulate(xs, bases, count * positions, offsets, gs, share)

    @numba_njit
    def filters_accumulate(xs, bases, total, offsets, gs, share):
        """Add ``sum_p xs[bases[p] + offsets[t]] * gs[p, f]`` over the first ``total``
        positions to ``share[t, f]`` (flat, ``(padded terms, padded filters)``)."""
        padded_terms = offsets.shape[0]
        padded_filters = share.shape[0] // padded_terms
        # positions in runs whose gradient rows stay in the L1 cache across the tiles
        run = max(rows, SUB_BYTES // (padded_filters * itemsize))
        for p0 in range(0, total, run):
            n = min(run, total - p0)
            g_run = gs[p0 * padded_filters :]
            b_run = bases[p0:]
            for t in range(0, padded_terms, rows):
                for col in range(0, padded_filters, block):
                    filters_tile(xs, b_run, n, offsets, t, g_run, padded_filters, col, share)

    @numba_njit
    def filters_result(shares, channels, filters):
        """The groups' shares added in group order, as ``(filters, channels, 1, kh, kw)``."""
        total = np.zeros(shares.shape[1] * shares.shape[2], dtype=shares.dtype)
        for index in range(shares.shape[0]):
            share = shares[index].reshape(-1)
            for i in range(total.shape[0]):
                total[i] += share[i]
        dw = np.empty((filters, channels, 1, kh, kw), dtype=shares.dtype)
        padded_filters = shares.shape[2]
        for f in range(filters):
            for c in range(channels):
                for i in range(kh):
                    for j in range(kw):
                        t = (i * kw + j) * channels + c
                        dw[f, c, 0, i, j] = total[t * padded_filters + f]
        return dw

    @numba_njit
    def input_operands(w):
        """Filters as ``((i, j, f), padded channels)`` rows."""
        filters, channels = w.shape[0], w.shape[1]
        wg = np.zeros((kh * kw * filters, padded(channels, lanes)), dtype=w.dtype)
        for i in range(kh):
            for j in range(kw):
                for f in range(filters):
                    for c in range(channels):
                        wg[(i * kw + j) * filters + f, c] = w[f, c, 0, i, j]
        return wg

    def input_loop(wg, g, dx):
        height = dx.shape[3]
        filters, oh, ow = g.shape[1], g.shape[3], g.shape[4]
        padded_channels = wg.shape[1]
        padded_ow = padded(ow, rows)
        width = padded_ow + kw - 1
        wg_flat = wg.reshape(-1)
        batch = dx.shape[0]
        per_part = max(1, -(-batch // PARTS))
        for part in prange(-(-batch // per_part)):
            gs = np.zeros(oh * padded_ow * filters, dtype=g.dtype)
            dxs = np.empty(height * width * padded_channels, dtype=g.dtype)
            for b in range(part * per_part, min(batch, (part + 1) * per_part)):
                input_example(wg_flat, g, b, gs, dxs, dx, padded_ow, width, padded_channels)

    @numba_njit
    def input_example(wg_flat, g, b, gs, dxs, dx, padded_ow, width, padded_channels):
        channels, height, w_in = dx.shape[1], dx.shape[3], dx.shape[4]
        filters, oh, ow = g.shape[1], g.shape[3], g.shape[4]
        for i in range(dxs.shape[0]):
            dxs[i] = 0
        source = g[b].reshape(-1)
        for f in range(u(filters)):
            for y in range(u(oh)):
                for i in range(u(ow)):
                    at = (y * u(padded_ow) + i) * u(filters) + f
                    gs[at] = source[(f * u(oh) + y) * u(ow) + i]
        # a gradient row's length in gs, and the step between kernel rows in wg
        row, t_step = padded_ow * filters, kw * filters * padded_channels
        for y in range(height):
            # kernel rows i with 0 <= y - i < oh: gradient rows gy = y - i, ascending
            gy0, gy1 = max(0, y - kh + 1), min(oh, y + 1)
            if gy0 >= gy1:
                continue
            for x0 in range(0, padded_ow, rows):
                for j in range(kw):
                    at = (y * width + x0 + j) * padded_channels
                    t0 = ((y - gy0) * kw + j) * filters * padded_channels
                    g_tile = gs[x0 * filters :]
                    for col in range(0, padded_channels, block):
                        input_tile(
                            g_tile,
                            filters,
                            row,
                            gy0,
                            gy1,
                            wg_flat,
                            t0,
                            t_step,
                            padded_channels,
                            col,
                            dxs,
                            at,
                        )
        target = dx[b].reshape(-1)
        for c in range(u(channels)):
            for y in range(u(height)):
                for i in range(u(w_in)):
                    at = (y * u(width) + i) * u(padded_channels) + c
                    target[(c * u(height) + y) * u(w_in) + i] = dxs[at]

    return {
        "forward_loop": forward_loop,
        "forward_operands": forward_operands,
        "filters_loop": filters_loop,
        "filters_operands": filters_operands,
        "filters_result": filters_result,
        "filters_accumulate": filters_accumulate,
        "forward_product": forward_product,
        "channels_last": channels_last,
        "term_offsets": term_offsets,
        "input_loop": input_loop,
        "input_operands": input_operands,
    }
