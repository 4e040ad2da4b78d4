"""Named-prior initialisers: parameter specs that create PyMC random variables.

Each initialiser is a callable ``spec(shape, name=..., layer=...)``, so it can be
passed as ``W=`` or ``b=`` to any layer: :func:`plasagne.utils.create_param`
calls it with the parameter's full name (``"hidden1.W"``) and its layer, and the
random variable (or expression of random variables) it returns becomes the
parameter. They must be called inside a ``with pm.Model():`` block.

Names are unique per model: an unnamed layer's parameters are called
``"DenseLayer.W"``, the next unnamed dense layer's ``"DenseLayer_1.W"``, and a
second layer reusing a name gets the same ``_1`` suffix. All parameters of one
layer share one prefix.
"""

from __future__ import annotations

import fnmatch
import weakref
from collections.abc import Mapping
from typing import Any

import numpy as np
import pymc as pm

from .. import init as _init
from ..utils import create_param, floatX

__all__ = [
    "Prior",
    "GaussWeights",
    "HierarchicalGaussWeights",
    "PriorMap",
    "default_initial",
    "unique_param_name",
]

# model -> {layer: prefix}, so every parameter of one layer gets the same prefix.
_LAYER_PREFIXES: weakref.WeakKeyDictionary = weakref.WeakKeyDictionary()


def _current_model(what: str) -> pm.Model:
    model = pm.Model.get_context(error_if_none=False)
    if model is None:
        raise RuntimeError(
            f"{what} must be called inside `with pm.Model():` (it creates PyMC random "
            "variables); build the network inside a model context"
        )
    return model


def unique_param_name(model: pm.Model, name: str | None, layer: Any = None) -> str:
    """A name for a new parameter variable that is not yet used in ``model``.

    ``name`` is ``"<prefix>.<param>"``. The prefix of a layer is fixed the first
    time one of its parameters is named: the layer's own prefix if no other
    layer holds it and no variable starts with it, else ``prefix_1``,
    ``prefix_2``...

    Parameters
    ----------
    model : pm.Model
    name : str or None
        The wanted name; ``None`` gives ``"param"``.
    layer : Layer, optional
        The layer owning the parameter.

    Examples
    --------
    >>> with pm.Model() as m:
    ...     _ = pm.Normal("DenseLayer.W", 0, 1)
    ...     unique_param_name(m, "DenseLayer.W")
    'DenseLayer_1.W'
    """
    name = name or "param"
    prefix, dot, param = name.rpartition(".")
    if not dot:
        prefix, param = name, ""
    taken = set(model.named_vars)
    registry = _LAYER_PREFIXES.setdefault(model, {})

    def joined(p: str) -> str:
        return f"{p}.{param}" if dot else p

    if layer is not None and layer in registry:
        return joined(registry[layer])
    used_prefixes = set(registry.values())
    candidate, k = prefix, 0
    while (
        joined(candidate) in taken
        or (dot and candidate in used_prefixes)
        or (dot and layer is not None and any(t.startswith(candidate + ".") for t in taken))
    ):
        k += 1
        candidate = f"{prefix}_{k}"
    if layer is not None:
        registry[layer] = candidate
    return joined(candidate)


def default_initial(shape: tuple) -> np.ndarray:
    """The starting value of a parameter: Glorot uniform for >= 2-D, zeros for 1-D.

    Examples
    --------
    >>> default_initial((3,)).tolist()
    [0.0, 0.0, 0.0]
    >>> default_initial((4, 5)).shape
    (4, 5)
    """
    if len(shape) >= 2:
        return _init.GlorotUniform()(shape)
    return floatX(np.zeros(shape))


def _initial_value(initial: Any, shape: tuple) -> np.ndarray | None:
    if initial is None:
        return None
    if isinstance(initial, str) and initial == "auto":
        return default_initial(shape)
    value = initial(shape) if callable(initial) else initial
    value = floatX(value)
    if value.shape != tuple(shape):
        raise ValueError(f"initial value: expected shape {tuple(shape)}, found shape {value.shape}")
    return value


def _set_initial(model: pm.Model, rv: Any, value: np.ndarray | None) -> None:
    """Start ``rv`` at ``value``, if the value is in its support (no transform)."""
    if value is None:
        return
    if model.rvs_to_transforms.get(rv) is None:
        model.set_initval(rv, value)


