"""Matrix products on Numba as one BLAS call written into the node's function.

PyTensor lowers ``Dot`` on Numba to a general product that handles every layout and
stride (matrix-vector fallbacks, stride normalisation, error messages), and compiles it
again for each combination of operand types: on a cold compile of the Bayesian CNN's
step its three products took 3.6 s, 0.8 s each in the general product alone (Numba's
compile events, 2026-12-06).

While :class:`plasagne.ops.numba_linker.DirectNumbaLinker` converts a graph
(:func:`plasagne.ops.lowering_scope.plasagne_lowerings`), a product of two matrices
whose dtypes and result's are all float32 or all float64 is lowered to a short function:
it checks the inner lengths, allocates a C-contiguous result, copies an operand that is
neither C- nor F-contiguous, and calls BLAS's ``gemm`` through Numba's own BLAS entry
(``numba_xxgemm``, SciPy's BLAS, as Numba's ``np.dot`` and PyTensor's product use) from
an intrinsic, so no general product is compiled. Row-major ``X @ Y`` is BLAS's
column-major ``Y^T X^T``: a C-contiguous operand goes in as it is, an F-contiguous one
transposed. Other products keep PyTensor's lowering.

Examples
--------
>>> gemm_operand("C", (4, 3))
('n', 3)
>>> gemm_operand("F", (4, 3))
('t', 4)
"""

from __future__ import annotations

from functools import cache
from hashlib import sha256
from typing import Any

from .lowering_scope import register_lowering

__all__ = ["gemm_operand", "register_numba"]

# changes the cache key of every product lowered here
_KERNEL_VERSION = 1


def gemm_operand(layout: str, shape: tuple[Any, Any]) -> tuple[str, Any]:
    """BLAS's transpose flag and leading dimension for a row-major product's operand.

    ``X @ Y`` into a C-contiguous result is computed as the column-major product
    ``Y^T X^T``; a C-contiguous operand's memory already is its transpose in column-major
    order, an F-contiguous one's is the operand itself.

    Parameters
    ----------
    layout : str
        ``"C"`` or ``"F"``.
    shape : tuple
        The operand's (rows, columns): ints, or the LLVM values holding them.

    Returns
    -------
    tuple
        ``("n" or "t", leading dimension)``.

    Examples
    --------
    >>> gemm_operand("C", (2, 5))
    ('n', 5)
    """
    rows, columns = shape
    return ("n", columns) if layout == "C" else ("t", rows)


@cache
def _gemm_intrinsic() -> Any:
    """``gemm_into(x, y, out)``: out = x @ y for C/F matrices into a C-contiguous out."""
    from llvmlite import ir
    from numba.core import cgutils, types
    from numba.extending import intrinsic

    byte = ir.IntType(8)
    pointer = ir.IntType(8).as_pointer()

    @intrinsic
    def gemm_into(typingctx: Any, x: Any, y: Any, out: Any) -> Any:
        arrays = (x, y, out)
        if not all(isinstance(a, types.Array) and a.ndim == 2 for a in arrays):
            return None
        if len({a.dtype for a in arrays}) != 1 or str(x.dtype) not in ("float32", "float64"):
            return None
        if x.layout not in "CF" or y.layout not in "CF" or out.layout != "C":
            return None
        kind = "s" if str(x.dtype) == "float32" else "d"

        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            x_type, y_type, out_type = signature.args
            intp = context.get_value_type(types.intp)
            views = [
                context.make_array(t)(context, builder, a)
                for t, a in zip(signature.args, args, strict=True)
            ]
            m, k = cgutils.unpack_tuple(builder, views[0].shape, 2)
            _, n = cgutils.unpack_tuple(builder, views[1].shape, 2)

            def operand(array_type: Any, view: Any, rows: Any, columns: Any) -> tuple:
                flag, leading = gemm_operand(array_type.layout, (rows, columns))
                return byte(ord(flag)), leading, builder.bitcast(view.data, pointer)

            trans_a, lda, data_a = operand(y_type, views[1], k, n)
            trans_b, ldb, data_b = operand(x_type, views[0], m, k)
            data_c = builder.bitcast(views[2].data, pointer)
            dtype = x_type.dtype
            alpha = cgutils.alloca_once_value(builder, context.get_constant(dtype, 1.0))
            beta = cgutils.alloca_once_value(builder, context.get_constant(dtype, 0.0))
            function_type = ir.FunctionType(
                ir.IntType(32),
                [byte, byte, byte, intp, intp, intp]
                + [pointer, pointer, intp, pointer, intp, pointer, pointer, intp],
            )
            gemm = cgutils.get_or_insert_function(builder.module, function_type, "numba_xxgemm")
            status = builder.call(
                gemm,
                (
                    byte(ord(kind)),
                    trans_a,
                    trans_b,
                    n,
                    m,
                    k,
                    builder.bitcast(alpha, pointer),
                    data_a,
                    lda,
                    data_b,
                    ldb,
                    builder.bitcast(beta, pointer),
                    data_c,
                    n,
                ),
            )
            failed = builder.icmp_signed("!=", status, ir.Constant(status.type, 0))
            with builder.if_then(failed, likely=False):
                context.call_conv.return_user_exc(
                    builder, RuntimeError, ("BLAS gemm failed (no usable SciPy BLAS?)",)
                )
            return context.get_dummy_value()

        return types.none(x, y, out), codegen

    return gemm_into


