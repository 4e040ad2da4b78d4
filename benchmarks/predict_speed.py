"""Posterior-predictive speed and memory: 100 draws on the 10,000 MNIST test images.

Fits each model briefly (the speed of prediction does not depend on how well it is fit),
then times ``PosteriorPredictive.mean`` for 100 draws over the test set, and measures the
peak traced memory (tracemalloc, which sees numpy's buffers) for 10, 50 and 100 draws on
1,000 images to show that it does not grow with the number of draws. Targets: MLP <= 10 s,
CNN <= 60 s. Writes benchmarks/results/predict_speed.json.

    python benchmarks/predict_speed.py --models mlp cnn
"""

from __future__ import annotations

import argparse
import time
import tracemalloc

from _common import load_mnist_protocol, markdown_table, write_results

TARGETS = {"mlp": 10.0, "cnn": 60.0}
# Input rows per call: large chunks keep the MLP's products big. For the CNN, chunks of 100
# were 2.5x faster than 1,000 while every call page-faulted its patch matrix in afresh
# (2026-12-04); with freed memory kept (plasagne.memory) 500 is best (2026-12-05, per
# 1,000 images and draw: 187 ms with 100, 136 ms with 500, 138 ms with 1,000).
CHUNKS = {"mlp": 2000, "cnn": 500}


def run(model: str, data: dict, backend: str, fit_steps: int, chunk: int | None) -> dict:
    import pytensor

    from plasagne.models import MODELS
    from plasagne.pymc_bridge import GaussWeights, build_model, fit
    from plasagne.pymc_bridge.predict import PosteriorPredictive

    X, y = data["x_train"], data["y_train"]
    bnet = build_model(MODELS[model], X, y, priors=GaussWeights(0.1), batch_size=500)
    result = fit(bnet, X, y, n=fit_steps, mode=backend, random_seed=0, progressbar=False)
    t0 = time.perf_counter()
    pp = PosteriorPredictive(bnet, result, mode=backend, random_seed=1)
    pp.mean(data["x_test"][:10], draws=1)
    compile_s = time.perf_counter() - t0
    chunk = chunk or CHUNKS[model]
    t0 = time.perf_counter()
    probs = pp.mean(data["x_test"], draws=100, chunk_size=chunk)
    seconds = time.perf_counter() - t0
    peaks = {}
    for draws in (10, 50, 100):
        tracemalloc.start()
        pp.mean(data["x_test"][:1000], draws=draws, chunk_size=min(chunk, 1000))
        peaks[draws] = tracemalloc.get_traced_memory()[1] / 2**20
        tracemalloc.stop()
    return {
        "model": model,
        "backend": backend,
        "chunk_size": chunk,
        "dtype": pytensor.config.floatX,
        "compile_s": compile_s,
        "seconds_100_draws_10k": seconds,
        "target_s": TARGETS[model],
        "within_target": seconds <= TARGETS[model],
        "accuracy": float((probs.argmax(1) == data["y_test"]).mean()),
        "peak_mib_10_draws": peaks[10],
        "peak_mib_50_draws": peaks[50],
        "peak_mib_100_draws": peaks[100],
    }


def main() -> None:
    import pytensor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--backend", default="NUMBA")
    parser.add_argument("--fit-steps", type=int, default=200)
    parser.add_argument("--chunk-size", type=int, default=None, help="default: per model")
    args = parser.parse_args()
    pytensor.config.floatX = "float32"
    data = load_mnist_protocol("float32")
    rows = [run(m, data, args.backend, args.fit_steps, args.chunk_size) for m in args.models]
    columns = [
        "model",
        "chunk_size",
        "seconds_100_draws_10k",
        "target_s",
        "within_target",
        "compile_s",
        "peak_mib_10_draws",
        "peak_mib_50_draws",
        "peak_mib_100_draws",
        "accuracy",
    ]
    print(markdown_table(rows, columns))
    print("wrote", write_results("predict_speed", rows))


if __name__ == "__main__":
    main()
