"""Short SIMD vectors as Numba values, for register-blocked kernels.

Numba compiles a loop over a small local array as loads and stores to the stack, so a
matrix-product kernel whose accumulators should live in registers does not stay there
(a first register-blocked product for 32 filters ran at 42 GFLOP/s on one core against
OpenBLAS's 97). :class:`Vec` is an LLVM vector (``<16 x float>``) as a Numba value; a
kernel written with these few intrinsics holds each accumulator in one register, and LLVM
emits one fused multiply-add instruction per :func:`vfma` (154 GFLOP/s on one core of
the machine in docs/performance.md, 93% of its peak, for a ``4000 x 800 @ 800 x 32``
product).

- :func:`vzero` and :func:`vsplat_at` make a vector (zeros; one array element in every
  lane);
- :func:`vload` and :func:`vstore` move ``lanes`` consecutive elements of a contiguous
  array from or to a flat index;
- :func:`vfma` is ``a * b + c`` lane by lane, :func:`vadd` ``a + b``.

Indices are flat element offsets into the array's data, unchecked (no bounds check, no
negative wraparound): the kernels that use them prove their indices in range.
:func:`vector_lanes` says how many elements of a dtype fill one register of this
machine (64 bytes with AVX-512, 32 with AVX2, 16 otherwise), :func:`vector_registers`
how many registers there are (32 with AVX-512, else 16).

Examples
--------
>>> import numba, numpy as np
>>> @numba.njit
... def axpy(a, x, y):
...     for i in range(0, x.size, 4):
...         vstore(y, i, vfma(vsplat_at(a, 0, 4), vload(x, i, 4), vload(y, i, 4)))
>>> y = np.ones(8, np.float32)
>>> axpy(np.array([2.0], np.float32), np.arange(8, dtype=np.float32), y)
>>> y.tolist()
[1.0, 3.0, 5.0, 7.0, 9.0, 11.0, 13.0, 15.0]
"""

from __future__ import annotations

from functools import cache
from typing import Any

from llvmlite import ir
from numba import types
from numba.core import cgutils
from numba.extending import intrinsic, models, register_model

__all__ = [
    "Vec",
    "vzero",
    "vsplat_at",
    "vload",
    "vstore",
    "vfma",
    "vadd",
    "vector_lanes",
    "vector_registers",
    "loads_source",
    "fma_source",
    "accumulate_source",
    "intrinsics",
]


class Vec(types.Type):
    """A vector of ``lanes`` values of the Numba scalar type ``dtype``.

    Examples
    --------
    >>> from numba import types
    >>> Vec(types.float32, 16).name
    'Vec(float32 x 16)'
    """

    def __init__(self, dtype: Any, lanes: int) -> None:
        self.dtype = dtype
        self.lanes = lanes
        super().__init__(name=f"Vec({dtype} x {lanes})")


@register_model(Vec)
class _VecModel(models.PrimitiveModel):
    def __init__(self, dmm: Any, fe_type: Vec) -> None:
        element = dmm.lookup(fe_type.dtype).get_value_type()
        super().__init__(dmm, fe_type, ir.VectorType(element, fe_type.lanes))


def _element_pointer(context: Any, builder: Any, array_type: Any, array: Any, index: Any) -> Any:
    data = context.make_array(array_type)(context, builder, array).data
    return builder.gep(data, [index])


def _from_array(array: Any, index: Any, lanes: Any, make: Any) -> Any:
    """Typing and code of an intrinsic ``(array, flat index, literal lanes) -> vector``
    whose value ``make(builder, element pointer, vector type)`` builds (None until
    ``lanes`` is a literal: Numba then retries with literals)."""
    if not isinstance(lanes, types.IntegerLiteral):
        return None
    vector = Vec(array.dtype, lanes.literal_value)

    def codegen(context, builder, sig, args):
        pointer = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        return make(builder, pointer, context.get_value_type(vector))

    return vector(array, index, lanes), codegen


