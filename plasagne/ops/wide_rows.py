"""Direct correlation for narrow patches: SIMD vectors along the rows of the output.

With one input channel (a network's first layer) a patch has only ``kh * kw`` terms, too
few for :mod:`plasagne.ops.direct_corr`'s tiles along the filters and far too few for a
good BLAS product. Here the vectors run along the output positions instead, in the
example's own ``(channels, height, width)`` layout: output position ``p = y * width + x``
of the *wide* output (``x`` up to the input's width, the last ``kw - 1`` columns of each
row computed and never read) is

``out[f, p] = sum_t w[f, t] * x[p + offset[t]]``, ``offset[(c, i, j)] = (c * height + i)
* width + j``,

so each term adds a shifted run of the input, one unaligned vector load per ``lanes``
positions. A forward tile holds :data:`FILTERS` filters by :data:`VECTORS` vectors of
positions in registers (one broadcast weight per filter and term); a filter-gradient tile
holds :data:`FILTERS` filters by :data:`TERMS` terms, each a vector of partial sums over
positions, added lane by lane into a share and summed across lanes at the end.

The wide output is what :mod:`plasagne.ops.corr_pool`'s pooling reads (its rows are
``width`` apart); the filter gradient takes the pooled gradient put back into a zeroed
wide buffer. Examples go through a scratch copy with zeros after them, so the last
positions' shifted loads stay in it.

Examples
--------
>>> print(wide_tile_source(1, 1, 1, 4).splitlines()[0])
def wide_forward_tile(xs, p0, offsets, wmat, terms, f0, out, row):
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .simd import (
    accumulate_source,
    fma_source,
    intrinsics,
    loads_source,
    vector_lanes,
    vector_registers,
)

__all__ = ["FILTERS", "VECTORS", "TERMS", "wide_tile_shape", "wide_tile_source", "wide_kernels"]

#: Filters per tile (forward and filter gradient) with 32 vector registers; half as many
#: with 16 (:func:`wide_tile_shape`).
FILTERS = 4
#: Vectors of output positions per forward tile.
VECTORS = 4
#: Terms per filter-gradient tile.
TERMS = 5


def wide_tile_source(filters: int, vectors: int, terms: int, lanes: int) -> str:
    """Numba source of the forward tile (``filters`` by ``vectors`` accumulators) and the
    filter-gradient tile (``filters`` by ``terms``), ``lanes`` lanes each.

    Examples
    --------
    >>> source = wide_tile_source(2, 3, 4, 8)
    >>> source.count("vzero("), "a1_2 = vfma(s, x2, a1_2)" in source
    (14, True)
    """
    fr, vr, tr = range(filters), range(vectors), range(terms)
    forward_zero = "; ".join(f"a{r}_{v} = vzero(xs[0], {lanes})" for r in fr for v in vr)
    x_loads = loads_source("xs", [(f"x{v}", f"o + {v * lanes}") for v in vr], lanes)
    forward_terms = "\n".join(
        fma_source(
            "        ",
            "s",
            f"vsplat_at(wmat, (f0 + {r}) * terms + t, {lanes})",
            [(f"a{r}_{v}", f"x{v}") for v in vr],
        )
        for r in fr
    )
    forward_stores = "\n".join(
        f"    vstore(out, (f0 + {r}) * row + p0 + {v * lanes}, a{r}_{v})" for r in fr for v in vr
    )
    filters_zero = "; ".join(f"a{r}_{k} = vzero(xs[0], {lanes})" for r in fr for k in tr)
    offset_loads = "; ".join(f"o{k} = offsets[t0 + {k}]" for k in tr)
    g_loads = loads_source("gw", [(f"g{r}", f"(f0 + {r}) * row + p") for r in fr], lanes)
    filters_terms = "\n".join(
        fma_source(
            "        ",
            "x",
            f"vload(xs, p + o{k}, {lanes})",
            [(f"a{r}_{k}", f"g{r}") for r in fr],
        )
        for k in tr
    )
    targets = [
        (f"a{r}_{k}", f"((f0 + {r}) * padded_terms + t0 + {k}) * {lanes}") for r in fr for k in tr
    ]
    filters_adds = accumulate_source("share", targets, lanes)
    return f"""\
def wide_forward_tile(xs, p0, offsets, wmat, terms, f0, out, row):
    {forward_zero}
    for t in range(terms):
        o = p0 + offsets[t]
        {x_loads}
{forward_terms}
{forward_stores}


