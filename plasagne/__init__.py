"""plasagne: Lasagne's layer graph on PyTensor, where any parameter may be any expression.

A network built layer by layer is a deterministic model with shared-variable
parameters, or, with the initialisers of :mod:`plasagne.pymc_bridge`, a PyMC
model fit by minibatch ADVI.

Examples
--------
>>> import plasagne
>>> l_in = plasagne.layers.InputLayer((None, 4))
>>> l_out = plasagne.layers.DenseLayer(l_in, 3, nonlinearity=plasagne.nonlinearities.softmax)
>>> plasagne.layers.get_output_shape(l_out)
(None, 3)
"""

from importlib import import_module
from typing import Any

# _thread_pools comes first: it sets the idle-thread environment before PyTensor loads
# SciPy's BLAS (plasagne/_thread_pools.py)
from . import (
    _thread_pools,  # noqa: F401
    init,
    layers,
    nonlinearities,
    objectives,
    random,
    regularization,
    updates,
    utils,
)

__version__ = "0.1.0"

__all__ = [
    "init",
    "layers",
    "nonlinearities",
    "objectives",
    "random",
    "regularization",
    "updates",
    "utils",
    "pymc_bridge",
    "__version__",
]


def __getattr__(name: str) -> Any:
    # The PyMC side imports pymc, which is slow: load it on first use.
    if name in ("pymc_bridge", "datasets"):
        return import_module(f".{name}", __name__)
    raise AttributeError(f"module 'plasagne' has no attribute {name!r}")