def _splat(builder: Any, vector_type: Any, value: Any) -> Any:
    lanes = vector_type.count
    one = builder.insert_element(
        ir.Constant(vector_type, ir.Undefined), value, ir.Constant(ir.IntType(32), 0)
    )
    mask = ir.Constant(ir.VectorType(ir.IntType(32), lanes), [0] * lanes)
    return builder.shuffle_vector(one, one, mask)


@intrinsic
def vload(typingctx: Any, array: Any, index: Any, lanes: Any) -> Any:
    """``lanes`` elements of contiguous ``array`` from flat ``index`` (a literal ``lanes``).

    Examples
    --------
    >>> import numba, numpy as np
    >>> numba.njit(lambda a: vstore(a, 0, vload(a, 4, 4)))(a := np.arange(8.0))
    >>> a.tolist()
    [4.0, 5.0, 6.0, 7.0, 4.0, 5.0, 6.0, 7.0]
    """

    def load(builder, pointer, vector_type):
        return builder.load(builder.bitcast(pointer, vector_type.as_pointer()), align=1)

    return _from_array(array, index, lanes, load)


@intrinsic
def vstore(typingctx: Any, array: Any, index: Any, value: Any) -> Any:
    """Store vector ``value`` into contiguous ``array`` from flat ``index``.

    Examples
    --------
    >>> import numba, numpy as np
    >>> numba.njit(lambda a: vstore(a, 2, vsplat_at(a, 0, 2)))(a := np.array([7.0, 0, 0, 0]))
    >>> a.tolist()
    [7.0, 0.0, 7.0, 7.0]
    """
    signature = types.void(array, index, value)

    def codegen(context, builder, sig, args):
        pointer = _element_pointer(context, builder, sig.args[0], args[0], args[1])
        builder.store(args[2], builder.bitcast(pointer, args[2].type.as_pointer()), align=1)
        return context.get_dummy_value()

    return signature, codegen


@intrinsic
def vsplat_at(typingctx: Any, array: Any, index: Any, lanes: Any) -> Any:
    """Element ``index`` (flat) of ``array`` in each of ``lanes`` lanes.

    Examples
    --------
    >>> import numba, numpy as np
    >>> numba.njit(lambda a: vstore(a, 0, vsplat_at(a, 3, 4)))(a := np.arange(4.0))
    >>> a.tolist()
    [3.0, 3.0, 3.0, 3.0]
    """

    def splat(builder, pointer, vector_type):
        return _splat(builder, vector_type, builder.load(pointer))

    return _from_array(array, index, lanes, splat)


@intrinsic
def vzero(typingctx: Any, like: Any, lanes: Any) -> Any:
    """A vector of ``lanes`` zeros of the scalar type of ``like`` (a scalar).

    Examples
    --------
    >>> import numba, numpy as np
    >>> numba.njit(lambda a: vstore(a, 0, vzero(a[0], 2)))(a := np.ones(2))
    >>> a.tolist()
    [0.0, 0.0]
    """
    if not isinstance(lanes, types.IntegerLiteral):
        return None
    vector = Vec(like, lanes.literal_value)
    signature = vector(like, lanes)

    def codegen(context, builder, sig, args):
        vector_type = context.get_value_type(vector)
        return ir.Constant(vector_type, [ir.Constant(vector_type.element, 0.0)] * vector.lanes)

    return signature, codegen


@intrinsic
def vfma(typingctx: Any, a: Any, b: Any, c: Any) -> Any:
    """``a * b + c`` in each lane, one fused multiply-add (``llvm.fma``).

    Examples
    --------
    >>> import numba, numpy as np
    >>> @numba.njit
    ... def f(a):
    ...     v = vload(a, 0, 2)
    ...     vstore(a, 0, vfma(v, v, v))
    >>> f(a := np.array([2.0, 3.0]))
    >>> a.tolist()
    [6.0, 12.0]
    """
    signature = c(a, b, c)

    def codegen(context, builder, sig, args):
        vector_type = args[0].type
        suffix = "f32" if vector_type.element == ir.FloatType() else "f64"
        function = cgutils.get_or_insert_function(
            builder.module,
            ir.FunctionType(vector_type, [vector_type] * 3),
            f"llvm.fma.v{vector_type.count}{suffix}",
        )
        return builder.call(function, list(args))

    return signature, codegen