def wide_filters_tile(xs, gw, positions, offsets, t0, padded_terms, f0, row, share):
    {filters_zero}
    {offset_loads}
    for p in range(0, positions, {lanes}):
        {g_loads}
{filters_terms}
{filters_adds}
"""


def wide_tile_shape() -> tuple[int, int, int]:
    """``(filters, vectors, terms)`` per tile on this machine: 16 and 20 accumulators fit
    32 registers with the loaded vectors; with 16 registers, half the filters.

    Examples
    --------
    >>> wide_tile_shape() in ((FILTERS, VECTORS, TERMS), (FILTERS // 2, VECTORS, TERMS))
    True
    """
    filters = FILTERS if vector_registers() >= 32 else FILTERS // 2
    return filters, VECTORS, TERMS


def wide_kernels(
    op: Any, numba_njit: Any, dtype: str, shape: tuple[int, int, int] | None = None
) -> dict[str, Any]:
    """The wide-row kernels for ``op``'s kernel size (stride and dilation 1) and ``dtype``.

    Returns ``operands(w, height, width)`` (weights as padded ``(filters, terms)`` rows
    and the terms' offsets), ``sizes(x_shape)`` (the padded wide positions and the
    scratch length), ``layout(x, b, xs)`` (example ``b`` into the scratch),
    ``forward(xs, wmat, offsets, out)`` (the wide output, ``(padded filters, padded
    positions)``), ``filters_accumulate(xs, gw, offsets, share)`` and
    ``filters_operands(x, filters, blocks) -> (offsets, shares)`` and
    ``filters_result(shares, filters, channels)``; and ``lanes``. Tiles are
    ``shape`` (:func:`wide_tile_shape` when None).

    Examples
    --------
    >>> import numba
    >>> from plasagne.ops.chunked_corr import ChunkedCorr
    >>> "forward" in wide_kernels(ChunkedCorr((1, 2, 2), (1,) * 3, (1,) * 3), numba.njit,
    ...                           "float64")
    True
    """
    _, kh, kw = op.kernel
    lanes = vector_lanes(np.dtype(dtype).itemsize)
    tile_filters, vectors, tile_terms = shape or wide_tile_shape()
    span = vectors * lanes
    scope = intrinsics()
    source = wide_tile_source(tile_filters, vectors, tile_terms, lanes)
    exec(compile(source, "<wide tiles>", "exec"), scope)
    forward_tile = numba_njit(scope["wide_forward_tile"])
    filters_tile = numba_njit(scope["wide_filters_tile"])

    @numba_njit
    def term_offsets(channels, height, width):
        """Each ``(c, i, j)`` term's offset in an example, padded to whole tiles."""
        terms = channels * kh * kw
        offsets = np.zeros(-(-terms // tile_terms) * tile_terms, dtype=np.int64)
        for c in range(channels):
            for i in range(kh):
                for j in range(kw):
                    offsets[(c * kh + i) * kw + j] = (c * height + i) * width + j
        return offsets

    @numba_njit
    def padded_filters(filters):
        return -(-filters // tile_filters) * tile_filters

    @numba_njit
    def operands(w, height, width):
        filters, channels = w.shape[0], w.shape[1]
        wmat = np.zeros((padded_filters(filters), channels * kh * kw), dtype=w.dtype)
        for f in range(filters):
            for c in range(channels):
                for i in range(kh):
                    for j in range(kw):
                        wmat[f, (c * kh + i) * kw + j] = w[f, c, 0, i, j]
        return wmat, term_offsets(channels, height, width)

    @numba_njit
    def filters_operands(x, filters, blocks):
        """The terms' offsets and the blocks' shares to fill, ``(blocks, padded filters,
        padded terms, lanes)``."""
        offsets = term_offsets(x.shape[1], x.shape[3], x.shape[4])
        shape = (blocks, padded_filters(filters), offsets.shape[0], lanes)
        return offsets, np.empty(shape, dtype=x.dtype)

    @numba_njit
    def sizes(shape):
        """Padded wide positions (whole forward tiles) and the scratch length."""
        channels, height, width = shape[1], shape[3], shape[4]
        positions = -(-((height - kh + 1) * width) // span) * span
        return positions, channels * height * width + positions

    @numba_njit
    def layout(x, b, xs):
        """Example ``b`` of ``x`` into the start of ``xs`` (the rest stays zero)."""
        source = x[b].reshape(-1)
        for i in range(source.shape[0]):
            xs[i] = source[i]

    @numba_njit
    def forward(xs, wmat, offsets, out):
        padded_filters, positions = out.shape
        terms = wmat.shape[1]
        flat_w, flat_out = wmat.reshape(-1), out.reshape(-1)
        for f0 in range(0, padded_filters, tile_filters):
            for p0 in range(0, positions, span):
                forward_tile(xs, p0, offsets, flat_w, terms, f0, flat_out, positions)

    @numba_njit
    def filters_accumulate(xs, gw, offsets, share):
        """Add ``sum_p gw[f, p] * xs[p + offsets[t]]`` lane by lane to ``share[f, t]``."""
        padded_filters, positions = gw.shape
        padded_terms = offsets.shape[0]
        flat_g, flat_share = gw.reshape(-1), share.reshape(-1)
        for f0 in range(0, padded_filters, tile_filters):
            for t0 in range(0, padded_terms, tile_terms):
                filters_tile(
                    xs, flat_g, positions, offsets, t0, padded_terms, f0, positions, flat_share
                )

    @numba_njit
    def filters_result(shares, filters, channels):
        """Blocks' shares (``(blocks, padded filters, padded terms, lanes)``) added in
        block order, lanes summed, as ``(filters, channels, 1, kh, kw)``."""
        dw = np.zeros((filters, channels, 1, kh, kw), dtype=shares.dtype)
        for index in range(shares.shape[0]):
            for f in range(filters):
                for c in range(channels):
                    for i in range(kh):
                        for j in range(kw):
                            lanes_of = shares[index, f, (c * kh + i) * kw + j]
                            total = lanes_of[0]
                            for k in range(1, lanes_of.shape[0]):
                                total += lanes_of[k]
                            dw[f, c, 0, i, j] += total
        return dw

    return {
        "operands": operands,
        "sizes": sizes,
        "layout": layout,
        "forward": forward,
        "filters_operands": filters_operands,
        "filters_accumulate": filters_accumulate,
        "filters_result": filters_result,
        "lanes": lanes,
    }
