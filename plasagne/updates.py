"""Update rules: functions from a loss (or gradients) and parameters to an update dict.

Each returns an ``OrderedDict`` mapping shared variables to their new values, ready for
``pytensor.function(..., updates=updates)``. Every new value and accumulator keeps its
parameter's dtype and broadcastable pattern, so float32 training stays float32.
"""

from __future__ import annotations

from collections import OrderedDict
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


def get_or_compute_grads(loss_or_grads: Any, params: list) -> list:
    """Return gradients of a loss w.r.t. params, or check and pass through given gradients.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(3.0))
    >>> float(get_or_compute_grads(w**2, [w])[0].eval())
    6.0
    """
    if any(not isinstance(p, SharedVariable) for p in params):
        bad = [p for p in params if not isinstance(p, SharedVariable)]
        raise ValueError(
            f"params must contain shared variables only, got {bad}. A parameter given as an "
            "expression is updated through the shared variables it depends on: pass "
            "get_all_params(layer, trainable=True), which lists those"
        )
    if isinstance(loss_or_grads, list):
        if len(loss_or_grads) != len(params):
            raise ValueError(
                f"got {len(loss_or_grads)} gradient expressions for {len(params)} parameters"
            )
        return loss_or_grads
    return pytensor.grad(loss_or_grads, params)


def _like(param: SharedVariable, value: np.ndarray | None = None) -> SharedVariable:
    current = param.get_value(borrow=True)
    data = np.zeros(current.shape, dtype=current.dtype) if value is None else value
    return pytensor.shared(data, shape=param.type.shape)


def _cast(x: Any, param: Any) -> Any:
    return pt.cast(pt.as_tensor_variable(x), param.dtype)


