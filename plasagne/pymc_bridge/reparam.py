"""Per-example weight noise for mean-field ADVI: local reparameterization and Flipout.

Plain ADVI draws one weight sample per step and uses it for the whole minibatch, so the
gradient noise of a step does not shrink with the batch size. The two estimators here give
every example its own draw of the weights, at the price of a second matrix product per
layer, and leave the expectation of the ELBO unchanged:

* **local reparameterization** (Kingma, Salimans & Welling, 2015). For ``out = A @ W`` with
  independent ``W[k, u] ~ N(mu, sigma**2)``, each example's pre-activations are exactly
  ``N(A @ mu, A**2 @ sigma**2)``, independent across units; sampling them directly costs
  two products and no weight sample. It is exact only when each row of ``A`` is one example
  (a dense layer); a convolution shares its weights across positions, which this would
  treat as independent, so there Flipout is used instead.
* **Flipout** (Wen et al., 2018). ``out = A @ mu + ((A * s_in) @ dW) * s_out`` with one weight
  perturbation ``dW = sigma * eps`` per step and random signs ``s_in``, ``s_out`` per example
  (constant over an example's positions): every example sees weights distributed exactly as
  ``q``, and examples are decorrelated. It applies to dense and convolution layers.

The rewrite works on the graph, not on layer classes. It finds every matrix product
``Dot(data, f(W))`` (or ``Dot(f(W), data)``) of the model's log-likelihood where ``W`` is a
free variable without a transform that appears nowhere else in the likelihood, ``f`` is a
chain of injective structure ops (reshape, transpose, slicing, a spatial flip) and products
with factors independent of ``W`` (``scale * raw`` of a non-centred prior), and the rows of
``data`` are the minibatch's examples (a dense layer) or the example-major columns of an
:class:`~plasagne.ops.im2col.Im2Col` patch matrix (a convolution); a one-node
:class:`~plasagne.ops.corr_op.CorrNd` correlation of the batch qualifies the same way.
Anything else keeps the shared weight sample, so the result is always a valid ELBO estimate.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import numpy as np
import pytensor.scalar as ps
import pytensor.tensor as pt
from pytensor.compile.sharedvalue import SharedVariable
from pytensor.graph.basic import Constant, Variable
from pytensor.graph.replace import graph_replace
from pytensor.graph.rewriting.utils import rewrite_graph
from pytensor.graph.traversal import io_toposort, walk
from pytensor.tensor.elemwise import DimShuffle, Elemwise
from pytensor.tensor.math import Dot
from pytensor.tensor.shape import Reshape, Shape, Shape_i, SpecifyShape
from pytensor.tensor.subtensor import Subtensor

from ..ops.corr_op import CorrNd
from ..ops.im2col import Im2Col

__all__ = [
    "ESTIMATORS",
    "check_estimator",
    "WeightMoments",
    "reparameterize_likelihood",
    "MarginalProduct",
    "marginal_products",
    "pull_out_column_scales",
    "reparameterized_advi_loss",
    "seed_random_generators",
]

ESTIMATORS = ("weights", "local", "flipout")


def check_estimator(estimator: str, method: str) -> None:
    """Refuse an unknown weight-noise estimator, or one the fitting method cannot use.

    Examples
    --------
    >>> check_estimator("local", "advi")
    >>> try:
    ...     check_estimator("local", "map")
    ... except ValueError as err:
    ...     print(str(err)[:46])
    reparameterization='local' needs method='advi'
    """
    if estimator not in ESTIMATORS:
        raise ValueError(f"reparameterization must be one of {ESTIMATORS}, found {estimator!r}")
    if estimator != "weights" and method != "advi":
        raise ValueError(
            f"reparameterization={estimator!r} needs method='advi' (a mean-field Gaussian "
            f"approximation), found method={method!r}"
        )


_STRUCTURE_OPS = (Reshape, DimShuffle, SpecifyShape, Subtensor)
_SCALING_OPS = (ps.Mul, ps.TrueDiv, ps.Neg)
_TINY_VARIANCE = 1e-12


class WeightMoments:
    """The mean and standard deviation of one weight tensor under the approximation.

    Parameters
    ----------
    mean, std : tensor
        Same shape as the free variable they describe.

    Examples
    --------
    >>> m = WeightMoments(pt.zeros((2, 3)), pt.ones((2, 3)))
    >>> m.mean.ndim, m.std.ndim
    (2, 2)
    """

    def __init__(self, mean: Any, std: Any) -> None:
        self.mean = mean
        self.std = std


def _value_ancestors(expr: Variable) -> set:
    """Ancestors of ``expr`` whose values (not only shapes) it depends on."""

    def parents(v: Variable) -> list:
        node = v.owner
        if node is None or isinstance(node.op, (Shape, Shape_i)):
            return []
        return list(node.inputs)

    return set(walk([expr], parents))


def _depends_on(expr: Variable, var: Variable) -> bool:
    return var in _value_ancestors(expr)


def _linear_image(expr: Variable, var: Variable, leaf: Any, square: bool) -> Variable | None:
    """``expr`` with ``var`` replaced by ``leaf``, if ``expr`` is an injective linear map of
    ``var``; with ``square`` the scaling factors are squared (the map of the variances).
    None when ``expr`` is not such a map."""
    if expr is var:
        return leaf
    node = expr.owner
    if node is None:
        return None
    op = node.op
    if isinstance(op, _STRUCTURE_OPS):
        source, *rest = node.inputs
        if any(_depends_on(r, var) for r in rest):
            return None
        inner = _linear_image(source, var, leaf, square)
        return None if inner is None else node.clone_with_new_inputs([inner, *rest]).outputs[0]
    if isinstance(op, Elemwise) and isinstance(op.scalar_op, _SCALING_OPS):
        linear = [i for i, x in enumerate(node.inputs) if _depends_on(x, var)]
        if len(linear) != 1 or (isinstance(op.scalar_op, ps.TrueDiv) and linear != [0]):
            return None
        position = linear[0]
        source = node.inputs[position]
        if source.type.broadcastable != expr.type.broadcastable:
            return None  # broadcasting would reuse one weight in several entries
        inner = _linear_image(source, var, leaf, square)
        if inner is None:
            return None
        if isinstance(op.scalar_op, ps.Neg):
            return inner if square else -inner
        inputs = [
            inner if i == position else (x**2 if square else x) for i, x in enumerate(node.inputs)
        ]
        return node.clone_with_new_inputs(inputs).outputs[0]
    return None


def _static_length(length: Variable) -> int | None:
    folded = rewrite_graph(length, include=("ShapeOpt", "canonicalize"))
    data = getattr(folded, "data", None)
    return None if data is None else int(data)


class _Product:
    """One eligible product of the likelihood: a ``Dot`` (which side is data, how its rows
    map to examples) or a :class:`~plasagne.ops.corr_op.CorrNd` (data first, one example
    per batch entry)."""

    def __init__(self, node: Any, weight_side: int, var: Variable, rows_per_example: int):
        self.node = node
        self.weight_side = weight_side
        self.var = var
        self.weights = node.inputs[weight_side]
        self.data = node.inputs[1 - weight_side]
        self.rows_per_example = rows_per_example

    @property
    def output(self) -> Variable:
        return self.node.outputs[0]

    @property
    def is_correlation(self) -> bool:
        return isinstance(self.node.op, CorrNd)

    def product(self, data: Any, weights: Any) -> Any:
        if self.is_correlation:
            return self.node.op(data, weights)
        return pt.dot(data, weights) if self.weight_side == 1 else pt.dot(weights, data)


def _weight_sides(node: Any) -> tuple[int, ...]:
    """Which inputs of ``node`` may hold the weights of a product: both sides of a 2-D
    ``Dot``, the filters of a ``CorrNd``; none for any other node."""
    if isinstance(node.op, CorrNd):
        return (1,)
    if isinstance(node.op, Dot) and all(i.ndim == 2 for i in node.inputs):
        return (0, 1)
    return ()


def _rows_per_example(node: Any, weight_side: int, batch_size: int) -> int | None:
    """How many rows (weight right) or columns (weight left) of a product's data operand
    belong to each example, or None when they are not grouped by the minibatch's examples.
    A ``CorrNd``'s data is the batch itself: one entry per example."""
    data = node.inputs[1 - weight_side]
    length = _static_length(data.shape[0 if weight_side == 1 else 1])
    if length == batch_size:
        return 1
    if weight_side == 0 and data.owner is not None and isinstance(data.owner.op, Im2Col):
        # Im2Col's columns are example-major: (example, position)
        source = data.owner.inputs[0]
        if _static_length(source.shape[0]) == batch_size and length is not None:
            return length // batch_size
    return None


