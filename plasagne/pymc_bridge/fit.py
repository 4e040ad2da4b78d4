"""Streaming minibatch fits of a :class:`~.model.BayesianNetwork`: ADVI, full-rank ADVI, SVGD, MAP.

The trainer draws shuffled epochs from a seeded numpy generator, copies each
minibatch into the model's data containers, and calls one compiled step
function (PyMC's own for the variational methods, an Adam step on the
minibatch-scaled log posterior for MAP). Checkpoints hold everything the step
changes plus the shuffling state, so a resumed run continues bit-identically.
"""

from __future__ import annotations

import contextlib
import os
import time
import warnings
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from typing import Any

import numpy as np
import pymc as pm
import pytensor
from pymc.variational import FullRank, KLqp, MeanField
from pytensor.compile.mode import Mode, get_mode
from pytensor.graph.replace import graph_replace

from ..memory import reuse_freed_memory
from ..ops.fast_math import fast_math_mode
from .checkpoint import (
    generator_state,
    load_checkpoint,
    save_checkpoint,
    set_generator_state,
    updated_shared_variables,
)
from .model import BayesianNetwork, check_input_shape
from .reparam import check_estimator, reparameterized_advi_loss, seed_random_generators

__all__ = [
    "point_estimate_params",
    "fit",
    "FitResult",
    "MAPEstimate",
    "BatchStream",
    "resolve_mode",
    "check_kl_weight",
    "exponential_decay",
    "METHODS",
]

METHODS = ("advi", "fullrank_advi", "svgd", "map")


@contextlib.contextmanager
def jax_keeps_its_own_generators() -> Iterator[None]:
    """Compile inside this to silence JAX's notice that a compiled function draws from its
    own copy of each random generator: that is what a step or sampler compiled once and
    called many times should do (the copy advances from call to call).

    Examples
    --------
    >>> with jax_keeps_its_own_generators():
    ...     pass
    """
    with warnings.catch_warnings():
        warnings.filterwarnings("ignore", "The RandomType SharedVariables", UserWarning)
        yield


def resolve_mode(mode: str | Mode | None) -> Mode:
    """Turn a backend name into a PyTensor Mode (None: PyTensor's default mode).

    Accepts ``"numba"``, ``"c"`` (PyTensor's C virtual machine), ``"jax"``,
    ``"fast_compile"``, ``"fast_run"``, any other PyTensor mode name, or a Mode. A name
    (or None) that compiles with Numba gets plasagne's vectorised float32 ``tanh``,
    ``softplus``, ``sigmoid``, ``exp`` and ``log`` kernels
    (:func:`plasagne.ops.fast_math.fast_math_mode`, which also compiles the graph function
    without PyTensor's extra cached wrapper: :mod:`plasagne.ops.numba_linker`); a Mode
    object is used as given.

    Examples
    --------
    >>> resolve_mode("numba").linker.__class__.__name__
    'DirectNumbaLinker'
    >>> "fast_float32_math" in resolve_mode("numba").provided_optimizer.include
    True
    >>> "fast_float32_math" in resolve_mode("jax").provided_optimizer.include
    False
    """
    if isinstance(mode, Mode):
        return mode
    if mode is not None and not isinstance(mode, str):
        raise TypeError(f"mode: expected a backend name or a pytensor Mode, found {mode!r}")
    name = "CVM" if isinstance(mode, str) and mode.lower() == "c" else mode
    try:
        resolved = get_mode(name)
    except Exception as err:
        raise ValueError(
            f"mode: unknown backend {mode!r}; expected 'numba', 'c', 'jax', 'fast_compile', "
            f"'fast_run' or a pytensor Mode ({err})"
        ) from None
    return fast_math_mode(resolved)


