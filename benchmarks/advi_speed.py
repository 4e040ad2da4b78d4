"""Minibatch-ADVI steps per second for the 2016 post's MLP and CNN, with side-by-side references.

In one process run, on the same machine and data:
- plasagne's streaming ``fit`` (float32, each chosen backend, each weight-noise estimator:
  ``weights`` = PyMC's objective, ``local`` = local reparameterization / Flipout; on JAX the
  CNN uses the one-node ``CorrNd`` Op, i.e. ``lax.conv_general_dilated``);
- a hand-written PyMC model of the same network (the post's style: pm.Normal weights,
  ``pm.Minibatch``, ``pm.fit``) in float64, as PyMC users write it today (float32 goes NaN);
- the float32 GEMM bound: the machine's measured float32 matrix-multiply rate divided by
  the FLOPs one step needs (forward, weight gradients, input gradients after layer 1);
- NumPyro SVI with AutoNormal on the same model (the CNN through
  ``jax.lax.conv_general_dilated``), when the optional ``bench`` extra is installed (``pip install 'plasagne[bench]'``); otherwise the table says it was skipped.

Steps/s are medians over blocks of iterations, after a warm-up. The process keeps freed
memory for reuse (``plasagne.memory.reuse_freed_memory``, which ``fit`` calls) from the
start, so every implementation runs under the same allocator settings. Prints a markdown
table and writes benchmarks/results/advi_speed.json.

    python benchmarks/advi_speed.py --models mlp cnn --steps 200 --backends NUMBA JAX \
        --reparameterizations weights local

``plasagne_speedup`` is the fastest plasagne backend's steps/s over each reference's.

A second table (``--interleave-rounds``, default 10; needs the ``bench`` extra) runs
plasagne's step (the first backend, PyMC's objective, ``fit``'s loop body) and NumPyro's in
alternating blocks of ``--interleave-block`` timed steps (after 3 untimed ones: the first
steps after a switch pay for the other runtime's threads), with a short GEMM measurement in
every round, and reports the median, minimum and maximum of the per-round speed ratio and the
number of rounds at or above 1.2x: a shared machine's speed drifts by 10-20% over minutes,
as much as the ratio being measured, and alternating blocks compare both under the same
conditions.
"""

from __future__ import annotations

import argparse
import time
from collections.abc import Callable

import numpy as np

from _common import load_mnist_protocol, markdown_table, peak_rss_mb, write_results


def dense_flops(batch: int, sizes: list[tuple[int, int]]) -> float:
    """FLOPs of forward + weight gradients + input gradients (all but the first layer)."""
    fwd = sum(2 * batch * a * b for a, b in sizes)
    return 2 * fwd + (fwd - 2 * batch * sizes[0][0] * sizes[0][1])


def cnn_flops(batch: int) -> float:
    conv1 = 2 * batch * 24 * 24 * 32 * 25  # 1 -> 32 channels, 5x5, 24x24 outputs
    conv2 = 2 * batch * 8 * 8 * 32 * 32 * 25
    dense = 2 * batch * (512 * 256 + 256 * 10)
    return 2 * (conv1 + conv2 + dense) + (conv2 + dense)


MLP_SIZES = [(784, 800), (800, 800), (800, 10)]


def gemm_rate(dtype: str = "float32", repeats: int = 20) -> float:
    """Measured FLOP/s of a 500x800 @ 800x800 product (the MLP's middle layer)."""
    a = np.random.rand(500, 800).astype(dtype)
    b = np.random.rand(800, 800).astype(dtype)
    a @ b
    times = []
    for _ in range(repeats):
        t0 = time.perf_counter()
        a @ b
        times.append(time.perf_counter() - t0)
    return 2 * 500 * 800 * 800 / float(np.median(times))


def block_rate(times: list[float], block: int = 10) -> float:
    """Median steps/s over consecutive blocks of iteration end times."""
    rates = []
    for i in range(block, len(times), block):
        rates.append(block / (times[i] - times[i - block]))
    return float(np.median(rates)) if rates else float("nan")


