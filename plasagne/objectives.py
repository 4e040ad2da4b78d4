"""Loss functions and accuracies for training networks, as PyTensor expressions.

Every function takes PyTensor expressions (or anything ``pt.as_tensor_variable``
accepts) and returns an elementwise (or per-row) expression; reduce it to a scalar with
:func:`aggregate` or ``.mean()``.

Scalar hyper-parameters (``delta``, ``threshold``, the clipping bound) are cast to the
predictions' dtype, so float32 predictions with float32 targets give a float32 loss.
"""

from __future__ import annotations

import warnings
from typing import Any

import numpy as np
import pytensor
import pytensor.tensor as pt

__all__ = [
    "binary_crossentropy",
    "categorical_crossentropy",
    "squared_error",
    "aggregate",
    "binary_hinge_loss",
    "multiclass_hinge_loss",
    "huber_loss",
    "binary_accuracy",
    "categorical_accuracy",
]


def _tensor(x: Any, what: str) -> pt.TensorVariable:
    try:
        return pt.as_tensor_variable(x)
    except (TypeError, ValueError, NotImplementedError) as err:
        raise TypeError(
            f"{what} must be a PyTensor expression or an array, got {type(x).__name__} {x!r}"
        ) from err


def _float_dtype(x: pt.TensorVariable) -> str:
    return x.dtype if x.dtype.startswith("float") else pytensor.config.floatX


def _const(value: Any, like: pt.TensorVariable) -> Any:
    """``value`` (number or expression) cast to the float dtype of ``like``."""
    return pt.cast(value, _float_dtype(like))


def _eps(x: pt.TensorVariable) -> float:
    # The smallest probability kept away from 0: tiny, yet 1 - eps still differs from 1.
    return float(np.finfo(_float_dtype(x)).eps)


def align_targets(predictions: Any, targets: Any) -> tuple:
    """Make a vector of targets a column when the predictions are a single-column matrix.

    A network with one output unit gives predictions of shape ``(N, 1)`` whose second
    axis is broadcastable; targets are often a vector of shape ``(N,)``. Without
    aligning, ``predictions - targets`` would broadcast to ``(N, N)``. All binary
    losses, :func:`squared_error` and :func:`huber_loss` call this first, as in Lasagne.

    Parameters
    ----------
    predictions, targets : expression or array

    Returns
    -------
    tuple of (predictions, targets) as PyTensor expressions

    Examples
    --------
    >>> p = pt.matrix("p", shape=(None, 1))
    >>> _, t = align_targets(p, pt.vector("t"))
    >>> t.ndim, t.type.broadcastable
    (2, (False, True))
    """
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    if predictions.type.broadcastable == (False, True) and targets.ndim == 1:
        targets = targets.dimshuffle(0, "x")
    return predictions, targets


def binary_crossentropy(predictions: Any, targets: Any) -> Any:
    """Elementwise binary cross-entropy ``-t log(p) - (1 - t) log(1 - p)``.

    Parameters
    ----------
    predictions : expression
        Probabilities in (0, 1), e.g. a sigmoid output.
    targets : expression
        Targets in [0, 1] of the same shape (a vector is aligned with an ``(N, 1)``
        prediction, see :func:`align_targets`).

    Returns
    -------
    expression
        The elementwise loss.

    Notes
    -----
    ``p`` is clipped to ``[eps, 1 - eps]`` (``eps`` the machine epsilon of its dtype:
    1.2e-7 for float32, 2.2e-16 for float64), so a saturated sigmoid gives a large finite
    loss rather than ``inf``. Lasagne does not clip.

    Examples
    --------
    >>> p, t = np.array([0.8, 0.1]), np.array([1.0, 0.0])
    >>> np.allclose(binary_crossentropy(p, t).eval(), -np.log([0.8, 0.9]))
    True
    """
    predictions, targets = align_targets(predictions, targets)
    eps = _eps(predictions)
    p = pt.clip(predictions, _const(eps, predictions), _const(1 - eps, predictions))
    return -(targets * pt.log(p) + (1 - targets) * pt.log1p(-p))


