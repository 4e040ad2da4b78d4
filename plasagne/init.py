"""Initializers: callables that take a shape and return a floatX numpy array.

Any callable ``f(shape) -> array`` can be used wherever a layer takes a
parameter; these classes cover the usual schemes, with Lasagne's names and
defaults. All draw from :func:`plasagne.random.get_rng`.
"""

from __future__ import annotations

from typing import Any

import numpy as np

from .random import get_rng
from .utils import floatX

__all__ = [
    "Initializer",
    "Normal",
    "Uniform",
    "Glorot",
    "GlorotNormal",
    "GlorotUniform",
    "He",
    "HeNormal",
    "HeUniform",
    "Constant",
    "Sparse",
    "Orthogonal",
]


class Initializer:
    """Base class: subclasses implement :meth:`sample`.

    Examples
    --------
    >>> class Twos(Initializer):
    ...     def sample(self, shape):
    ...         return floatX(np.full(shape, 2.0))
    >>> Twos()((2,)).tolist()
    [2.0, 2.0]
    """

    def __call__(self, shape: tuple) -> np.ndarray:
        return self.sample(shape)

    def sample(self, shape: tuple) -> np.ndarray:
        """Draw an array of the given shape."""
        raise NotImplementedError

    def __repr__(self) -> str:
        fields = ", ".join(f"{k}={v!r}" for k, v in vars(self).items() if not k.startswith("_"))
        return f"{type(self).__name__}({fields})"


class Normal(Initializer):
    """Draw from a normal distribution ``N(mean, std**2)``.

    Examples
    --------
    >>> Normal(std=0.1)((3, 4)).shape
    (3, 4)
    """

    def __init__(self, std: float = 0.01, mean: float = 0.0) -> None:
        self.std = std
        self.mean = mean

    def sample(self, shape: tuple) -> np.ndarray:
        return floatX(get_rng().normal(self.mean, self.std, size=shape))


class Uniform(Initializer):
    """Draw uniformly from ``[-range, range]``, ``[range[0], range[1]]`` or by std.

    Parameters
    ----------
    range : float or tuple
        Half-width of the interval around zero, or its two ends.
    std, mean : float, optional
        If ``std`` is given, the interval is ``mean -/+ sqrt(3) * std``.

    Examples
    --------
    >>> float(np.abs(Uniform(range=0.5)((100,))).max()) <= 0.5
    True
    """

    def __init__(self, range: Any = 0.01, std: float | None = None, mean: float = 0.0) -> None:
        if std is not None:
            a, b = mean - np.sqrt(3) * std, mean + np.sqrt(3) * std
        else:
            try:
                a, b = range
            except TypeError:
                a, b = -range, range
        self.range = (a, b)

    def sample(self, shape: tuple) -> np.ndarray:
        return floatX(get_rng().uniform(low=self.range[0], high=self.range[1], size=shape))


def _gain_value(gain: Any) -> float:
    if gain == "relu":
        return float(np.sqrt(2))
    return float(gain)


class Glorot(Initializer):
    """Glorot/Xavier scaling around a base initializer.

    ``std = gain * sqrt(2 / ((fan_in + fan_out) * receptive_field_size))``.

    Parameters
    ----------
    initializer : class
        ``Normal`` or ``Uniform`` (any class taking ``std=``).
    gain : float or 'relu'
    c01b : bool
        Filters are laid out as (channels, rows, columns, batch) (cuda-convnet).

    Examples
    --------
    >>> Glorot(Normal)((20, 30)).shape
    (20, 30)
    """

    def __init__(self, initializer: type, gain: Any = 1.0, c01b: bool = False) -> None:
        self.initializer = initializer
        self.gain = _gain_value(gain)
        self.c01b = c01b

    def sample(self, shape: tuple) -> np.ndarray:
        if self.c01b:
            if len(shape) != 4:
                raise RuntimeError("If c01b is True, only shapes of length 4 are accepted")
            n1, n2 = shape[0], shape[3]
            receptive_field_size = shape[1] * shape[2]
        else:
            if len(shape) < 2:
                raise RuntimeError(
                    f"This initializer only works with shapes of length >= 2, got {shape}"
                )
            n1, n2 = shape[:2]
            receptive_field_size = int(np.prod(shape[2:]))
        std = self.gain * np.sqrt(2.0 / ((n1 + n2) * receptive_field_size))
        return self.initializer(std=std).sample(shape)