class Prior:
    """A parameter with any PyMC distribution as prior, named after the parameter.

    Parameters
    ----------
    dist : PyMC distribution class
        E.g. ``pm.Normal``, ``pm.Laplace``, ``pm.StudentT``.
    initial : "auto", callable, array or None
        Starting value (``initval``). ``"auto"`` (default) starts unbounded
        parameters at :func:`default_initial` (Glorot uniform for weights, zeros
        for biases), which gives variational fits good starting means; ``None``
        keeps PyMC's default.
    **params
        The distribution's parameters; numbers, arrays, random variables or any
        expression (e.g. a hyperprior).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> with pm.Model() as m:
    ...     l = DenseLayer(InputLayer((None, 3)), 2, W=Prior(pm.Laplace, mu=0, b=0.5), name="h")
    >>> sorted(m.named_vars)
    ['h.W']
    """

    def __init__(self, dist: Any, initial: Any = "auto", **params: Any) -> None:
        if not (isinstance(dist, type) and issubclass(dist, pm.Distribution)):
            raise TypeError(
                f"Prior: dist must be a PyMC distribution class such as pm.Normal, found {dist!r}"
            )
        self.dist = dist
        self.initial = initial
        self.params = params

    def __call__(self, shape: tuple, name: str | None = None, layer: Any = None) -> Any:
        model = _current_model(f"{type(self).__name__} for parameter '{name}'")
        shape = tuple(int(s) for s in shape)
        full = unique_param_name(model, name, layer)
        rv = self.dist(full, shape=shape, **self.params)
        _set_initial(model, rv, _initial_value(self.initial, shape))
        return rv

    def __repr__(self) -> str:
        args = ", ".join(f"{k}={v!r}" for k, v in self.params.items())
        return f"Prior({self.dist.__name__}, {args})"


class GaussWeights(Prior):
    """A ``Normal(mu, sigma)`` prior for every element; the 2016 post's ``Normal(0, 0.1)``.

    Parameters
    ----------
    sigma : float or expression
        Prior standard deviation (default 0.1).
    mu : float or expression
        Prior mean (default 0).
    initial : "auto", callable, array or None
        Starting value, see :class:`Prior`.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> with pm.Model() as m:
    ...     l = DenseLayer(InputLayer((None, 3)), 2, W=GaussWeights(), b=GaussWeights(1.0))
    >>> sorted(m.named_vars)
    ['DenseLayer.W', 'DenseLayer.b']
    """

    def __init__(self, sigma: Any = 0.1, mu: Any = 0.0, initial: Any = "auto") -> None:
        super().__init__(pm.Normal, initial=initial, mu=mu, sigma=sigma)
        self.sigma = sigma
        self.mu = mu

    def __repr__(self) -> str:
        return f"GaussWeights(sigma={self.sigma!r}, mu={self.mu!r})"