def _find_products(
    loglik: Variable, candidates: list, per_example: Callable[[Any, int], int | None]
) -> list[_Product]:
    """The eligible products of ``loglik``: ``per_example(node, weight_side)`` says how many
    data rows (or columns) belong to each example, None when the product does not qualify."""
    found: dict[Variable, list] = {v: [] for v in candidates}
    order = io_toposort(list(candidates), [loglik])
    for node in order:
        for side in _weight_sides(node):
            in_weights = _value_ancestors(node.inputs[side])
            in_data = _value_ancestors(node.inputs[1 - side])
            for var in candidates:
                if var not in in_weights or var in in_data:
                    continue
                if _linear_image(node.inputs[side], var, var, False) is None:
                    continue
                rows = per_example(node, side)
                if rows is not None:
                    found[var].append(_Product(node, side, var, rows))
    position = {node: i for i, node in enumerate(order)}
    products = sorted(
        (uses[0] for uses in found.values() if len(uses) == 1), key=lambda p: position[p.node]
    )
    # a variable used anywhere else in the likelihood keeps the shared weight sample
    cut = graph_replace(loglik, {p.output: p.output.type() for p in products}, strict=False)
    remaining = _value_ancestors(cut)
    return [p for p in products if p.var not in remaining]


def _standard_normal(shape: Any, dtype: str) -> Any:
    rng = pt.random.shared_rng(np.random.default_rng())
    _, draw = pt.random.normal(0.0, 1.0, size=shape, dtype=dtype, rng=rng, return_next_rng=True)
    return draw


