"""From a network and data to a PyMC model with exact minibatch scaling.

:func:`build_model` wraps the network's output in a likelihood whose
log-probability is scaled by ``N / B`` (``total_size``), so the model's logp on
one minibatch of ``B`` rows is an unbiased estimate of the full-data log
posterior. The data live in two shared containers sized to one minibatch,
which the trainer of :mod:`.fit` overwrites every step.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.tensor.elemwise import Elemwise
from pytensor.tensor.special import Softmax

from ..layers.base import Layer
from ..layers.helper import get_output

__all__ = ["BayesianNetwork", "build_model", "LIKELIHOODS", "softmax_logits", "sigmoid_logits"]

LIKELIHOODS = ("categorical", "bernoulli", "normal")


def _check_no_noise(model: pm.Model, layer: Any, output: Any) -> None:
    """Raise when the network's output draws random noise that is not one of the model's
    variables (a dropout or Gaussian-noise layer): PyMC's log-density cannot hold it, and
    its own error names neither the layer nor the way out."""
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.random.op import RandomVariable

    known = set(model.basic_RVs)
    noise = [
        v
        for v in ancestors([output])
        if v.owner is not None and isinstance(v.owner.op, RandomVariable) and v not in known
    ]
    if not any(v is v.owner.outputs[1] for v in noise):
        return
    from ..layers.helper import get_all_layers
    from ..layers.noise import DropoutLayer, GaussianNoiseLayer

    noisy = [
        f"{type(l).__name__} {l.name!r}" if l.name else type(l).__name__
        for l in get_all_layers(layer)
        if isinstance(l, DropoutLayer | GaussianNoiseLayer)
    ]
    where = ", ".join(noisy) if noisy else "a layer of the network"
    raise ValueError(
        f"build_model: {where} draws random noise in the network's output, which PyMC's "
        "log-density cannot hold; build the model with deterministic=True (the layers "
        "pass their input through) or without those layers"
    )


def softmax_logits(output: Any) -> Any | None:
    """The logits ``x`` if ``output`` is ``softmax(x)`` over its last axis, else None.

    Found by inspecting the graph (the Softmax op), whatever layer built it.

    Examples
    --------
    >>> from plasagne.nonlinearities import softmax
    >>> x = pt.matrix("x")
    >>> softmax_logits(softmax(x)) is x
    True
    >>> softmax_logits(pt.exp(x)) is None
    True
    """
    owner = getattr(output, "owner", None)
    if owner is None or not isinstance(owner.op, Softmax):
        return None
    axis = owner.op.axis
    ndim = output.ndim
    if axis is None:
        return owner.inputs[0] if ndim == 1 else None
    axes = tuple(a % ndim for a in (axis if isinstance(axis, tuple) else (axis,)))
    return owner.inputs[0] if axes == (ndim - 1,) else None


def sigmoid_logits(output: Any) -> Any | None:
    """The logits ``x`` if ``output`` is ``sigmoid(x)``, else None.

    Examples
    --------
    >>> x = pt.vector("x")
    >>> sigmoid_logits(pt.sigmoid(x)) is x
    True
    """
    owner = getattr(output, "owner", None)
    if (
        owner is not None
        and isinstance(owner.op, Elemwise)
        and isinstance(owner.op.scalar_op, ps.Sigmoid)
    ):
        return owner.inputs[0]
    return None


def _categorical_logp(value: Any, logits: Any) -> Any:
    log_p = logits - pt.logsumexp(logits, axis=-1, keepdims=True)
    return pt.take_along_axis(log_p, value[..., None].astype("int64"), axis=-1)[..., 0]


def _categorical_dist(logits: Any, size: Any) -> Any:
    return pm.Categorical.dist(logit_p=logits, size=size)


@dataclass
class BayesianNetwork:
    """A network turned into a PyMC model, with its minibatch data containers.

    Attributes
    ----------
    model : pm.Model
        The model: the network's priors, the likelihood ``"y"`` and, for the
        normal likelihood, the noise scale ``"noise.sigma"``.
    network : Layer
        The output layer.
    input_data, target_data : SharedVariable
        Containers holding one minibatch; :meth:`set_batch` fills them.
    output : TensorVariable
        The network output for ``input_data``, in terms of the model's random
        variables (probabilities for classification, the mean for regression).
    likelihood : str
        ``"categorical"``, ``"bernoulli"`` or ``"normal"``.
    n_data : int
        The number of rows of the full data set (the ``total_size``).
    batch_size : int
        The number of rows of one minibatch.
    observed : TensorVariable
        The observed random variable ``"y"``.
    logits : TensorVariable or None
        The pre-softmax / pre-sigmoid activation, when the output has one.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights
    >>> def build(prior):
    ...     return DenseLayer(InputLayer((None, 2)), 3, W=prior, b=prior,
    ...                       nonlinearity=softmax, name="out")
    >>> X, y = np.zeros((10, 2)), np.arange(10) % 3
    >>> bnet = build_model(build, X, y, priors=GaussWeights(), batch_size=5)
    >>> bnet.n_data, bnet.input_data.get_value().shape, sorted(bnet.model.named_vars)
    (10, (5, 2), ['X_batch', 'out.W', 'out.b', 'y', 'y_batch'])
    """

    model: pm.Model
    network: Layer
    input_data: SharedVariable
    target_data: SharedVariable
    output: Any
    likelihood: str
    n_data: int
    batch_size: int
    observed: Any
    logits: Any = None
    extra: dict = field(default_factory=dict)

    def set_batch(self, X: np.ndarray, y: np.ndarray) -> None:
        """Copy one minibatch into the data containers (cast to their dtypes).

        Examples
        --------
        >>> from plasagne.layers import InputLayer, DenseLayer
        >>> from plasagne.pymc_bridge import GaussWeights
        >>> build = lambda p: DenseLayer(InputLayer((None, 2)), 1, W=p, b=p, nonlinearity=None)
        >>> bnet = build_model(build, np.ones((4, 2)), np.ones(4), "normal", priors=GaussWeights())
        >>> bnet.set_batch(np.zeros((2, 2)), np.zeros(2))
        >>> bnet.input_data.get_value().shape
        (2, 2)
        """
        self.input_data.set_value(np.asarray(X, dtype=self.input_data.dtype), borrow=True)
        self.target_data.set_value(np.asarray(y, dtype=self.target_data.dtype), borrow=True)


def _as_layer(network: Any, priors: Any, model: pm.Model) -> Layer:
    if isinstance(network, Layer):
        return network
    if not callable(network):
        raise TypeError(
            "build_model: network must be an output Layer or a callable building one, "
            f"found {type(network).__name__}"
        )
    with model:
        layer = network(priors) if priors is not None else network()
    if not isinstance(layer, Layer):
        raise TypeError(
            f"build_model: the network builder {network!r} must return the output Layer, "
            f"returned {type(layer).__name__}"
        )
    return layer


def check_input_shape(network: Layer, X: np.ndarray, where: str) -> None:
    """Raise a ``ValueError`` naming the network's input layer when the rows of ``X`` do
    not have the shape it declares (as many axes; each known length equal).

    Parameters
    ----------
    network : Layer
        The output layer; checked against its one ``InputLayer`` (nothing is checked for
        several inputs or an input without a shape).
    X : ndarray
        The data, one row per example.
    where : str
        The caller, for the message (``"fit"``, ``"build_model"``, ...).

    Examples
    --------
    >>> from plasagne.layers import DenseLayer, InputLayer
    >>> net = DenseLayer(InputLayer((None, 1, 4, 4), name="input"), 3)
    >>> check_input_shape(net, np.zeros((5, 1, 4, 4)), "fit")
    >>> check_input_shape(net, np.zeros((5, 1, 4, 5)), "fit")
    Traceback (most recent call last):
    ...
    ValueError: fit: the input layer 'input' takes rows of shape (1, 4, 4), found X ...
    """
    from plasagne.layers import InputLayer, get_all_layers

    inputs = [layer for layer in get_all_layers(network) if isinstance(layer, InputLayer)]
    if len(inputs) != 1 or inputs[0].shape is None:
        return
    layer = inputs[0]
    declared, found = tuple(layer.shape[1:]), tuple(X.shape[1:])
    fits = len(declared) == len(found) and all(
        d is None or d == f for d, f in zip(declared, found, strict=True)
    )
    if not fits:
        name = layer.name or type(layer).__name__
        raise ValueError(
            f"{where}: the input layer {name!r} takes rows of shape {declared}, "
            f"found X of shape {X.shape}"
        )


def _check_targets(likelihood: str, y: np.ndarray, n_out: Any) -> None:
    if likelihood == "categorical":
        if not np.issubdtype(y.dtype, np.integer):
            if not np.all(np.equal(np.mod(y, 1), 0)):
                raise ValueError(
                    f"build_model: likelihood 'categorical' expects integer class labels y, "
                    f"found non-integer values of dtype {y.dtype}"
                )
        if y.size and (y.min() < 0 or (n_out is not None and y.max() >= n_out)):
            raise ValueError(
                f"build_model: likelihood 'categorical' expects labels in [0, {n_out}), "
                f"found values in [{y.min()}, {y.max()}]"
            )
    elif likelihood == "bernoulli":
        if y.size and not np.all((y == 0) | (y == 1)):
            raise ValueError(
                "build_model: likelihood 'bernoulli' expects targets y in {0, 1}, "
                f"found values in [{y.min()}, {y.max()}]"
            )


def build_model(
    network: Any,
    X: np.ndarray,
    y: np.ndarray,
    likelihood: str = "categorical",
    *,
    priors: Any = None,
    batch_size: int = 500,
    model: pm.Model | None = None,
    noise_sigma: float = 1.0,
    deterministic: bool = False,
) -> BayesianNetwork:
    """Build a PyMC model from a network, data and a likelihood.

    Parameters
    ----------
    network : Layer or callable
        The output layer, built inside ``with model:`` (pass that ``model``), or
        a builder ``network(priors)`` (``network()`` when ``priors`` is None)
        called inside the model's context. The network's input is replaced by
        the minibatch input container, whatever its input layer holds.
    X : array, shape (N, ...)
        All inputs; any number of dimensions (e.g. images ``NCHW``).
    y : array, shape (N,) or (N, k)
        All targets.
    likelihood : {"categorical", "bernoulli", "normal"}
        ``"categorical"``: the network outputs class probabilities over its last
        axis; if the output is ``softmax(x)`` (found by graph inspection) the
        log-likelihood is computed from the logits ``x`` as a stable
        log-softmax. ``"bernoulli"``: the output is a probability, its logit
        is used if it is a sigmoid. ``"normal"``: the output is the mean; the
        noise standard deviation ``"noise.sigma"`` has a
        ``HalfNormal(noise_sigma)`` prior. A trailing output axis of size 1
        is dropped when ``y`` lacks it.
    priors : spec, optional
        Passed to a network builder.
    batch_size : int
        Rows per minibatch; the likelihood is scaled by ``N / batch_size``.
    model : pm.Model, optional
        The model to add to (the one the network was built in); a new one
        by default, or the current ``with`` context's.
    noise_sigma : float
        Scale of the half-normal prior of the regression noise.
    deterministic : bool
        Passed to :func:`plasagne.layers.get_output` (e.g. disables dropout).

    Returns
    -------
    BayesianNetwork

    Raises
    ------
    ValueError
        On an unknown likelihood, mismatched ``X`` / ``y`` lengths or targets
        outside the likelihood's support.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.pymc_bridge import GaussWeights
    >>> build = lambda p: DenseLayer(InputLayer((None, 3)), 1, W=p, b=p, nonlinearity=None)
    >>> X = np.random.default_rng(0).normal(size=(20, 3))
    >>> bnet = build_model(build, X, X.sum(1), "normal", priors=GaussWeights(1.0), batch_size=4)
    >>> sorted(bnet.model.free_RVs, key=str)
    [DenseLayer.W, DenseLayer.b, noise.sigma]
    """
    if likelihood not in LIKELIHOODS:
        raise ValueError(
            f"build_model: likelihood must be one of {LIKELIHOODS}, found {likelihood!r}"
        )
    X = np.asarray(X)
    y = np.asarray(y)
    if X.ndim < 1 or y.ndim < 1 or len(X) != len(y):
        raise ValueError(
            f"build_model: X and y must have the same number of rows, found X of shape "
            f"{X.shape} and y of shape {y.shape}"
        )
    n_data = len(X)
    if n_data == 0:
        raise ValueError("build_model: X and y are empty; expected at least one row")
    if int(batch_size) <= 0:
        raise ValueError(f"build_model: batch_size must be a positive integer, found {batch_size}")
    batch_size = min(int(batch_size), n_data)
    if model is None:
        model = pm.Model.get_context(error_if_none=False) or pm.Model()

    layer = _as_layer(network, priors, model)
    check_input_shape(layer, X, "build_model")
    n_out = layer.output_shape[-1] if layer.output_shape else None
    _check_targets(likelihood, y, n_out)

    floatx = pytensor.config.floatX
    y_dtype = "int32" if likelihood in ("categorical", "bernoulli") else floatx
    with model:
        input_data = pm.Data("X_batch", X[:batch_size].astype(floatx))
        target_data = pm.Data("y_batch", y[:batch_size].astype(y_dtype))
        output = get_output(layer, input_data, deterministic=deterministic)
        _check_no_noise(model, layer, output)
        logits = None
        extra: dict = {}
        if likelihood == "categorical":
            logits = softmax_logits(output)
            if output.ndim != y.ndim + 1:
                raise ValueError(
                    f"build_model: a categorical likelihood needs an output with one axis more "
                    f"than y (the classes); found output ndim {output.ndim}, y ndim {y.ndim}"
                )
            if logits is not None:
                observed = pm.CustomDist(
                    "y",
                    logits,
                    logp=_categorical_logp,
                    dist=_categorical_dist,
                    observed=target_data,
                    total_size=n_data,
                )
            else:
                observed = pm.Categorical("y", p=output, observed=target_data, total_size=n_data)
        else:
            logits = sigmoid_logits(output) if likelihood == "bernoulli" else None
            if output.ndim == y.ndim + 1 and layer.output_shape[-1] == 1:
                output = output[..., 0]
                logits = None if logits is None else logits[..., 0]
            if output.ndim != y.ndim:
                raise ValueError(
                    f"build_model: the {likelihood} likelihood needs an output of y's shape; "
                    f"found output shape {layer.output_shape} for y of shape {y.shape}"
                )
            if likelihood == "bernoulli":
                if logits is not None:
                    observed = pm.Bernoulli(
                        "y", logit_p=logits, observed=target_data, total_size=n_data
                    )
                else:
                    observed = pm.Bernoulli("y", p=output, observed=target_data, total_size=n_data)
            else:
                sigma = pm.HalfNormal("noise.sigma", sigma=noise_sigma)
                extra["noise"] = sigma
                observed = pm.Normal(
                    "y", mu=output, sigma=sigma, observed=target_data, total_size=n_data
                )
    return BayesianNetwork(
        model=model,
        network=layer,
        input_data=input_data,
        target_data=target_data,
        output=output,
        likelihood=likelihood,
        n_data=n_data,
        batch_size=batch_size,
        observed=observed,
        logits=logits,
        extra=extra,
    )
