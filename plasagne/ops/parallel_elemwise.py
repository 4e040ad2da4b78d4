"""Elementwise loops with fast float kernels on both cores, on Numba.

An ADVI step's elementwise work over the flat parameter vectors ran on one core while the
other waited: PyTensor lowers an ``Elemwise`` to one serial loop. Loops bound by memory
gain nothing from a second thread here (an Adam-like update of 2.6 M float32 numbers:
4.0 ms serial, 4.4 ms on two threads), but loops that evaluate
:mod:`plasagne.ops.fast_math`'s kernels (``softplus``, ``sigmoid``, ``tanh``, ``exp``,
``log``) are bound by arithmetic: in the Bayesian MLP's step the ``softplus`` of the 1.3 M
``rho`` parameters took 2.4-2.9 ms, the entropy's sum of their ``log`` 3.5 ms and the
update loop with its ``sigmoid`` 3.2 ms.

While :class:`plasagne.ops.numba_linker.DirectNumbaLinker` converts a graph
(:mod:`plasagne.ops.lowering_scope`), such a loop is lowered to a ``prange`` loop over
blocks of the flattened arrays, or of the leading axis when an input is broadcast on
some axes only (a hidden layer's bias), behind a C call (:mod:`plasagne.ops.opaque_calls`;
serial in a forked child). Each block runs PyTensor's own vectorised loop on its slices.
It applies to an ``Elemwise``, a ``ScalarizedElemwise`` (PyTensor's Elemwise with native
scalar inputs) and a ``FusedElemwise`` whose outputs are elementwise or sums over all
their elements, at least one a sum (each block sums its part in the accumulator dtype,
then the blocks' sums are added), or elementwise and sums over every axis but axis 1 (a
convolution's bias gradient with the activation's gradient; blocks of axis 0, each
adding its part of every channel's sum, full inputs only), when:

- the scalar Op holds a fast kernel, or the loop is elementwise only (no sums, or sums
  that keep axis 1) over at least :data:`MIN_MEMORY_BOUND_SIZE` elements known from the
  graph (bound by memory, it gains a little: a parameter vector's ``mu + sigma * eps``;
  the CNN's first bias gradient, 1.97 -> 1.17 ms); every input and output is real or
  boolean;
- some array input has the loop's broadcast pattern (a full input); the others are
  full, single numbers, or broadcast on some axes (then the blocks are of the output's
  leading axis, which must not be broadcast; not for sums);
- the loop is not known to be small (fewer than :data:`MIN_PARALLEL_SIZE` elements);
- kernels may run parallel (:func:`plasagne.ops.blas_threads.parallel_kernels`).

Every axis an input does not broadcast must have the output's length (a ``ValueError``
otherwise); inputs are made C-contiguous (a copy only for strided views); outputs that
PyTensor allows in place overwrite their input. The loop calls the scalar function
PyTensor's lowering calls (results agree within a float32 ulp: LLVM may contract
differently); sums are added in another order. Other nodes keep PyTensor's lowering.

Examples
--------
>>> import pytensor.tensor as pt
>>> lowerable(pt.exp(pt.vector("x", dtype="float32", shape=(1000,))).owner)  # small
False
>>> lowerable((pt.vector("x", dtype="float32", shape=(2**20,)) * 2).owner)  # long
True
"""

from __future__ import annotations

from dataclasses import dataclass
from hashlib import sha256
from typing import Any

import numpy as np

from .lowering_scope import register_lowering

__all__ = ["MIN_PARALLEL_SIZE", "caller_source", "loop_source", "lowerable", "register_numba"]

#: Loops known to run over fewer elements than this keep PyTensor's serial loop.
MIN_PARALLEL_SIZE = 2**16

#: Elementwise loops without fast kernels (bound by memory) run on both cores only from
#: this many elements, known from the graph (a parameter vector's ``mu + sigma * eps``).
MIN_MEMORY_BOUND_SIZE = 2**20

# elements per block at least, and blocks at most (two threads, some balance)
_MIN_BLOCK = 2**14
_MAX_BLOCKS = 8

_KERNEL_VERSION = 7

