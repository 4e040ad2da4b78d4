"""Update rules: functions from a loss (or gradients) and parameters to an update dict.

Each rule returns an ``OrderedDict`` mapping shared variables to their new values, ready
for ``pytensor.function(..., updates=updates)``. Every new value keeps the type (dtype
and broadcastable pattern) of the variable it replaces; accumulators are new shared
variables of the parameter's dtype and shape; scalar hyper-parameters (numbers, shared
variables or symbolic scalars) are cast to the parameter's dtype, so float32 training
stays float32 whatever ``floatX`` is.

Examples
--------
>>> w = pytensor.shared(np.array([1.0, -2.0]), name="w")
>>> loss = pt.sum(w**2)
>>> train = pytensor.function([], loss, updates=adam(loss, [w], learning_rate=0.1))
>>> [round(float(train()), 3) for _ in range(3)]
[5.0, 4.42, 3.881]
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Sequence
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable

__all__ = [
    "get_or_compute_grads",
    "sgd",
    "apply_momentum",
    "momentum",
    "apply_nesterov_momentum",
    "nesterov_momentum",
    "adagrad",
    "rmsprop",
    "adadelta",
    "adam",
    "adamax",
    "amsgrad",
    "norm_constraint",
    "total_norm_constraint",
]


def get_or_compute_grads(loss_or_grads: Any, params: Sequence[Any]) -> list:
    """Return the gradients of a loss with respect to ``params``, or pass given ones through.

    Parameters
    ----------
    loss_or_grads : scalar expression or list of expressions
        A loss to differentiate, or one gradient expression per parameter.
    params : list of shared variables
        The variables to update. Parameters given to a layer as expressions (``exp(log_w)``,
        a PyMC variable, a tied ``W.T``) are not shared variables: the shared variables
        they are built from are trained instead, and
        ``plasagne.layers.get_all_params(net, trainable=True)`` lists exactly those
        (:func:`plasagne.utils.collect_shared_vars` finds them in any expression).

    Returns
    -------
    list of expressions

    Raises
    ------
    ValueError
        If a parameter is not a shared variable, or the number of gradients differs
        from the number of parameters.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(3.0))
    >>> float(get_or_compute_grads(w**2, [w])[0].eval())
    6.0
    """
    params = list(params)
    bad = [p for p in params if not isinstance(p, SharedVariable)]
    if bad:
        found = ", ".join(f"{p} ({type(p).__name__})" for p in bad)
        raise ValueError(
            f"params must contain shared variables only, found {found}. A parameter given "
            "as an expression is trained through the shared variables it is built from: pass "
            "get_all_params(layer, trainable=True), which lists them (or "
            "plasagne.utils.collect_shared_vars(expression))"
        )
    if isinstance(loss_or_grads, (list, tuple)):
        if len(loss_or_grads) != len(params):
            raise ValueError(
                f"got {len(loss_or_grads)} gradient expressions for {len(params)} parameters"
            )
        return list(loss_or_grads)
    return pytensor.grad(loss_or_grads, params)


def _zeros_like(param: SharedVariable, role: str) -> SharedVariable:
    """A new shared variable of zeros with ``param``'s dtype, shape and static shape."""
    value = param.get_value(borrow=True)
    name = f"{param.name}.{role}" if param.name else role
    return pytensor.shared(
        np.zeros(np.shape(value), dtype=param.dtype), name=name, shape=param.type.shape
    )


def _cast(x: Any, like: Any) -> Any:
    """A number or symbolic scalar cast to the dtype of ``like``."""
    return pt.cast(x, like.dtype)


def _fit(updates: OrderedDict) -> OrderedDict:
    """Give every new value exactly the type of the shared variable it replaces."""
    for var, new in updates.items():
        new = pt.as_tensor_variable(new)
        if new.dtype != var.dtype:
            new = pt.cast(new, var.dtype)
        try:
            updates[var] = var.type.filter_variable(new, allow_convert=True)
        except TypeError as err:
            raise TypeError(
                f"the update of {var} (type {var.type}) has the incompatible type {new.type}"
            ) from err
    return updates


