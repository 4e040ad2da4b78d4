"""Posterior-predictive outputs for new inputs, compiled once and chunked.

:class:`PosteriorPredictive` compiles two functions: one draws sets of weights (every
free random variable of the model) from a fitted approximation, the other evaluates the
network on a chunk of inputs for given weights. Each weight draw is made once and then
used for every input chunk, so one draw is one network applied to all inputs (as a
posterior draw should be), and sampling costs one weight set per draw however many
inputs there are. Peak memory depends on ``chunk_size`` and ``draws_per_call``, never on
the total number of draws (:meth:`PosteriorPredictive.mean` keeps a running sum).

With ``reparameterization="local"`` the products of the inputs with mean-field Gaussian
weights (a dense first layer) are not computed from weight draws at all: their exact
per-example Gaussian moments are computed once per input chunk and every draw samples
from them (:func:`plasagne.pymc_bridge.reparam.marginal_products`). Each example's
predictive distribution is unchanged; the draws of different examples become
independent through those layers. The moments kept at once are bounded by
``max_moment_bytes``.
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import numpy as np
import pytensor.tensor as pt
from pytensor.graph.replace import clone_replace, graph_replace, vectorize_graph
from pytensor.link.jax.linker import JAXLinker

from ..memory import reuse_freed_memory
from .fit import jax_keeps_its_own_generators, progress_bar, resolve_mode
from .reparam import (
    WeightMoments,
    _standard_normal,
    marginal_products,
    pull_out_column_scales,
)

__all__ = ["PosteriorPredictive", "predict_proba", "predict", "sample_labels"]

PREDICTION_ESTIMATORS = ("weights", "local")


@contextlib.contextmanager
def _progress(enabled: bool, total: int) -> Iterator[Callable[[int], None]]:
    """A rich progress bar over ``total`` (draw, chunk) pairs; yields ``advance(count)``.
    It reads "Compiling" until the first block is done (on Numba the first call of the
    network compiles it), then "Predicting"."""
    with progress_bar(enabled) as progress:
        task = progress.add_task("Compiling", total=total, loss="", rate="")
        yield lambda count: progress.update(task, advance=count, description="Predicting")


def _approximation(fitted: Any) -> Any:
    return getattr(fitted, "approximation", fitted)


def _mean_field_moments(model: Any, approximation: Any, rvs: list, slots: list) -> dict:
    """Per slot of an untransformed free variable, its mean and std under a mean-field
    ADVI approximation; a clear error for any other approximation."""
    from pymc.distributions.dist_math import rho2sigma

    groups = getattr(approximation, "groups", [])
    if len(groups) != 1 or "rho" not in groups[0].params_dict:
        raise ValueError(
            "PosteriorPredictive: reparameterization='local' needs a mean-field ADVI fit "
            f"(method='advi'), found {type(approximation).__name__}"
        )
    group = groups[0]
    mean = group.params_dict["mu"]
    std = rho2sigma(group.params_dict["rho"])
    moments = {}
    for rv, slot in zip(rvs, slots):
        if model.rvs_to_transforms.get(rv) is not None:
            continue
        _, slc, shape, _ = group.ordering[model.rvs_to_values[rv].name]
        moments[slot] = WeightMoments(
            mean[slc].reshape(shape).astype(slot.dtype), std[slc].reshape(shape).astype(slot.dtype)
        )
    return moments


def _unrolled_over_draws(
    out: Any, draws: int, replacements: dict, slots: list, batch_slots: list
) -> Any:
    """``out`` for each of ``draws`` draws of ``batch_slots`` and of the per-draw
    ``replacements``, stacked on a new first axis: what ``vectorize_graph`` gives, built
    as copies, because JAX cannot trace the shapes a vectorised convolution or pooling
    computes from a symbolic number of rows."""
    copies = []
    for k in range(draws):
        given = {old: new[k] for old, new in replacements.items()}
        given.update({slot: batch[k] for slot, batch in zip(slots, batch_slots)})
        copies.append(graph_replace(out, given, strict=False))
    return pt.stack(copies)


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
    reparameterization : {"weights", "local"}
        ``"weights"`` (default): every draw is one set of weights applied to all inputs,
        so the draws are exact jointly over the inputs. ``"local"`` (mean-field ADVI
        fits only): products of the inputs with Gaussian weights, such as a dense first
        layer, are sampled per example from their exact moments, computed once per chunk
        of inputs (``2 * units`` numbers per input row, see ``max_moment_bytes``) instead
        of a matrix product per draw. Each example's predictive distribution, and so every
        per-example summary (mean probabilities, the mode rule, uncertainty statistics),
        is the same; statistics across inputs of one draw (such as one draw's accuracy)
        are not, as examples no longer share those weights. Which weights were treated so
        is in :attr:`reparameterized`.
    max_moment_bytes : int
        With ``"local"``: the memory for per-input moments kept for all draws (256 MiB by
        default, 40,000 rows of the post's MLP in float32); at most one more chunk's are
        held while the next group is formed. Larger inputs are predicted in groups of
        chunks that fit, each group with its own weight draws (each example's predictive
        distribution is the same either way).

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
    >>> local = PosteriorPredictive(bnet, result, reparameterization="local", random_seed=2)
    >>> local.reparameterized
    {'DenseLayer.W': 'local', 'DenseLayer.b': 'weights'}
    """

    def __init__(
        self,
        bnet: Any,
        fitted: Any,
        draws_per_call: int = 1,
        mode: Any = None,
        random_seed: int | None = None,
        reuse_memory: bool = True,
        reparameterization: str = "weights",
        max_moment_bytes: int = 2**28,
    ) -> None:
        import pymc as pm

        if reparameterization not in PREDICTION_ESTIMATORS:
            raise ValueError(
                f"PosteriorPredictive: reparameterization must be one of "
                f"{PREDICTION_ESTIMATORS}, found {reparameterization!r}"
            )
        if int(max_moment_bytes) < 1:
            raise ValueError(
                f"PosteriorPredictive: max_moment_bytes must be >= 1, found {max_moment_bytes}"
            )
        self.max_moment_bytes = int(max_moment_bytes)
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
        slots = [rv.type() for rv in rvs]
        out = clone_replace(bnet.output, {data: self.input, **dict(zip(rvs, slots))})
        marginal: list = []
        if reparameterization == "local":
            moments = _mean_field_moments(model, self.approximation, rvs, slots)
            out = pull_out_column_scales(out, list(moments))
            marginal = marginal_products(out, moments, self.input)
        # each marginal product becomes a placeholder for its per-example sample ...
        samples = {p.output: p.output.type() for p in marginal}
        out = graph_replace(out, samples, strict=False)
        # ... and what is left of its weights in the graph are uses of their shapes
        done = {p.variable for p in marginal}
        out = graph_replace(out, {s: moments[s].mean for s in done}, strict=False)
        local = {rv for rv, s in zip(rvs, slots) if s in done}
        self.reparameterized = {rv.name: "local" if rv in local else "weights" for rv in rvs}
        kept = [(rv, s) for rv, s in zip(rvs, slots) if rv not in local]
        rvs, slots = [rv for rv, _ in kept], [s for _, s in kept]
        self._sample = self._compile_sampler(rvs, batched, mode, random_seed)
        # per chunk, the moments of the marginal products: computed once, used by every draw
        self._prepare = None
        moment_slots: list = []
        replacements: dict = {}
        draw_shape = (self.draws_per_call,) if batched else ()
        for p in marginal:
            mean_slot, std_slot = p.mean.type(), p.std.type()
            moment_slots += [mean_slot, std_slot]
            noise = _standard_normal((*draw_shape, *mean_slot.shape), mean_slot.dtype)
            replacements[samples[p.output]] = mean_slot + std_slot * noise
        if marginal:
            moments_out = [t for p in marginal for t in (p.mean, p.std)]
            self._prepare = pm.pytensorf.compile([self.input], moments_out, mode=mode)
        if batched:
            # every call gets exactly draws_per_call weight sets: a static axis (JAX needs it)
            batch_slots = [
                pt.tensor(dtype=s.dtype, shape=(self.draws_per_call, *s.type.shape)) for s in slots
            ]
            if isinstance(mode.linker, JAXLinker):
                out = _unrolled_over_draws(
                    out, self.draws_per_call, replacements, slots, batch_slots
                )
            else:
                out = vectorize_graph(out, {**replacements, **dict(zip(slots, batch_slots))})
            slots = batch_slots
        else:
            out = pt.shape_padleft(graph_replace(out, replacements, strict=False))
        with jax_keeps_its_own_generators():
            self._network = pm.pytensorf.compile(
                [self.input, *moment_slots, *slots],
                out,
                mode=mode,
                random_seed=random_seed,
                on_unused_input="ignore",
            )

    def _compile_sampler(self, rvs: list, batched: bool, mode: Any, random_seed: Any) -> Any:
        """A function returning one call's weight draws (point values for a MAP fit)."""
        import pymc as pm

        if not rvs:
            return lambda: []
        if self.stochastic:
            size = self.draws_per_call if batched else None
            weights = self.approximation.sample_node(rvs, size=size)
        else:  # a point estimate (MAP): its values are the one "draw"
            weights = self.bnet.model.replace_rvs_by_values(rvs)
            weights = graph_replace(weights, self.approximation.replacements(), strict=False)
        with jax_keeps_its_own_generators():
            return pm.pytensorf.compile([], weights, mode=mode, random_seed=random_seed)

    def _groups(self, chunks: list):
        """Yield lists of ``(start, rows, network inputs)``: with local moments, as many
        chunks as fit in ``max_moment_bytes``, their moments computed once for all draws;
        otherwise all chunks in one group."""
        if self._prepare is None:
            yield [(start, chunk, [chunk]) for start, chunk in chunks]
            return
        group: list = []
        used = 0
        for start, chunk in chunks:
            given = [chunk, *self._prepare(chunk)]
            size = sum(a.nbytes for a in given[1:])
            if group and used + size > self.max_moment_bytes:
                yield group
                group, used = [], 0
            group.append((start, chunk, given))
            used += size
        yield group

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

    def draws(
        self, X: np.ndarray, draws: int = 100, chunk_size: int = 1000, progressbar: bool = False
    ) -> np.ndarray:
        """Per-draw network outputs, shape ``(draws, n, ...)``.

        A point estimate returns one draw whatever ``draws`` says. ``progressbar`` shows a
        rich progress bar over draws and chunks.
        """
        X = self._check(X)
        out = None
        for first_draw, rows, block in self._blocks(X, draws, chunk_size, progressbar):
            if out is None:
                total = draws if self.stochastic else 1
                out = np.empty((total, len(X)) + block.shape[2:], dtype=block.dtype)
            out[first_draw : first_draw + len(block), rows] = block
        return out

    def mean(
        self, X: np.ndarray, draws: int = 100, chunk_size: int = 1000, progressbar: bool = False
    ) -> np.ndarray:
        """Mean output over draws, shape ``(n, ...)``; memory does not grow with ``draws``.
        ``progressbar`` as in :meth:`draws`."""
        X = self._check(X)
        total, count = None, 0
        for first_draw, rows, block in self._blocks(X, draws, chunk_size, progressbar):
            if total is None:
                dtype = block.dtype
                total = np.zeros((len(X),) + block.shape[2:], dtype=np.float64)
            total[rows] += block.sum(axis=0, dtype=np.float64)
            count = max(count, first_draw + len(block))
        return (total / count).astype(dtype)

    def _blocks(
        self, X: np.ndarray, draws: int, chunk_size: int, progressbar: bool = False
    ) -> Iterator[tuple]:
        """The network's outputs block by block, as ``(first draw, rows of X, block)`` with
        ``block`` of shape ``(draws in it, rows, ...)``: every draw of every row once."""
        chunks = self._chunks(X, chunk_size)
        total = (int(draws) if self.stochastic else 1) * len(chunks)
        with _progress(progressbar, total) as advance:
            for group in self._groups(chunks):
                first_draw = 0
                for weights, take in self._weight_draws(draws):
                    for start, chunk, given in group:
                        rows = slice(start, start + len(chunk))
                        # numpy, so the float64 sums of mean() stay float64 on JAX too
                        block = np.asarray(self._network(*given, *weights)[:take])
                        advance(take)
                        yield first_draw, rows, block
                    first_draw += take


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
    reparameterization: str = "weights",
) -> np.ndarray:
    """Posterior-predictive class probabilities (mean over draws, or per draw).

    The keyword arguments are those of :class:`PosteriorPredictive` and of its
    :meth:`~PosteriorPredictive.draws` / :meth:`~PosteriorPredictive.mean`.

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
    pp = PosteriorPredictive(
        bnet, fitted, draws_per_call, mode, random_seed, reparameterization=reparameterization
    )
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
    reparameterization: str = "weights",
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
            reparameterization=reparameterization,
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
            reparameterization=reparameterization,
        )
        labels = sample_labels(per_draw, random_seed)
        n_classes = per_draw.shape[-1]
        counts = np.stack([(labels == c).sum(axis=0) for c in range(n_classes)], axis=-1)
        return counts.argmax(axis=-1)
    raise ValueError(f"predict: kind must be 'mean' or 'mode', got {kind!r}")