class BatchStream:
    """Fixed-size minibatches from an endless stream of shuffled epochs.

    Batches wrap from one epoch's permutation into the next, so every batch
    has ``batch_size`` rows and every row is seen once per epoch. The state
    (generator, current permutation, position) can be saved and restored.

    Parameters
    ----------
    n_data : int
    batch_size : int
    seed : int or None

    Examples
    --------
    >>> s = BatchStream(5, 2, seed=0)
    >>> idx = np.concatenate([s.next_indices() for _ in range(5)])
    >>> sorted(idx[:5].tolist()), sorted(idx[5:].tolist())
    ([0, 1, 2, 3, 4], [0, 1, 2, 3, 4])
    """

    def __init__(self, n_data: int, batch_size: int, seed: int | None = None) -> None:
        self.n_data = int(n_data)
        self.batch_size = min(int(batch_size), self.n_data)
        self.rng = np.random.default_rng(seed)
        self.perm = self.rng.permutation(self.n_data)
        self.pos = 0

    def next_indices(self) -> np.ndarray:
        """The row indices of the next minibatch."""
        parts = []
        need = self.batch_size
        while need:
            if self.pos == self.n_data:
                self.perm = self.rng.permutation(self.n_data)
                self.pos = 0
            take = min(need, self.n_data - self.pos)
            parts.append(self.perm[self.pos : self.pos + take])
            self.pos += take
            need -= take
        return np.concatenate(parts)

    def state(self) -> dict[str, Any]:
        """The state, as arrays and JSON-able values.

        Examples
        --------
        >>> s = BatchStream(4, 3, seed=1)
        >>> _ = s.next_indices(); st = s.state(); a = s.next_indices()
        >>> s.set_state(st); bool((s.next_indices() == a).all())
        True
        """
        return {"perm": self.perm.copy(), "pos": self.pos, "rng": generator_state(self.rng)}

    def set_state(self, state: dict[str, Any]) -> None:
        """Restore a state from :meth:`state`."""
        self.perm = np.asarray(state["perm"]).copy()
        self.pos = int(state["pos"])
        set_generator_state(self.rng, str(state["rng"]))


class MAPEstimate:
    """A point estimate of a model's free variables, held in shared variables.

    Attributes
    ----------
    model : pm.Model
    shared : dict of str to SharedVariable
        One per value variable (in the unconstrained space PyMC samples in).
    params : list of SharedVariable
        The same, as a list (what convergence callbacks watch).

    Examples
    --------
    >>> with pm.Model() as m:
    ...     _ = pm.HalfNormal("s", 1.0)
    >>> est = MAPEstimate(m, {"s_log__": np.array(0.0)})
    >>> round(float(est.point()["s"]), 6)
    1.0
    """

    def __init__(self, model: pm.Model, values: dict[str, np.ndarray]) -> None:
        self.model = model
        self.shared = {
            v.name: pytensor.shared(np.asarray(values[v.name], dtype=v.dtype), name=v.name)
            for v in model.value_vars
        }
        self.params = list(self.shared.values())

    def replacements(self) -> dict:
        """Map each of the model's value variables to its shared estimate."""
        return {v: self.shared[v.name] for v in self.model.value_vars}

    def point(self) -> dict[str, np.ndarray]:
        """The estimate in the original (constrained) space, by variable name."""
        return _constrained_point(self.model, {k: s.get_value() for k, s in self.shared.items()})


def _constrained_point(model: pm.Model, values: dict[str, np.ndarray]) -> dict[str, np.ndarray]:
    outs = model.unobserved_value_vars
    fn = pytensor.function(
        model.value_vars,
        outs,
        mode=Mode(linker="py", optimizer="fast_compile"),
        on_unused_input="ignore",
    )
    result = fn(*[values[v.name] for v in model.value_vars])
    return {o.name: np.asarray(r) for o, r in zip(outs, result)}