def _random_signs(shape: Any, dtype: str) -> Any:
    rng = pt.random.shared_rng(np.random.default_rng())
    _, draw = pt.random.bernoulli(0.5, size=shape, rng=rng, return_next_rng=True)
    return draw.astype(dtype) * 2 - 1


def _repeat_per_example(signs: Any, rows_per_example: Any, axis: int) -> Any:
    return signs if rows_per_example == 1 else pt.repeat(signs, rows_per_example, axis=axis)


def _local_output(p: _Product, moments: WeightMoments) -> Any:
    mean_w = _linear_image(p.weights, p.var, moments.mean, square=False)
    var_w = _linear_image(p.weights, p.var, moments.std**2, square=True)
    mean = p.product(p.data, mean_w)
    variance = p.product(p.data**2, var_w)
    noise = _standard_normal(mean.shape, mean.dtype)
    return mean + pt.sqrt(variance + _TINY_VARIANCE) * noise


def _flipout_output(p: _Product, moments: WeightMoments, batch_size: int) -> Any:
    dtype = p.output.dtype
    mean_w = _linear_image(p.weights, p.var, moments.mean, square=False)
    eps = _standard_normal(moments.mean.shape, dtype)
    delta_w = _linear_image(p.weights, p.var, moments.std * eps, square=False)
    mean = p.product(p.data, mean_w)

    def signs(features: Any) -> Any:
        # one sign per (example, feature), repeated over an example's rows or columns
        if p.is_correlation:  # (batch, channels, 1, ...): constant over positions
            draw = _random_signs((batch_size, features), dtype)
            return pt.shape_padright(draw, p.data.ndim - 2)
        size = (batch_size, features) if p.weight_side == 1 else (features, batch_size)
        draw = _random_signs(size, dtype)
        return _repeat_per_example(draw, p.rows_per_example, axis=1 - p.weight_side)

    feature_axis = 1 if p.is_correlation else p.weight_side  # data's feature (channel) axis
    s_in = signs(p.data.shape[feature_axis])
    s_out = signs(mean.shape[feature_axis])
    return mean + p.product(p.data * s_in, delta_w) * s_out


