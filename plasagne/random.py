"""The random number generator plasagne draws initial values and noise seeds from.

Like Lasagne, the default is numpy's global generator; :func:`set_rng` swaps in
a seeded :class:`numpy.random.RandomState` for reproducible networks.
"""

from __future__ import annotations

from typing import Any

import numpy as np

__all__ = ["get_rng", "set_rng", "new_random_stream", "RandomStreams", "rng_updates"]

_rng: Any = np.random


def get_rng() -> Any:
    """Return the generator used by initializers and noise layers.

    Examples
    --------
    >>> set_rng(np.random.RandomState(0))
    >>> get_rng().randint(10)
    5
    """
    return _rng


def set_rng(new_rng: Any) -> None:
    """Set the generator returned by :func:`get_rng`.

    Parameters
    ----------
    new_rng : numpy.random.RandomState or numpy.random module
        Anything with ``uniform``, ``normal`` and ``randint`` methods.

    Examples
    --------
    >>> set_rng(np.random.RandomState(42))
    """
    global _rng
    _rng = new_rng


class RandomStreams:
    """Symbolic noise sources whose generator state advances on every call.

    Each draw gets its own shared generator whose ``default_update`` is the
    generator after the draw, so ``pytensor.function`` advances it without
    explicit updates, exactly as Lasagne's dropout behaved under Theano.
    :func:`rng_updates` lists these updates for code that wants them explicit.

    Parameters
    ----------
    seed : int
        Seed for the generators of the draws.

    Examples
    --------
    >>> srng = RandomStreams(1)
    >>> f = pytensor.function([], srng.uniform(size=(2,)))
    >>> bool((f() != f()).all())
    True
    """

    def __init__(self, seed: int) -> None:
        self._seeds = np.random.SeedSequence(seed)
        self.rngs: list = []

    def _draw(self, method: str, *args: Any, **kwargs: Any) -> Any:
        import warnings

        import pytensor.tensor.random as ptr

        (child,) = self._seeds.spawn(1)
        rng = ptr.shared_rng(np.random.default_rng(child), name=f"plasagne_rng{len(self.rngs)}")
        next_rng, value = getattr(rng, method)(*args, **kwargs)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", DeprecationWarning)
            rng.default_update = next_rng
        self.rngs.append(rng)
        return value

    def uniform(
        self, low: Any = 0.0, high: Any = 1.0, size: Any = None, dtype: str = "floatX"
    ) -> Any:
        """Uniform draws on ``[low, high)`` of the given size."""
        return self._draw("uniform", low, high, size=size).astype(_dtype(dtype))

    def normal(
        self, loc: Any = 0.0, scale: Any = 1.0, size: Any = None, dtype: str = "floatX"
    ) -> Any:
        """Normal draws with mean ``loc`` and standard deviation ``scale``."""
        return self._draw("normal", loc, scale, size=size).astype(_dtype(dtype))

    def binomial(self, n: Any = 1, p: Any = 0.5, size: Any = None, dtype: str = "floatX") -> Any:
        """Binomial draws (Bernoulli for ``n=1``) with success probability ``p``."""
        return self._draw("binomial", n, p, size=size).astype(_dtype(dtype))


def _dtype(dtype: str) -> str:
    import pytensor

    return pytensor.config.floatX if dtype == "floatX" else dtype


def new_random_stream(seed: int | None = None) -> RandomStreams:
    """Create a :class:`RandomStreams` seeded from :func:`get_rng`.

    Noise layers call this once at construction, so a network built after
    ``set_rng(np.random.RandomState(s))`` draws the same noise every time.

    Examples
    --------
    >>> srng = new_random_stream(1)
    >>> srng.uniform(size=(2,)).eval().shape
    (2,)
    """
    if seed is None:
        seed = int(get_rng().randint(1, 2147462579))
    return RandomStreams(seed)


def rng_updates(outputs: Any) -> dict:
    """The generator updates the noise in ``outputs`` needs, for explicit ``updates=``.

    Examples
    --------
    >>> srng = RandomStreams(0)
    >>> x = srng.normal(size=(3,))
    >>> len(rng_updates(x))
    1
    """
    from pytensor.graph.traversal import ancestors
    from pytensor.tensor.random.type import RandomGeneratorType

    if not isinstance(outputs, (list, tuple)):
        outputs = [outputs]
    return {
        v: v.default_update
        for v in ancestors(list(outputs))
        if isinstance(getattr(v, "type", None), RandomGeneratorType)
        and getattr(v, "default_update", None) is not None
    }