_DTYPES = frozenset(
    ["bool", "float32", "float64"] + [f"{s}int{b}" for s in ("", "u") for b in (8, 16, 32, 64)]
)


@dataclass(frozen=True)
class _Loop:
    """What the lowering of one node needs: its Elemwise, input kinds and reductions."""

    elemwise: Any  # the Elemwise node (the node itself, or the one inside a fused Op)
    kinds: tuple[str, ...]  # per input: "full", "one", "part" (broadcast on some axes), "number"
    reduced: tuple[str | None, ...] | None  # per output: a sum's accumulator dtype or None
    rows: bool  # blocks of rows of N-d arrays (some input is broadcast on some axes only)
    channels: bool = False  # the sums keep axis 1 (a convolution's bias gradient)


def _holds_fast_kernel(scalar_op: Any) -> bool:
    from pytensor.scalar.basic import Composite

    from .fast_math import _FAST_SCALAR_OPS

    if isinstance(scalar_op, Composite):
        return any(isinstance(n.op, _FAST_SCALAR_OPS) for n in scalar_op.fgraph.apply_nodes)
    return isinstance(scalar_op, _FAST_SCALAR_OPS)


def _input_kinds(node: Any, elemwise: Any) -> tuple[str, ...] | None:
    """``"full"``, ``"one"``, ``"part"`` or ``"number"`` per input of ``node``, or None
    when no input has the loop's broadcast pattern."""
    from pytensor.scalar.basic import ScalarType

    pattern = elemwise.outputs[0].type.broadcastable
    kinds = []
    for variable in node.inputs:
        if isinstance(variable.type, ScalarType):
            kinds.append("number")
        elif variable.type.broadcastable == pattern:
            kinds.append("full")
        elif all(variable.type.broadcastable):
            kinds.append("one")
        else:
            kinds.append("part")
    return tuple(kinds) if "full" in kinds else None


def _full_sums(op: Any, elemwise: Any) -> tuple[str | None, ...] | None:
    """Per output of a FusedElemwise, the accumulator dtype of a sum over every axis that
    is not broadcast, or None for an elementwise output; None when some output is another
    reduction, or none is a sum."""
    from pytensor.scalar.basic import Add

    if op.indexed_inputs or op.indexed_outputs or not any(op.reduced_outputs or ()):
        return None
    dtypes: list[str | None] = []
    pattern = elemwise.outputs[0].type.broadcastable
    for spec in op.reduced_outputs:
        if spec is None:
            dtypes.append(None)
            continue
        if not isinstance(spec[0], Add):
            return None
        _, axes, identity, acc_dtype = spec
        kept = [axis for axis in range(len(pattern)) if axis not in axes]
        if identity != 0 or not all(pattern[axis] for axis in kept):
            return None
        dtypes.append(str(np.dtype(acc_dtype)))
    return tuple(dtypes)


def _channel_sums(op: Any, elemwise: Any) -> tuple[str | None, ...] | None:
    """Per output of a FusedElemwise, the accumulator dtype of a sum over every axis but
    axis 1 (not broadcast; the output may keep the summed axes), or None for an
    elementwise output; None when some output is another reduction, or none is such a
    sum."""
    from pytensor.scalar.basic import Add

    pattern = elemwise.outputs[0].type.broadcastable
    if op.indexed_inputs or op.indexed_outputs or not any(op.reduced_outputs or ()):
        return None
    if len(pattern) < 2 or pattern[1]:
        return None
    dtypes: list[str | None] = []
    for spec in op.reduced_outputs:
        if spec is None:
            dtypes.append(None)
            continue
        function, axes, identity, acc_dtype = spec
        if not isinstance(function, Add) or identity != 0:
            return None
        if sorted(axes) != [axis for axis in range(len(pattern)) if axis != 1]:
            return None
        dtypes.append(str(np.dtype(acc_dtype)))
    return tuple(dtypes)