def reparameterize_likelihood(
    loglik: Variable,
    moments: dict[Variable, WeightMoments],
    batch_size: int,
    estimator: str,
) -> tuple[Variable, dict[str, str]]:
    """Rewrite a log-likelihood graph so eligible weights get per-example noise.

    Parameters
    ----------
    loglik : TensorVariable
        The likelihood in terms of the model's value variables, with the minibatch
        containers of static shape (``batch_size`` rows).
    moments : dict of value variable to WeightMoments
        The candidates: untransformed free variables and their approximation's moments.
    batch_size : int
        Rows of one minibatch; a product is rewritten only when its data rows (or Im2Col
        columns) are grouped by these examples.
    estimator : {"local", "flipout"}
        ``"local"``: local reparameterization where each data row is one example,
        Flipout where an example spans several rows (convolutions). ``"flipout"``:
        Flipout everywhere.

    Returns
    -------
    loglik : TensorVariable
        The rewritten graph; variables it does not rewrite stay in it.
    report : dict of str to str
        Per candidate name, ``"local"``, ``"flipout"`` or ``"weights"`` (not rewritten).

    Examples
    --------
    >>> A = pt.specify_shape(pt.matrix("A"), (4, 3))
    >>> W = pt.matrix("W")
    >>> ll = pt.sum(pt.dot(A, W))
    >>> m = {W: WeightMoments(pt.zeros((3, 2)), pt.ones((3, 2)))}
    >>> new, report = reparameterize_likelihood(ll, m, 4, "local")
    >>> report
    {'W': 'local'}
    """
    if estimator not in ("local", "flipout"):
        raise ValueError(
            f"reparameterize_likelihood: estimator must be 'local' or 'flipout', "
            f"found {estimator!r}"
        )
    report = {v.name: "weights" for v in moments}
    products = _find_products(
        loglik, list(moments), lambda node, side: _rows_per_example(node, side, batch_size)
    )
    replacements: dict = {}
    for p in products:  # in graph order: a product's data uses the earlier rewrites
        if replacements:
            p.data, p.weights = graph_replace([p.data, p.weights], replacements, strict=False)
        exact_local = p.rows_per_example == 1 and estimator == "local" and not p.is_correlation
        if exact_local:
            replacements[p.output] = _local_output(p, moments[p.var])
        else:
            replacements[p.output] = _flipout_output(p, moments[p.var], batch_size)
        report[p.var.name] = "local" if exact_local else "flipout"
    if not replacements:
        return loglik, report
    rewritten = graph_replace(loglik, replacements, strict=False)
    left = _value_ancestors(rewritten) & {p.var for p in products}
    if left:  # pragma: no cover - a bug in the rewrite, not in the user's model
        raise RuntimeError(f"reparameterize_likelihood: {sorted(v.name for v in left)} left")
    # what is left of a rewritten variable are uses of its shape: take it from the mean
    shapes_only = {p.var: moments[p.var].mean for p in products}
    return graph_replace(rewritten, shapes_only, strict=False), report


# two sizes no layer is likely to have: a product's rows follow the inputs' rows when its
# row count is each of them with the inputs given that many rows
_PROBE_ROWS = (7919, 7927)


def _follows_rows(length: Variable, rows_of: Variable) -> bool:
    """Whether the symbolic ``length`` equals the number of rows of ``rows_of``."""
    for rows in _PROBE_ROWS:
        probe = pt.tensor(dtype=rows_of.dtype, shape=(rows, *rows_of.type.shape[1:]))
        if _static_length(graph_replace(length, {rows_of: probe}, strict=False)) != rows:
            return False
    return True


