"""The PyMC side of plasagne: priors as parameter specs, model building and fitting.

A network whose ``W=`` / ``b=`` are the named-prior initialisers of
:mod:`.priors` becomes a PyMC model; :func:`build_model` adds the data and the
likelihood with minibatch scaling, and :func:`fit` runs streaming ADVI,
full-rank ADVI, SVGD or MAP on it.

Examples
--------
>>> from plasagne import pymc_bridge
>>> callable(pymc_bridge.GaussWeights())
True
"""

from .checkpoint import *  # noqa: F403
from .convert import *  # noqa: F403
from .fit import *  # noqa: F403
from .metrics import *  # noqa: F403
from .model import *  # noqa: F403
from .precompile import *  # noqa: F403
from .predict import *  # noqa: F403
from .priors import *  # noqa: F403
