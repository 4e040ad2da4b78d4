"""Bit casts between float64 and 64-bit integers for Numba kernels (LLVM ``bitcast``).

The fast float32 kernels (:mod:`plasagne.ops.fast_math`) and the counter-based normal
draws (:mod:`plasagne.ops.fast_random`) read exponents and mantissas from the bits of a
float64 and build powers of two from bits; Numba has no vectorisable way to do that, so
these intrinsics emit LLVM's ``bitcast`` directly. Numba is imported only when called.

Examples
--------
>>> import numba, numpy as np
>>> from_bits, to_bits = make_bit_casts(signed=True)
>>> bool(numba.njit(lambda x: to_bits(x))(1.0) == np.float64(1.0).view(np.int64))
True
"""

from __future__ import annotations

from typing import Any

__all__ = ["make_bit_casts"]


def make_bit_casts(signed: bool) -> tuple[Any, Any]:
    """Numba intrinsics ``(float64_from_bits, bits_of_float64)`` for int64 or uint64 bits.

    Parameters
    ----------
    signed : bool
        True for ``int64`` bits, False for ``uint64``.

    Returns
    -------
    tuple
        ``float64_from_bits(bits) -> float64`` and ``bits_of_float64(x) -> bits``, usable
        inside ``numba.njit`` functions.

    Examples
    --------
    >>> import numba, numpy as np
    >>> from_bits, to_bits = make_bit_casts(signed=False)
    >>> numba.njit(lambda b: from_bits(b))(np.uint64(0x3FF0000000000000))
    1.0
    """
    from llvmlite import ir
    from numba.core import types
    from numba.extending import intrinsic

    integer = types.int64 if signed else types.uint64

    @intrinsic
    def float64_from_bits(typingctx: Any, bits: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.DoubleType())

        return types.float64(integer), codegen

    @intrinsic
    def bits_of_float64(typingctx: Any, value: Any) -> Any:
        def codegen(context: Any, builder: Any, signature: Any, args: Any) -> Any:
            return builder.bitcast(args[0], ir.IntType(64))

        return integer(types.float64), codegen

    return float64_from_bits, bits_of_float64
