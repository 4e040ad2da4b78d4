"""General helpers: dtype casting, parameter creation and small graph utilities.

:func:`create_param` is the single place where a parameter specification
(array, shared variable, initializer or expression) is interpreted; every layer
goes through :meth:`plasagne.layers.Layer.add_param`, which calls it.
"""

from __future__ import annotations

import inspect
from collections.abc import Callable, Iterable, Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.tensor.type import TensorType

__all__ = [
    "floatX",
    "shared_empty",
    "as_pytensor_expression",
    "as_tensor_variable",
    "one_hot",
    "unique",
    "as_tuple",
    "int_types",
    "inspect_kwargs",
    "compute_norms",
    "create_param",
    "collect_shared_vars",
    "unroll_scan",
    "ParameterError",
]

int_types = (int, np.integer)


class ParameterError(ValueError):
    """Raised when a parameter specification does not fit what a layer expects.

    Examples
    --------
    >>> import numpy as np
    >>> from plasagne.utils import create_param, ParameterError
    >>> try:
    ...     create_param(np.zeros((2, 3)), (3, 2), name="dense.W")
    ... except ParameterError as err:
    ...     print("caught")
    caught
    """


def floatX(arr: Any) -> np.ndarray:
    """Cast an array-like to ``pytensor.config.floatX``.

    Examples
    --------
    >>> floatX([1, 2]).dtype == np.dtype(pytensor.config.floatX)
    True
    """
    return np.asarray(arr, dtype=pytensor.config.floatX)


def shared_empty(dim: int = 2, dtype: str | None = None) -> SharedVariable:
    """Return a shared variable of ``dim`` dimensions holding a zero-size array.

    Examples
    --------
    >>> shared_empty(3).get_value().shape
    (0, 0, 0)
    """
    if dtype is None:
        dtype = pytensor.config.floatX
    return pytensor.shared(np.zeros((0,) * dim, dtype=dtype))


def as_pytensor_expression(value: Any) -> Variable:
    """Wrap ``value`` as a PyTensor expression, leaving expressions untouched.

    Examples
    --------
    >>> as_pytensor_expression(np.ones(3)).ndim
    1
    """
    if isinstance(value, Variable):
        return value
    try:
        return pt.as_tensor_variable(value)
    except (TypeError, NotImplementedError) as err:
        raise TypeError(f"Input of type {type(value)} is not a PyTensor expression") from err


as_tensor_variable = as_pytensor_expression


def one_hot(x: Any, m: int | None = None) -> pt.TensorVariable:
    """One-hot encode an integer vector into a matrix of ``m`` columns.

    Examples
    --------
    >>> one_hot(np.array([0, 2]), 3).eval().tolist()
    [[1.0, 0.0, 0.0], [0.0, 0.0, 1.0]]
    """
    x = pt.as_tensor_variable(x)
    if m is None:
        m = pt.cast(pt.max(x) + 1, "int32")
    return pt.eq(x.reshape((-1, 1)), pt.arange(m).reshape((1, -1))).astype(pytensor.config.floatX)


def unique(items: Iterable[Any]) -> list[Any]:
    """Return the items in first-seen order with duplicates removed (by identity-hash).

    Examples
    --------
    >>> unique([3, 1, 3, 2, 1])
    [3, 1, 2]
    """
    seen: set[Any] = set()
    out = []
    for item in items:
        if item not in seen:
            seen.add(item)
            out.append(item)
    return out


def as_tuple(x: Any, N: int, t: type | tuple[type, ...] | None = None) -> tuple:
    """Coerce ``x`` into a tuple of length ``N`` (repeating a scalar).

    Examples
    --------
    >>> as_tuple(3, 2)
    (3, 3)
    >>> as_tuple((1, 2), 2)
    (1, 2)
    """
    try:
        X = tuple(x)
    except TypeError:
        X = (x,) * N
    if (t is not None) and not all(isinstance(v, t) for v in X):
        type_str = t.__name__ if isinstance(t, type) else " or ".join(c.__name__ for c in t)
        raise TypeError(f"expected a single value or an iterable of {type_str}, got {x} instead")
    if len(X) != N:
        raise ValueError(f"expected a single value or an iterable with length {N}, got {x} instead")
    return X


def inspect_kwargs(func: Callable) -> list[str]:
    """Return the names of the keyword arguments ``func`` accepts.

    Examples
    --------
    >>> inspect_kwargs(lambda a, b=1, *, c=2: None)
    ['b', 'c']
    """
    params = inspect.signature(func).parameters
    return [
        name
        for name, p in params.items()
        if p.default is not inspect.Parameter.empty or p.kind is inspect.Parameter.KEYWORD_ONLY
    ]


