"""Training checkpoints: every changing shared variable of a compiled step, in one ``.npz``.

A checkpoint holds the values of all shared variables a compiled training step
updates (variational parameters, optimizer moments, random generators), plus
named numpy arrays and a JSON header. Random generators are stored as their
bit-generator state in JSON, so nothing needs pickle: files load with
``np.load(allow_pickle=False)``. Files are written to a temporary name and moved
into place, so an interrupted write never leaves a truncated checkpoint.
"""

from __future__ import annotations

import json
import os
from typing import Any

import numpy as np

__all__ = [
    "updated_shared_variables",
    "generator_state",
    "set_generator_state",
    "save_checkpoint",
    "load_checkpoint",
    "CheckpointError",
]


class CheckpointError(ValueError):
    """Raised when a checkpoint does not fit the training run it should resume.

    Examples
    --------
    >>> isinstance(CheckpointError("x"), ValueError)
    True
    """


def updated_shared_variables(fn: Any) -> list:
    """The shared variables a compiled PyTensor function updates, in a stable order.

    Examples
    --------
    >>> a = pytensor.shared(0.0, name="a")
    >>> f = pytensor.function([], [], updates={a: a + 1})
    >>> [v.name for v in updated_shared_variables(f)]
    ['a']
    """
    return [inp.variable for inp in fn.maker.inputs if getattr(inp, "update", None) is not None]


def _is_generator(value: Any) -> bool:
    return isinstance(value, np.random.Generator)


def generator_state(gen: np.random.Generator) -> str:
    """The state of a numpy Generator as a JSON string.

    Examples
    --------
    >>> g = np.random.default_rng(0)
    >>> s = generator_state(g)
    >>> a = g.normal(); set_generator_state(g, s); bool(g.normal() == a)
    True
    """
    return json.dumps(gen.bit_generator.state)


def set_generator_state(gen: np.random.Generator, state: str) -> None:
    """Restore a state written by :func:`generator_state`.

    Examples
    --------
    >>> g = np.random.default_rng(0)
    >>> set_generator_state(g, generator_state(np.random.default_rng(1)))
    >>> bool(g.random() == np.random.default_rng(1).random())
    True
    """
    gen.bit_generator.state = json.loads(state)


def save_checkpoint(
    path: str | os.PathLike,
    shared: list,
    arrays: dict[str, np.ndarray],
    header: dict[str, Any],
) -> None:
    """Write shared-variable values, arrays and a JSON header atomically to ``path``.

    Parameters
    ----------
    path : str or PathLike
        Target ``.npz`` file.
    shared : list of SharedVariable
        Tensor or random-generator shared variables, stored by position.
    arrays : dict of str to array
        Further arrays (loss history, shuffling order...).
    header : dict
        JSON-serialisable metadata (iteration, method...).

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> a = pytensor.shared(np.arange(3.0), name="a")
    >>> save_checkpoint(path, [a], {"losses": np.ones(2)}, {"iteration": 2})
    >>> a.set_value(np.zeros(3))
    >>> header, arrays = load_checkpoint(path, [a])
    >>> header["iteration"], a.get_value().tolist(), arrays["losses"].tolist()
    (2, [0.0, 1.0, 2.0], [1.0, 1.0])
    """
    out: dict[str, np.ndarray] = {}
    names = []
    for k, var in enumerate(shared):
        value = var.get_value(borrow=True)
        names.append(var.name or f"shared{k}")
        if _is_generator(value):
            out[f"shared/{k:04d}"] = np.array(generator_state(value))
        else:
            out[f"shared/{k:04d}"] = np.asarray(value)
    for key, value in arrays.items():
        out[f"array/{key}"] = np.asarray(value)
    header = dict(header, shared_names=names, n_shared=len(shared))
    out["header"] = np.array(json.dumps(header))
    path = os.fspath(path)
    directory = os.path.dirname(os.path.abspath(path))
    os.makedirs(directory, exist_ok=True)
    tmp = os.path.join(directory, f".{os.path.basename(path)}.{os.getpid()}.tmp.npz")
    try:
        with open(tmp, "wb") as fh:
            np.savez(fh, **out)
            fh.flush()
            os.fsync(fh.fileno())
        os.replace(tmp, path)
    finally:
        if os.path.exists(tmp):
            os.remove(tmp)


def load_checkpoint(
    path: str | os.PathLike,
    shared: list,
    expected: dict | None = None,
    defaults: dict | None = None,
) -> tuple[dict, dict[str, np.ndarray]]:
    """Load a checkpoint into ``shared`` (same variables, same order) and return the rest.

    ``expected`` header entries (the run's settings) are checked first, so a checkpoint of
    another run is refused by naming the setting that differs; ``defaults`` stand for
    entries that files written before a setting existed do not have.

    Returns
    -------
    header : dict
    arrays : dict of str to array

    Raises
    ------
    CheckpointError
        If an expected header entry differs, or the number, kind or shapes of the stored
        variables differ from ``shared``.

    Examples
    --------
    >>> import tempfile
    >>> path = os.path.join(tempfile.mkdtemp(), "ckpt.npz")
    >>> save_checkpoint(path, [pytensor.shared(np.ones(2))], {}, {})
    >>> try:
    ...     load_checkpoint(path, [pytensor.shared(np.ones(3))])
    ... except CheckpointError as err:
    ...     print("mismatch")
    mismatch
    """
    path = os.fspath(path)
    with np.load(path, allow_pickle=False) as data:
        header = json.loads(str(data["header"]))
        for key, value in (expected or {}).items():
            found = header.get(key, (defaults or {}).get(key))
            if found != value:
                raise CheckpointError(
                    f"checkpoint {path} was written with {key}={found!r}, "
                    f"this run has {key}={value!r}"
                )
        if header.get("n_shared") != len(shared):
            raise CheckpointError(
                f"checkpoint {path}: holds {header.get('n_shared')} training variables, "
                f"this run has {len(shared)}; was it written by a different model or method?"
            )
        values = [data[f"shared/{k:04d}"] for k in range(len(shared))]
        arrays = {key.split("/", 1)[1]: data[key] for key in data.files if key.startswith("array/")}
    for k, (var, value) in enumerate(zip(shared, values)):
        current = var.get_value(borrow=True)
        label = header["shared_names"][k]
        if _is_generator(current):
            if value.dtype.kind != "U":
                raise CheckpointError(
                    f"checkpoint {path}: variable {k} ({label}) should be a random generator "
                    f"state, found an array of shape {value.shape}"
                )
            gen = np.random.Generator(type(current.bit_generator)())
            set_generator_state(gen, str(value))
            var.set_value(gen, borrow=True)
        else:
            current = np.asarray(current)
            if value.shape != current.shape:
                raise CheckpointError(
                    f"checkpoint {path}: variable {k} ({label}) has shape {value.shape}, "
                    f"this run expects {current.shape}"
                )
            var.set_value(value.astype(current.dtype), borrow=False)
    return header, arrays