def categorical_crossentropy(predictions: Any, targets: Any) -> Any:
    """Cross-entropy between predicted class distributions and targets, one value per row.

    Parameters
    ----------
    predictions : expression
        Class probabilities (e.g. a softmax output), classes on the last axis.
    targets : expression
        Either integer class indices with one dimension fewer than ``predictions``
        (the loss is ``-log p[i, t_i]``), or a distribution (one-hot or soft) of the same
        shape (the loss is ``-sum_j t_ij log p_ij``).

    Returns
    -------
    expression
        One loss per row (shape ``predictions.shape[:-1]``).

    Notes
    -----
    A float32 softmax rounds small probabilities to exactly 0, so ``log(p)`` can be
    ``-inf`` and its gradient NaN. Probabilities are therefore clipped below at the
    machine epsilon of their dtype (1.2e-7 for float32, 2.2e-16 for float64): the loss
    of a fully wrong saturated prediction is large (about 15.9 in float32) but finite,
    and the gradient through a clipped entry is zero. Lasagne does not clip.

    Examples
    --------
    >>> p = np.array([[0.25, 0.75], [0.9, 0.1]])
    >>> np.allclose(categorical_crossentropy(p, np.array([1, 0])).eval(), -np.log([0.75, 0.9]))
    True
    >>> np.allclose(categorical_crossentropy(p, np.eye(2)[[1, 0]]).eval(), -np.log([0.75, 0.9]))
    True
    """
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    if predictions.ndim < 1:
        raise TypeError("categorical_crossentropy: predictions need a class axis, got a scalar")
    p = pt.clip(predictions, _const(_eps(predictions), predictions), _const(1, predictions))
    if targets.ndim == predictions.ndim:
        return -pt.sum(targets * pt.log(p), axis=-1)
    if targets.ndim == predictions.ndim - 1:
        if not targets.dtype.startswith(("int", "uint")):
            raise TypeError(
                "categorical_crossentropy: targets with one dimension fewer than predictions "
                f"are class indices and must be integers, got dtype {targets.dtype}"
            )
        picked = pt.take_along_axis(p, pt.shape_padright(targets), axis=-1)
        return -pt.log(picked[..., 0])
    raise TypeError(
        f"categorical_crossentropy: predictions have {predictions.ndim} dimensions, so targets "
        f"must have {predictions.ndim} (distributions) or {predictions.ndim - 1} (class indices); "
        f"got {targets.ndim}"
    )


def squared_error(a: Any, b: Any) -> Any:
    """Elementwise squared difference ``(a - b)**2``.

    Examples
    --------
    >>> squared_error(np.array([3.0, 0.0]), np.array([1.0, 2.0])).eval().tolist()
    [4.0, 4.0]
    """
    a, b = align_targets(a, b)
    return pt.square(a - b)


def aggregate(loss: Any, weights: Any = None, mode: str = "mean") -> Any:
    """Reduce an elementwise loss to a scalar, optionally weighting each element.

    Parameters
    ----------
    loss : expression
        Elementwise (or per-row) loss.
    weights : expression, optional
        Weights broadcastable to ``loss``; ``loss * weights`` is reduced.
    mode : {'mean', 'sum', 'normalized_sum'}
        ``'mean'`` averages over all elements, ``'sum'`` adds them up,
        ``'normalized_sum'`` divides the weighted sum by ``weights.sum()`` (requires
        weights).

    Returns
    -------
    scalar expression

    Examples
    --------
    >>> loss, w = np.array([1.0, 3.0]), np.array([1.0, 0.0])
    >>> float(aggregate(loss, mode="sum").eval())
    4.0
    >>> float(aggregate(loss, w, mode="normalized_sum").eval())
    1.0
    """
    loss = _tensor(loss, "loss")
    if weights is not None:
        weights = _tensor(weights, "weights")
        loss = loss * weights
    if mode == "mean":
        return loss.mean()
    if mode == "sum":
        return loss.sum()
    if mode == "normalized_sum":
        if weights is None:
            raise ValueError("aggregate: mode='normalized_sum' requires weights, got None")
        return loss.sum() / weights.sum()
    raise ValueError(f"aggregate: mode must be 'mean', 'sum' or 'normalized_sum', got {mode!r}")


def binary_hinge_loss(
    predictions: Any,
    targets: Any,
    delta: float = 1,
    log_odds: bool | None = None,
    binary: bool = True,
) -> Any:
    """Elementwise hinge loss ``max(0, delta - t * f)`` for two-class problems.

    Parameters
    ----------
    predictions : expression
        Log-odds (a linear output) if ``log_odds`` is True, probabilities otherwise,
        which are turned into log-odds ``log(p / (1 - p))`` first.
    targets : expression
        Targets in {0, 1} if ``binary`` is True (mapped to {-1, 1}), else in {-1, 1}.
    delta : scalar
        The margin.
    log_odds : bool
        Whether ``predictions`` are log-odds. Leaving it at None warns (as in Lasagne,
        whose default was meant to change) and uses True.
    binary : bool
        Whether targets are {0, 1}.

    Examples
    --------
    >>> f = np.array([0.5, 2.0, 0.5])
    >>> binary_hinge_loss(f, np.array([1, 1, 0]), log_odds=True).eval().tolist()
    [0.5, 0.0, 1.5]
    """
    if log_odds is None:
        warnings.warn(
            "binary_hinge_loss: log_odds was not given; treating predictions as log-odds "
            "(log_odds=True). Pass log_odds=False for probabilities (e.g. a sigmoid output).",
            FutureWarning,
            stacklevel=2,
        )
        log_odds = True
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    if not log_odds:
        eps = _eps(predictions)
        p = pt.clip(predictions, _const(eps, predictions), _const(1 - eps, predictions))
        predictions = pt.log(p) - pt.log1p(-p)
    if binary:
        targets = 2 * targets - 1
    predictions, targets = align_targets(predictions, targets)
    return pt.maximum(0, _const(delta, predictions) - predictions * targets)