def sgd(loss_or_grads: Any, params: Sequence[Any], learning_rate: Any) -> OrderedDict:
    """Stochastic gradient descent: ``param - learning_rate * grad``.

    Parameters
    ----------
    loss_or_grads : scalar expression or list of expressions
    params : list of shared variables
    learning_rate : float or symbolic scalar

    Returns
    -------
    OrderedDict
        ``{param: new value}``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(3.0))
    >>> f = pytensor.function([], w, updates=sgd(w**2, [w], 0.25))
    >>> _ = f(); float(w.get_value())
    1.5
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        updates[param] = param - _cast(learning_rate, param) * grad
    return _fit(updates)


def apply_momentum(
    updates: OrderedDict, params: Sequence[Any] | None = None, momentum: Any = 0.9
) -> OrderedDict:
    """Add classical momentum to existing updates.

    For each parameter, with ``step = updates[param] - param`` and a velocity ``v``
    starting at zero: ``v <- momentum * v + step``, ``param <- param + v``.

    Parameters
    ----------
    updates : OrderedDict
        Updates to modify, e.g. from :func:`sgd`. Not changed in place.
    params : list of shared variables, optional
        Which of them get momentum (default: all keys of ``updates``).
    momentum : float or symbolic scalar

    Returns
    -------
    OrderedDict
        A copy of ``updates`` with new parameter values and velocity updates.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> ups = apply_momentum(sgd(w**2, [w], 0.1), [w], momentum=0.5)
    >>> f = pytensor.function([], updates=ups)
    >>> _ = f(); _ = f(); round(float(w.get_value()), 6)
    0.54
    """
    if params is None:
        params = list(updates.keys())
    updates = OrderedDict(updates)
    for param in params:
        velocity = _zeros_like(param, "velocity")
        x = _cast(momentum, param) * velocity + updates[param]
        updates[velocity] = x - param
        updates[param] = x
    return _fit(updates)


def momentum(
    loss_or_grads: Any, params: Sequence[Any], learning_rate: Any, momentum: Any = 0.9
) -> OrderedDict:
    """SGD with classical momentum: :func:`sgd` followed by :func:`apply_momentum`.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=momentum(w**2, [w], 0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.8
    """
    return apply_momentum(sgd(loss_or_grads, params, learning_rate), params, momentum)


def apply_nesterov_momentum(
    updates: OrderedDict, params: Sequence[Any] | None = None, momentum: Any = 0.9
) -> OrderedDict:
    """Add Nesterov momentum to existing updates.

    With ``step = updates[param] - param``: ``v <- momentum * v + step``,
    ``param <- param + momentum * v + step`` (the gradient is taken at the current
    parameters; the look-ahead is folded into the step, as in Lasagne).

    Parameters
    ----------
    updates : OrderedDict
        Updates to modify. Not changed in place.
    params : list of shared variables, optional
        Default: all keys of ``updates``.
    momentum : float or symbolic scalar

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> ups = apply_nesterov_momentum(sgd(w**2, [w], 0.1), momentum=0.5)
    >>> f = pytensor.function([], updates=ups)
    >>> _ = f(); round(float(w.get_value()), 6)
    0.7
    """
    if params is None:
        params = list(updates.keys())
    updates = OrderedDict(updates)
    for param in params:
        velocity = _zeros_like(param, "velocity")
        m = _cast(momentum, param)
        x = m * velocity + updates[param] - param
        updates[velocity] = x
        updates[param] = m * x + updates[param]
    return _fit(updates)


def nesterov_momentum(
    loss_or_grads: Any, params: Sequence[Any], learning_rate: Any, momentum: Any = 0.9
) -> OrderedDict:
    """SGD with Nesterov momentum: :func:`sgd` followed by :func:`apply_nesterov_momentum`.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=nesterov_momentum(w**2, [w], 0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.62
    """
    return apply_nesterov_momentum(sgd(loss_or_grads, params, learning_rate), params, momentum)


def adagrad(
    loss_or_grads: Any, params: Sequence[Any], learning_rate: Any = 1.0, epsilon: Any = 1e-6
) -> OrderedDict:
    """Adagrad: ``a <- a + g**2``, ``param <- param - lr * g / sqrt(a + epsilon)``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], updates=adagrad(w**2, [w], learning_rate=0.5))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.5
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _zeros_like(param, "accu")
        accu_new = accu + grad**2
        updates[accu] = accu_new
        updates[param] = param - (
            _cast(learning_rate, param) * grad / pt.sqrt(accu_new + _cast(epsilon, param))
        )
    return _fit(updates)


