"""plasagne.pymc_bridge.precompile and ``plasagne precompile``: tiny fits that fill the
backend's kernel cache for later fits of any size."""

import os
import subprocess
import sys
from pathlib import Path

import pytest

from plasagne.cli import main
from plasagne.pymc_bridge import precompile

FIT_MLP = """
import numpy as np, pytensor
pytensor.config.floatX = "float32"
from plasagne.models import build_mlp
from plasagne.pymc_bridge import GaussWeights, build_model, fit
X = np.random.default_rng(1).random((96, 1, 28, 28), dtype=np.float32)
y = np.arange(96) % 10
net = lambda init: build_mlp(init, n_hidden=40)
bnet = build_model(net, X, y, priors=GaussWeights(0.1), batch_size=48)
fit(bnet, X, y, n=2, mode="NUMBA", progressbar=False, random_seed=0)
"""

PRECOMPILE_MLP = """
from plasagne.pymc_bridge import precompile
precompile("NUMBA", models=["mlp"], dtypes=["float32"], predictive=False, progressbar=False)
"""


def cached_kernels(cache: Path) -> set[str]:
    """Names of the Numba kernels in a PyTensor compile directory (one index file each)."""
    return {p.name for p in cache.rglob("*.nbi")}


def run_in(cache: Path, code: str) -> None:
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = f"base_compiledir={cache}"  # the real Numba mode, this cache
    env.pop("NUMBA_CACHE_DIR", None)
    subprocess.run([sys.executable, "-c", code], env=env, check=True, capture_output=True)


def test_precompiled_kernels_serve_a_larger_network_of_the_same_layers(tmp_path):
    run_in(tmp_path, PRECOMPILE_MLP)
    precompiled = cached_kernels(tmp_path)
    assert len(precompiled) > 50  # the tiny fit compiled and cached the step's kernels
    run_in(tmp_path, FIT_MLP)  # another width, batch size and data
    new = cached_kernels(tmp_path) - precompiled
    # the step function itself (measured: nothing else); a cache keyed by sizes would
    # compile about as many kernels again
    assert len(new) <= 3, sorted(new)


@pytest.mark.parametrize("jobs", [1, 3])
def test_one_row_per_configuration_in_order(jobs):
    rows = precompile(
        "fast_compile",
        models=["mlp", "hier-mlp"],
        dtypes=["float32", "float64"],
        reparameterizations=["weights", "local"],
        jobs=jobs,
        predictive=False,
        progressbar=False,
    )
    got = [(r["model"], r["dtype"], r["reparameterization"]) for r in rows]
    assert got == [
        (model, dtype, reparam)
        for dtype in ("float32", "float64")
        for model in ("mlp", "hier-mlp")
        for reparam in ("weights", "local")
    ]
    assert all(r["seconds"] > 0 for r in rows)


def test_groups_are_contiguous_and_near_equal():
    from plasagne.pymc_bridge.precompile import _split

    items = list(range(7))
    assert _split(items, 3) == [[0, 1, 2], [3, 4], [5, 6]]
    assert _split(items, 1) == [items]
    assert _split(items[:2], 2) == [[0], [1]]


def test_floatx_is_restored():
    import pytensor

    before = pytensor.config.floatX
    precompile("fast_compile", models=["hier-mlp"], dtypes=["float32"], progressbar=False)
    assert pytensor.config.floatX == before


@pytest.mark.parametrize(
    ("kwargs", "message"),
    [
        ({"models": ["resnet"]}, "precompile: models must be .* found .*resnet"),
        ({"models": []}, r"precompile: models must be .* found \[\]"),
        ({"dtypes": ["float16"]}, "precompile: dtypes must be .* found .*float16"),
        ({"reparameterizations": ["rff"]}, "precompile: reparameterizations must be .* found"),
        ({"jobs": 0}, "precompile: jobs must be >= 1, found 0"),
        ({"mode": "cuda"}, "mode: unknown backend 'cuda'"),
    ],
)
def test_bad_choices_name_the_parameter(kwargs, message):
    kwargs = {"mode": "fast_compile", **kwargs}
    with pytest.raises(ValueError, match=message):
        precompile(progressbar=False, **kwargs)


def test_command_line(capsys):
    args = ["precompile", "--backend", "fast_compile", "--models", "mlp", "--dtypes", "float64"]
    assert main([*args, "--no-progress", "--no-predictive"]) == 0
    out = capsys.readouterr().out
    assert "mlp float64 weights" in out and "precompiled 1 configurations" in out


@pytest.mark.parametrize(
    ("option", "value", "message"),
    [
        ("--backend", "cuda", "unknown backend 'cuda'"),
        ("--dtypes", "float16", "dtypes must be"),
        ("--reparameterizations", "rff", "reparameterizations must be"),
        ("--jobs", "0", "jobs must be >= 1"),
    ],
)
def test_command_line_errors(capsys, option, value, message):
    assert main(["precompile", "--models", "mlp", option, value, "--no-progress"]) == 2
    err = capsys.readouterr().err
    assert err.startswith("plasagne: error:") and message in err