class MarginalProduct:
    """One product ``A @ f(W)`` of the inputs and mean-field Gaussian weights, with the
    exact per-example moments of its result.

    Attributes
    ----------
    output : tensor
        The product in the network's graph.
    mean, std : tensor
        ``A @ f(mu)`` and ``sqrt(A**2 @ f(sigma)**2)``: functions of the inputs and of the
        approximation's parameters only, so they can be computed once for many draws.
    variable : Variable
        The candidate weight variable it samples through.

    Examples
    --------
    >>> X = pt.matrix("X"); W = pt.matrix("W")
    >>> m = {W: WeightMoments(pt.ones((3, 2)), pt.ones((3, 2)))}
    >>> [p.variable.name for p in marginal_products(pt.tanh(pt.dot(X, W)), m, X)]
    ['W']
    """

    def __init__(self, output: Variable, mean: Variable, std: Variable, variable: Variable):
        self.output = output
        self.mean = mean
        self.std = std
        self.variable = variable


def pull_out_column_scales(output: Variable, candidates: list) -> Variable:
    """``output`` with every product ``A @ (W * s)`` of a candidate ``W`` and a factor
    ``s`` that is constant down the rows (a scalar or one value per column, such as the
    scale of non-centred weights ``raw * scale``) written as ``(A @ W) * s``.

    The two are equal; in the second form ``A @ W`` is a product of ``W`` alone, which
    :func:`marginal_products` can sample per example while ``s`` keeps its draws.

    Examples
    --------
    >>> X = pt.matrix("X"); W = pt.matrix("W"); s = pt.vector("s")
    >>> out = pull_out_column_scales(pt.dot(X, W * s), [W])
    >>> out.owner.inputs[0].owner.inputs[1] is W  # the product is of W alone
    True
    >>> bool(np.allclose(out.eval({X: np.ones((2, 3)), W: np.ones((3, 2)), s: [2.0, 3.0]}),
    ...                  [[6.0, 9.0], [6.0, 9.0]]))
    True
    """
    replacements = {}
    for node in io_toposort(list(candidates), [output]):
        if not (isinstance(node.op, Dot) and all(i.ndim == 2 for i in node.inputs)):
            continue
        data, weights = node.inputs
        scaled = weights.owner
        if scaled is None or not (
            isinstance(scaled.op, Elemwise) and isinstance(scaled.op.scalar_op, ps.Mul)
        ):
            continue
        if len(scaled.inputs) != 2:
            continue
        for var, factor in (scaled.inputs, scaled.inputs[::-1]):
            if (
                var in candidates
                and factor.type.broadcastable[0]
                and var not in _value_ancestors(factor)
            ):
                replacements[node.outputs[0]] = pt.dot(data, var) * factor
                break
    return graph_replace(output, replacements, strict=False) if replacements else output


