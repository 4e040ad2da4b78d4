"""Keep JAX-compiled graphs in the dtypes PyTensor declared for them.

PyTensor's JAX backend turns 0-d constants into Python scalars and runs JAX with 64-bit
types enabled, so some of its kernels compute in float64 inside a float32 graph: a
``Switch`` or an ``Alloc`` of a scalar constant (``jnp.where(c, 3.0, 1.0)`` is float64),
and a ``Sum`` that accumulates in float64 (``acc_dtype``) is not cast back. The float64
values then spread through everything downstream: float32 fits do part of their work in
float64, functions return float64 arrays where the graph says float32, and JAX warns that
scattering them into float32 buffers will become an error. :func:`keep_declared_dtypes`
wraps the JAX kernels of those Ops so that each output is cast to its declared dtype
(a cast only where the dtypes differ, decided when JAX traces the graph).

With 64-bit types off (NumPyro turns them off when imported), the same kernels ask JAX
for float64 or int64 (``astype(acc_dtype)``) and JAX warns, at every trace, that it keeps
32 bits; since the wrapper casts to the 32-bit canonical dtype anyway, those warnings are
silenced inside the wrapped kernels (only there, and only that message).
"""

from __future__ import annotations

import warnings
from typing import Any

__all__ = ["keep_declared_dtypes"]

_WRAPPED = False
# what JAX says when a 64-bit dtype is requested with 64-bit types off
TRUNCATION_WARNING = r"Explicitly requested dtype \w+ requested in astype is not available"


def _cast_outputs(kernel: Any, node: Any) -> Any:
    from jax.dtypes import canonicalize_dtype

    declared = [getattr(out.type, "dtype", None) for out in node.outputs]

    def cast(value: Any, dtype: str | None) -> Any:
        have = getattr(value, "dtype", None)
        if dtype is None or have is None:
            return value
        # with 64-bit types off (as NumPyro sets them), JAX keeps 32 bits of a 64-bit dtype
        target = canonicalize_dtype(dtype)
        return value if have == target else value.astype(target)

    def kernel_in_declared_dtypes(*args: Any) -> Any:
        with warnings.catch_warnings():
            warnings.filterwarnings("ignore", TRUNCATION_WARNING, UserWarning)
            out = kernel(*args)
        if isinstance(out, (tuple, list)):
            return type(out)(cast(v, d) for v, d in zip(out, declared))
        return cast(out, declared[0])

    return kernel_in_declared_dtypes


def keep_declared_dtypes() -> bool:
    """Make the JAX kernels of ``Elemwise``, ``CAReduce``, scalar Ops, ``Alloc`` and
    ``Argmax`` return their declared dtypes; once per process, a no-op without JAX.

    Returns
    -------
    bool
        Whether the kernels are wrapped (False when JAX is not installed).

    Examples
    --------
    >>> import numpy as np, pytensor, pytensor.tensor as pt
    >>> keep_declared_dtypes()
    True
    >>> x = pt.vector("x", dtype="float32")
    >>> f = pytensor.function([x], pt.switch(x > 0, 3.0, 1.0).sum(), mode="JAX")
    >>> str(f(np.ones(3, dtype="float32")).dtype)
    'float32'
    """
    global _WRAPPED
    if _WRAPPED:
        return True
    try:
        import jax  # noqa: F401
        from pytensor.link.jax.dispatch import jax_funcify
    except ImportError:
        return False
    from pytensor.scalar.basic import ScalarOp
    from pytensor.tensor.basic import Alloc
    from pytensor.tensor.elemwise import CAReduce, Elemwise
    from pytensor.tensor.math import Argmax

    for op_type in (Elemwise, CAReduce, ScalarOp, Alloc, Argmax):
        original = jax_funcify.dispatch(op_type)

        def funcify(op: Any, node: Any = None, _original: Any = original, **kwargs: Any) -> Any:
            kernel = _original(op, node=node, **kwargs)
            return kernel if node is None else _cast_outputs(kernel, node)

        jax_funcify.register(op_type)(funcify)
    _WRAPPED = True
    return True
