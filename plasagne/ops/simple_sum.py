"""Sums lowered to plain loops on Numba: quick to compile, for the small sums of a step.

PyTensor's Numba lowering of a reduction (``CAReduce``) orders its loops by the input's
strides at run time, which makes each sum a large function: it sorts the strides
(``np.argsort``, whose quicksort Numba compiles on first use), formats shapes into error
messages and hashes. On a cold compile of the Bayesian CNN's step the first of its three
sums took 4.1 s of compiling, most of it in those helpers, for sums of 500 x 10 arrays
(the big reductions of a step are fused into elementwise loops and lowered elsewhere).

While :class:`plasagne.ops.numba_linker.DirectNumbaLinker` converts a graph
(:func:`plasagne.ops.lowering_scope.plasagne_lowerings`), ``Sum`` nodes with real
dtypes, including the scalar-output reductions PyTensor's scalarize rewrites make
(``ScalarCAReduce``), are lowered to one loop nest over the input in its logical order,
accumulating in the Op's accumulator dtype into a zeroed result. Other reductions,
complex dtypes and every other linker keep PyTensor's lowering. The loops read a
non-C-contiguous input with strides, which costs nothing for small arrays and is still
correct for large ones.

Examples
--------
>>> print(sum_source(ndim=2, axes=(1,), acc_dtype="float64", out_dtype="float32",
...                  scalar_out=False))
def plasagne_sum(x):
    s = x.shape
    res = np.zeros((s[0],), dtype=np.float64)
    for l0 in range(s[0]):
        for l1 in range(s[1]):
            res[l0] += x[l0, l1]
    return res.astype(np.float32)
"""

from __future__ import annotations

from hashlib import sha256
from typing import Any

import numpy as np

from .lowering_scope import register_lowering

__all__ = ["register_numba", "sum_source"]

# changes the cache key of every sum lowered here
_KERNEL_VERSION = 1


def sum_source(
    *, ndim: int, axes: tuple[int, ...], acc_dtype: str, out_dtype: str, scalar_out: bool
) -> str:
    """Python source of the loop nest summing an ``ndim``-dimensional array over ``axes``.

    Parameters
    ----------
    ndim : int
        The input's number of dimensions.
    axes : tuple of int
        The summed axes (non-negative, each once).
    acc_dtype, out_dtype : str
        The dtype sums accumulate in, and the result's dtype.
    scalar_out : bool
        For a full sum: return a scalar of ``out_dtype`` instead of a 0-d array.

    Returns
    -------
    str
        The source of ``plasagne_sum(x)``.

    Examples
    --------
    >>> print(sum_source(ndim=1, axes=(0,), acc_dtype="float32", out_dtype="float32",
    ...                  scalar_out=True))
    def plasagne_sum(x):
        s = x.shape
        res = np.float32(0)
        for l0 in range(s[0]):
            res += x[l0]
        return np.float32(res)
    """
    kept = [i for i in range(ndim) if i not in axes]
    lines = ["def plasagne_sum(x):", "    s = x.shape"]
    if kept:
        shape = ", ".join(f"s[{i}]" for i in kept) + ("," if len(kept) == 1 else "")
        lines.append(f"    res = np.zeros(({shape}), dtype=np.{acc_dtype})")
        target = "res[" + ", ".join(f"l{i}" for i in kept) + "]"
    else:
        lines.append(f"    res = np.{acc_dtype}(0)")
        target = "res"
    indent = "    "
    for i in range(ndim):
        lines.append(f"{indent}for l{i} in range(s[{i}]):")
        indent += "    "
    element = "x[" + ", ".join(f"l{i}" for i in range(ndim)) + "]" if ndim else "x[()]"
    lines.append(f"{indent}{target} += {element}")
    if kept:
        result = "res" if acc_dtype == out_dtype else f"res.astype(np.{out_dtype})"
    elif scalar_out:
        result = f"np.{out_dtype}(res)"
    else:
        result = f"np.array(res, dtype=np.{out_dtype})"
    lines.append(f"    return {result}")
    return "\n".join(lines)


def _lowerable(op: Any, node: Any) -> bool:
    from pytensor.tensor.math import Sum

    if not isinstance(op, Sum):
        return False
    dtypes = [node.inputs[0].type.dtype, node.outputs[0].type.dtype, _acc_dtype(op, node)]
    return all(np.dtype(d).kind in "biuf" for d in dtypes)


def _acc_dtype(op: Any, node: Any) -> str:
    acc = getattr(op, "acc_dtype", None)
    return str(acc) if acc is not None else node.outputs[0].type.dtype


def _lower(op: Any, node: Any, scalar_out: bool) -> tuple[Any, str]:
    """The njit loop nest for the Sum ``op`` of ``node``, and its cache key."""
    from pytensor.link.numba.dispatch import basic as numba_basic

    ndim = node.inputs[0].type.ndim
    axes = tuple(range(ndim)) if op.axis is None else tuple(sorted(op.axis))
    settings = {
        "ndim": ndim,
        "axes": axes,
        "acc_dtype": _acc_dtype(op, node),
        "out_dtype": node.outputs[0].type.dtype,
        "scalar_out": scalar_out,
    }
    source = sum_source(**settings)
    scope: dict[str, Any] = {"np": np}
    exec(compile(source, "<plasagne sum>", "exec"), scope)
    kernel = numba_basic.numba_njit(boundscheck=False)(scope["plasagne_sum"])
    key = sha256(str(("plasagne-sum", _KERNEL_VERSION, sorted(settings.items()))).encode())
    return kernel, key.hexdigest()


def _lower_node(op: Any, node: Any) -> tuple[Any, str] | None:
    """The loop nest for a ``Sum`` node or the ``Sum`` inside a ``ScalarCAReduce`` node,
    or None (PyTensor's lowering) for other reductions and dtypes."""
    from pytensor.tensor.math import Sum

    if isinstance(op, Sum):
        return _lower(op, node, scalar_out=False) if _lowerable(op, node) else None
    inner = next((n for n in op.fgraph.apply_nodes if isinstance(n.op, Sum)), None)
    if inner is None or not _lowerable(inner.op, inner):
        return None
    return _lower(inner.op, inner, scalar_out=True)


def register_numba() -> None:
    """Register the loop-nest lowering of sums with PyTensor's Numba dispatch (once;
    it applies only inside :func:`plasagne.ops.lowering_scope.plasagne_lowerings`).

    Examples
    --------
    >>> from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    >>> from pytensor.tensor.math import Sum
    >>> register_numba()
    >>> numba_funcify_and_cache_key.dispatch(Sum).__name__
    'lower_under_plasagne_linker'
    """
    from pytensor.tensor.math import Sum
    from pytensor.tensor.rewriting.scalarize import ScalarCAReduce

    register_lowering(Sum, _lower_node)
    register_lowering(ScalarCAReduce, _lower_node)
