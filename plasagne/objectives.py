"""Loss functions and accuracies for training networks, as PyTensor expressions."""

from __future__ import annotations

from typing import Any

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


def _eps(x: Any) -> float:
    # the smallest probability kept away from log(0): tiny but representable in x's dtype
    return 1e-7 if getattr(x, "dtype", pytensor.config.floatX) == "float32" else 1e-15


def binary_crossentropy(predictions: Any, targets: Any) -> Any:
    """Elementwise ``-t log(p) - (1 - t) log(1 - p)``, with p clipped away from 0 and 1.

    Examples
    --------
    >>> import numpy as np
    >>> p, t = pt.constant(np.array([0.8])), pt.constant(np.array([1.0]))
    >>> bool(np.isclose(binary_crossentropy(p, t).eval()[0], -np.log(0.8)))
    True
    """
    predictions, targets = pt.as_tensor_variable(predictions), pt.as_tensor_variable(targets)
    eps = _eps(predictions)
    p = pt.clip(predictions, eps, 1 - eps)
    return -(targets * pt.log(p) + (1 - targets) * pt.log1p(-p))


def categorical_crossentropy(predictions: Any, targets: Any) -> Any:
    """Row-wise ``-sum(t log p)`` for one-hot targets, or ``-log p[i, t_i]`` for int targets.

    Probabilities are clipped below at 1e-7 (float32) / 1e-15 (float64) so a saturated
    softmax gives a large but finite loss instead of ``inf``.

    Examples
    --------
    >>> import numpy as np
    >>> p = pt.constant(np.array([[0.25, 0.75]]))
    >>> bool(np.isclose(categorical_crossentropy(p, np.array([1])).eval()[0], -np.log(0.75)))
    True
    """
    predictions, targets = pt.as_tensor_variable(predictions), pt.as_tensor_variable(targets)
    p = pt.clip(predictions, _eps(predictions), 1.0)
    if targets.ndim == predictions.ndim:
        return -pt.sum(targets * pt.log(p), axis=-1)
    if targets.ndim == predictions.ndim - 1:
        if not targets.dtype.startswith(("int", "uint")):
            raise TypeError(
                "categorical_crossentropy: class-index targets must be integers, "
                f"got {targets.dtype}"
            )
        picked = pt.take_along_axis(p, pt.shape_padright(targets), axis=-1)
        return -pt.log(picked[..., 0])
    raise TypeError(
        f"categorical_crossentropy: targets must have {predictions.ndim} (one-hot) or "
        f"{predictions.ndim - 1} (class indices) dimensions, got {targets.ndim}"
    )


def squared_error(a: Any, b: Any) -> Any:
    """Elementwise squared difference ``(a - b)**2``.

    Examples
    --------
    >>> float(squared_error(pt.constant(3.0), pt.constant(1.0)).eval())
    4.0
    """
    return pt.square(pt.as_tensor_variable(a) - pt.as_tensor_variable(b))


def aggregate(loss: Any, weights: Any = None, mode: str = "mean") -> Any:
    """Reduce an elementwise loss to a scalar, optionally weighted.

    Parameters
    ----------
    loss : expression
    weights : expression, optional
        Broadcastable to ``loss``.
    mode : {'mean', 'sum', 'normalized_sum'}
        ``normalized_sum`` divides the weighted sum by the sum of the weights.

    Examples
    --------
    >>> import numpy as np
    >>> float(aggregate(pt.constant(np.array([1.0, 3.0])), mode="sum").eval())
    4.0
    """
    loss = pt.as_tensor_variable(loss)
    if weights is not None:
        loss = loss * weights
    if mode == "mean":
        return loss.mean()
    if mode == "sum":
        return loss.sum()
    if mode == "normalized_sum":
        if weights is None:
            raise ValueError("aggregate(mode='normalized_sum') requires weights")
        return loss.sum() / pt.as_tensor_variable(weights).sum()
    raise ValueError(f"aggregate: mode must be 'mean', 'sum' or 'normalized_sum', got {mode!r}")