class HierarchicalGaussWeights:
    """Gaussian weights whose scale has its own prior, per parameter or per unit.

    The scale is a random variable named ``"<param>.scale"``, of shape ``()``
    or, with ``per_unit=True``, one per output unit (the last axis: automatic
    relevance determination). Non-centred (the default), the parameter is the
    expression ``raw * scale`` with ``raw ~ Normal(0, 1)`` named
    ``"<param>.raw"``; no Deterministic of the full weight is stored (memory).
    Centred, the parameter is ``Normal("<param>", 0, scale)``.

    Parameters
    ----------
    scale : Prior, callable or float
        Prior of the scale: a :class:`Prior` (or any callable
        ``f(shape, name=...)`` returning a positive variable), or a number
        ``s`` meaning ``HalfNormal(sigma=s)``. Default ``HalfNormal(sigma=1)``.
    per_unit : bool
        One scale per output unit (last axis) instead of one per parameter.
    centered : bool
        Centred parameterisation (worse geometry for variational fits).
    initial : "auto", callable, array or None
        Starting value of the whole parameter; with ``"auto"`` the scale starts
        at the Glorot standard deviation (1 for biases) and ``raw`` at the
        Glorot draw divided by it.

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> with pm.Model() as m:
    ...     l = DenseLayer(InputLayer((None, 3)), 2, name="h",
    ...                    W=HierarchicalGaussWeights(per_unit=True), b=None)
    >>> sorted(m.named_vars), m["h.W.scale"].type.shape
    (['h.W.raw', 'h.W.scale'], (2,))
    """

    def __init__(
        self,
        scale: Any = 1.0,
        per_unit: bool = False,
        centered: bool = False,
        initial: Any = "auto",
    ) -> None:
        self.scale = scale
        self.per_unit = per_unit
        self.centered = centered
        self.initial = initial

    def _scale_var(self, shape: tuple, name: str) -> Any:
        if isinstance(self.scale, (int, float, np.number)):
            if self.scale <= 0:
                raise ValueError(
                    f"HierarchicalGaussWeights: scale must be positive, found {self.scale}"
                )
            return pm.HalfNormal(name, sigma=float(self.scale), shape=shape)
        if callable(self.scale):
            try:
                return self.scale(shape, name=name)
            except TypeError:
                return self.scale(shape)
        raise TypeError(
            "HierarchicalGaussWeights: scale must be a number, a Prior or a callable, "
            f"found {self.scale!r}"
        )

    def __call__(self, shape: tuple, name: str | None = None, layer: Any = None) -> Any:
        model = _current_model(f"HierarchicalGaussWeights for parameter '{name}'")
        shape = tuple(int(s) for s in shape)
        full = unique_param_name(model, name, layer)
        scale_shape = (shape[-1],) if self.per_unit and shape else ()
        scale = self._scale_var(scale_shape, f"{full}.scale")
        value = _initial_value(self.initial, shape)
        if len(shape) >= 2:
            std = float(np.sqrt(2.0 / ((shape[0] + shape[1]) * int(np.prod(shape[2:])))))
        else:
            std = 1.0
        if value is not None and model.rvs_to_transforms.get(scale) is not None:
            if model.rvs_to_initial_values.get(scale) is None:
                model.set_initval(scale, floatX(np.full(scale_shape, std)))
        if self.centered:
            rv = pm.Normal(full, mu=0.0, sigma=scale, shape=shape)
            _set_initial(model, rv, value)
            return rv
        raw = pm.Normal(f"{full}.raw", mu=0.0, sigma=1.0, shape=shape)
        if value is not None:
            model.set_initval(raw, floatX(value / std))
        return raw * scale

    def __repr__(self) -> str:
        return (
            f"HierarchicalGaussWeights(scale={self.scale!r}, per_unit={self.per_unit!r}, "
            f"centered={self.centered!r})"
        )


class PriorMap:
    """Choose a prior (or a plain initializer) per parameter, by name pattern or layer type.

    Rules are tried in order; the first that matches wins. A string key is an
    ``fnmatch`` pattern on the full parameter name (``"conv*.W"``, ``"*.b"``);
    a class key matches parameters of layers of that class (or a subclass). A
    parameter matching no rule gets ``default``. A rule's value may be any
    parameter spec: a prior, or a deterministic initializer / array, which
    leaves that parameter a point-estimate shared variable (Bayesian only in
    chosen layers).

    Parameters
    ----------
    rules : mapping of str or type to spec
    default : spec
        What unmatched parameters get (default ``GaussWeights()``).

    Examples
    --------
    >>> from plasagne.layers import InputLayer, DenseLayer
    >>> from plasagne.init import Constant
    >>> priors = PriorMap({"*.b": Constant(0.0), "out.*": GaussWeights(1.0)})
    >>> with pm.Model() as m:
    ...     h = DenseLayer(InputLayer((None, 3)), 4, W=priors, b=priors, name="h")
    ...     out = DenseLayer(h, 2, W=priors, b=priors, name="out")
    >>> sorted(m.named_vars), h.b.name
    (['h.W', 'out.W'], 'h.b')
    """

    def __init__(self, rules: Mapping[Any, Any], default: Any = None) -> None:
        self.rules = list(rules.items())
        for key, _ in self.rules:
            if not isinstance(key, (str, type)):
                raise TypeError(
                    f"PriorMap: rule keys must be name patterns (str) or layer classes, "
                    f"found {key!r}"
                )
        self.default = GaussWeights() if default is None else default

    def choose(self, name: str | None, layer: Any = None) -> Any:
        """The spec the first matching rule gives the parameter ``name`` of ``layer``.

        Examples
        --------
        >>> PriorMap({"*.b": 0.0}, default=1.0).choose("h.b")
        0.0
        """
        for key, spec in self.rules:
            if isinstance(key, str):
                if name is not None and fnmatch.fnmatchcase(name, key):
                    return spec
            elif layer is not None and isinstance(layer, key):
                return spec
        return self.default

    def __call__(self, shape: tuple, name: str | None = None, layer: Any = None) -> Any:
        spec = self.choose(name, layer)
        if isinstance(spec, (int, float, np.number)):
            spec = floatX(np.full(shape, spec))
        return create_param(spec, shape, name, layer)

    def __repr__(self) -> str:
        return f"PriorMap({dict(self.rules)!r}, default={self.default!r})"