@dataclass
class FitResult:
    """What :func:`fit` returns.

    Attributes
    ----------
    approximation : pm Approximation or MAPEstimate
        The fitted approximation (MeanField, FullRank, Empirical) or MAP estimate.
    method : str
    losses : ndarray
        Loss per iteration (negative ELBO, or negative log posterior for MAP;
        NaN for SVGD, which has no loss), over the whole run including resumed parts.
    iterations : int
        Iterations done in total.
    compile_seconds : float
        Time spent building and compiling the step function.
    fit_seconds : float
        Time spent iterating (this call only).
    interrupted : bool
        True if a KeyboardInterrupt ended the fit early.
    stopped : bool
        True if a callback raised StopIteration.
    checkpoint_path : str or None
        Where the last checkpoint was written.

    Examples
    --------
    >>> FitResult(None, "advi", np.zeros(3), 3, 0.1, 0.2).iterations
    3
    """

    approximation: Any
    method: str
    losses: np.ndarray
    iterations: int
    compile_seconds: float
    fit_seconds: float
    interrupted: bool = False
    stopped: bool = False
    checkpoint_path: str | None = None
    extra: dict = field(default_factory=dict)

    def point_estimate(self) -> dict[str, np.ndarray]:
        """Posterior mean (variational), particle mean (SVGD) or MAP, by variable name.

        Means are taken in the unconstrained space and mapped back, as PyMC
        does for the approximation's mean.
        """
        approx = self.approximation
        if isinstance(approx, MAPEstimate):
            return approx.point()
        model = approx.model
        group = approx.groups[0]
        if hasattr(group, "histogram"):
            flat = np.asarray(group.histogram.get_value()).mean(axis=0)
        else:
            flat = np.asarray(group.params_dict["mu"].get_value())
        values = {}
        for name, (_, slc, shape, dtype) in group.ordering.items():
            values[name] = flat[slc].reshape(shape).astype(dtype)
        return _constrained_point(model, values)


def _start_point(model: pm.Model, random_seed: Any) -> dict[str, np.ndarray]:
    return model.initial_point(random_seed=random_seed)


def _build_vi(
    bnet: BayesianNetwork,
    method: str,
    start: dict,
    start_sigma: float | None,
    random_seed: int | None,
    n_particles: int,
    kl_weight: float = 1.0,
) -> Any:
    """PyMC's inference object; ADVI and full-rank ADVI are ``pm.KLqp`` (what ``pm.ADVI``
    and ``pm.FullRankADVI`` build) with the KL term weighted by ``kl_weight``."""
    model = bnet.model
    if method == "advi":
        sigmas = None
        if start_sigma is not None:
            sigmas = {v.name: np.full(start[v.name].size, start_sigma) for v in model.value_vars}
        approx = MeanField(model=model, random_seed=random_seed, start=start, start_sigma=sigmas)
        return KLqp(approx, beta=kl_weight)
    if method == "fullrank_advi":
        approx = FullRank(model=model, random_seed=random_seed, start=start)
        inference = KLqp(approx, beta=kl_weight)
        if start_sigma is not None:
            group = inference.approx.groups[0]
            d = group.ddim
            rows, cols = np.tril_indices(d)
            L = np.where(rows == cols, start_sigma, 0.0)
            group.params_dict["L_tril"].set_value(L.astype(pytensor.config.floatX))
        return inference
    inference = pm.SVGD(
        n_particles=n_particles, model=model, start=start, random_seed=random_seed, jitter=0.0
    )
    group = inference.approx.groups[0]
    hist = group.histogram.get_value()
    noise = np.random.default_rng(random_seed).normal(0.0, start_sigma or 1.0, size=hist.shape)
    group.histogram.set_value((hist + noise).astype(hist.dtype))
    return inference


def check_kl_weight(kl_weight: float, method: str) -> float:
    """Validate ``fit``'s ``kl_weight`` for ``method``; return it as a float.

    Examples
    --------
    >>> check_kl_weight(0.1, "advi")
    0.1
    >>> check_kl_weight(0.5, "map")  # doctest: +ELLIPSIS
    Traceback (most recent call last):
    ...
    ValueError: fit: kl_weight weights the KL term of ADVI ...; method 'map' has none ...
    """
    try:
        value = float(kl_weight)
    except (TypeError, ValueError):
        raise TypeError(f"fit: kl_weight must be a number, found {kl_weight!r}") from None
    if not (np.isfinite(value) and value > 0):
        raise ValueError(f"fit: kl_weight must be positive and finite, found {kl_weight!r}")
    if value != 1.0 and method not in ("advi", "fullrank_advi"):
        raise ValueError(
            f"fit: kl_weight weights the KL term of ADVI and full-rank ADVI; method "
            f"{method!r} has none (found kl_weight={kl_weight!r})"
        )
    return value