def binary_hinge_loss(
    predictions: Any,
    targets: Any,
    delta: float = 1,
    log_odds: bool | None = None,
    binary: bool = True,
) -> Any:
    """Hinge loss ``max(0, delta - t * p)`` for binary targets.

    With ``binary=True`` targets in {0, 1} are mapped to {-1, 1}; with ``log_odds=False``
    predictions are probabilities and are mapped to log-odds first (default: True).

    Examples
    --------
    >>> import numpy as np
    >>> binary_hinge_loss(pt.constant(np.array([0.5, 2.0])), np.array([1, 1])).eval().tolist()
    [0.5, 0.0]
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    if log_odds is None:
        log_odds = True
    if not log_odds:
        eps = _eps(predictions)
        p = pt.clip(predictions, eps, 1 - eps)
        predictions = pt.log(p) - pt.log1p(-p)
    if binary:
        targets = 2 * targets - 1
    return pt.maximum(0, delta - predictions * targets)


def multiclass_hinge_loss(predictions: Any, targets: Any, delta: float = 1) -> Any:
    """Multi-class hinge loss ``max(0, max_{j != t} p_j - p_t + delta)`` per row.

    Examples
    --------
    >>> import numpy as np
    >>> p = pt.constant(np.array([[0.2, 0.5, 0.3]]))
    >>> round(float(multiclass_hinge_loss(p, np.array([1])).eval()[0]), 6)
    0.8
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    num_cls = predictions.shape[1]
    if targets.ndim == predictions.ndim - 1:
        targets = pt.eq(pt.shape_padright(targets), pt.arange(num_cls)[None, :])
    elif targets.ndim != predictions.ndim:
        raise TypeError("multiclass_hinge_loss: targets must be class indices or one-hot")
    targets = pt.cast(targets, "bool")
    corrects = pt.sum(pt.switch(targets, predictions, 0), axis=1)
    rest = pt.max(pt.switch(targets, -pt.inf, predictions), axis=1)
    return pt.maximum(0, rest - corrects + delta)


def huber_loss(predictions: Any, targets: Any, delta: float = 1) -> Any:
    """Huber loss: ``0.5 a**2`` for ``|a| <= delta``, else ``delta (|a| - 0.5 delta)``.

    Examples
    --------
    >>> import numpy as np
    >>> huber_loss(pt.constant(np.array([0.5, 3.0])), np.zeros(2)).eval().tolist()
    [0.125, 2.5]
    """
    abs_diff = pt.abs(pt.as_tensor_variable(predictions) - targets)
    return pt.switch(abs_diff <= delta, 0.5 * abs_diff**2, delta * (abs_diff - 0.5 * delta))


def binary_accuracy(predictions: Any, targets: Any, threshold: float = 0.5) -> Any:
    """Elementwise 1 where ``predictions >= threshold`` matches the binary target.

    Examples
    --------
    >>> import numpy as np
    >>> binary_accuracy(pt.constant(np.array([0.7, 0.2])), np.array([1, 1])).eval().tolist()
    [1.0, 0.0]
    """
    predictions = pt.ge(pt.as_tensor_variable(predictions), threshold)
    return pt.cast(pt.eq(predictions, pt.as_tensor_variable(targets)), pytensor.config.floatX)


def categorical_accuracy(predictions: Any, targets: Any, top_k: int = 1) -> Any:
    """Per row, 1 if the target is among the ``top_k`` highest predictions.

    Examples
    --------
    >>> import numpy as np
    >>> p = pt.constant(np.array([[0.1, 0.6, 0.3], [0.5, 0.2, 0.3]]))
    >>> categorical_accuracy(p, np.array([2, 0])).eval().tolist()
    [0.0, 1.0]
    >>> categorical_accuracy(p, np.array([2, 0]), top_k=2).eval().tolist()
    [1.0, 1.0]
    """
    predictions = pt.as_tensor_variable(predictions)
    targets = pt.as_tensor_variable(targets)
    if targets.ndim == predictions.ndim:
        targets = pt.argmax(targets, axis=-1)
    elif targets.ndim != predictions.ndim - 1:
        raise TypeError("categorical_accuracy: targets must be class indices or one-hot")
    if top_k == 1:
        hit = pt.eq(pt.argmax(predictions, axis=-1), targets)
    else:
        top = pt.argsort(predictions, axis=-1)[..., -top_k:]
        hit = pt.any(pt.eq(top, pt.shape_padright(targets)), axis=-1)
    return pt.cast(hit, pytensor.config.floatX)