def _accepts_keyword(func: Callable, keyword: str) -> bool:
    try:
        params = inspect.signature(func).parameters
    except (TypeError, ValueError):
        return False
    if keyword in params and params[keyword].kind is not inspect.Parameter.POSITIONAL_ONLY:
        return True
    return any(p.kind is inspect.Parameter.VAR_KEYWORD for p in params.values())


def compute_norms(array: Any, norm_axes: Sequence[int] | None = None) -> Any:
    """Compute L2 norms of the slices of a numpy array or expression.

    By default norms run over all axes but the first (dense weights) or all
    but the second (convolution filters), as Lasagne does.

    Examples
    --------
    >>> compute_norms(np.array([[3.0, 4.0], [0.0, 0.0]]), norm_axes=(1,)).tolist()
    [5.0, 0.0]
    """
    is_numpy = isinstance(array, np.ndarray)
    ndim = array.ndim
    if norm_axes is not None:
        sum_over = tuple(norm_axes)
    elif ndim == 1:
        sum_over = ()
    elif ndim == 2:
        sum_over = (0,)
    elif ndim in (3, 4, 5):
        sum_over = tuple(range(1, ndim))
    else:
        raise ValueError(f"Unsupported tensor dimensionality {ndim}. Must specify `norm_axes`")
    if is_numpy:
        return np.sqrt(np.sum(array**2, axis=sum_over))
    return pt.sqrt(pt.sum(pt.sqr(array), axis=sum_over))


def collect_shared_vars(expressions: Any) -> list[SharedVariable]:
    """Return the tensor shared variables an expression (or list) depends on.

    Random-number-generator state variables are not parameters and are skipped.

    Examples
    --------
    >>> a = pytensor.shared(np.ones(2), name="a")
    >>> [v.name for v in collect_shared_vars(pt.exp(a) * 2)]
    ['a']
    """
    if isinstance(expressions, Variable):
        expressions = [expressions]
    # Depth-first, left to right: the order the variables appear when the
    # expression is read, so `U @ V` lists U before V.
    found: list[SharedVariable] = []
    seen: set = set()
    stack = list(reversed(list(expressions)))
    while stack:
        var = stack.pop()
        if var in seen:
            continue
        seen.add(var)
        if isinstance(var, SharedVariable):
            if isinstance(var.type, TensorType):
                found.append(var)
        elif var.owner is not None:
            stack.extend(reversed(var.owner.inputs))
    return found


def _describe(spec: Any) -> str:
    if isinstance(spec, np.ndarray):
        return f"numpy array of shape {spec.shape}"
    if isinstance(spec, Variable):
        return f"expression {spec} of type {spec.type}"
    return f"{type(spec).__name__} {spec!r}"


def _evaluable_shape(spec: Variable, label: str) -> tuple | None:
    """The shape of an expression built only from shared variables and constants.

    Such an expression's shape is only known by evaluating it (shared values may
    change size), which is cheap with the Python linker. Expressions with free
    inputs return None: their shape is checked when the graph runs.
    """
    if isinstance(spec, (SharedVariable, Constant)):
        return None
    from pytensor.compile.mode import Mode
    from pytensor.graph.traversal import graph_inputs

    if not all(isinstance(v, (SharedVariable, Constant)) for v in graph_inputs([spec])):
        return None
    try:
        fn = pytensor.function(
            [],
            spec.shape,
            mode=Mode(linker="py", optimizer="fast_compile"),
            on_unused_input="ignore",
        )
        return tuple(int(d) for d in fn())
    except Exception as err:  # the expression itself cannot be computed
        raise ParameterError(f"{label}: the expression {spec} cannot be evaluated: {err}") from None