def run_plasagne(
    model: str,
    data: dict,
    steps: int,
    batch: int,
    backend: str,
    estimator: str = "weights",
    im2col_graph: bool = False,
) -> dict:
    import pytensor

    import plasagne.ops.conv
    from plasagne.models import build_cnn, build_mlp
    from plasagne.ops.corr_op import corr_nd_op
    from plasagne.pymc_bridge import GaussWeights, build_model, fit

    X, y = data["x_train"], data["y_train"]
    builder = build_mlp if model == "mlp" else build_cnn
    default_corr = plasagne.ops.conv.corr_nd
    # the whole convolution as one Op, the layers' default (the chunked kernels on Numba,
    # lax.conv_general_dilated on JAX), or the plain im2col graph
    plasagne.ops.conv.corr_nd = plasagne.ops.conv.im2col_corr_nd if im2col_graph else corr_nd_op
    try:
        bnet = build_model(builder, X, y, priors=GaussWeights(0.1), batch_size=batch)
    finally:
        plasagne.ops.conv.corr_nd = default_corr
    stamps: list[float] = []
    result = fit(
        bnet,
        X,
        y,
        n=steps,
        mode=backend,
        random_seed=0,
        progressbar=False,
        reparameterization=estimator,
        callbacks=[lambda approx, losses, i: stamps.append(time.perf_counter())],
    )
    label = backend if estimator == "weights" else f"{backend}, {estimator}"
    if im2col_graph and model == "cnn":
        label += ", im2col graph"
    return {
        "implementation": f"plasagne fit ({label})",
        "reparameterization": estimator,
        "dtype": pytensor.config.floatX,
        "compile_s": result.compile_seconds,
        "steps_per_s": block_rate(stamps[10:]),
        "finite": bool(np.isfinite(result.losses).all()),
    }


def run_pymc_hand_written(model: str, data: dict, steps: int, batch: int, backend: str) -> dict:
    """The post's model written directly in PyMC 6, in float64 (MLP only: no conv op in PyMC).

    float64 as in the issue's reference table: out of the box, PyMC 6's float32 ADVI on this
    network goes NaN within a few steps (docs/pymc_bridge.md explains why).
    """
    import pymc as pm
    import pytensor

    if model != "mlp":
        return {"implementation": "hand-written PyMC", "note": "no conv op in PyMC: skipped"}
    with pytensor.config.change_flags(floatX="float64"):
        return _pymc_mlp(pm, data, steps, batch, backend)


def _pymc_mlp(pm, data: dict, steps: int, batch: int, backend: str) -> dict:
    import pytensor
    import pytensor.tensor as pt

    X = data["x_train"].reshape(len(data["x_train"]), -1).astype("float64")
    # uint8 labels: with int32/int64 ones, PyMC 6.4's Minibatch output is cast and
    # refused as observed data ("Variables that depend on other nodes ...")
    y = data["y_train"].astype("uint8")
    rng = np.random.default_rng(0)
    with pm.Model():
        xb, yb = pm.Minibatch(X, y, batch_size=batch)
        act = xb
        for i, (a, b) in enumerate(MLP_SIZES):
            w = pm.Normal(f"w{i}", 0, 0.1, shape=(a, b), initval=rng.normal(0, 0.1, (a, b)))
            bias = pm.Normal(f"b{i}", 0, 0.1, shape=(b,))
            act = pt.dot(act, w) + bias
            act = pt.special.softmax(act, axis=-1) if i == 2 else pt.tanh(act)
        pm.Categorical("out", p=act, observed=yb, total_size=len(y))
        stamps: list[float] = []
        t0 = time.perf_counter()
        approx = pm.fit(
            steps,
            method="advi",
            progressbar=False,
            random_seed=0,
            callbacks=[lambda a, l, i: stamps.append(time.perf_counter())],
            compile_kwargs={"mode": backend},
        )
        total = time.perf_counter() - t0
    return {
        "implementation": f"hand-written PyMC pm.fit ({backend})",
        "dtype": pytensor.config.floatX,
        "compile_s": total - (stamps[-1] - stamps[0]) if stamps else float("nan"),
        "steps_per_s": block_rate(stamps[10:]),
        "finite": bool(np.isfinite(approx.hist).all()),
    }


