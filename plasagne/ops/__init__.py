"""The numerical kernels behind the layers, one internal function per operation.

Layers never build convolution or pooling arithmetic themselves: they call
:func:`plasagne.ops.conv.corr_nd` and :func:`plasagne.ops.pool.pool_nd`. Both are written
as plain PyTensor graphs (slices, one matrix product, reshapes), so they differentiate and
compile on every backend (Numba, C, JAX). A faster kernel replaces one of them in one place.
"""

from .jax_dtypes import keep_declared_dtypes

# JAX-compiled float32 graphs stay float32 (see jax_dtypes); without JAX this does nothing
keep_declared_dtypes()

# registers the rewrite that gives Numba the chunked correlation kernels
from . import chunked_corr  # noqa: E402, F401
