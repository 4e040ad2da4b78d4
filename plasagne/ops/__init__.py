"""The numerical kernels behind the layers, one internal function per operation.

Layers never build convolution or pooling arithmetic themselves: they call
:func:`plasagne.ops.conv.corr_nd` and :func:`plasagne.ops.pool.pool_nd`. ``corr_nd`` builds
one ``CorrNd`` node around the im2col graph, which each backend computes its own way
(chunked Numba kernels, the im2col graph on C, XLA's convolution on JAX); ``pool_nd`` builds
one ``MaxPoolNd`` node for max pooling (direct Numba kernels, the strided-slice graph
elsewhere) and a strided-slice graph for average pooling. All of them differentiate and
compile on every backend. A faster kernel replaces one of them in one place.
:mod:`plasagne.ops.numba_linker` holds the Numba linker plasagne's modes compile with.
"""

from .jax_dtypes import keep_declared_dtypes

# JAX-compiled float32 graphs stay float32 (see jax_dtypes); without JAX this does nothing
keep_declared_dtypes()

# register the rewrites that give Numba the chunked correlation and max-pool kernels, and
# the fused kernels of a first convolution with its pooling
from . import chunked_corr, corr_pool, pool_op  # noqa: E402, F401