def marginal_products(
    output: Variable, moments: dict[Variable, WeightMoments], inputs: Variable
) -> list[MarginalProduct]:
    """The products of ``output``'s graph whose per-example distribution is known exactly.

    A product qualifies when its data depends on ``inputs`` (and constants) only, each of
    its rows (or columns) is one row of ``inputs``, and its weights are an injective linear
    image (as in :func:`reparameterize_likelihood`), with constant factors, of a candidate
    variable used nowhere else. A random factor (the scale of non-centred weights
    ``raw * scale``) disqualifies the product; apply :func:`pull_out_column_scales` first
    to move a per-column one out of it. For such ``A @ W`` with independent
    ``W[k, u] ~ N(mu, sigma**2)``, one example's results are independent
    ``N(A @ mu, A**2 @ sigma**2)`` whatever the other weights of the network: sampling them
    from these moments gives every example exactly the predictive distribution that drawing
    ``W`` gives it. Different examples' samples are independent, where a shared draw of
    ``W`` would correlate them.
    Convolutions (:class:`~plasagne.ops.corr_op.CorrNd`, Im2Col patches) never qualify:
    their positions share weights within one example.

    Parameters
    ----------
    output : TensorVariable
        The network's output in terms of ``inputs`` and the candidates.
    moments : dict of variable to WeightMoments
        The candidates (untransformed weight variables) and their approximation's moments.
    inputs : TensorVariable
        The batch of inputs; its first axis is the examples.

    Returns
    -------
    list of MarginalProduct
        In graph order.

    Examples
    --------
    >>> X = pt.matrix("X"); W1 = pt.matrix("W1"); W2 = pt.matrix("W2")
    >>> out = pt.dot(pt.tanh(pt.dot(X, W1)), W2)
    >>> m = {w: WeightMoments(pt.ones((2, 2)), pt.ones((2, 2))) for w in (W1, W2)}
    >>> [p.variable.name for p in marginal_products(out, m, X)]  # W2: after a random layer
    ['W1']
    """
    candidates = list(moments)

    def fixed_but(expr: Variable, allowed: Variable) -> bool:
        """Whether ``expr``'s values depend on ``allowed``, constants and shared values only."""
        roots = (v for v in _value_ancestors(expr) if v.owner is None)
        return all(v is allowed or isinstance(v, (Constant, SharedVariable)) for v in roots)

    def per_example(node: Any, side: int) -> int | None:
        if isinstance(node.op, CorrNd):
            return None
        data = node.inputs[1 - side]
        if data.owner is not None and isinstance(data.owner.op, Im2Col):
            return None
        if not fixed_but(data, inputs):
            return None  # the data must be computable from the inputs alone
        weights = node.inputs[side]
        if not any(fixed_but(weights, var) for var in candidates):
            return None  # e.g. raw * scale with a random scale: moments vary by draw
        return 1 if _follows_rows(data.shape[0 if side == 1 else 1], inputs) else None

    result = []
    for p in _find_products(output, candidates, per_example):
        mean_w = _linear_image(p.weights, p.var, moments[p.var].mean, square=False)
        var_w = _linear_image(p.weights, p.var, moments[p.var].std ** 2, square=True)
        mean = p.product(p.data, mean_w)
        std = pt.sqrt(p.product(p.data**2, var_w) + _TINY_VARIANCE)
        result.append(MarginalProduct(p.output, mean, std, p.var))
    return result


def flat_moments(
    ordering: dict, value_vars: list, mean: Any, std: Any, eligible: Callable[[Variable], bool]
) -> dict[Variable, WeightMoments]:
    """Per eligible value variable, its slice of a flat mean and std vector, reshaped.

    Examples
    --------
    >>> v = pt.matrix("v")
    >>> order = {"v": ("v", slice(0, 6), (2, 3), "float64")}
    >>> m = flat_moments(order, [v], pt.arange(6.0), pt.ones(6), lambda x: True)
    >>> m[v].mean.eval().tolist()
    [[0.0, 1.0, 2.0], [3.0, 4.0, 5.0]]
    """
    by_name = {v.name: v for v in value_vars}
    result = {}
    for name, (_, slc, shape, _dtype) in ordering.items():
        var = by_name[name]
        if eligible(var):
            result[var] = WeightMoments(mean[slc].reshape(shape), std[slc].reshape(shape))
    return result


def gaussian_entropy(std: Any) -> Any:
    """Entropy of a diagonal Gaussian with standard deviations ``std`` (a vector).

    Examples
    --------
    >>> round(float(gaussian_entropy(pt.ones(1)).eval()), 6)
    1.418939
    """
    d = std.shape[0].astype(std.dtype)
    return pt.sum(pt.log(std)) + 0.5 * d * np.log(2 * np.pi * np.e).astype(std.dtype)