@intrinsic
def vadd(typingctx: Any, a: Any, b: Any) -> Any:
    """``a + b`` in each lane.

    Examples
    --------
    >>> import numba, numpy as np
    >>> numba.njit(lambda a: vstore(a, 0, vadd(vload(a, 0, 2), vload(a, 2, 2))))(
    ...     a := np.arange(4.0))
    >>> a.tolist()
    [2.0, 4.0, 2.0, 3.0]
    """
    signature = a(a, b)

    def codegen(context, builder, sig, args):
        return builder.fadd(args[0], args[1])

    return signature, codegen


@cache
def vector_lanes(itemsize: int) -> int:
    """How many elements of ``itemsize`` bytes fill one vector register of this machine.

    Examples
    --------
    >>> vector_lanes(4) in (4, 8, 16)
    True
    """
    import llvmlite.binding as llvm

    features = llvm.get_host_cpu_features()
    width = 64 if features.get("avx512f") else 32 if features.get("avx2") else 16
    return width // itemsize


@cache
def vector_registers() -> int:
    """How many vector registers this machine has (32 with AVX-512, else 16): how many
    accumulators a register tile may hold.

    Examples
    --------
    >>> vector_registers() in (16, 32)
    True
    """
    import llvmlite.binding as llvm

    return 32 if llvm.get_host_cpu_features().get("avx512f") else 16


# Source snippets for generated register tiles (accumulators are local variables, so a
# tile's code is written out for its size)


def loads_source(array: str, loads: list[tuple[str, str]], lanes: int) -> str:
    """One line loading each ``(name, flat index)`` of ``array`` as a vector.

    Examples
    --------
    >>> loads_source("w", [("w0", "k"), ("w1", "k + 16")], 16)
    'w0 = vload(w, k, 16); w1 = vload(w, k + 16, 16)'
    """
    return "; ".join(f"{name} = vload({array}, {index}, {lanes})" for name, index in loads)


def fma_source(indent: str, factor: str, value: str, updates: list[tuple[str, str]]) -> str:
    """One line: ``factor = value``, then ``acc = vfma(factor, other, acc)`` per
    ``(acc, other)`` of ``updates``.

    Examples
    --------
    >>> fma_source("", "s", "vsplat_at(x, 0, 4)", [("a0", "w0")])
    's = vsplat_at(x, 0, 4); a0 = vfma(s, w0, a0)'
    """
    multiply_adds = "; ".join(f"{acc} = vfma({factor}, {other}, {acc})" for acc, other in updates)
    return f"{indent}{factor} = {value}; {multiply_adds}"


def accumulate_source(array: str, targets: list[tuple[str, str]], lanes: int) -> str:
    """Lines (one level indented) adding each ``(accumulator, flat index)`` of ``targets``
    into ``array``.

    Examples
    --------
    >>> print(accumulate_source("out", [("a0", "8")], 8))
        i = 8
        vstore(out, i, vadd(vload(out, i, 8), a0))
    """
    return "\n".join(
        f"    i = {index}\n    vstore({array}, i, vadd(vload({array}, i, {lanes}), {name}))"
        for name, index in targets
    )


def intrinsics() -> dict[str, Any]:
    """The intrinsics by name: the globals of generated tile source.

    Examples
    --------
    >>> sorted(intrinsics())
    ['vadd', 'vfma', 'vload', 'vsplat_at', 'vstore', 'vzero']
    """
    return {"vadd": vadd, "vfma": vfma, "vload": vload, "vsplat_at": vsplat_at} | {
        "vstore": vstore,
        "vzero": vzero,
    }
