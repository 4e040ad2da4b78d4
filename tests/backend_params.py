"""Backend parameters shared by the tests that compile with real backends."""

import importlib.util

import pytest

requires_jax = pytest.mark.skipif(
    importlib.util.find_spec("jax") is None, reason="jax not installed (extra 'jax')"
)
JAX = pytest.param("JAX", marks=requires_jax)
NUMBA_AND_JAX = ["NUMBA", JAX]