def _plan(op: Any, node: Any) -> _Loop | None:
    """What to lower for ``node``, or None when it keeps PyTensor's lowering."""
    from pytensor.tensor.elemwise import Elemwise
    from pytensor.tensor.rewriting.fused_elemwise import FusedElemwise
    from pytensor.tensor.rewriting.scalarize import ScalarizedElemwise

    channels = False
    if type(op) is Elemwise:
        elemwise, reduced = node, None
    elif isinstance(op, ScalarizedElemwise | FusedElemwise):
        inner = [n for n in op.fgraph.apply_nodes if isinstance(n.op, Elemwise)]
        if len(inner) != 1 or len(inner[0].inputs) != len(node.inputs):
            return None
        elemwise = inner[0]
        reduced = None if isinstance(op, ScalarizedElemwise) else _full_sums(op, elemwise)
        channels = isinstance(op, FusedElemwise) and reduced is None
        if channels:
            reduced = _channel_sums(op, elemwise)
        if isinstance(op, FusedElemwise) and reduced is None:
            return None
    else:
        return None
    out_type = elemwise.outputs[0].type
    known = None not in out_type.shape
    # long loops bound by memory: elementwise ones, and those with per-channel sums
    memory_bound = reduced is None or channels
    large = known and memory_bound and int(np.prod(out_type.shape)) >= MIN_MEMORY_BOUND_SIZE
    if not (_holds_fast_kernel(elemwise.op.scalar_op) or large):
        return None
    if any(v.type.dtype not in _DTYPES for v in (*node.inputs, *node.outputs)):
        return None  # the C call passes real and boolean arrays only
    kinds = _input_kinds(node, elemwise)
    if kinds is None:
        return None
    if known and int(np.prod(out_type.shape)) < MIN_PARALLEL_SIZE:
        return None
    rows = "part" in kinds
    if rows and (reduced is not None or out_type.ndim < 2 or out_type.broadcastable[0]):
        return None  # partly broadcast inputs: only blocks of rows of an elementwise loop
    if channels and set(kinds) != {"full"}:
        return None  # per-channel sums: full inputs only
    return _Loop(elemwise, kinds, reduced, rows, channels)


def lowerable(node: Any) -> bool:
    """Whether ``node`` gets the parallel loop (see the module's conditions; the last, on
    parallel kernels, is not checked here).

    Examples
    --------
    >>> import pytensor.tensor as pt
    >>> lowerable(pt.exp(pt.vector("x", shape=(4,))).owner)
    False
    """
    return _plan(node.op, node) is not None


def loop_source(name: str, sliced: tuple[bool, ...], sums: tuple[bool, ...]) -> str:
    """Source of the block loop ``name(inputs..., outputs...)``: blocks of the leading
    axis of the outputs, of the inputs that are ``sliced`` (the others are passed whole).

    Each block writes its part of every output through PyTensor's own vectorised loop
    (``_vectorized``, which tells LLVM that inputs and outputs do not overlap, so a loop
    over many arrays still vectorises), the outputs passed as inputs it writes in place
    and ``core`` ignoring them; or, when ``sums`` marks some output (1-D inputs), adds its
    part of each marked output in ``ACC<k>`` into that output's slot ``block`` and writes
    its elements of the others.

    Examples
    --------
    >>> print(loop_source("demo", (True, False), (True,)))
    def demo(in0, in1, out0):
        n = in0.shape[0]
        blocks = max(1, min(MAX_BLOCKS, n // MIN_BLOCK))
        for block in prange(blocks):
            index = np.int64(block)
            low = n * index // blocks
            high = n * (index + 1) // blocks
            one1 = in1[0]
            part_in0 = in0[low:high]
            sum0 = ACC0(0)
            for i in range(high - low):
                value = core(part_in0[i], one1)
                sum0 += ACC0(value)
            out0[index] = sum0
    <BLANKLINE>
    """
    n_outputs, summed = len(sums), any(sums)
    ins = [f"in{i}" for i in range(len(sliced))]
    outs = [f"out{k}" for k in range(n_outputs)]
    head = [f"def {name}({', '.join(ins + outs)}):"]
    if summed:
        head += [
            f"    n = in{sliced.index(True)}.shape[0]",
            "    blocks = max(1, min(MAX_BLOCKS, n // MIN_BLOCK))",
        ]
    else:
        head += [
            "    n = out0.shape[0]",
            "    blocks = max(1, min(MAX_BLOCKS, n, out0.size // MIN_BLOCK))",
        ]
    lines = head + [
        "    for block in prange(blocks):",
        "        index = np.int64(block)",
        "        low = n * index // blocks",
        "        high = n * (index + 1) // blocks",
    ]
    if not summed:
        parts = [f"in{i}[low:high]" if cut else f"in{i}" for i, cut in enumerate(sliced)]
        parts += [f"out{k}[low:high]" for k in range(n_outputs)]
        lines.append(
            "        _vectorized(core_writing, IN_BC, OUT_BC, OUT_DTYPES, INPLACE, True, (), "
            f"({', '.join(parts)},), CORE_SHAPES, None, NO_INDEXED_INPUTS, "
            "NO_INDEXED_OUTPUTS, NO_REDUCE_OUTPUTS, False)"
        )
        return "\n".join(lines) + "\n"
    args = [f"part_in{i}[i]" if cut else f"one{i}" for i, cut in enumerate(sliced)]
    lines += [f"        one{i} = in{i}[0]" for i, cut in enumerate(sliced) if not cut]
    lines += [f"        part_in{i} = in{i}[low:high]" for i, cut in enumerate(sliced) if cut]
    lines += [f"        sum{k} = ACC{k}(0)" for k in range(n_outputs) if sums[k]]
    lines += [f"        part_out{k} = out{k}[low:high]" for k in range(n_outputs) if not sums[k]]
    lines.append("        for i in range(high - low):")
    lines.append(f"            value = core({', '.join(args)})")
    values = ["value"] if n_outputs == 1 else [f"value[{k}]" for k in range(n_outputs)]
    for k, v in enumerate(values):
        if sums[k]:
            lines.append(f"            sum{k} += ACC{k}({v})")
        else:
            lines.append(f"            part_out{k}[i] = {v}")
    lines += [f"        out{k}[index] = sum{k}" for k in range(n_outputs) if sums[k]]
    return "\n".join(lines) + "\n"


