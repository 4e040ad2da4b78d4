"""Compile time of a fit, with empty caches and with warm ones (target: below 30 s).

Each measurement runs in a fresh Python process whose PyTensor compile directory and
Numba cache directory are a temporary folder: the first run of a (model, backend) pair
starts with both empty ("cold"), the second reuses what the first wrote ("warm"), as a
user's second session would; a third run then changes the batch size (500 -> 250), as a
user tuning a setting would, and finds many of the kernels in the cache. Then, per backend,
a fresh cache is filled by ``plasagne.pymc_bridge.precompile`` (what ``plasagne precompile``
runs once after installing: tiny fits of the post's networks in float32 and float64; its
time is reported as ``precompile_s``) and each model's first fit runs on it ("after
precompile"). Reported per run:

- ``build_s``: building the PyMC model from the network;
- ``compile_s``: ``FitResult.compile_seconds`` (building and compiling the step);
- ``first_step_s``: the first step, minus one steady step (Numba compiles some kernels on
  first call, JAX traces and compiles on first call);
- ``to_first_step_s``: the sum, what a user waits before fitting starts;
- ``step_ms``: the median steady step, for scale.

Batch 500, float32, the post's MLP and CNN. Writes benchmarks/results/compile_time.json.

    python benchmarks/compile_time.py --models mlp cnn --backends NUMBA JAX [--no-precompile]
"""

from __future__ import annotations

import argparse
import json
import os
import subprocess
import sys
import tempfile
import time

from _common import load_mnist_protocol, markdown_table, write_results

TARGET_S = 30.0
# (cache state, batch size), run in this order on one cache directory
SCENARIOS = [("cold", 500), ("warm", 500), ("warm, new batch size", 250)]


def child(model: str, backend: str, batch: str, out_path: str) -> None:
    """One measurement, in this process (run by ``main`` in a fresh interpreter)."""
    import numpy as np
    import pytensor

    pytensor.config.floatX = "float32"
    from plasagne.models import MODELS
    from plasagne.pymc_bridge import GaussWeights, build_model, fit

    data = load_mnist_protocol("float32")
    X, y = data["x_train"][:5000], data["y_train"][:5000]
    t0 = time.perf_counter()
    bnet = build_model(MODELS[model], X, y, priors=GaussWeights(0.1), batch_size=int(batch))
    build_s = time.perf_counter() - t0
    stamps: list[float] = []
    t0 = time.perf_counter()
    result = fit(
        bnet,
        X,
        y,
        n=12,
        mode=backend,
        progressbar=False,
        random_seed=0,
        callbacks=[lambda *_: stamps.append(time.perf_counter())],
    )
    step = float(np.median(np.diff(stamps[1:])))
    first = stamps[0] - t0 - result.compile_seconds
    with open(out_path, "w") as f:
        json.dump(
            {
                "build_s": build_s,
                "compile_s": result.compile_seconds,
                "first_step_s": first - step,
                "step_ms": step * 1e3,
            },
            f,
        )


def precompile_child(backend: str, out_path: str) -> None:
    """``precompile`` with its defaults, in this process (run by ``main`` in a fresh one)."""
    from plasagne.pymc_bridge import precompile

    t0 = time.perf_counter()
    rows = precompile(backend, progressbar=False)
    with open(out_path, "w") as f:
        json.dump({"precompile_s": time.perf_counter() - t0, "configurations": rows}, f)


def run_child(args: list[str], cache_dir: str) -> dict:
    """Run this script with ``args`` in a fresh process whose caches are ``cache_dir``."""
    env = dict(os.environ)
    env["PYTENSOR_FLAGS"] = ",".join(
        f for f in (env.get("PYTENSOR_FLAGS", ""), f"base_compiledir={cache_dir}/pytensor") if f
    )
    env["NUMBA_CACHE_DIR"] = f"{cache_dir}/numba"
    with tempfile.NamedTemporaryFile(suffix=".json") as out:
        subprocess.run([sys.executable, __file__, *args, out.name], check=True, env=env)
        with open(out.name) as f:
            return json.load(f)


def measure(model: str, backend: str, batch_size: int, cache_dir: str) -> dict:
    return run_child(["--child", model, backend, str(batch_size)], cache_dir)


def add_totals(row: dict) -> dict:
    row["to_first_step_s"] = row["build_s"] + row["compile_s"] + row["first_step_s"]
    row["within_target"] = row["to_first_step_s"] <= TARGET_S
    return row


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--backends", nargs="+", default=["NUMBA"])
    parser.add_argument(
        "--no-precompile", action="store_true", help="skip the runs after precompile"
    )
    parser.add_argument("--child", nargs=4, help=argparse.SUPPRESS)
    parser.add_argument("--precompile-child", nargs=2, help=argparse.SUPPRESS)
    args = parser.parse_args()
    if args.child:
        child(*args.child)
        return
    if args.precompile_child:
        precompile_child(*args.precompile_child)
        return
    rows = []
    precompile_s = {}
    for model in args.models:
        for backend in args.backends:
            with tempfile.TemporaryDirectory() as cache_dir:
                for cache, batch_size in SCENARIOS:
                    row = {"model": model, "backend": backend, "cache": cache}
                    row["batch_size"] = batch_size
                    row.update(measure(model, backend, batch_size, cache_dir))
                    rows.append(add_totals(row))
                    print(markdown_table([row], list(row)), flush=True)
    for backend in [] if args.no_precompile else args.backends:
        with tempfile.TemporaryDirectory() as cache_dir:
            done = run_child(["--precompile-child", backend], cache_dir)
            precompile_s[backend] = done["precompile_s"]
            print(f"precompile ({backend}): {done['precompile_s']:.1f} s", flush=True)
            for model in args.models:
                row = {"model": model, "backend": backend, "cache": "after precompile"}
                row["batch_size"] = 500
                row.update(measure(model, backend, 500, cache_dir))
                rows.append(add_totals(row))
                print(markdown_table([row], list(row)), flush=True)
    columns = [
        "model",
        "backend",
        "cache",
        "batch_size",
        "build_s",
        "compile_s",
        "first_step_s",
        "to_first_step_s",
        "within_target",
        "step_ms",
    ]
    print(markdown_table(rows, columns))
    for backend, seconds in precompile_s.items():
        print(f"precompile, once per machine ({backend}): {seconds:.1f} s")
    for row in rows:  # write_results keys rows by (model, ..., backend, ...): keep both
        row["implementation"] = f"cache: {row['cache']}"
    print(
        "wrote",
        write_results("compile_time", rows, {"target_s": TARGET_S, "precompile_s": precompile_s}),
    )


if __name__ == "__main__":
    main()