def exponential_decay(initial: float, final: float, steps: int) -> Callable[[int], float]:
    """A learning-rate schedule falling geometrically from ``initial`` to ``final``.

    ``rate(i) = initial * (final / initial) ** (min(i, steps) / steps)``: pass it to
    :func:`fit` as ``learning_rate``. It is a pure function of the iteration, so a resumed
    fit continues on the same schedule.

    Parameters
    ----------
    initial, final : float
        Rates at iteration 0 and from iteration ``steps`` on (both positive).
    steps : int
        Iterations over which the rate falls.

    Examples
    --------
    >>> rate = exponential_decay(0.01, 0.001, 100)
    >>> [round(rate(i), 6) for i in (0, 50, 100, 500)]
    [0.01, 0.003162, 0.001, 0.001]
    """
    if not (initial > 0 and final > 0 and np.isfinite(initial) and np.isfinite(final)):
        raise ValueError(
            f"exponential_decay: rates must be positive and finite, found {initial}, {final}"
        )
    if int(steps) <= 0:
        raise ValueError(f"exponential_decay: steps must be positive, found {steps}")
    ratio = final / initial
    steps = int(steps)

    def rate(i: int) -> float:
        return float(initial * ratio ** (min(int(i), steps) / steps))

    return rate


class _Schedule:
    """Holds the learning rate in a shared variable the compiled step reads."""

    def __init__(self, function: Callable[[int], float], dtype: str) -> None:
        self.function = function
        self.dtype = dtype
        first = self.rate(0)
        self.variable = pytensor.shared(np.asarray(first, dtype=dtype), name="learning_rate")

    def rate(self, i: int) -> float:
        value = float(self.function(i))
        if not (value > 0 and np.isfinite(value)):
            raise ValueError(
                f"fit: the learning_rate schedule gave {value} at iteration {i}; "
                "expected a positive finite number"
            )
        return value

    def set(self, i: int) -> None:
        self.variable.set_value(np.asarray(self.rate(i), dtype=self.dtype))


def _make_schedule(
    learning_rate: float | Callable[[int], float], optimizer: Any, dtype: str
) -> _Schedule | None:
    if not callable(learning_rate):
        if not (float(learning_rate) > 0 and np.isfinite(float(learning_rate))):
            raise ValueError(
                f"fit: learning_rate must be a positive finite number or a callable "
                f"schedule, found {learning_rate!r}"
            )
        return None
    if optimizer is not None:
        raise ValueError(
            "fit: a learning_rate schedule drives the default Adam optimizer; "
            "with optimizer= give the rate to that optimizer instead"
        )
    return _Schedule(learning_rate, dtype)


def _make_optimizer(
    optimizer: Any, learning_rate: float | Callable[[int], float], schedule: _Schedule | None
) -> Callable:
    if optimizer is not None:
        return optimizer
    if schedule is not None:
        return pm.adam(learning_rate=schedule.variable)
    return pm.adam(learning_rate=learning_rate)


def point_estimate_params(bnet: BayesianNetwork) -> list:
    """The network's trainable shared variables: parameters left as point estimates.

    A network that is Bayesian only in some layers (see ``PriorMap``) keeps its other
    parameters as shared variables; :func:`fit` optimises them together with the
    approximation (or the MAP estimate), on the same objective.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.pymc_bridge import GaussWeights, PriorMap, build_model
    >>> import plasagne
    >>> def build(p):
    ...     h = DenseLayer(InputLayer((None, 2)), 3, W=p, b=p, name="h")
    ...     return DenseLayer(h, 2, W=p, b=p, nonlinearity=plasagne.nonlinearities.softmax,
    ...                       name="out")
    >>> priors = PriorMap({"out.*": GaussWeights()}, default=np.zeros)
    >>> bnet = build_model(build, np.zeros((4, 2)), np.array([0, 1, 0, 1]), priors=priors)
    >>> [p.name for p in point_estimate_params(bnet)]
    ['h.W', 'h.b']
    """
    from ..layers.helper import get_all_params

    return get_all_params(bnet.network, trainable=True)