def channel_loop_source(name: str, n_inputs: int, sums: tuple[bool, ...]) -> str:
    """Source of the block loop ``name(inputs..., outputs...)`` for sums that keep axis 1:
    inputs and elementwise outputs ``(n0, n1, rest)``, each marked sum ``(blocks, n1)``;
    blocks of axis 0, each adding its part of each channel's sum into its row.

    Examples
    --------
    >>> print(channel_loop_source("demo", 1, (False, True)))
    def demo(in0, out0, out1):
        n = in0.shape[0]
        blocks = max(1, min(MAX_BLOCKS, n, in0.size // MIN_BLOCK))
        for block in prange(blocks):
            index = np.int64(block)
            low = n * index // blocks
            high = n * (index + 1) // blocks
            for i in range(low, high):
                for c in range(in0.shape[1]):
                    row_in0 = in0[i, c]
                    row_out0 = out0[i, c]
                    sum1 = ACC1(0)
                    for j in range(row_in0.shape[0]):
                        value = core(row_in0[j])
                        row_out0[j] = value[0]
                        sum1 += ACC1(value[1])
                    out1[index, c] += sum1
    <BLANKLINE>
    """
    n_outputs = len(sums)
    ins = [f"in{i}" for i in range(n_inputs)]
    outs = [f"out{k}" for k in range(n_outputs)]
    lines = [
        f"def {name}({', '.join(ins + outs)}):",
        "    n = in0.shape[0]",
        "    blocks = max(1, min(MAX_BLOCKS, n, in0.size // MIN_BLOCK))",
        "    for block in prange(blocks):",
        "        index = np.int64(block)",
        "        low = n * index // blocks",
        "        high = n * (index + 1) // blocks",
        "        for i in range(low, high):",
        "            for c in range(in0.shape[1]):",
    ]
    lines += [f"                row_in{i} = in{i}[i, c]" for i in range(n_inputs)]
    lines += [f"                row_out{k} = out{k}[i, c]" for k in range(n_outputs) if not sums[k]]
    lines += [f"                sum{k} = ACC{k}(0)" for k in range(n_outputs) if sums[k]]
    lines.append("                for j in range(row_in0.shape[0]):")
    args = ", ".join(f"row_in{i}[j]" for i in range(n_inputs))
    lines.append(f"                    value = core({args})")
    values = ["value"] if n_outputs == 1 else [f"value[{k}]" for k in range(n_outputs)]
    for k, v in enumerate(values):
        if sums[k]:
            lines.append(f"                    sum{k} += ACC{k}({v})")
        else:
            lines.append(f"                    row_out{k}[j] = {v}")
    lines += [f"                out{k}[index, c] += sum{k}" for k in range(n_outputs) if sums[k]]
    return "\n".join(lines) + "\n"


