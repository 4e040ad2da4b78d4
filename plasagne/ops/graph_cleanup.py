"""A second pass of PyTensor's removal of reductions over length-one axes, before fusion.

PyTensor drops a ``Sum`` over an axis of static length 1 (``local_reduce_broadcastable``)
during canonicalisation and specialisation. In PyMC's ADVI step the draws of the
mean-field approximation have shape ``(1, n)`` (one Monte Carlo sample), and the gradient
with respect to the ``(n,)`` variational parameters sums over that axis; the length-one
shape is only known after specialisation, so the ``Sum`` stayed: with float64
accumulation it costs a full pass over the 1.3 M parameters of a Bayesian MLP (0.8 ms of
a 26 ms step). The rewrite here runs the same PyTensor rewrite once more, just before
elementwise fusion, under the tag ``plasagne_late_reduce_broadcastable``, which
:func:`plasagne.ops.fast_math.fast_math_mode` includes for Numba.

Examples
--------
>>> import numpy as np, pytensor, pytensor.tensor as pt
>>> from pytensor.compile.mode import get_mode
>>> x = pt.tensor("x", shape=(1, 3), dtype="float32")
>>> mode = get_mode("FAST_RUN").including(LATE_REDUCE_TAG)
>>> f = pytensor.function([x], x.sum(axis=0, acc_dtype="float64"), mode=mode)
>>> f(np.ones((1, 3), dtype="float32")).tolist()
[1.0, 1.0, 1.0]
"""

from __future__ import annotations

from pytensor.compile import optdb
from pytensor.graph.rewriting.basic import dfs_rewriter
from pytensor.tensor.rewriting.math import local_reduce_broadcastable

__all__ = ["LATE_REDUCE_TAG"]

LATE_REDUCE_TAG = "plasagne_late_reduce_broadcastable"

# after specialisation, before elementwise fusion (49)
optdb.register(
    "plasagne_reduce_broadcastable_before_fusion",
    dfs_rewriter(local_reduce_broadcastable),
    LATE_REDUCE_TAG,
    position=48.6,
)