def multiclass_hinge_loss(predictions: Any, targets: Any, delta: float = 1) -> Any:
    """Multi-class hinge loss ``max(0, max_{j != t} f_j - f_t + delta)``, one value per row.

    Parameters
    ----------
    predictions : expression
        Matrix of class scores, shape ``(N, C)``.
    targets : expression
        Integer class indices of shape ``(N,)`` or one-hot rows of shape ``(N, C)``.
    delta : scalar
        The margin.

    Examples
    --------
    >>> f = np.array([[0.2, 0.5, 0.3], [2.0, 0.0, 0.0]])
    >>> np.round(multiclass_hinge_loss(f, np.array([1, 0])).eval(), 6).tolist()
    [0.8, 0.0]
    """
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    if predictions.ndim != 2:
        raise TypeError(
            f"multiclass_hinge_loss: predictions must be a matrix (N, C), got {predictions.ndim} "
            "dimensions"
        )
    if targets.ndim == 1:
        if not targets.dtype.startswith(("int", "uint")):
            raise TypeError(
                f"multiclass_hinge_loss: vector targets are class indices and must be integers, "
                f"got dtype {targets.dtype}"
            )
        is_target = pt.eq(targets[:, None], pt.arange(predictions.shape[1])[None, :])
    elif targets.ndim == 2:
        is_target = pt.neq(targets, 0)
    else:
        raise TypeError(
            "multiclass_hinge_loss: targets must be class indices (1 dimension) or one-hot "
            f"rows (2 dimensions), got {targets.ndim} dimensions"
        )
    zero = _const(0, predictions)
    correct = pt.sum(pt.switch(is_target, predictions, zero), axis=1)
    rest = pt.max(pt.switch(is_target, _const(-np.inf, predictions), predictions), axis=1)
    return pt.maximum(0, rest - correct + _const(delta, predictions))


def huber_loss(predictions: Any, targets: Any, delta: float = 1) -> Any:
    """Elementwise Huber loss: ``0.5 a**2`` if ``|a| <= delta`` else ``delta (|a| - delta/2)``.

    ``a`` is ``predictions - targets``; quadratic near zero, linear beyond ``delta``.

    Examples
    --------
    >>> huber_loss(np.array([0.5, 3.0]), np.zeros(2)).eval().tolist()
    [0.125, 2.5]
    """
    predictions, targets = align_targets(predictions, targets)
    abs_diff = pt.abs(targets - predictions)
    d = _const(delta, abs_diff)
    half = _const(0.5, abs_diff)
    return pt.switch(abs_diff <= d, half * pt.square(abs_diff), d * (abs_diff - half * d))


def binary_accuracy(predictions: Any, targets: Any, threshold: float = 0.5) -> Any:
    """Elementwise 1.0 where ``predictions >= threshold`` agrees with the {0, 1} target.

    Returns floatX values (Lasagne returns the boolean comparison), so ``.mean()`` gives
    the accuracy directly.

    Examples
    --------
    >>> binary_accuracy(np.array([0.7, 0.2, 0.4]), np.array([1, 1, 0])).eval().tolist()
    [1.0, 0.0, 1.0]
    """
    predictions, targets = align_targets(predictions, targets)
    predicted = pt.ge(predictions, _const(threshold, predictions))
    return pt.cast(pt.eq(predicted, targets), pytensor.config.floatX)


def categorical_accuracy(predictions: Any, targets: Any, top_k: int = 1) -> Any:
    """Per row, 1.0 if the target class is among the ``top_k`` highest predictions.

    Parameters
    ----------
    predictions : expression
        Class scores, classes on the last axis.
    targets : expression
        Integer class indices (one dimension fewer) or one-hot rows (same shape; the
        argmax is the class).
    top_k : int
        How many of the highest-scoring classes count as a hit.

    Returns
    -------
    expression
        floatX values, one per row (Lasagne returns the boolean comparison).

    Examples
    --------
    >>> p = np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]])
    >>> categorical_accuracy(p, np.array([2, 0])).eval().tolist()
    [0.0, 1.0]
    >>> categorical_accuracy(p, np.array([2, 0]), top_k=2).eval().tolist()
    [1.0, 1.0]
    """
    predictions = _tensor(predictions, "predictions")
    targets = _tensor(targets, "targets")
    if not isinstance(top_k, (int, np.integer)) or top_k < 1:
        raise ValueError(f"categorical_accuracy: top_k must be a positive integer, got {top_k!r}")
    if targets.ndim == predictions.ndim:
        targets = pt.argmax(targets, axis=-1)
    elif targets.ndim != predictions.ndim - 1:
        raise TypeError(
            f"categorical_accuracy: predictions have {predictions.ndim} dimensions, so targets "
            f"must have {predictions.ndim} (one-hot) or {predictions.ndim - 1} (class indices); "
            f"got {targets.ndim}"
        )
    if top_k == 1:
        hit = pt.eq(pt.argmax(predictions, axis=-1), targets)
    else:
        top = pt.argsort(predictions, axis=-1)[..., -top_k:]
        hit = pt.any(pt.eq(top, pt.shape_padright(targets)), axis=-1)
    return pt.cast(hit, pytensor.config.floatX)