def channel_caller_source(n_inputs: int, out_ndims: tuple[int, ...], sums: tuple[bool, ...]) -> str:
    """Source of the node's function for sums that keep axis 1: contiguous inputs of one
    shape seen as ``(n0, n1, rest)``, the outputs, the loop, then each sum's blocks added
    in block order and shaped as its output (``out_ndims``: 1, or the inputs' rank with the
    summed axes kept).

    Examples
    --------
    >>> print(channel_caller_source(1, (4, 1), (False, True)))
    def parallel_elemwise(x0):
        a0 = np.ascontiguousarray(x0)
        n0, n1 = a0.shape[0], a0.shape[1]
        rest = a0.size // max(1, n0 * n1)
        out0 = np.empty(a0.shape, dtype=OUT0)
        out1 = np.zeros((MAX_BLOCKS, n1), dtype=ACC1)
        loop(a0.reshape((n0, n1, rest)), out0.reshape((n0, n1, rest)), out1)
        total1 = np.zeros(n1, dtype=ACC1)
        for block in range(MAX_BLOCKS):
            for c in range(n1):
                total1[c] += out1[block, c]
        result1 = total1.astype(OUT1)
        return (out0, result1,)
    <BLANKLINE>
    """
    lines = [f"def parallel_elemwise({', '.join(f'x{i}' for i in range(n_inputs))}):"]
    lines += [f"    a{i} = np.ascontiguousarray(x{i})" for i in range(n_inputs)]
    for i in range(1, n_inputs):
        lines.append(f"    if a{i}.shape != a0.shape:")
        lines.append("        raise ValueError(MISMATCH)")
    lines += ["    n0, n1 = a0.shape[0], a0.shape[1]", "    rest = a0.size // max(1, n0 * n1)"]
    for k, summed in enumerate(sums):
        if summed:
            lines.append(f"    out{k} = np.zeros((MAX_BLOCKS, n1), dtype=ACC{k})")
        else:
            lines.append(f"    out{k} = np.empty(a0.shape, dtype=OUT{k})")
    flat = [f"a{i}.reshape((n0, n1, rest))" for i in range(n_inputs)]
    flat += [f"out{k}" if sums[k] else f"out{k}.reshape((n0, n1, rest))" for k in range(len(sums))]
    lines.append(f"    loop({', '.join(flat)})")
    results = []
    for k, summed in enumerate(sums):
        if not summed:
            results.append(f"out{k}")
            continue
        lines += [
            f"    total{k} = np.zeros(n1, dtype=ACC{k})",
            "    for block in range(MAX_BLOCKS):",
            "        for c in range(n1):",
            f"            total{k}[c] += out{k}[block, c]",
        ]
        if out_ndims[k] == 1:
            lines.append(f"    result{k} = total{k}.astype(OUT{k})")
        else:
            shape = "(1, n1" + ", 1" * (out_ndims[k] - 2) + ")"
            lines.append(f"    result{k} = total{k}.astype(OUT{k}).reshape({shape})")
        results.append(f"result{k}")
    joined = ", ".join(results)
    lines.append(f"    return {joined}" if len(sums) == 1 else f"    return ({joined},)")
    return "\n".join(lines) + "\n"


