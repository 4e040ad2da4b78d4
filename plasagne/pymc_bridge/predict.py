"""Posterior-predictive outputs for new inputs, compiled once and chunked.

:class:`PosteriorPredictive` compiles one function that draws ``draws_per_call`` sets of
weights from a fitted approximation and evaluates the network on a chunk of inputs for
all of them at once (the graph is vectorised over draws). Calls are repeated over input
chunks and draw chunks, so peak memory depends on ``chunk_size`` and ``draws_per_call``,
never on the total number of draws or inputs.
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace

__all__ = ["PosteriorPredictive", "predict_proba", "predict", "sample_labels"]


def _approximation(fitted: Any) -> Any:
    return getattr(fitted, "approximation", fitted)


class PosteriorPredictive:
    """Compiled posterior-predictive network outputs for any inputs.

    Parameters
    ----------
    bnet : BayesianNetwork
        From :func:`plasagne.pymc_bridge.build_model`.
    fitted : FitResult, pm Approximation or MAPEstimate
        What :func:`plasagne.pymc_bridge.fit` returned (or its ``approximation``).
    draws_per_call : int
        Weight draws evaluated together in one call of the compiled function (the graph
        is vectorised over them). 1, the default, measured fastest for the MNIST CNN on
        2 CPU cores (0.31 s against 0.43 s per 1,000 images and draw with 5).
    mode : str or Mode, optional
        Compilation mode/backend ("NUMBA", "CVM", "JAX", "FAST_COMPILE", ...).
    random_seed : int, optional
        Seeds the weight draws (reproducible predictions).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights, build_model, fit
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = (X[:, 0] > 0).astype(int)
    >>> net = lambda p: DenseLayer(InputLayer((None, 2)), 2, W=p, b=p, nonlinearity=softmax)
    >>> bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=20)
    >>> result = fit(bnet, X, y, n=50, progressbar=False, random_seed=1)
    >>> pp = PosteriorPredictive(bnet, result, draws_per_call=5, random_seed=2)
    >>> pp.draws(X[:3], draws=10).shape
    (10, 3, 2)
    """

    def __init__(
        self,
        bnet: Any,
        fitted: Any,
        draws_per_call: int = 1,
        mode: Any = None,
        random_seed: int | None = None,
    ) -> None:
        import pymc as pm

        self.bnet = bnet
        self.approximation = _approximation(fitted)
        self.draws_per_call = int(draws_per_call)
        data = bnet.input_data
        self.input = pt.tensor("X_new", dtype=data.dtype, shape=(None,) * data.ndim)
        if hasattr(self.approximation, "sample_node"):
            out = self.approximation.sample_node(
                bnet.output, size=self.draws_per_call, more_replacements={data: self.input}
            )
            self.stochastic = True
        else:  # a point estimate (MAP): one deterministic "draw"
            model = bnet.model
            (out,) = model.replace_rvs_by_values([bnet.output])
            out = clone_replace(out, {**self.approximation.replacements(), data: self.input})
            out = pt.shape_padleft(out)
            self.stochastic = False
        self._fn = pm.pytensorf.compile([self.input], out, mode=mode, random_seed=random_seed)

    def draws(self, X: np.ndarray, draws: int = 100, chunk_size: int = 1000) -> np.ndarray:
        """Per-draw network outputs, shape ``(draws, n, ...)``.

        A point estimate returns one draw whatever ``draws`` says.
        """
        X = np.asarray(X, dtype=self.input.dtype)
        n_calls = -(-draws // self.draws_per_call) if self.stochastic else 1
        total = draws if self.stochastic else 1
        out = None
        for start in range(0, len(X), chunk_size):
            chunk = X[start : start + chunk_size]
            parts = [self._fn(chunk) for _ in range(n_calls)]
            block = np.concatenate(parts, axis=0)[:total]
            if out is None:
                out = np.empty((total, len(X)) + block.shape[2:], dtype=block.dtype)
            out[:, start : start + len(chunk)] = block
        return out

    def mean(self, X: np.ndarray, draws: int = 100, chunk_size: int = 1000) -> np.ndarray:
        """Mean output over draws, shape ``(n, ...)``; memory does not grow with ``draws``."""
        X = np.asarray(X, dtype=self.input.dtype)
        n_calls = -(-draws // self.draws_per_call) if self.stochastic else 1
        result = None
        for start in range(0, len(X), chunk_size):
            chunk = X[start : start + chunk_size]
            total = None
            count = 0
            for _ in range(n_calls):
                block = self._fn(chunk)
                take = min(len(block), draws - count) if self.stochastic else len(block)
                part = block[:take].sum(axis=0, dtype=np.float64)
                total = part if total is None else total + part
                count += take
            mean = total / count
            if result is None:
                result = np.empty((len(X),) + mean.shape[1:], dtype=block.dtype)
            result[start : start + len(chunk)] = mean
        return result


def predict_proba(
    bnet: Any,
    fitted: Any,
    X: np.ndarray,
    draws: int = 100,
    *,
    per_draw: bool = False,
    chunk_size: int = 1000,
    draws_per_call: int = 1,
    mode: Any = None,
    random_seed: int | None = None,
) -> np.ndarray:
    """Posterior-predictive class probabilities (mean over draws, or per draw).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights, build_model, fit
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = (X[:, 0] > 0).astype(int)
    >>> net = lambda p: DenseLayer(InputLayer((None, 2)), 2, W=p, b=p, nonlinearity=softmax)
    >>> bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=20)
    >>> result = fit(bnet, X, y, n=50, progressbar=False, random_seed=1)
    >>> p = predict_proba(bnet, result, X, draws=20, random_seed=3)
    >>> bool(np.allclose(p.sum(axis=1), 1.0))
    True
    """
    pp = PosteriorPredictive(bnet, fitted, draws_per_call, mode, random_seed)
    if per_draw:
        return pp.draws(X, draws, chunk_size)
    return pp.mean(X, draws, chunk_size)


def sample_labels(per_draw_probs: np.ndarray, random_seed: int | None = None) -> np.ndarray:
    """Draw one label per draw and input from per-draw class probabilities.

    This is the 2016 post's posterior-predictive sampling (``pm.Categorical`` draws):
    shape ``(draws, n)``.

    Examples
    --------
    >>> p = np.array([[[0.0, 1.0], [1.0, 0.0]]])
    >>> sample_labels(p, random_seed=0).tolist()
    [[1, 0]]
    """
    rng = np.random.default_rng(random_seed)
    cumulative = np.cumsum(per_draw_probs, axis=-1)
    u = rng.random(per_draw_probs.shape[:-1] + (1,)) * cumulative[..., -1:]
    labels = (u >= cumulative).sum(axis=-1)
    return np.minimum(labels, per_draw_probs.shape[-1] - 1)


def predict(
    bnet: Any,
    fitted: Any,
    X: np.ndarray,
    draws: int = 100,
    *,
    kind: str = "mean",
    chunk_size: int = 1000,
    draws_per_call: int = 1,
    mode: Any = None,
    random_seed: int | None = None,
) -> np.ndarray:
    """Predicted classes: argmax of the mean probabilities (``kind="mean"``) or the mode of
    labels sampled from every draw (``kind="mode"``, the 2016 post's rule).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.nonlinearities import softmax
    >>> from plasagne.pymc_bridge import GaussWeights, build_model, fit
    >>> X = np.random.default_rng(0).normal(size=(40, 2)); y = (X[:, 0] > 0).astype(int)
    >>> net = lambda p: DenseLayer(InputLayer((None, 2)), 2, W=p, b=p, nonlinearity=softmax)
    >>> bnet = build_model(net, X, y, priors=GaussWeights(1.0), batch_size=20)
    >>> result = fit(bnet, X, y, n=200, progressbar=False, random_seed=1)
    >>> bool((predict(bnet, result, X, draws=20, random_seed=3) == y).mean() > 0.8)
    True
    """
    if kind == "mean":
        probs = predict_proba(
            bnet,
            fitted,
            X,
            draws,
            chunk_size=chunk_size,
            draws_per_call=draws_per_call,
            mode=mode,
            random_seed=random_seed,
        )
        return probs.argmax(axis=-1)
    if kind == "mode":
        per_draw = predict_proba(
            bnet,
            fitted,
            X,
            draws,
            per_draw=True,
            chunk_size=chunk_size,
            draws_per_call=draws_per_call,
            mode=mode,
            random_seed=random_seed,
        )
        labels = sample_labels(per_draw, random_seed)
        n_classes = per_draw.shape[-1]
        counts = np.stack([(labels == c).sum(axis=0) for c in range(n_classes)], axis=-1)
        return counts.argmax(axis=-1)
    raise ValueError(f"predict: kind must be 'mean' or 'mode', got {kind!r}")