def create_param(
    spec: Any, shape: Sequence[int], name: str | None = None, layer: Any = None
) -> Any:
    """Turn a parameter specification into a shared variable or expression.

    Parameters
    ----------
    spec : numpy array, shared variable, PyTensor expression or callable
        * a numpy array is cast to floatX and wrapped in a new shared variable;
        * a shared variable or any other expression is used as given (its
          number of dimensions is always checked, its shape wherever it is
          known statically; a shared variable's value shape is checked too);
        * a callable is called with the shape (and ``name=name`` when it
          accepts a ``name`` keyword, and ``layer=layer`` when it accepts a
          ``layer`` keyword), and what it returns goes through the same rules,
          so it may return an array or an expression.
    shape : tuple of int
        The shape the parameter must have.
    name : str, optional
        Name of a newly created shared variable, also passed to callables.
    layer : Layer, optional
        The layer that owns the parameter, passed to callables that accept it
        (so a prior can depend on the layer's type).

    Returns
    -------
    SharedVariable or TensorVariable

    Raises
    ------
    ParameterError
        If the spec has the wrong number of dimensions or shape, or is of a
        type that cannot be a parameter. The message names the parameter, the
        expected and the found shape.

    Examples
    --------
    >>> W = create_param(np.ones((2, 3)), (2, 3), name="dense.W")
    >>> W.name, W.get_value().shape
    ('dense.W', (2, 3))
    >>> log_w = pytensor.shared(np.zeros((2, 3)))
    >>> create_param(pt.exp(log_w), (2, 3)).ndim
    2
    """
    shape = tuple(int(s) for s in shape)
    label = f"parameter '{name}'" if name else "parameter"
    if any(d <= 0 for d in shape):
        raise ParameterError(
            f"Cannot create {label} with a non-positive shape {shape}. "
            "All shape elements must be > 0"
        )

    if isinstance(spec, Variable):
        if spec.ndim != len(shape):
            raise ParameterError(
                f"{label}: expected an expression with {len(shape)} dimensions (shape {shape}), "
                f"found {spec.ndim} dimensions ({_describe(spec)})"
            )
        static = getattr(spec.type, "shape", None)
        if static is not None and any(s is not None and s != e for s, e in zip(static, shape)):
            raise ParameterError(
                f"{label}: expected shape {shape}, found static shape {tuple(static)}"
            )
        known = _evaluable_shape(spec, label)
        if known is not None and known != shape:
            raise ParameterError(
                f"{label}: expected shape {shape}, found expression of shape {known}"
            )
        if isinstance(spec, SharedVariable):
            value_shape = np.shape(spec.get_value(borrow=True, return_internal_type=True))
            if tuple(value_shape) != shape:
                raise ParameterError(
                    f"{label}: expected shape {shape}, found shared variable "
                    f"'{spec.name}' holding shape {tuple(value_shape)}"
                )
        if isinstance(spec, Constant):
            value = spec.data
            if tuple(np.shape(value)) != shape:
                raise ParameterError(f"{label}: expected shape {shape}, found {np.shape(value)}")
        return spec

    if isinstance(spec, np.ndarray):
        if spec.shape != shape:
            raise ParameterError(
                f"{label}: expected shape {shape}, found array of shape {spec.shape}"
            )
        broadcastable_shape = tuple(1 if s == 1 else None for s in shape)
        return pytensor.shared(floatX(spec), name=name, shape=broadcastable_shape)

    if callable(spec):
        kwargs: dict[str, Any] = {}
        if _accepts_keyword(spec, "name"):
            kwargs["name"] = name
        if layer is not None and _accepts_keyword(spec, "layer"):
            kwargs["layer"] = layer
        result = spec(shape, **kwargs)
        if isinstance(result, (int, float, np.number)) or (
            hasattr(result, "__array__") and not isinstance(result, (np.ndarray, Variable))
        ):
            result = np.asarray(result)
        if not isinstance(result, (np.ndarray, Variable)):
            raise ParameterError(
                f"{label}: the callable {spec!r} returned {_describe(result)}; "
                "expected a numpy array, a shared variable or an expression"
            )
        return create_param(result, shape, name, layer)

    raise ParameterError(
        f"{label}: cannot use {_describe(spec)} as a parameter; expected a numpy array, "
        f"a shared variable, a PyTensor expression or a callable (initializer) for shape {shape}"
    )


def unroll_scan(
    fn: Callable,
    sequences: Sequence[Any],
    outputs_info: Sequence[Any],
    non_sequences: Sequence[Any],
    n_steps: int,
    go_backwards: bool = False,
) -> list[Any]:
    """Unroll a scan-like recurrence into a plain Python loop over ``n_steps``.

    ``fn`` is called as ``fn(*step_sequences, *previous_outputs, *non_sequences)``.

    Examples
    --------
    >>> x = pt.vector("x")
    >>> out = unroll_scan(lambda s, acc: acc + s, [x], [pt.zeros(())], [], 3)
    >>> out[0].eval({x: np.array([1.0, 2.0, 3.0])}).tolist()
    [1.0, 3.0, 6.0]
    """
    if not isinstance(outputs_info, (list, tuple)):
        outputs_info = [outputs_info]
    step_order = range(n_steps - 1, -1, -1) if go_backwards else range(n_steps)
    prev = list(outputs_info)
    collected: list[list[Any]] = [[] for _ in prev]
    for i in step_order:
        step_input = [s[i] for s in sequences] + prev + list(non_sequences)
        new = fn(*step_input)
        if not isinstance(new, (list, tuple)):
            new = [new]
        for store, value in zip(collected, new):
            store.append(value)
        prev = list(new)
    return [pt.stack(vals, axis=0) for vals in collected]