def _vectorized_scope(
    core: Any,
    in_patterns: tuple[tuple[bool, ...], ...],
    out_pattern: tuple[bool, ...],
    out_dtypes: tuple[str, ...],
) -> dict:
    """The globals of a block loop that calls PyTensor's ``_vectorized``: a core taking
    the outputs as extra inputs (ignored; they are written in place) and the literals
    (the inputs' and outputs' broadcast patterns as the loop sees them)."""
    from pytensor.link.numba.dispatch import basic as numba_basic
    from pytensor.link.numba.dispatch.vectorize_codegen import (
        NO_INDEXED_INPUTS,
        NO_INDEXED_OUTPUTS,
        NO_REDUCE_OUTPUTS,
        _vectorized,
        encode_literals,
    )

    n_in, n_out = len(in_patterns), len(out_dtypes)
    names = [f"i{i}" for i in range(n_in)] + [f"o{k}" for k in range(n_out)]
    source = f"def core_writing({', '.join(names)}):\n    return core({', '.join(names[:n_in])})\n"
    scope: dict[str, Any] = {"core": core}
    exec(compile(source, "<plasagne core writing>", "exec"), scope)
    bc = list(in_patterns) + [out_pattern] * n_out
    return {
        "_vectorized": _vectorized,
        "core_writing": numba_basic.numba_njit(forceinline=True)(scope["core_writing"]),
        "IN_BC": encode_literals(tuple(bc)),
        "OUT_BC": encode_literals((out_pattern,) * n_out),
        "OUT_DTYPES": encode_literals(out_dtypes),
        "INPLACE": encode_literals(tuple((k, n_in + k) for k in range(n_out))),
        "CORE_SHAPES": tuple(() for _ in range(n_out)),
        "NO_INDEXED_INPUTS": NO_INDEXED_INPUTS,
        "NO_INDEXED_OUTPUTS": NO_INDEXED_OUTPUTS,
        "NO_REDUCE_OUTPUTS": NO_REDUCE_OUTPUTS,
    }


def caller_source(
    kinds: tuple[str, ...],
    inplace: dict[int, int],
    out_ndims: tuple[int | None, ...],
    sums: tuple[bool, ...],
) -> str:
    """Source of the node's function: contiguous flat inputs of one shape, the outputs
    (for those ``sums`` marks, the blocks' sums), the loop. ``out_ndims`` holds each
    output's rank, None for a native scalar.

    Examples
    --------
    >>> print(caller_source(("full", "full"), {0: 1}, (1,), (False,)))
    def parallel_elemwise(x0, x1):
        a0 = np.ascontiguousarray(x0)
        a1 = np.ascontiguousarray(x1)
        if a1.shape != a0.shape:
            raise ValueError(MISMATCH)
        out0 = a1
        loop(a0.reshape(-1), a1.reshape(-1), out0.reshape(-1))
        return out0
    <BLANKLINE>
    """
    full = [i for i, kind in enumerate(kinds) if kind == "full"]
    first = full[0]
    lines = [f"def parallel_elemwise({', '.join(f'x{i}' for i in range(len(kinds)))}):"]
    for i, kind in enumerate(kinds):
        if kind == "full":
            lines.append(f"    a{i} = np.ascontiguousarray(x{i})")
        elif kind == "one":
            lines.append(f"    a{i} = np.ascontiguousarray(x{i}).reshape(1)")
        else:
            lines.append(f"    a{i} = np.full(1, x{i}, dtype=IN{i})")
    for i in full[1:]:
        lines.append(f"    if a{i}.shape != a{first}.shape:")
        lines.append("        raise ValueError(MISMATCH)")
    n_outputs = len(out_ndims)
    for k in range(n_outputs):
        if sums[k]:
            lines.append(f"    out{k} = np.zeros(MAX_BLOCKS, dtype=ACC{k})")
        elif k in inplace and kinds[inplace[k]] == "full":
            lines.append(f"    out{k} = a{inplace[k]}")
        else:
            lines.append(f"    out{k} = np.empty(a{first}.shape, dtype=OUT{k})")
    flat_ins = [f"a{i}.reshape(-1)" if kind == "full" else f"a{i}" for i, kind in enumerate(kinds)]
    flat_outs = [f"out{k}" if sums[k] else f"out{k}.reshape(-1)" for k in range(n_outputs)]
    lines.append(f"    loop({', '.join(flat_ins + flat_outs)})")
    results = [f"out{k}" for k in range(n_outputs)]
    if any(sums):
        for k, ndim in enumerate(out_ndims):
            if not sums[k]:
                lines.append(f"    result{k} = out{k}")
                continue
            total = f"OUT{k}(out{k}.sum())"
            shape = "(" + "1, " * ndim + ")" if ndim is not None else None
            lines.append(
                f"    result{k} = {total}"
                if ndim is None
                else f"    result{k} = np.full({shape}, {total}, dtype=OUT{k})"
            )
        results = [f"result{k}" for k in range(n_outputs)]
    joined = ", ".join(results)
    lines.append(f"    return {joined}" if n_outputs == 1 else f"    return ({joined},)")
    return "\n".join(lines) + "\n"


