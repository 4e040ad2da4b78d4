"""Posterior-predictive outputs for new inputs, compiled once and chunked.

:class:`PosteriorPredictive` compiles two functions: one draws sets of weights (every
free random variable of the model) from a fitted approximation, the other evaluates the
network on a chunk of inputs for given weights. Each weight draw is made once and then
used for every input chunk, so one draw is one network applied to all inputs (as a
posterior draw should be), and sampling costs one weight set per draw however many
inputs there are. Peak memory depends on ``chunk_size`` and ``draws_per_call``, never on
the total number of draws (:meth:`PosteriorPredictive.mean` keeps a running sum).
"""

from __future__ import annotations

from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace, graph_replace, vectorize_graph

from ..memory import reuse_freed_memory
from .fit import resolve_mode

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
        Weight draws evaluated together in one call of the compiled network (the graph
        is vectorised over them). 1, the default, measured fastest on 2 CPU cores.
    mode : str or Mode, optional
        Compilation mode/backend ("NUMBA", "CVM", "JAX", "FAST_COMPILE", ...), resolved
        like :func:`fit`'s (:func:`plasagne.pymc_bridge.resolve_mode`).
    random_seed : int, optional
        Seeds the weight draws (reproducible predictions).
    reuse_memory : bool
        Call :func:`plasagne.memory.reuse_freed_memory` (as :func:`fit` does), so the
        per-chunk buffers are reused instead of page-faulted in afresh.

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
        reuse_memory: bool = True,
    ) -> None:
        import pymc as pm

        if int(draws_per_call) < 1:
            raise ValueError(
                f"PosteriorPredictive: draws_per_call must be >= 1, found {draws_per_call}"
            )
        mode = resolve_mode(mode)
        if reuse_memory:
            reuse_freed_memory()
        self.bnet = bnet
        self.approximation = _approximation(fitted)
        self.stochastic = hasattr(self.approximation, "sample_node")
        self.draws_per_call = int(draws_per_call) if self.stochastic else 1
        data = bnet.input_data
        # any number of rows; the other axes as in the data (static: JAX needs them)
        features = tuple(data.get_value().shape[1:])
        self.input = pt.tensor("X_new", dtype=data.dtype, shape=(None, *features))
        model = bnet.model
        rvs = list(model.free_RVs)
        batched = self.draws_per_call > 1
        if self.stochastic:
            size = self.draws_per_call if batched else None
            weights = self.approximation.sample_node(rvs, size=size)
        else:  # a point estimate (MAP): its values are the one "draw"
            weights = model.replace_rvs_by_values(rvs)
            weights = graph_replace(weights, self.approximation.replacements(), strict=False)
        self._sample = pm.pytensorf.compile([], weights, mode=mode, random_seed=random_seed)
        slots = [rv.type() for rv in rvs]
        out = clone_replace(bnet.output, {data: self.input, **dict(zip(rvs, slots))})
        if batched:
            batch_slots = [pt.tensor(dtype=s.dtype, shape=(None, *s.type.shape)) for s in slots]
            out = vectorize_graph(out, dict(zip(slots, batch_slots)))
            slots = batch_slots
        else:
            out = pt.shape_padleft(out)
        self._network = pm.pytensorf.compile(
            [self.input, *slots], out, mode=mode, random_seed=random_seed
        )

    def _weight_draws(self, draws: int):
        """Yield ``(weights, take)``: one call's weight sets and how many of them to use."""
        if not self.stochastic:
            yield self._sample(), 1
            return
        count = 0
        while count < draws:
            take = min(self.draws_per_call, draws - count)
            yield self._sample(), take
            count += take

    def _check(self, X: np.ndarray) -> np.ndarray:
        X = np.asarray(X, dtype=self.input.dtype)
        features = self.input.type.shape[1:]
        if X.ndim != self.input.ndim or X.shape[1:] != features:
            raise ValueError(
                f"PosteriorPredictive: inputs must have shape (n, {', '.join(map(str, features))})"
                f" like the data the model was built on, found {X.shape}"
            )
        return X

    def _chunks(self, X: np.ndarray, chunk_size: int) -> list[tuple[int, np.ndarray]]:
        """``(start, rows)`` views of ``X``, made once and reused for every draw."""
        if int(chunk_size) < 1:
            raise ValueError(f"PosteriorPredictive: chunk_size must be >= 1, found {chunk_size}")
        step = int(chunk_size)
        # no rows: one empty chunk still gives the output's shape and dtype
        return [(start, X[start : start + step]) for start in range(0, max(len(X), 1), step)]

    def draws(self, X: np.ndarray, draws: int = 100, chunk_size: int = 1000) -> np.ndarray:
        """Per-draw network outputs, shape ``(draws, n, ...)``.

        A point estimate returns one draw whatever ``draws`` says.
        """
        X = self._check(X)
        chunks = self._chunks(X, chunk_size)
        out = None
        done = 0
        for weights, take in self._weight_draws(draws):
            for start, chunk in chunks:
                block = self._network(chunk, *weights)[:take]
                if out is None:
                    total = draws if self.stochastic else 1
                    out = np.empty((total, len(X)) + block.shape[2:], dtype=block.dtype)
                out[done : done + take, start : start + len(chunk)] = block
            done += take
        return out

    def mean(self, X: np.ndarray, draws: int = 100, chunk_size: int = 1000) -> np.ndarray:
        """Mean output over draws, shape ``(n, ...)``; memory does not grow with ``draws``."""
        X = self._check(X)
        chunks = self._chunks(X, chunk_size)
        total = None
        count = 0
        for weights, take in self._weight_draws(draws):
            for start, chunk in chunks:
                part = self._network(chunk, *weights)[:take].sum(axis=0, dtype=np.float64)
                if total is None:
                    total = np.zeros((len(X),) + part.shape[1:], dtype=np.float64)
                total[start : start + len(chunk)] += part
            count += take
        return (total / count).astype(self._network.maker.fgraph.outputs[0].dtype)


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