@cache
def _blas_operand() -> Any:
    """``as_blas_operand(a)``: ``a`` itself when typed C or F, else a C-contiguous copy."""
    import numpy as np
    from numba.core import types
    from numba.extending import overload

    # no annotations: Numba compares the overload's parameters with these
    def as_blas_operand(a):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        return a

    @overload(as_blas_operand)
    def typed(a):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        if isinstance(a, types.Array) and a.layout in "CF":
            return lambda a: a
        return lambda a: np.ascontiguousarray(a)

    return as_blas_operand


def _lowerable(node: Any) -> bool:
    x, y = node.inputs
    dtypes = {x.type.dtype, y.type.dtype, node.outputs[0].type.dtype}
    return x.type.ndim == y.type.ndim == 2 and len(dtypes) == 1 and dtypes <= {"float32", "float64"}


def _lower(op: Any, node: Any) -> tuple[Any, str]:
    """The njit product for the Dot ``op`` of ``node``, and its cache key."""
    import numpy as np
    from pytensor.link.numba.dispatch import basic as numba_basic

    gemm_into = _gemm_intrinsic()
    as_blas_operand = _blas_operand()
    dtype = np.dtype(node.outputs[0].type.dtype)

    @numba_basic.numba_njit
    def blas_dot(x, y):  # type: ignore[no-untyped-def]  # noqa: ANN001, ANN202
        m, k = x.shape
        if y.shape[0] != k:
            raise ValueError("Dot: the inner lengths of the matrices differ")
        if m == 0 or y.shape[1] == 0 or k == 0:
            return np.zeros((m, y.shape[1]), dtype=dtype)
        out = np.empty((m, y.shape[1]), dtype=dtype)
        gemm_into(as_blas_operand(x), as_blas_operand(y), out)
        return out

    key = sha256(str(("plasagne-blas-dot", _KERNEL_VERSION, dtype.name)).encode())
    return blas_dot, key.hexdigest()


def _lower_node(op: Any, node: Any) -> tuple[Any, str] | None:
    """The BLAS product for a float matrix product of one dtype, or None."""
    return _lower(op, node) if _lowerable(node) else None


def register_numba() -> None:
    """Register the BLAS lowering of matrix products with PyTensor's Numba dispatch
    (once; it applies only inside
    :func:`plasagne.ops.lowering_scope.plasagne_lowerings`).

    Examples
    --------
    >>> from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    >>> from pytensor.tensor.math import Dot
    >>> register_numba()
    >>> numba_funcify_and_cache_key.dispatch(Dot).__name__
    'lower_under_plasagne_linker'
    """
    from pytensor.tensor.math import Dot

    register_lowering(Dot, _lower_node)
