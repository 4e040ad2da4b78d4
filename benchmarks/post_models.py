"""The 2016 blog post's three Bayesian models, refit with plasagne's minibatch ADVI.

Written in the post's own style: one ``build_ann(init)`` per network, the prior passed as
``W=init`` (plasagne.models.build_mlp / build_cnn). Protocol: train on the first 50,000
MNIST training images, report accuracy on the 10,000 test images, as the mode over labels
sampled from posterior-predictive draws (the post's rule) and as the argmax of the mean
probabilities. Post: MLP 89.81%, hierarchical MLP 92.26% (50k iterations, 4 h 06 min),
CNN 98.03% (12 h 39 min).

    python benchmarks/post_models.py --models mlp hier-mlp cnn --iterations 3000
"""

from __future__ import annotations

import argparse
import time

from _common import load_mnist_protocol, markdown_table, peak_rss_mb, write_results

POST = {
    "mlp": (0.8981, 4 * 3600 + 6 * 60),
    "hier-mlp": (0.9226, 4 * 3600 + 46 * 60),
    "cnn": (0.9803, 12 * 3600 + 39 * 60),
}


def run(model: str, data: dict, args: argparse.Namespace) -> dict:
    import pytensor

    from plasagne.cli import summarise_predictions
    from plasagne.models import MODELS, default_prior
    from plasagne.pymc_bridge import build_model, fit
    from plasagne.pymc_bridge.fit import exponential_decay
    from plasagne.pymc_bridge.predict import PosteriorPredictive, sample_labels

    iterations, backend, draws = args.iterations, args.backend, args.draws
    lr = args.learning_rate
    if args.learning_rate_final is not None:
        lr = exponential_decay(args.learning_rate, args.learning_rate_final, iterations)
    t_start = time.perf_counter()
    X, y = data["x_train"], data["y_train"]
    bnet = build_model(MODELS[model], X, y, priors=default_prior(model), batch_size=args.batch_size)
    result = fit(bnet, X, y, n=iterations, learning_rate=lr, mode=backend, random_seed=0)
    t_fit = time.perf_counter() - t_start
    t0 = time.perf_counter()
    per_draw = PosteriorPredictive(
        bnet, result, draws_per_call=1, mode=backend, random_seed=1
    ).draws(data["x_test"], draws, chunk_size=args.chunk_size)
    predict_s = time.perf_counter() - t0
    labels = sample_labels(per_draw, random_seed=2)
    summary = summarise_predictions(per_draw, labels, data["y_test"])
    post_acc, post_s = POST[model]
    return {
        "model": model,
        "dtype": pytensor.config.floatX,
        "iterations": iterations,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "learning_rate_final": args.learning_rate_final,
        "compile_s": result.compile_seconds,
        "fit_wall_s": t_fit,
        "steps_per_s": iterations / result.fit_seconds,
        "predict_s": predict_s,
        "accuracy_mode": summary["accuracy_mode"],
        "accuracy_mean": summary["accuracy"],
        "nll": summary["nll"],
        "ece": summary["ece"],
        "post_accuracy": post_acc,
        "fraction_of_post_time": t_fit / post_s,
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    import pytensor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "hier-mlp", "cnn"])
    parser.add_argument("--iterations", type=int, default=3000)
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument(
        "--learning-rate-final",
        type=float,
        default=None,
        help="decay the rate geometrically to this value over the run (default: constant)",
    )
    parser.add_argument("--chunk-size", type=int, default=1000, help="test images per call")
    parser.add_argument("--backend", default="NUMBA")
    parser.add_argument("--draws", type=int, default=100)
    parser.add_argument("--float64", action="store_true")
    args = parser.parse_args()
    pytensor.config.floatX = "float64" if args.float64 else "float32"
    data = load_mnist_protocol(pytensor.config.floatX)
    rows = [run(m, data, args) for m in args.models]
    columns = [
        "model",
        "dtype",
        "iterations",
        "batch_size",
        "compile_s",
        "fit_wall_s",
        "steps_per_s",
        "predict_s",
        "accuracy_mode",
        "accuracy_mean",
        "post_accuracy",
        "fraction_of_post_time",
        "nll",
        "ece",
    ]
    print(markdown_table(rows, columns))
    print("wrote", write_results("post_models", rows))


if __name__ == "__main__":
    main()