def sgd(loss_or_grads: Any, params: list, learning_rate: Any) -> OrderedDict:
    """Stochastic gradient descent: ``param - learning_rate * grad``.

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
    return updates


def apply_momentum(updates: OrderedDict, params: list | None = None, momentum: Any = 0.9):
    """Add classical momentum to existing updates: ``v = m*v + step; param += v``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> ups = apply_momentum(sgd(w**2, [w], 0.1), [w], momentum=0.5)
    >>> len(ups)
    2
    """
    if params is None:
        params = list(updates.keys())
    updates = OrderedDict(updates)
    for param in params:
        velocity = _like(param)
        x = _cast(momentum, param) * velocity + updates[param]
        updates[velocity] = x - param
        updates[param] = x
    return updates


def momentum(loss_or_grads: Any, params: list, learning_rate: Any, momentum: Any = 0.9):
    """SGD with classical momentum.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=momentum(w**2, [w], 0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.8
    """
    return apply_momentum(sgd(loss_or_grads, params, learning_rate), params, momentum)


def apply_nesterov_momentum(updates: OrderedDict, params: list | None = None, momentum: Any = 0.9):
    """Add Nesterov momentum to existing updates.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> len(apply_nesterov_momentum(sgd(w**2, [w], 0.1)))
    2
    """
    if params is None:
        params = list(updates.keys())
    updates = OrderedDict(updates)
    for param in params:
        velocity = _like(param)
        m = _cast(momentum, param)
        x = m * velocity + updates[param] - param
        updates[velocity] = x
        updates[param] = m * x + updates[param]
    return updates


def nesterov_momentum(loss_or_grads: Any, params: list, learning_rate: Any, momentum: Any = 0.9):
    """SGD with Nesterov momentum.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=nesterov_momentum(w**2, [w], 0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.62
    """
    return apply_nesterov_momentum(sgd(loss_or_grads, params, learning_rate), params, momentum)


def adagrad(loss_or_grads: Any, params: list, learning_rate: Any = 1.0, epsilon: float = 1e-6):
    """Adagrad: ``param - lr * g / sqrt(sum of g**2 + eps)``.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> len(adagrad(w**2, [w]))
    2
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _like(param)
        accu_new = accu + grad**2
        updates[accu] = accu_new
        updates[param] = param - (
            _cast(learning_rate, param) * grad / pt.sqrt(accu_new + _cast(epsilon, param))
        )
    return updates


def rmsprop(
    loss_or_grads: Any,
    params: list,
    learning_rate: Any = 1.0,
    rho: float = 0.9,
    epsilon: float = 1e-6,
) -> OrderedDict:
    """RMSProp: scale steps by a running average of squared gradients.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> len(rmsprop(w**2, [w], learning_rate=0.01))
    2
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu = _like(param)
        r = _cast(rho, param)
        accu_new = r * accu + (1 - r) * grad**2
        updates[accu] = accu_new
        updates[param] = param - (
            _cast(learning_rate, param) * grad / pt.sqrt(accu_new + _cast(epsilon, param))
        )
    return updates


def adadelta(
    loss_or_grads: Any,
    params: list,
    learning_rate: Any = 1.0,
    rho: float = 0.95,
    epsilon: float = 1e-6,
) -> OrderedDict:
    """Adadelta: steps scaled by running averages of squared gradients and squared steps.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> len(adadelta(w**2, [w]))
    3
    """
    grads = get_or_compute_grads(loss_or_grads, params)
    updates = OrderedDict()
    for param, grad in zip(params, grads):
        accu, delta_accu = _like(param), _like(param)
        r, eps = _cast(rho, param), _cast(epsilon, param)
        accu_new = r * accu + (1 - r) * grad**2
        updates[accu] = accu_new
        step = grad * pt.sqrt(delta_accu + eps) / pt.sqrt(accu_new + eps)
        updates[param] = param - _cast(learning_rate, param) * step
        updates[delta_accu] = r * delta_accu + (1 - r) * step**2
    return updates


def _adam_like(
    loss_or_grads: Any,
    params: list,
    learning_rate: Any,
    beta1: float,
    beta2: float,
    epsilon: float,
    kind: str,
) -> OrderedDict:
    grads = get_or_compute_grads(loss_or_grads, params)
    dtype = params[0].dtype if params else pytensor.config.floatX
    t_prev = pytensor.shared(np.asarray(0.0, dtype=dtype), name="adam_t")
    updates = OrderedDict()
    one = pt.constant(1, dtype=dtype)
    t = t_prev + one
    b1, b2 = pt.cast(beta1, dtype), pt.cast(beta2, dtype)
    lr = pt.cast(learning_rate, dtype)
    if kind == "adamax":
        a_t = lr / (one - b1**t)
    else:
        a_t = lr * pt.sqrt(one - b2**t) / (one - b1**t)
    for param, grad in zip(params, grads):
        m_prev, v_prev = _like(param), _like(param)
        m_t = _cast(b1, param) * m_prev + (1 - _cast(b1, param)) * grad
        eps = _cast(epsilon, param)
        if kind == "adamax":
            v_t = pt.maximum(_cast(b2, param) * v_prev, pt.abs(grad))
            step = _cast(a_t, param) * m_t / (v_t + eps)
        else:
            v_t = _cast(b2, param) * v_prev + (1 - _cast(b2, param)) * grad**2
            if kind == "amsgrad":
                v_hat_prev = _like(param)
                v_hat_t = pt.maximum(v_hat_prev, v_t)
                updates[v_hat_prev] = v_hat_t
                step = _cast(a_t, param) * m_t / (pt.sqrt(v_hat_t) + eps)
            else:
                step = _cast(a_t, param) * m_t / (pt.sqrt(v_t) + eps)
        updates[m_prev] = m_t
        updates[v_prev] = v_t
        updates[param] = param - step
    updates[t_prev] = t
    return updates


def adam(
    loss_or_grads: Any,
    params: list,
    learning_rate: Any = 0.001,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> OrderedDict:
    """Adam (Kingma and Ba), with bias correction folded into the step size.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=adam(w**2, [w], learning_rate=0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.9
    """
    return _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, "adam")


def adamax(
    loss_or_grads: Any,
    params: list,
    learning_rate: Any = 0.002,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> OrderedDict:
    """Adamax: Adam with the infinity norm of past gradients.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> f = pytensor.function([], w, updates=adamax(w**2, [w], learning_rate=0.1))
    >>> _ = f(); round(float(w.get_value()), 6)
    0.9
    """
    return _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, "adamax")


def amsgrad(
    loss_or_grads: Any,
    params: list,
    learning_rate: Any = 0.001,
    beta1: float = 0.9,
    beta2: float = 0.999,
    epsilon: float = 1e-8,
) -> OrderedDict:
    """AMSGrad: Adam with the running maximum of the second-moment estimate.

    Examples
    --------
    >>> w = pytensor.shared(np.float64(1.0))
    >>> len(amsgrad(w**2, [w]))
    5
    """
    return _adam_like(loss_or_grads, params, learning_rate, beta1, beta2, epsilon, "amsgrad")


def norm_constraint(
    tensor_var: Any, max_norm: float, norm_axes: Any = None, epsilon: float = 1e-7
) -> Any:
    """Rescale slices of ``tensor_var`` whose L2 norm exceeds ``max_norm``.

    Norms run over ``norm_axes`` (default: all but the first axis of a matrix's columns,
    as :func:`plasagne.utils.compute_norms` chooses).

    Examples
    --------
    >>> w = pt.constant(np.array([[3.0, 0.1], [4.0, 0.1]]))
    >>> np.round(norm_constraint(w, 1.0).eval(), 3).tolist()
    [[0.6, 0.1], [0.8, 0.1]]
    """
    ndim = tensor_var.ndim
    if norm_axes is not None:
        sum_over = tuple(norm_axes)
    elif ndim == 2:
        sum_over = (0,)
    elif ndim in (3, 4, 5):
        sum_over = tuple(range(1, ndim))
    else:
        raise ValueError(f"Unsupported tensor dimensionality {ndim}. Must specify `norm_axes`")
    dtype = tensor_var.dtype
    norms = pt.sqrt(pt.sum(pt.sqr(tensor_var), axis=sum_over, keepdims=True))
    target = pt.clip(norms, 0, pt.cast(max_norm, dtype))
    return tensor_var * (target / (pt.cast(epsilon, dtype) + norms))


def total_norm_constraint(
    tensor_vars: list, max_norm: float, epsilon: float = 1e-7, return_norm: bool = False
) -> Any:
    """Rescale a list of tensors together so their joint L2 norm is at most ``max_norm``.

    Examples
    --------
    >>> a, b = pt.constant(np.array([3.0])), pt.constant(np.array([4.0]))
    >>> [np.round(t.eval(), 3).tolist() for t in total_norm_constraint([a, b], 1.0)]
    [[0.6], [0.8]]
    """
    norm = pt.sqrt(sum(pt.sum(t**2) for t in tensor_vars))
    dtype = np.result_type(*[t.dtype for t in tensor_vars]).name
    target = pt.clip(norm, 0, pt.cast(max_norm, dtype))
    multiplier = target / (pt.cast(epsilon, dtype) + norm)
    scaled = [t * pt.cast(multiplier, t.dtype) for t in tensor_vars]
    return (scaled, norm) if return_norm else scaled