def rmsprop(
    loss_or_grads: Any,
    params: Sequence[Any],
    learning_rate: Any = 1.0,
    rho: Any = 0.9,
    epsilon: Any = 1e-6,
) -> OrderedDict:
    """RMSProp: ``a <- rho a + (1 - rho) g**2``, ``param <- param - lr g / sqrt(a + eps)``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], updates=rmsprop(w**2, [w], learning_rate=0.01))
    >>> _ = f(); round(float(w.get_value()), 4)
    0.9684
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _zeros_like(param, "accu")
        r = _cast(rho, param)
        accu_new = r * accu + (1 - r) * grad**2
        updates[accu] = accu_new
        updates[param] = param - (
            _cast(learning_rate, param) * grad / pt.sqrt(accu_new + _cast(epsilon, param))
        )
    return _fit(updates)


def adadelta(
    loss_or_grads: Any,
    params: Sequence[Any],
    learning_rate: Any = 1.0,
    rho: Any = 0.95,
    epsilon: Any = 1e-6,
) -> OrderedDict:
    """Adadelta: steps scaled by running averages of squared gradients and squared steps.

    ``a <- rho a + (1 - rho) g**2``; ``s = g sqrt(d + eps) / sqrt(a + eps)``;
    ``param <- param - lr s``; ``d <- rho d + (1 - rho) s**2``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], updates=adadelta(w**2, [w]))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.995528
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _zeros_like(param, "accu")
        delta_accu = _zeros_like(param, "delta_accu")
        r, eps = _cast(rho, param), _cast(epsilon, param)
        accu_new = r * accu + (1 - r) * grad**2
        updates[accu] = accu_new
        step = grad * pt.sqrt(delta_accu + eps) / pt.sqrt(accu_new + eps)
        updates[param] = param - _cast(learning_rate, param) * step
        updates[delta_accu] = r * delta_accu + (1 - r) * step**2
    return _fit(updates)


def _adam_family(
    kind: str,
    loss_or_grads: Any,
    params: Sequence[Any],
    learning_rate: Any,
    beta1: Any,
    beta2: Any,
    epsilon: Any,
) -> OrderedDict:
    params = list(params)
    grads = get_or_compute_grads(loss_or_grads, params)
    # One step counter per call, as in Lasagne; in the first parameter's dtype (floatX
    # when there are none) so a float32 network has no float64 in its graph.
    t_dtype = params[0].dtype if params else pytensor.config.floatX
    t_prev = pytensor.shared(np.asarray(0, dtype=t_dtype), name=f"{kind}.t")
    t = t_prev + 1
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        b1, b2 = _cast(beta1, param), _cast(beta2, param)
        lr, eps, tp = _cast(learning_rate, param), _cast(epsilon, param), _cast(t, param)
        m_prev = _zeros_like(param, "m")
        m_t = b1 * m_prev + (1 - b1) * grad
        updates[m_prev] = m_t
        if kind == "adamax":
            u_prev = _zeros_like(param, "u")
            u_t = pt.maximum(b2 * u_prev, pt.abs(grad))
            updates[u_prev] = u_t
            step = lr / (1 - b1**tp) * m_t / (u_t + eps)
        else:
            v_prev = _zeros_like(param, "v")
            v_t = b2 * v_prev + (1 - b2) * grad**2
            updates[v_prev] = v_t
            a_t = lr * pt.sqrt(1 - b2**tp) / (1 - b1**tp)
            if kind == "amsgrad":
                v_hat_prev = _zeros_like(param, "v_hat")
                v_t = pt.maximum(v_hat_prev, v_t)
                updates[v_hat_prev] = v_t
            step = a_t * m_t / (pt.sqrt(v_t) + eps)
        updates[param] = param - step
    updates[t_prev] = t
    return _fit(updates)


def adam(
    loss_or_grads: Any,
    params: Sequence[Any],
    learning_rate: Any = 0.001,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    epsilon: Any = 1e-8,
) -> OrderedDict:
    """Adam (Kingma and Ba, 2014).

    At step ``t``: ``m <- b1 m + (1 - b1) g``, ``v <- b2 v + (1 - b2) g**2``,
    ``param <- param - lr sqrt(1 - b2**t) / (1 - b1**t) * m / (sqrt(v) + epsilon)``
    (bias correction folded into the step size, so epsilon is not rescaled, as in
    Lasagne).

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=adam(w**2, [w], learning_rate=0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.9
    """
    return _adam_family("adam", loss_or_grads, params, learning_rate, beta1, beta2, epsilon)


def adamax(
    loss_or_grads: Any,
    params: Sequence[Any],
    learning_rate: Any = 0.002,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    epsilon: Any = 1e-8,
) -> OrderedDict:
    """Adamax: Adam with an infinity-norm second moment.

    ``m <- b1 m + (1 - b1) g``, ``u <- max(b2 u, |g|)``,
    ``param <- param - lr / (1 - b1**t) * m / (u + epsilon)``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=adamax(w**2, [w], learning_rate=0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.9
    """
    return _adam_family("adamax", loss_or_grads, params, learning_rate, beta1, beta2, epsilon)