def numpyro_stepper(model: str, data: dict, batch: int) -> tuple | None:
    """NumPyro SVI with AutoNormal on the same model: ``(one_step, compile_s, last_loss)``,
    or None when the ``bench`` extra is not installed. ``one_step()`` draws a minibatch,
    updates and waits for the result; ``last_loss()`` reads the latest loss."""
    try:
        import jax
        import jax.numpy as jnp
        import numpyro
        import numpyro.distributions as dist
        from numpyro.infer import SVI, Trace_ELBO
        from numpyro.infer.autoguide import AutoNormal
    except ImportError:
        return None

    def prior(name, shape):
        return numpyro.sample(name, dist.Normal(0, 0.1).expand(list(shape)).to_event(len(shape)))

    def mlp(xb):
        act = xb.reshape(xb.shape[0], -1)
        for i, (a, b) in enumerate(MLP_SIZES):
            act = act @ prior(f"w{i}", (a, b)) + prior(f"b{i}", (b,))
            act = act if i == 2 else jnp.tanh(act)
        return act

    def cnn(xb):
        """The post's CNN with jax.lax.conv_general_dilated and reduce_window max pooling."""
        act = xb
        for i in range(2):
            w = prior(f"conv{i}.W", (32, act.shape[1], 5, 5))
            act = jax.lax.conv_general_dilated(act, w, (1, 1), "VALID")
            act = jax.nn.relu(act + prior(f"conv{i}.b", (32,))[None, :, None, None])
            act = jax.lax.reduce_window(
                act, -jnp.inf, jax.lax.max, (1, 1, 2, 2), (1, 1, 2, 2), "VALID"
            )
        act = act.reshape(act.shape[0], -1)
        act = jax.nn.relu(act @ prior("dense.W", (512, 256)) + prior("dense.b", (256,)))
        return act @ prior("out.W", (256, 10)) + prior("out.b", (10,))

    # NumPyro's model in 32 bits whatever set JAX's x64 flag (importing plasagne loads
    # PyTensor's JAX backend, which turns it on): built, compiled and run with it off
    with jax.enable_x64(False):
        X = jnp.asarray(data["x_train"])
        y = jnp.asarray(data["y_train"])
        n = X.shape[0]
        network = mlp if model == "mlp" else cnn

        def nn(xb, yb=None):
            logits = network(xb)
            with numpyro.plate("data", n, subsample_size=xb.shape[0]):
                numpyro.sample("y", dist.Categorical(logits=logits), obs=yb)

        guide = AutoNormal(nn, init_scale=0.01)
        svi = SVI(nn, guide, numpyro.optim.Adam(0.01), Trace_ELBO())
        held = {"state": svi.init(jax.random.PRNGKey(0), X[:batch], y[:batch]), "loss": None}
        update = jax.jit(svi.update)
        t0 = time.perf_counter()
        held["state"], loss = update(held["state"], X[:batch], y[:batch])
        loss.block_until_ready()
        compile_s = time.perf_counter() - t0
    rng = np.random.default_rng(0)

    def one_step() -> None:
        idx = rng.integers(0, n, batch)
        with jax.enable_x64(False):
            held["state"], held["loss"] = update(held["state"], X[idx], y[idx])
        held["loss"].block_until_ready()

    return one_step, compile_s, lambda: float(held["loss"])


def run_numpyro(model: str, data: dict, steps: int, batch: int) -> dict:
    built = numpyro_stepper(model, data, batch)
    if built is None:
        return {
            "implementation": "NumPyro AutoNormal",
            "note": "bench extra not installed: skipped",
        }
    one_step, compile_s, last_loss = built
    stamps = []
    for _ in range(steps):
        one_step()
        stamps.append(time.perf_counter())
    return {
        "implementation": "NumPyro AutoNormal (jax, cpu)",
        "dtype": "float32",
        "compile_s": compile_s,
        "steps_per_s": block_rate(stamps[10:]),
        "finite": bool(np.isfinite(last_loss())),
    }