def reparameterized_advi_loss(
    model: Any,
    approx: Any,
    static_batch: dict,
    batch_size: int,
    estimator: str,
    obj_n_mc: int = 1,
    kl_weight: float = 1.0,
) -> tuple[Variable, dict[str, str]]:
    """The negative ELBO of a mean-field approximation, with per-example weight noise.

    ``-ELBO = -(E_q[log p(y | w)] + E_q[log p(w)]) - H[q]``: the likelihood term is the
    rewritten graph of :func:`reparameterize_likelihood`, the prior term (with the
    Jacobians of transformed variables) uses one shared draw of all variables, and the
    entropy of the Gaussian ``q`` is exact. Each of the ``obj_n_mc`` Monte Carlo terms has
    its own noise.

    Parameters
    ----------
    model : pm.Model
    approx : pm MeanField approximation
        Its ``mu`` and ``rho`` (``std = softplus(rho)``) are the trained parameters.
    static_batch : dict
        Replacements giving the minibatch containers their static shape.
    batch_size : int
    estimator : {"local", "flipout"}
    obj_n_mc : int
    kl_weight : float
        Weight ``beta`` of the KL term (prior and entropy), as PyMC's ``KLqp(beta=...)``.

    Returns
    -------
    loss : TensorVariable
        A scalar whose expectation is the negative ELBO PyMC's ADVI estimates (scaled
        like PyMC's to one minibatch: divided by ``total_size / batch_size``).
    report : dict of str to str
        What :func:`reparameterize_likelihood` did to each untransformed variable.

    Examples
    --------
    >>> import pymc as pm
    >>> from pytensor.tensor.random.utils import RandomStream
    >>> with pm.Model() as m:
    ...     w = pm.Normal("w", 0, 1, shape=(2, 1))
    ...     X = pt.specify_shape(pt.as_tensor(np.ones((3, 2))), (3, 2))
    ...     _ = pm.Normal("y", pt.dot(X, w)[:, 0], 1, observed=np.zeros(3))
    ...     approx = pm.ADVI().approx
    >>> loss, report = reparameterized_advi_loss(m, approx, {}, 3, "local")
    >>> report
    {'w': 'local'}
    """
    from pymc.distributions.dist_math import rho2sigma

    group = approx.groups[0]
    mean = group.params_dict["mu"]
    std = rho2sigma(group.params_dict["rho"])
    transforms = model.rvs_to_transforms

    def untransformed(value: Variable) -> bool:
        return transforms.get(model.values_to_rvs[value]) is None

    moments = flat_moments(group.ordering, model.value_vars, mean, std, untransformed)
    prior = model.logp(vars=model.free_RVs)
    likelihood = model.logp(vars=list(model.observed_RVs) + list(model.potentials))
    likelihood = graph_replace(likelihood, static_batch, strict=False)
    by_name = {v.name: v for v in model.value_vars}
    terms = []
    report: dict[str, str] = {}
    for _ in range(int(obj_n_mc)):
        rewritten, report = reparameterize_likelihood(likelihood, moments, batch_size, estimator)
        draw = mean + std * _standard_normal(mean.shape, mean.dtype)
        values = {
            by_name[name]: draw[slc].reshape(shape)
            for name, (_, slc, shape, _dtype) in group.ordering.items()
        }
        terms.append(graph_replace(kl_weight * prior + rewritten, values, strict=False))
    expected_logp = pt.add(*terms) / len(terms) if len(terms) > 1 else terms[0]
    # PyMC reports the ELBO scaled to one minibatch (divided by total_size / batch rows)
    scale = graph_replace(approx.symbolic_normalizing_constant, static_batch, strict=False)
    return -(expected_logp + kl_weight * gaussian_entropy(std)) / scale, report


def seed_random_generators(outputs: list, seed: int | None) -> None:
    """Seed the shared random generators feeding ``outputs``, in graph order.

    ``pm.pytensorf.compile(random_seed=...)`` hands out seeds in the order of a mapping
    that is not stable from one process to the next when a graph has several generators;
    seeding them here, in the graph's own order, then compiling with ``random_seed=False``
    makes runs repeatable.

    Examples
    --------
    >>> import pymc as pm
    >>> x = _standard_normal((2,), "float64") + _standard_normal((2,), "float64")
    >>> seed_random_generators([x], 3)
    >>> a = pm.pytensorf.compile([], x, random_seed=False)()
    >>> seed_random_generators([x], 3)
    >>> bool((pm.pytensorf.compile([], x, random_seed=False)() == a).all())
    True
    """
    from pymc.pytensorf import find_rng_nodes, reseed_rngs

    reseed_rngs(find_rng_nodes(outputs), seed)
