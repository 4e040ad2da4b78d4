"""Compile, once per machine, the kernels that every later fit of a network reuses.

On Numba most of a network's first fit goes to compiling PyTensor's kernels for each node
of the ELBO's gradient (sums, shape checks, index updates, fused elementwise loops, the
convolution and pooling kernels), not to the network's own step function. Those kernels
are cached on disk keyed by the Op and its settings, not by the sizes of the arrays, so
fitting tiny versions of the usual networks once fills the cache for any later network
built from the same layers: :func:`precompile` does that, and ``plasagne precompile`` runs
it from the command line.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from concurrent.futures import ProcessPoolExecutor, as_completed
from multiprocessing import get_context
from typing import Any

import numpy as np
import pytensor

from ..models import MODELS, default_prior
from .fit import fit, progress_bar, resolve_mode
from .model import build_model
from .predict import PosteriorPredictive
from .reparam import ESTIMATORS

__all__ = ["precompile", "PRECOMPILE_DTYPES"]

PRECOMPILE_DTYPES = ("float32", "float64")
# tiny versions of the post's networks: the same layers and nonlinearities, small sizes
_TINY_SIZES = {
    "mlp": {"n_hidden": 8},
    "hier-mlp": {"n_hidden": 8},
    # 8 filters: the direct correlation kernels serve layers at least 8 filters/channels
    # wide (plasagne.ops.direct_corr), narrower ones the chunked kernels
    "cnn": {"n_filters": 8, "n_dense": 8},
}
# batch 8 made PyTensor build the likelihood's loops with other shapes than batches of
# 64 and more do (three kernels the post's networks then compiled anew); 64 matches them
_TINY_BATCH = 64


def _check_choice(parameter: str, values: Sequence[str], allowed: Sequence[str]) -> list[str]:
    if isinstance(values, str):
        values = [values]
    unknown = [v for v in values if v not in allowed]
    if unknown or not values:
        raise ValueError(
            f"precompile: {parameter} must be a non-empty list of {', '.join(allowed)}; "
            f"found {list(values)!r}"
        )
    return list(values)


def _tiny_network(model: str) -> Any:
    return lambda init: MODELS[model](init, **_TINY_SIZES[model])


def _precompile_one(
    model: str, dtype: str, reparameterization: str, mode: Any, predictive: bool
) -> None:
    rng = np.random.default_rng(0)
    X = rng.random((2 * _TINY_BATCH, 1, 28, 28)).astype(dtype)
    y = rng.integers(0, 10, len(X))
    with pytensor.config.change_flags(floatX=dtype):
        bnet = build_model(
            _tiny_network(model), X, y, priors=default_prior(model), batch_size=_TINY_BATCH
        )
        result = fit(
            bnet,
            X,
            y,
            n=2,
            mode=mode,
            reparameterization=reparameterization,
            progressbar=False,
            random_seed=0,
        )
        if predictive:
            PosteriorPredictive(bnet, result, mode=mode, random_seed=0).draws(X, draws=2)


def _precompile_group(configurations: list[tuple], mode: Any, predictive: bool) -> list[dict]:
    """Compile ``configurations`` one after the other; one row each."""
    rows = []
    for model, dtype, reparameterization in configurations:
        start = time.perf_counter()
        _precompile_one(model, dtype, reparameterization, mode, predictive)
        rows.append(
            {
                "model": model,
                "dtype": dtype,
                "reparameterization": reparameterization,
                "seconds": time.perf_counter() - start,
            }
        )
    return rows


def _split(configurations: list[tuple], parts: int) -> list[list[tuple]]:
    """``parts`` contiguous groups of near-equal size (neighbours share most kernels)."""
    size, extra = divmod(len(configurations), parts)
    groups, start = [], 0
    for i in range(parts):
        stop = start + size + (i < extra)
        groups.append(configurations[start:stop])
        start = stop
    return groups


def precompile(
    mode: Any = "NUMBA",
    *,
    models: Sequence[str] = tuple(MODELS),
    dtypes: Sequence[str] = PRECOMPILE_DTYPES,
    reparameterizations: Sequence[str] = ("weights",),
    predictive: bool = True,
    jobs: int | None = None,
    progressbar: bool = True,
) -> list[dict]:
    """Fit (two ADVI steps) and predict with tiny versions of the post's networks, so
    that the backend's disk caches hold the kernels later fits of any size reuse.

    Run it once after installing or upgrading (``plasagne precompile``): on Numba it takes
    a minute or two per dtype, and afterwards the first fit of a network built from the
    same layers and priors compiles little more than its own step function (for the post's
    CNN about 15 s instead of about 65 s on 2 cores; see ``docs/performance.md``). Kernels a network
    needs beyond these (other nonlinearities, layers, priors or methods) still compile on
    its first fit, once.

    Parameters
    ----------
    mode : str or Mode
        The backend whose cache to fill, resolved like :func:`plasagne.pymc_bridge.fit`'s
        (``"numba"``, the default, and ``"c"`` keep compiled kernels on disk; JAX does not
        here, so precompiling for it only checks that it works).
    models : sequence of str
        Which of :data:`plasagne.models.MODELS` to compile, each with its default prior
        (``"hier-mlp"`` adds the HalfNormal scale hyperpriors).
    dtypes : sequence of str
        ``"float32"`` and/or ``"float64"`` (PyTensor's ``floatX`` during the fits).
    reparameterizations : sequence of str
        ADVI gradient estimators to compile: ``"weights"`` (the default), ``"local"``,
        ``"flipout"``.
    predictive : bool
        Also compile :class:`plasagne.pymc_bridge.PosteriorPredictive` for each.
    jobs : int, optional
        Worker processes compiling at once (default: the number of CPUs; Numba compiles
        on one core). The configurations are split into contiguous groups, one per worker,
        so that those sharing a dtype mostly share a worker. With one group, or a ``mode``
        that is a Mode object rather than a name, everything runs in this process.
        Workers are fresh interpreters: they see the environment (``PYTENSOR_FLAGS``,
        ``NUMBA_CACHE_DIR``), so set cache locations there, not in this process alone.
    progressbar : bool
        Show progress, advanced as each group of configurations finishes.

    Returns
    -------
    list of dict
        One row per configuration, in the order models x reparameterizations within
        each dtype: ``model``, ``dtype``, ``reparameterization`` and ``seconds`` (its
        worker's time for it).

    Examples
    --------
    >>> rows = precompile("fast_compile", models=["mlp"], dtypes=["float64"],
    ...                   predictive=False, progressbar=False)
    >>> [(row["model"], row["dtype"], row["reparameterization"]) for row in rows]
    [('mlp', 'float64', 'weights')]
    """
    models = _check_choice("models", models, tuple(MODELS))
    dtypes = _check_choice("dtypes", dtypes, PRECOMPILE_DTYPES)
    reparameterizations = _check_choice("reparameterizations", reparameterizations, ESTIMATORS)
    configurations = [
        (model, dtype, reparam)
        for dtype in dtypes
        for model in models
        for reparam in reparameterizations
    ]
    resolve_mode(mode)  # an unknown backend fails here, not in a worker
    if jobs is not None and int(jobs) < 1:
        raise ValueError(f"precompile: jobs must be >= 1, found {jobs!r}")
    workers = int(jobs) if jobs is not None else os.cpu_count() or 1
    if not isinstance(mode, str | None):
        workers = 1  # a Mode object need not survive pickling into a worker
    groups = _split(configurations, min(workers, len(configurations)))
    with progress_bar(progressbar) as progress:
        task = progress.add_task(
            f"precompiling {len(configurations)} configurations in {len(groups)} process(es)",
            total=len(configurations),
            loss="",
            rate="",
        )
        if len(groups) == 1:
            rows = _precompile_group(groups[0], mode, predictive)
            progress.advance(task, len(rows))
            return rows
        done: dict[int, list[dict]] = {}
        # spawn, not fork: a forked child of a process whose OpenMP threads run would abort
        with ProcessPoolExecutor(len(groups), mp_context=get_context("spawn")) as pool:
            futures = {
                pool.submit(_precompile_group, group, mode, predictive): i
                for i, group in enumerate(groups)
            }
            for future in as_completed(futures):
                done[futures[future]] = future.result()
                progress.advance(task, len(done[futures[future]]))
    return [row for i in range(len(groups)) for row in done[i]]
