"""Posterior-predictive speed and memory: 100 draws on the 10,000 MNIST test images.

Fits each model briefly (the speed of prediction does not depend on how well it is fit),
then times ``PosteriorPredictive.mean`` for 100 draws over the test set, and measures the
peak traced memory (tracemalloc, which sees numpy's buffers) and the peak rise of the
resident memory (which also sees XLA's) for 10, 50 and 100 draws on 1,000 images, to
show that memory does not grow with the number of draws. The GEMM bound is
the time the network's matrix products would take at the machine's float32 GEMM rate,
measured by the same script. Targets: MLP <= 10 s,
CNN <= 60 s. Each model is timed with both prediction estimators on the same fit:
``weights`` (one weight draw per posterior draw) and ``local`` (the products of the inputs
with Gaussian weights sampled per example from their exact moments; see
``PosteriorPredictive``), with the share of test images whose predicted class agrees.
Each convolution is one ``CorrNd`` node (the layers' default): XLA's own convolution on
JAX, the chunked correlation kernels on Numba.
Writes benchmarks/results/predict_speed.json.

    python benchmarks/predict_speed.py --models mlp cnn --reparameterizations weights local
    python benchmarks/predict_speed.py --models cnn --backend JAX --reparameterizations weights
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from advi_speed import MLP_SIZES, gemm_rate

from _common import RssRise, load_mnist_protocol, markdown_table, write_results

TARGETS = {"mlp": 10.0, "cnn": 60.0}
# Input rows per call: large chunks keep the MLP's products big. For the CNN, chunks of 100
# were 2.5x faster than 1,000 while every call page-faulted its patch matrix in afresh
# (2026-12-04); with freed memory kept (plasagne.memory) 500 is best (2026-12-05, per
# 1,000 images and draw: 187 ms with 100, 136 ms with 500, 138 ms with 1,000).
CHUNKS = {"mlp": 2000, "cnn": 500}


def forward_flops(model: str, local: bool) -> float:
    """FLOPs of the matrix products of one network evaluation per image; with ``local``
    the first dense layer's product is replaced by its precomputed moments and noise."""
    if model == "mlp":
        sizes = MLP_SIZES[1:] if local else MLP_SIZES
        return sum(2 * a * b for a, b in sizes)
    conv1 = 2 * 24 * 24 * 32 * 25  # 1 -> 32 channels, 5x5, 24x24 outputs
    conv2 = 2 * 8 * 8 * 32 * 32 * 25
    return conv1 + conv2 + 2 * (512 * 256 + 256 * 10)


def run(
    model: str,
    data: dict,
    backend: str,
    fit_steps: int,
    chunk: int | None,
    estimators: list,
    rate: float,
) -> list[dict]:
    import pytensor

    from plasagne.models import MODELS
    from plasagne.pymc_bridge import GaussWeights, build_model, fit
    from plasagne.pymc_bridge.predict import PosteriorPredictive

    X, y = data["x_train"], data["y_train"]
    xla_conv = backend.upper() == "JAX" and model == "cnn"
    bnet = build_model(MODELS[model], X, y, priors=GaussWeights(0.1), batch_size=500)
    result = fit(bnet, X, y, n=fit_steps, mode=backend, random_seed=0, progressbar=False)
    chunk = chunk or CHUNKS[model]
    rows, labels = [], {}
    for estimator in estimators:
        t0 = time.perf_counter()
        pp = PosteriorPredictive(
            bnet, result, mode=backend, random_seed=1, reparameterization=estimator
        )
        pp.mean(data["x_test"][:10], draws=1)
        compile_s = time.perf_counter() - t0
        t0 = time.perf_counter()
        probs = pp.mean(data["x_test"], draws=100, chunk_size=chunk)
        seconds = time.perf_counter() - t0
        labels[estimator] = probs.argmax(1)
        peaks, rises = {}, {}
        for draws in (10, 50, 100):
            tracemalloc.start()
            with RssRise() as rss:
                pp.mean(data["x_test"][:1000], draws=draws, chunk_size=min(chunk, 1000))
            peaks[draws] = tracemalloc.get_traced_memory()[1] / 2**20
            tracemalloc.stop()
            rises[draws] = rss.rise_mib
        local = sorted(k for k, v in pp.reparameterized.items() if v == "local")
        bound = 100 * len(data["x_test"]) * forward_flops(model, bool(local)) / rate
        rows.append(
            {
                "model": model,
                "reparameterization": estimator,
                "sampled_per_example": ", ".join(local) or "-",
                "backend": backend,
                "convolution": "XLA" if xla_conv else ("im2col" if model == "cnn" else "-"),
                "chunk_size": chunk,
                "dtype": pytensor.config.floatX,
                "compile_s": compile_s,
                "seconds_100_draws_10k": seconds,
                "time_vs_first": seconds / rows[0]["seconds_100_draws_10k"] if rows else 1.0,
                "gemm_bound_s": bound,
                "time_vs_gemm_bound": seconds / bound,
                "target_s": TARGETS[model],
                "within_target": seconds <= TARGETS[model],
                "accuracy": float((labels[estimator] == data["y_test"]).mean()),
                "same_class_as_first": float((labels[estimator] == labels[estimators[0]]).mean()),
                "peak_mib_10_draws": peaks[10],
                "peak_mib_50_draws": peaks[50],
                "peak_mib_100_draws": peaks[100],
                "rss_rise_mib_10_draws": rises[10],
                "rss_rise_mib_50_draws": rises[50],
                "rss_rise_mib_100_draws": rises[100],
            }
        )
    return rows


def main() -> None:
    import pytensor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--backend", default="NUMBA")
    parser.add_argument("--fit-steps", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=None, help="default: per model")
    parser.add_argument(
        "--reparameterizations", nargs="+", default=["weights", "local"], help="estimators"
    )
    args = parser.parse_args()
    pytensor.config.floatX = "float32"
    data = load_mnist_protocol("float32")
    rate = gemm_rate()
    rows = [
        row
        for m in args.models
        for row in run(
            m, data, args.backend, args.fit_steps, args.chunk_size, args.reparameterizations, rate
        )
    ]
    columns = [
        "model",
        "backend",
        "reparameterization",
        "sampled_per_example",
        "chunk_size",
        "seconds_100_draws_10k",
        "time_vs_first",
        "gemm_bound_s",
        "time_vs_gemm_bound",
        "target_s",
        "within_target",
        "compile_s",
        "peak_mib_10_draws",
        "peak_mib_50_draws",
        "peak_mib_100_draws",
        "rss_rise_mib_10_draws",
        "rss_rise_mib_100_draws",
        "accuracy",
        "same_class_as_first",
    ]
    print(markdown_table(rows, columns))
    print(f"GEMM {rate / 1e9:.0f} GFLOP/s float32 (500x800 @ 800x800)")
    print("wrote", write_results("predict_speed", rows, {"gemm_gflops_f32": rate / 1e9}))


if __name__ == "__main__":
    main()
