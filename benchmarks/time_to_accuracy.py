"""Wall-clock time (compile included) until a Bayesian network reaches a test accuracy.

Fits the post's MLP (target 97.5%, budget 10 min) and CNN (target 99.0%, budget 30 min)
with plasagne's streaming ADVI, float32, and every ``--eval-every`` iterations measures test
accuracy with the approximation's mean weights (one compiled deterministic pass). At the
end the posterior-predictive accuracy (mean of 100 draws) is measured too. Prints a table
and writes benchmarks/results/time_to_accuracy.json.

    python benchmarks/time_to_accuracy.py --models mlp --learning-rate 0.01
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import load_mnist_protocol, markdown_table, peak_rss_mb, write_results

TARGETS = {"mlp": (0.975, 600.0), "cnn": (0.990, 1800.0)}


def run(model: str, data: dict, args: argparse.Namespace) -> dict:
    import pymc as pm
    import pytensor

    from plasagne.models import MODELS
    from plasagne.pymc_bridge import (
        GaussWeights,
        HierarchicalGaussWeights,
        build_model,
        exponential_decay,
        fit,
    )
    from plasagne.pymc_bridge.predict import PosteriorPredictive
    from plasagne.random import set_rng

    target, budget = TARGETS[model]
    t_start = time.perf_counter()
    set_rng(np.random.RandomState(0))
    X, y = data["x_train"], data["y_train"]
    Xt, yt = data["x_test"], data["y_test"]
    if args.prior == "hier":
        priors = HierarchicalGaussWeights()
    else:
        priors = GaussWeights(args.prior_sigma)
    bnet = build_model(MODELS[model], X, y, priors=priors, batch_size=args.batch_size)
    learning_rate = args.learning_rate
    if args.learning_rate_final is not None:
        learning_rate = exponential_decay(
            args.learning_rate, args.learning_rate_final, args.decay_iterations
        )
    history: list[tuple[int, float, float]] = []
    state: dict = {}

    def evaluate(approx, losses, i):
        if (i + 1) % args.eval_every:
            return
        if "fn" not in state:
            data_var = bnet.input_data
            xs = pytensor.tensor.tensor("x", dtype=data_var.dtype, shape=(None,) * data_var.ndim)
            mean_out = approx.sample_node(
                bnet.output, deterministic=True, more_replacements={data_var: xs}
            )
            state["fn"] = pm.pytensorf.compile([xs], mean_out.argmax(-1), mode=args.backend)
        preds = np.concatenate([state["fn"](Xt[j : j + 1000]) for j in range(0, len(Xt), 1000)])
        acc = float((preds == yt).mean())
        elapsed = time.perf_counter() - t_start
        history.append((i + 1, elapsed, acc))
        print(
            f"{model} iteration {i + 1}: mean-weight test accuracy {acc:.4f} at {elapsed:.0f} s",
            flush=True,
        )
        if acc >= target or elapsed > budget:
            raise StopIteration

    result = fit(
        bnet,
        X,
        y,
        n=args.max_iterations,
        learning_rate=learning_rate,
        mode=args.backend,
        random_seed=0,
        reparameterization=args.reparameterization,
        kl_weight=args.kl_weight,
        callbacks=[evaluate],
        progressbar=False,
    )
    reached = next(((i, t, a) for i, t, a in history if a >= target), None)
    t0 = time.perf_counter()
    probs = PosteriorPredictive(bnet, result, mode=args.backend, random_seed=1).mean(Xt, 100)
    predict_s = time.perf_counter() - t0
    return {
        "model": model,
        "dtype": pytensor.config.floatX,
        "backend": args.backend,
        "prior": args.prior if args.prior == "hier" else f"normal({args.prior_sigma})",
        "reparameterization": args.reparameterization,
        "kl_weight": args.kl_weight,
        "batch_size": args.batch_size,
        "learning_rate": args.learning_rate,
        "learning_rate_final": args.learning_rate_final,
        "target": target,
        "budget_s": budget,
        "compile_s": result.compile_seconds,
        "iterations": result.iterations,
        "reached": reached is not None,
        "seconds_to_target": reached[1] if reached else None,
        "iterations_to_target": reached[0] if reached else None,
        "best_mean_weight_accuracy": max(a for _, _, a in history) if history else None,
        "posterior_predictive_accuracy": float((probs.argmax(1) == yt).mean()),
        "predict_100_draws_s": predict_s,
        "peak_rss_mb": peak_rss_mb(),
        "history": history,
    }


def main() -> None:
    import pytensor

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--models", nargs="+", default=["mlp", "cnn"])
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--learning-rate", type=float, default=0.01)
    parser.add_argument("--prior", choices=["normal", "hier"], default="normal")
    parser.add_argument("--prior-sigma", type=float, default=0.1, help="for --prior normal")
    parser.add_argument(
        "--learning-rate-final",
        type=float,
        default=None,
        help="decay the rate geometrically to this value over --decay-iterations",
    )
    parser.add_argument("--decay-iterations", type=int, default=5000)
    parser.add_argument("--eval-every", type=int, default=250)
    parser.add_argument("--max-iterations", type=int, default=100000)
    parser.add_argument("--backend", default="NUMBA")
    parser.add_argument(
        "--reparameterization",
        choices=["weights", "local", "flipout"],
        default="weights",
        help="fit's weight-noise estimator (local: local reparameterization / Flipout)",
    )
    parser.add_argument(
        "--kl-weight",
        type=float,
        default=1.0,
        help="fit's kl_weight: 1 is the ELBO, below 1 a tempered posterior",
    )
    args = parser.parse_args()
    pytensor.config.floatX = "float32"
    data = load_mnist_protocol("float32")
    rows = [run(m, data, args) for m in args.models]
    columns = [
        "model",
        "prior",
        "reparameterization",
        "kl_weight",
        "target",
        "budget_s",
        "reached",
        "seconds_to_target",
        "iterations_to_target",
        "best_mean_weight_accuracy",
        "posterior_predictive_accuracy",
        "compile_s",
        "predict_100_draws_s",
    ]
    print(markdown_table(rows, columns))
    print("wrote", write_results("time_to_accuracy", rows))


if __name__ == "__main__":
    main()