def rows_caller_source(
    kinds: tuple[str, ...],
    patterns: tuple[tuple[bool, ...], ...],
    inplace: dict[int, int],
    n_outputs: int,
) -> str:
    """Source of the node's function for blocks of rows: contiguous N-d inputs, each axis
    that is not broadcast of the first full input's length (``ValueError`` otherwise),
    native numbers as arrays of ones' shape, the outputs, the loop.

    Examples
    --------
    >>> print(rows_caller_source(("full", "part"), ((False, False), (True, False)), {}, 1))
    def parallel_elemwise(x0, x1):
        a0 = np.ascontiguousarray(x0)
        a1 = np.ascontiguousarray(x1)
        if a1.shape[1] != a0.shape[1]:
            raise ValueError(MISMATCH)
        out0 = np.empty(a0.shape, dtype=OUT0)
        loop(a0, a1, out0)
        return out0
    <BLANKLINE>
    """
    first = kinds.index("full")
    lines = [f"def parallel_elemwise({', '.join(f'x{i}' for i in range(len(kinds)))}):"]
    for i, kind in enumerate(kinds):
        if kind == "number":
            ones = "(" + "1, " * len(patterns[i]) + ")"
            lines.append(f"    a{i} = np.full({ones}, x{i}, dtype=IN{i})")
        else:
            lines.append(f"    a{i} = np.ascontiguousarray(x{i})")
    for i, kind in enumerate(kinds):
        if i == first or kind in ("number", "one"):
            continue
        for axis, broadcast in enumerate(patterns[i]):
            if not broadcast:
                lines.append(f"    if a{i}.shape[{axis}] != a{first}.shape[{axis}]:")
                lines.append("        raise ValueError(MISMATCH)")
    for k in range(n_outputs):
        if k in inplace and kinds[inplace[k]] == "full":
            lines.append(f"    out{k} = a{inplace[k]}")
        else:
            lines.append(f"    out{k} = np.empty(a{first}.shape, dtype=OUT{k})")
    arrays = [f"a{i}" for i in range(len(kinds))] + [f"out{k}" for k in range(n_outputs)]
    lines.append(f"    loop({', '.join(arrays)})")
    results = ", ".join(f"out{k}" for k in range(n_outputs))
    lines.append(f"    return {results}" if n_outputs == 1 else f"    return ({results},)")
    return "\n".join(lines) + "\n"