class GlorotNormal(Glorot):
    """Glorot initialization with a normal distribution.

    Examples
    --------
    >>> GlorotNormal(gain="relu")((5, 5)).shape
    (5, 5)
    """

    def __init__(self, gain: Any = 1.0, c01b: bool = False) -> None:
        super().__init__(Normal, gain, c01b)


class GlorotUniform(Glorot):
    """Glorot initialization with a uniform distribution (Lasagne's default for W).

    Examples
    --------
    >>> w = GlorotUniform()((100, 100))
    >>> bool(np.abs(w).max() <= np.sqrt(6 / 200))
    True
    """

    def __init__(self, gain: Any = 1.0, c01b: bool = False) -> None:
        super().__init__(Uniform, gain, c01b)


class He(Initializer):
    """He scaling around a base initializer: ``std = gain * sqrt(1 / fan_in)``.

    Examples
    --------
    >>> He(Normal, gain="relu")((10, 5)).shape
    (10, 5)
    """

    def __init__(self, initializer: type, gain: Any = 1.0, c01b: bool = False) -> None:
        self.initializer = initializer
        self.gain = _gain_value(gain)
        self.c01b = c01b

    def sample(self, shape: tuple) -> np.ndarray:
        if self.c01b:
            if len(shape) != 4:
                raise RuntimeError("If c01b is True, only shapes of length 4 are accepted")
            fan_in = int(np.prod(shape[:3]))
        elif len(shape) == 2:
            fan_in = shape[0]
        elif len(shape) > 2:
            fan_in = int(np.prod(shape[1:]))
        else:
            raise RuntimeError(
                f"This initializer only works with shapes of length >= 2, got {shape}"
            )
        std = self.gain * np.sqrt(1.0 / fan_in)
        return self.initializer(std=std).sample(shape)


class HeNormal(He):
    """He initialization with a normal distribution.

    Examples
    --------
    >>> HeNormal()((4, 3, 3, 3)).shape
    (4, 3, 3, 3)
    """

    def __init__(self, gain: Any = 1.0, c01b: bool = False) -> None:
        super().__init__(Normal, gain, c01b)


class HeUniform(He):
    """He initialization with a uniform distribution.

    Examples
    --------
    >>> HeUniform()((4, 3)).shape
    (4, 3)
    """

    def __init__(self, gain: Any = 1.0, c01b: bool = False) -> None:
        super().__init__(Uniform, gain, c01b)


class Constant(Initializer):
    """Fill with a constant value.

    Examples
    --------
    >>> Constant(0.5)((2,)).tolist()
    [0.5, 0.5]
    """

    def __init__(self, val: float = 0.0) -> None:
        self.val = val

    def sample(self, shape: tuple) -> np.ndarray:
        return floatX(np.ones(shape) * self.val)


class Sparse(Initializer):
    """A 2-D matrix with a fraction ``sparsity`` of each column drawn from N(0, std).

    Examples
    --------
    >>> w = Sparse(sparsity=0.5)((10, 3))
    >>> [int((w[:, j] != 0).sum()) for j in range(3)]
    [5, 5, 5]
    """

    def __init__(self, sparsity: float = 0.1, std: float = 0.01) -> None:
        self.sparsity = sparsity
        self.std = std

    def sample(self, shape: tuple) -> np.ndarray:
        if len(shape) != 2:
            raise RuntimeError(
                f"sparse initializer only works with shapes of length 2, got {shape}"
            )
        w = floatX(np.zeros(shape))
        n_inputs, n_outputs = shape
        size = int(self.sparsity * n_inputs)
        rng = get_rng()
        for k in range(n_outputs):
            indices = np.arange(n_inputs)
            rng.shuffle(indices)
            indices = indices[:size]
            w[indices, k] = floatX(rng.normal(0.0, self.std, size=size))
        return w


class Orthogonal(Initializer):
    """A (semi-)orthogonal matrix reshaped to ``shape``, scaled by ``gain``.

    Examples
    --------
    >>> q = Orthogonal()((4, 4))
    >>> bool(np.allclose(q @ q.T, np.eye(4), atol=1e-5))
    True
    """

    def __init__(self, gain: Any = 1.0) -> None:
        self.gain = _gain_value(gain)

    def sample(self, shape: tuple) -> np.ndarray:
        if len(shape) < 2:
            raise RuntimeError(f"Only shapes of length 2 or more are supported, got {shape}")
        flat_shape = (shape[0], int(np.prod(shape[1:])))
        a = get_rng().normal(0.0, 1.0, flat_shape)
        u, _, v = np.linalg.svd(a, full_matrices=False)
        q = u if u.shape == flat_shape else v
        q = q.reshape(shape)
        return floatX(self.gain * q)