def _compile_map(
    bnet: BayesianNetwork,
    start: dict,
    optimizer: Callable,
    mode: Mode | None,
    seed: int,
    batch_size: int,
) -> tuple[MAPEstimate, Any]:
    model = bnet.model
    estimate = MAPEstimate(model, start)
    with model:
        logp = model.logp(jacobian=False)
    replacements = {**estimate.replacements(), **_static_batch(bnet, batch_size)}
    loss = -graph_replace(logp, replacements, strict=False)
    updates = optimizer(loss, estimate.params + point_estimate_params(bnet))
    with jax_keeps_its_own_generators():
        step = pm.pytensorf.compile([], loss, updates=updates, random_seed=seed, mode=mode)
    return estimate, step


def _compile_reparameterized(
    bnet: BayesianNetwork,
    start: dict,
    start_sigma: float | None,
    optimizer: Callable,
    mode: Mode | None,
    seeds: tuple[int, int],
    batch_size: int,
    estimator: str,
    obj_n_mc: int,
    total_grad_norm_constraint: float | None,
    kl_weight: float = 1.0,
) -> tuple[Any, Any, dict[str, str]]:
    """Mean-field ADVI with per-example weight noise (see :mod:`.reparam`): PyMC's
    approximation holds the parameters, the objective is built here."""
    start_seed, step_seed = seeds
    approx = _build_vi(bnet, "advi", start, start_sigma, start_seed, 1).approx
    loss, report = reparameterized_advi_loss(
        bnet.model,
        approx,
        _static_batch(bnet, batch_size),
        batch_size,
        estimator,
        obj_n_mc,
        kl_weight,
    )
    params = list(approx.params) + point_estimate_params(bnet)
    grads = pytensor.grad(loss, params)
    if total_grad_norm_constraint is not None:
        grads = pm.updates.total_norm_constraint(grads, total_grad_norm_constraint)
    updates = optimizer(grads, params)
    seed_random_generators([loss], step_seed)
    with jax_keeps_its_own_generators():
        step = pm.pytensorf.compile([], loss, updates=updates, random_seed=False, mode=mode)
    return approx, step, report


def _static_batch(bnet: BayesianNetwork, batch_size: int) -> dict:
    """Give the step the minibatch's static shape: every step copies exactly
    ``batch_size`` rows, and JAX cannot trace shapes computed from a symbolic one.

    Each data container is replaced by an alias with the static shape that shares its
    storage (what ``set_batch`` writes), rather than by ``specify_shape``: the alias
    needs no shape check in the compiled step (on Numba each check compiles its own
    kernel and error message, about a second of a first fit).
    """
    aliases = {}
    for data in (bnet.input_data, bnet.target_data):
        shape = (batch_size, *data.get_value(borrow=True).shape[1:])
        aliases[data] = type(data)(
            type=data.type.clone(shape=shape),
            value=None,
            strict=None,
            container=data.container,
            name=data.name,
        )
    return aliases


def progress_bar(progressbar: bool) -> Any:
    """The bridge's rich progress bar (PyMC's columns and theme; its tasks take ``loss``
    and ``rate`` fields), disabled unless ``progressbar``.

    Examples
    --------
    >>> with progress_bar(False) as progress:
    ...     task = progress.add_task("Fitting", total=3, loss="", rate="")
    """
    from pymc.progress_bar import CustomProgress, default_progress_theme
    from rich.console import Console
    from rich.progress import Progress, TextColumn

    return CustomProgress(
        *Progress.get_default_columns(),
        TextColumn("{task.fields[rate]}"),
        TextColumn("{task.fields[loss]}"),
        console=Console(theme=default_progress_theme),
        disable=not progressbar,
    )


def _check_data(bnet: BayesianNetwork, X: np.ndarray, y: np.ndarray) -> None:
    if len(X) != len(y):
        raise ValueError(
            f"fit: X and y must have the same number of rows, found {len(X)} and {len(y)}"
        )
    if len(X) != bnet.n_data:
        raise ValueError(
            f"fit: the model was built for {bnet.n_data} rows (its total_size), "
            f"found X with {len(X)} rows; build the model from the same data"
        )
    want = bnet.input_data.type.ndim
    if X.ndim != want:
        raise ValueError(f"fit: expected X with {want} dimensions, found shape {X.shape}")
    check_input_shape(bnet.network, X, "fit")