def plasagne_stepper(model: str, data: dict, batch: int, backend: str) -> tuple:
    """plasagne's compiled step (PyMC's objective, ``fit``'s loop body): ``(one_step, label)``.

    ``one_step()`` does what each iteration of ``fit`` does: the next minibatch of a
    shuffled stream, copied into the model's data containers, then the compiled step.
    """
    from plasagne.models import build_cnn, build_mlp
    from plasagne.pymc_bridge import GaussWeights, build_model, fit
    from plasagne.pymc_bridge.fit import BatchStream

    X, y = data["x_train"], data["y_train"]
    builder = build_mlp if model == "mlp" else build_cnn
    bnet = build_model(builder, X, y, priors=GaussWeights(0.1), batch_size=batch)
    result = fit(bnet, X, y, n=1, mode=backend, random_seed=0, progressbar=False)
    step = result.extra["step_function"]
    stream = BatchStream(len(X), batch, seed=0)

    def one_step() -> None:
        idx = stream.next_indices()
        bnet.set_batch(X[idx], y[idx])
        step()

    return one_step, f"plasagne fit ({backend})"


def alternating_block_rates(
    first: Callable[[], None],
    second: Callable[[], None],
    rounds: int,
    block: int,
    between: Callable[[], float] | None = None,
    clock: Callable[[], float] = time.perf_counter,
    skip: int = 0,
) -> dict[str, list[float]]:
    """Steps/s of two steppers run in alternating blocks, round by round.

    Each round runs ``skip + block`` calls of ``first``, then ``skip + block`` calls of
    ``second``, timing the last ``block`` of each (the first steps after a switch pay for
    the other runtime's threads and caches), then ``between()`` if given (its return values
    are collected as ``"between"``).

    Examples
    --------
    >>> t = [0.0]
    >>> def tick(dt):
    ...     return lambda: t.__setitem__(0, t[0] + dt)
    >>> r = alternating_block_rates(tick(0.1), tick(0.2), 2, 5, clock=lambda: t[0])
    >>> [round(v, 6) for v in r["first"] + r["second"]]
    [10.0, 10.0, 5.0, 5.0]
    """

    def rate(stepper: Callable[[], None]) -> float:
        for _ in range(skip):
            stepper()
        t0 = clock()
        for _ in range(block):
            stepper()
        return block / (clock() - t0)

    rates: dict[str, list[float]] = {"first": [], "second": [], "between": []}
    for _ in range(rounds):
        rates["first"].append(rate(first))
        rates["second"].append(rate(second))
        if between is not None:
            rates["between"].append(between())
    return rates


def interleaved_rounds(
    model: str, data: dict, batch: int, backend: str, rounds: int, block: int, skip: int = 3
) -> list[dict]:
    """plasagne and NumPyro in alternating blocks, with a GEMM measurement in every round.

    A shared machine's speed drifts by 10-20% over minutes, more than the difference being
    measured; one round is ``block`` steps of plasagne, ``block`` steps of NumPyro and a
    short GEMM measurement back to back, so each round's ratio compares the two under the
    same conditions. Reports the median ratio over rounds and its range.
    """
    built = numpyro_stepper(model, data, batch)
    if built is None:
        return [{"model": model, "note": "bench extra not installed: interleaving skipped"}]
    numpyro_step = built[0]
    ours, label = plasagne_stepper(model, data, batch, backend)
    flops = dense_flops(batch, MLP_SIZES) if model == "mlp" else cnn_flops(batch)
    for _ in range(block):  # warm-up, both
        ours()
        numpyro_step()
    rates = alternating_block_rates(
        ours,
        numpyro_step,
        rounds,
        block,
        between=lambda: gemm_rate(repeats=5) / flops,
        skip=skip,
    )
    ratios = np.asarray(rates["first"]) / np.asarray(rates["second"])
    fractions = np.asarray(rates["first"]) / np.asarray(rates["between"])
    return [
        {
            "model": model,
            "implementation": f"{label} vs NumPyro AutoNormal, interleaved",
            "rounds": rounds,
            "steps_per_block": block,
            "untimed_steps_per_block": skip,
            "steps_per_s": float(np.median(rates["first"])),
            "numpyro_steps_per_s": float(np.median(rates["second"])),
            "speedup_median": float(np.median(ratios)),
            "speedup_min": float(ratios.min()),
            "speedup_max": float(ratios.max()),
            "rounds_at_least_1_2x": int(np.sum(ratios >= 1.2)),
            "fraction_of_gemm_bound_median": float(np.median(fractions)),
        }
    ]