def amsgrad(
    loss_or_grads: Any,
    params: Sequence[Any],
    learning_rate: Any = 0.001,
    beta1: Any = 0.9,
    beta2: Any = 0.999,
    epsilon: Any = 1e-8,
) -> OrderedDict:
    """AMSGrad (Reddi et al., 2018): Adam using the running maximum of ``v``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> ups = amsgrad(w**2, [w], learning_rate=0.1)
    >>> len(ups)  # w, m, v, v_hat and the step counter
    5
    >>> f = pytensor.function([], w, updates=ups)
    >>> _ = f(); round(float(w.get_value()), 6)
    0.9
    """
    return _adam_family("amsgrad", loss_or_grads, params, learning_rate, beta1, beta2, epsilon)


def norm_constraint(
    tensor_var: Any, max_norm: Any, norm_axes: Sequence[int] | None = None, epsilon: Any = 1e-7
) -> Any:
    """Rescale the slices of ``tensor_var`` whose L2 norm exceeds ``max_norm``.

    Each slice is multiplied by ``clip(norm, 0, max_norm) / (epsilon + norm)``.

    Parameters
    ----------
    tensor_var : expression
        Typically a weight or its new value in an update dict.
    max_norm : scalar
    norm_axes : sequence of int, optional
        Axes the norms are taken over. Default: ``(0,)`` for a matrix (one norm per
        output unit of a dense layer) and all axes but the first for 3 to 5 dimensions
        (one norm per convolution filter). Other numbers of dimensions need it.
    epsilon : scalar
        Keeps the division finite for zero slices.

    Returns
    -------
    expression of the same type as ``tensor_var``

    Examples
    --------
    >>> w = pt.constant(np.array([[3.0, 0.1], [4.0, 0.1]]))
    >>> np.round(norm_constraint(w, 1.0).eval(), 3).tolist()
    [[0.6, 0.1], [0.8, 0.1]]
    """
    if not hasattr(tensor_var, "ndim"):
        tensor_var = pt.as_tensor_variable(tensor_var)
    ndim = tensor_var.ndim
    if norm_axes is not None:
        sum_over = tuple(int(a) for a in norm_axes)
    elif ndim == 2:
        sum_over = (0,)
    elif ndim in (3, 4, 5):
        sum_over = tuple(range(1, ndim))
    else:
        raise ValueError(
            f"norm_constraint: cannot choose norm axes for a tensor with {ndim} dimensions "
            "(defaults exist for 2 to 5); pass norm_axes"
        )
    norms = pt.sqrt(pt.sum(pt.sqr(tensor_var), axis=sum_over, keepdims=True))
    target = pt.clip(norms, _cast(0, tensor_var), _cast(max_norm, tensor_var))
    return tensor_var * (target / (_cast(epsilon, tensor_var) + norms))


def total_norm_constraint(
    tensor_vars: Sequence[Any], max_norm: Any, epsilon: Any = 1e-7, return_norm: bool = False
) -> Any:
    """Rescale several tensors together so that their joint L2 norm is at most ``max_norm``.

    Usually applied to gradients before an update rule (gradient clipping by global norm).

    Parameters
    ----------
    tensor_vars : list of expressions
    max_norm : scalar
    epsilon : scalar
    return_norm : bool
        Also return the joint norm before rescaling.

    Returns
    -------
    list of expressions, or (list, norm) if ``return_norm``

    Examples
    --------
    >>> a, b = pt.constant(np.array([3.0])), pt.constant(np.array([4.0]))
    >>> scaled, norm = total_norm_constraint([a, b], 1.0, return_norm=True)
    >>> [np.round(t.eval(), 3).tolist() for t in scaled], float(norm.eval())
    ([[0.6], [0.8]], 5.0)
    """
    tensor_vars = [pt.as_tensor_variable(t) for t in tensor_vars]
    if not tensor_vars:
        raise ValueError("total_norm_constraint: tensor_vars is empty; expected a list of tensors")
    dtype = pytensor.scalar.upcast(*[t.dtype for t in tensor_vars])
    norm = pt.sqrt(sum(pt.sum(pt.sqr(pt.cast(t, dtype))) for t in tensor_vars))
    target = pt.clip(norm, pt.cast(0, dtype), pt.cast(max_norm, dtype))
    multiplier = target / (pt.cast(epsilon, dtype) + norm)
    scaled = [t * _cast(multiplier, t) for t in tensor_vars]
    return (scaled, norm) if return_norm else scaled