def _lower(op: Any, node: Any) -> tuple[Any, str] | None:
    """The parallel loop for ``node`` and its cache key, or None for PyTensor's lowering."""
    from numba import prange
    from pytensor.link.numba.dispatch import basic as numba_basic
    from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    from pytensor.scalar.basic import ScalarType

    from .blas_threads import parallel_kernels
    from .opaque_calls import kernel_salt, node_loop_behind_call

    plan = _plan(op, node)
    if plan is None or not parallel_kernels():
        return None
    elemwise = plan.elemwise
    scalar_node = elemwise.op.make_scalar_node(*elemwise.inputs)
    core, scalar_key = numba_funcify_and_cache_key(elemwise.op.scalar_op, node=scalar_node)
    if scalar_key is None or getattr(core, "handles_out", False):
        return None
    kinds, summed = plan.kinds, plan.reduced is not None
    in_dtypes = tuple(v.type.dtype for v in node.inputs)
    out_dtypes = tuple(v.type.dtype for v in node.outputs)
    out_ndims = tuple(None if isinstance(v.type, ScalarType) else v.type.ndim for v in node.outputs)
    loop_dtypes = (
        tuple(acc or out for acc, out in zip(plan.reduced or (), out_dtypes)) or out_dtypes
    )
    sums = tuple(acc is not None for acc in plan.reduced or (None,) * len(out_dtypes))
    inplace = {} if summed else dict(elemwise.op.inplace_pattern)
    ndim = elemwise.outputs[0].type.ndim if plan.rows else 1
    if plan.rows:  # N-d arrays; numbers become arrays of ones' shape
        patterns = tuple(
            (True,) * ndim if kind == "number" else v.type.broadcastable
            for kind, v in zip(kinds, node.inputs, strict=True)
        )
        out_pattern = elemwise.outputs[0].type.broadcastable
    else:  # flat: full inputs, and single numbers
        patterns = tuple((kind != "full",) for kind in kinds)
        out_pattern = (False,)
    sliced = tuple(not pattern[0] for pattern in patterns)
    settings = (
        _KERNEL_VERSION,
        scalar_key,
        kinds,
        in_dtypes,
        loop_dtypes,
        sums,
        patterns,
        plan.channels,
    )
    name = f"elemwise_loop_{sha256(str(settings).encode()).hexdigest()[:20]}"
    accumulators = {f"ACC{k}": np.dtype(d).type for k, d in enumerate(plan.reduced or ()) if d}
    scope: dict[str, Any] = {
        "np": np,
        "prange": prange,
        "core": core,
        "MAX_BLOCKS": _MAX_BLOCKS,
        "MIN_BLOCK": _MIN_BLOCK,
        **accumulators,
    }
    if not summed:
        scope.update(_vectorized_scope(core, patterns, out_pattern, out_dtypes))
    if plan.channels:
        source = channel_loop_source(name, len(kinds), sums)
        spec = [(dtype, 3) for dtype in in_dtypes]
        spec += [(dtype, 2 if summed_k else 3) for dtype, summed_k in zip(loop_dtypes, sums)]
    else:
        source = loop_source(name, sliced, sums)
        spec = [(dtype, ndim) for dtype in in_dtypes + loop_dtypes]  # sums: flat, ndim 1
    exec(compile(source, f"<{name}>", "exec"), scope)
    salt = kernel_salt(_KERNEL_VERSION, True)
    loop = node_loop_behind_call(op, node, salt, scope[name], numba_basic.numba_njit, True, spec)
    caller_scope: dict[str, Any] = {
        "np": np,
        "loop": loop,
        "MAX_BLOCKS": _MAX_BLOCKS,
        "MISMATCH": f"{op}: inputs of different shapes",
        **accumulators,
        **{f"IN{i}": np.dtype(d) for i, d in enumerate(in_dtypes)},
        **{f"OUT{k}": np.dtype(d).type for k, d in enumerate(out_dtypes)},
    }
    if plan.channels:
        source = channel_caller_source(len(kinds), out_ndims, sums)
    elif plan.rows:
        source = rows_caller_source(kinds, patterns, inplace, len(out_dtypes))
    else:
        source = caller_source(kinds, inplace, out_ndims, sums)
    exec(compile(source, "<plasagne parallel elemwise>", "exec"), caller_scope)
    function = numba_basic.numba_njit(caller_scope["parallel_elemwise"])
    key = ("plasagne-parallel-elemwise", settings, salt, out_dtypes, out_ndims, inplace)
    return function, sha256(str(key).encode()).hexdigest()


def register_numba() -> None:
    """Register the parallel lowering of loops with fast kernels (once; it applies only
    inside :func:`plasagne.ops.lowering_scope.plasagne_lowerings`).

    Examples
    --------
    >>> from pytensor.link.numba.dispatch.basic import numba_funcify_and_cache_key
    >>> from pytensor.tensor.elemwise import Elemwise
    >>> register_numba()
    >>> numba_funcify_and_cache_key.dispatch(Elemwise).__name__
    'lower_under_plasagne_linker'
    """
    from pytensor.tensor.elemwise import Elemwise
    from pytensor.tensor.rewriting.fused_elemwise import FusedElemwise
    from pytensor.tensor.rewriting.scalarize import ScalarizedElemwise

    for op_type in (Elemwise, ScalarizedElemwise, FusedElemwise):
        register_lowering(op_type, _lower_node)


def _lower_node(op: Any, node: Any) -> tuple[Any, str] | None:
    # looks _lower up when called (tests record what it lowers)
    return _lower(op, node)