def main() -> None:
    import pytensor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--steps", type=int, default=200)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument(
        "--backends", nargs="+", default=["NUMBA"], help="plasagne backends, e.g. NUMBA JAX"
    )
    parser.add_argument(
        "--reparameterizations",
        nargs="+",
        default=["weights", "local"],
        help="fit's weight-noise estimators to time (weights, local, flipout)",
    )
    parser.add_argument(
        "--jax-convolution",
        choices=["op", "im2col"],
        default="op",
        help="on JAX, build the CNN with the one-node CorrNd Op (lax.conv) or the im2col graph",
    )
    parser.add_argument(
        "--interleave-rounds",
        type=int,
        default=10,
        help="rounds of alternating plasagne/NumPyro blocks per model (0: skip)",
    )
    parser.add_argument("--interleave-block", type=int, default=10, help="steps per block")
    args = parser.parse_args()
    pytensor.config.floatX = "float32"
    from plasagne.memory import reuse_freed_memory

    # every implementation below runs under the same allocator settings (fit sets them)
    reuse_freed_memory()
    data = load_mnist_protocol("float32")
    rate = gemm_rate()
    rows = []
    for model in args.models:
        flops = (
            dense_flops(args.batch_size, MLP_SIZES)
            if model == "mlp"
            else cnn_flops(args.batch_size)
        )
        bound = rate / flops
        entries = [
            run_plasagne(
                model,
                data,
                args.steps,
                args.batch_size,
                backend,
                estimator,
                im2col_graph=backend.upper() == "JAX" and args.jax_convolution == "im2col",
            )
            for backend in args.backends
            for estimator in args.reparameterizations
        ]
        entries += [
            run_pymc_hand_written(model, data, args.steps, args.batch_size, args.backends[0]),
            run_numpyro(model, data, args.steps, args.batch_size),
        ]
        for entry in entries:
            entry.update(model=model, gflop_per_step=flops / 1e9, gemm_bound_steps_per_s=bound)
            if "steps_per_s" in entry:
                entry["fraction_of_gemm_bound"] = entry["steps_per_s"] / bound
            rows.append(entry)
        n_ours = len(args.backends) * len(args.reparameterizations)
        plas = max(entry["steps_per_s"] for entry in entries[:n_ours])
        for entry in entries[n_ours:]:
            if entry.get("steps_per_s"):
                entry["plasagne_speedup"] = plas / entry["steps_per_s"]
        print(
            f"{model}: GEMM {rate / 1e9:.0f} GFLOP/s float32 -> bound {bound:.1f} steps/s",
            flush=True,
        )
    columns = [
        "model",
        "implementation",
        "dtype",
        "compile_s",
        "steps_per_s",
        "gemm_bound_steps_per_s",
        "fraction_of_gemm_bound",
        "plasagne_speedup",
        "note",
    ]
    print(markdown_table(rows, columns))
    interleaved = []
    if args.interleave_rounds > 0:
        for model in args.models:
            interleaved += interleaved_rounds(
                model,
                data,
                args.batch_size,
                args.backends[0],
                args.interleave_rounds,
                args.interleave_block,
            )
        print(
            markdown_table(
                interleaved,
                [
                    "model",
                    "implementation",
                    "rounds",
                    "steps_per_s",
                    "numpyro_steps_per_s",
                    "speedup_median",
                    "speedup_min",
                    "speedup_max",
                    "rounds_at_least_1_2x",
                    "fraction_of_gemm_bound_median",
                    "note",
                ],
            )
        )
    rows += interleaved
    print("peak RSS MiB", round(peak_rss_mb()))
    print("wrote", write_results("advi_speed", rows, {"gemm_gflops_f32": rate / 1e9}))


if __name__ == "__main__":
    main()