def fit(
    bnet: BayesianNetwork,
    X: np.ndarray,
    y: np.ndarray,
    n: int = 10000,
    method: str = "advi",
    *,
    batch_size: int | None = None,
    learning_rate: float | Callable[[int], float] = 0.01,
    optimizer: Callable | None = None,
    mode: str | Mode | None = None,
    start_sigma: float | None = 0.01,
    obj_n_mc: int = 1,
    reparameterization: str = "weights",
    kl_weight: float = 1.0,
    n_particles: int = 20,
    total_grad_norm_constraint: float | None = None,
    callbacks: Sequence[Callable] | None = None,
    checkpoint_every: int | None = None,
    checkpoint_path: str | os.PathLike | None = None,
    resume: str | os.PathLike | None = None,
    random_seed: int | None = None,
    progressbar: bool = True,
    reuse_memory: bool = True,
) -> FitResult:
    """Fit a Bayesian network by streaming minibatches through a compiled step.

    Parameters
    ----------
    bnet : BayesianNetwork
        From :func:`~.model.build_model`; its dtype (the ``floatX`` it was built
        under) is the dtype of the fit.
    X, y : arrays
        The full data the model was built for (``len(X) == bnet.n_data``).
    n : int
        Total number of iterations (a resumed run counts those already done).
    method : {"advi", "fullrank_advi", "svgd", "map"}
    batch_size : int, optional
        Rows per step; the model's batch size by default.
    learning_rate : float or callable
        Adam's step size (when ``optimizer`` is not given), or a schedule: a function
        of the iteration (0, 1, ...) returning the rate, e.g.
        :func:`exponential_decay`. A schedule is a function of the iteration only, so
        ``resume=`` continues on it exactly.
    optimizer : callable, optional
        A PyMC optimizer ``f(loss_or_grads, params) -> updates``, e.g.
        ``pm.adagrad_window(learning_rate=0.01)``.
    mode : str or Mode, optional
        Backend to compile with: ``"numba"``, ``"c"``, ``"jax"``,
        ``"fast_compile"``, a PyTensor Mode, or None for PyTensor's default.
    start_sigma : float or None
        Initial standard deviation of the approximation (ADVI, full-rank) or
        particle jitter (SVGD). The default 0.01 starts close to the initial
        point; None keeps PyMC's (softplus(0) = 0.69 per weight for ADVI, an
        identity Cholesky factor for full rank), which saturates the units of
        a freshly initialised network (see docs/pymc_bridge.md, float32).
    obj_n_mc : int
        Monte Carlo samples per gradient estimate (variational methods).
    reparameterization : {"weights", "local", "flipout"}
        How ADVI draws the weights in the likelihood (``method="advi"`` only).
        ``"weights"``: PyMC's objective, one weight sample per step shared by the
        minibatch. ``"local"``: every example gets its own draw, through the local
        reparameterization trick in dense layers and Flipout in convolutions;
        ``"flipout"``: Flipout in both. Both keep the ELBO's expectation and lower the
        gradient noise, for about twice the arithmetic per layer; weights the rewrite
        cannot handle (tied, transformed, recurrent) keep the shared sample. Which
        variable got which is in ``result.extra["reparameterization"]``; see
        :mod:`plasagne.pymc_bridge.reparam`.
    kl_weight : float
        The weight ``beta`` of the KL term in the objective (ADVI and full-rank ADVI):
        ``-E_q[log p(y | w)] + beta * KL(q || p(w))``, PyMC's ``KLqp(beta=...)``. 1, the
        default, is the ELBO; below 1 tempers the posterior (the data count for
        ``1 / beta`` times as much), which mean-field networks with over a million
        weights often need to fit the data well. A modelling choice: say so when you
        report results.
    n_particles : int
        SVGD particles.
    total_grad_norm_constraint : float, optional
        Clip the total gradient norm.
    callbacks : list of callables
        Each called as ``callback(approximation, losses, i)`` after every step;
        raising StopIteration ends the fit (e.g.
        ``pm.callbacks.CheckParametersConvergence()``).
    checkpoint_every : int, optional
        Write a checkpoint every so many iterations (needs ``checkpoint_path``);
        a checkpoint is also written at the end and on KeyboardInterrupt.
    checkpoint_path : str or PathLike, optional
    resume : str or PathLike, optional
        A checkpoint to continue from; the model, method and settings must be
        the same. The run then ends exactly where an uninterrupted run ends.
    random_seed : int, optional
        Seeds the starting point, the Monte Carlo draws and the shuffling.
    progressbar : bool
        Show PyMC's (rich) progress bar with the average loss and it/s.
    reuse_memory : bool
        Call :func:`plasagne.memory.reuse_freed_memory` first: the step's large
        intermediates are then reused instead of being page-faulted in afresh each step
        (1.8x faster for the post's CNN). False leaves the process's ``malloc`` alone.

    Returns
    -------
    FitResult

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.pymc_bridge import GaussWeights, build_model
    >>> build = lambda p: DenseLayer(InputLayer((None, 2)), 1, W=p, b=p, nonlinearity=None)
    >>> X = np.random.default_rng(0).normal(size=(40, 2))
    >>> bnet = build_model(build, X, X[:, 0], "normal", priors=GaussWeights(1.0), batch_size=10)
    >>> res = fit(bnet, X, X[:, 0], n=5, random_seed=0, progressbar=False)
    >>> res.iterations, res.losses.shape
    (5, (5,))
    """
    if method not in METHODS:
        raise ValueError(f"fit: method must be one of {METHODS}, found {method!r}")
    try:
        check_estimator(reparameterization, method)
    except ValueError as err:
        raise ValueError(f"fit: {err}") from None
    kl_weight = check_kl_weight(kl_weight, method)
    X = np.asarray(X)
    y = np.asarray(y)
    _check_data(bnet, X, y)
    if checkpoint_every is not None and checkpoint_path is None:
        raise ValueError("fit: checkpoint_every needs a checkpoint_path to write to")
    if int(n) < 0:
        raise ValueError(f"fit: n must be a non-negative number of iterations, found {n}")
    batch_size = bnet.batch_size if batch_size is None else min(int(batch_size), bnet.n_data)
    if batch_size <= 0:
        raise ValueError(f"fit: batch_size must be positive, found {batch_size}")
    compiled_mode = resolve_mode(mode)
    if reuse_memory:
        reuse_freed_memory()
    dtype = bnet.input_data.dtype if bnet.input_data.dtype.startswith("float") else None
    callbacks = list(callbacks or [])
    seed_seq = np.random.SeedSequence(random_seed)
    start_seed, step_seed, stream_seed = (int(s.generate_state(1)[0]) for s in seed_seq.spawn(3))

    t0 = time.perf_counter()
    with pytensor.config.change_flags(floatX=dtype or pytensor.config.floatX):
        bnet.set_batch(X[:batch_size], y[:batch_size])
        start = _start_point(bnet.model, start_seed)
        schedule = _make_schedule(learning_rate, optimizer, dtype or pytensor.config.floatX)
        opt = _make_optimizer(optimizer, learning_rate, schedule)
        report: dict[str, str] = {}
        if method == "map":
            approx, step = _compile_map(bnet, start, opt, compiled_mode, step_seed, batch_size)
            has_loss = True
        elif reparameterization != "weights":
            approx, step, report = _compile_reparameterized(
                bnet,
                start,
                start_sigma,
                opt,
                compiled_mode,
                (start_seed, step_seed),
                batch_size,
                reparameterization,
                obj_n_mc,
                total_grad_norm_constraint,
                kl_weight,
            )
            has_loss = True
        else:
            inference = _build_vi(
                bnet, method, start, start_sigma, start_seed, n_particles, kl_weight
            )
            approx = inference.approx
            has_loss = inference.objective.op.returns_loss
            kwargs: dict[str, Any] = {
                "obj_optimizer": opt,
                "total_grad_norm_constraint": total_grad_norm_constraint,
                "score": has_loss,
                "compile_kwargs": {"mode": compiled_mode},
            }
            if point_estimate_params(bnet):
                kwargs["more_obj_params"] = point_estimate_params(bnet)
            kwargs["more_replacements"] = _static_batch(bnet, batch_size)
            if method == "svgd":
                kwargs["test_optimizer"] = opt
            else:
                kwargs["obj_n_mc"] = obj_n_mc
            with bnet.model, jax_keeps_its_own_generators():
                approx.rng = np.random.RandomState(step_seed % 2**32)
                step = inference.objective.step_function(**kwargs)
    compile_seconds = time.perf_counter() - t0

    state = updated_shared_variables(step)
    stream = BatchStream(bnet.n_data, batch_size, stream_seed)
    losses: list[float] = []
    done = 0
    header = {
        "method": method,
        "n_data": bnet.n_data,
        "batch_size": batch_size,
        "reparameterization": reparameterization,
        "kl_weight": kl_weight,
    }
    if resume is not None:
        saved, arrays = load_checkpoint(
            resume,
            state,
            expected=header,
            defaults={"reparameterization": "weights", "kl_weight": 1.0},
        )
        done = int(saved["iteration"])
        losses = arrays["losses"].tolist()
        stream.set_state(
            {"perm": arrays["stream_perm"], "pos": saved["stream_pos"], "rng": saved["stream_rng"]}
        )

    def write_checkpoint() -> None:
        if checkpoint_path is None:
            return
        st = stream.state()
        save_checkpoint(
            checkpoint_path,
            state,
            {"losses": np.asarray(losses, dtype="float64"), "stream_perm": st["perm"]},
            dict(header, iteration=done, stream_pos=st["pos"], stream_rng=st["rng"]),
        )

    interrupted = stopped = False
    t1 = time.perf_counter()
    # it/s counts from the end of the first step of this call: on Numba that step compiles
    # the kernels (a minute on a machine whose cache is cold; see precompile)
    rate_from = rate_since = None
    progress = progress_bar(progressbar)
    try:
        with progress:
            task = progress.add_task("Compiling", total=n, completed=done, loss="", rate="")
            while done < n:
                stream_before = stream.state()
                idx = stream.next_indices()
                bnet.set_batch(X[idx], y[idx])
                if schedule is not None:
                    schedule.set(done)
                try:
                    out = step()
                except KeyboardInterrupt:
                    stream.set_state(stream_before)
                    raise
                loss = float(np.asarray(out).ravel()[0]) if has_loss else np.nan
                if has_loss and not np.isfinite(loss):
                    write_checkpoint()
                    raise FloatingPointError(
                        f"fit: the loss became {loss} at iteration {done + 1} ({method}); "
                        "lower learning_rate or start_sigma, or see docs/pymc_bridge.md (float32)"
                    )
                losses.append(loss)
                done += 1
                if rate_from is None:
                    rate_from, rate_since = done, time.perf_counter()
                    progress.update(task, description="Fitting", completed=done)
                if progressbar and (done % 10 == 0 or done == n):
                    steps = done - rate_from
                    rate = steps / max(time.perf_counter() - rate_since, 1e-9)
                    recent = np.asarray(losses[-100:])
                    progress.update(
                        task,
                        completed=done,
                        loss=f"loss={np.nanmean(recent):,.5g}" if has_loss else "",
                        rate=f"{rate:,.1f} it/s" if steps else "",
                    )
                for callback in callbacks:
                    callback(approx, np.asarray(losses), done)
                if checkpoint_every and done % int(checkpoint_every) == 0:
                    write_checkpoint()
    except KeyboardInterrupt:
        interrupted = True
    except StopIteration:
        stopped = True
    fit_seconds = time.perf_counter() - t1
    write_checkpoint()
    for p in getattr(approx, "params", []):
        value = p.get_value()
        if not isinstance(value, np.ndarray):
            p.set_value(np.asarray(value, dtype=p.dtype))
    return FitResult(
        approximation=approx,
        method=method,
        losses=np.asarray(losses, dtype="float64"),
        iterations=done,
        compile_seconds=compile_seconds,
        fit_seconds=fit_seconds,
        interrupted=interrupted,
        stopped=stopped,
        checkpoint_path=os.fspath(checkpoint_path) if checkpoint_path is not None else None,
        extra={"step_function": step, "mode": compiled_mode, "reparameterization": report},
    )
