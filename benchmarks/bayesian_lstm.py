"""A Bayesian LSTM fit with minibatch ADVI on a noisy sine, and its predictive uncertainty.

The task, generated here: from the last ``--window`` values of ``sin(t) + noise`` predict the
next value. Training windows come from t in [0, 6 pi]; the posterior predictive is then
evaluated on windows inside that range and on windows of a sine shifted in amplitude and
frequency (t in [6 pi, 10 pi], amplitude 1.6), where the network has seen nothing alike.
Its predictive standard deviation (over weight draws) should be larger there. Prints a
table with seconds per ADVI step and writes benchmarks/results/bayesian_lstm.json.

    python benchmarks/bayesian_lstm.py --iterations 1500
"""

from __future__ import annotations

import argparse
import time

import numpy as np

from _common import markdown_table, peak_rss_mb, write_results


def windows(
    t: np.ndarray,
    window: int,
    amplitude: float,
    freq: float,
    noise: float,
    rng: np.random.Generator,
) -> tuple[np.ndarray, np.ndarray]:
    series = amplitude * np.sin(freq * t) + noise * rng.normal(size=t.shape)
    X = np.stack([series[i : i + window] for i in range(len(t) - window)])[..., None]
    y = series[window:]
    return X.astype("float32"), y.astype("float32")


def build(prior, window: int, units: int):
    from plasagne.layers import DenseLayer, Gate, InputLayer, LSTMLayer
    from plasagne.nonlinearities import tanh

    def gate(nonlinearity=None):
        kwargs = {"W_in": prior, "W_hid": prior, "b": prior, "W_cell": None}
        if nonlinearity is not None:
            kwargs["nonlinearity"] = nonlinearity
        return Gate(**kwargs)

    l_in = InputLayer((None, window, 1))
    lstm = LSTMLayer(
        l_in,
        units,
        ingate=gate(),
        forgetgate=gate(),
        cell=gate(tanh),
        outgate=gate(),
        peepholes=False,
        only_return_final=True,
        name="lstm",
    )
    return DenseLayer(lstm, 1, W=prior, b=prior, nonlinearity=None, name="out")


def main() -> None:
    import pytensor

    from plasagne.pymc_bridge import GaussWeights, build_model, fit
    from plasagne.pymc_bridge.predict import PosteriorPredictive
    from plasagne.random import set_rng

    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--iterations", type=int, default=1500)
    parser.add_argument("--window", type=int, default=10)
    parser.add_argument("--units", type=int, default=16)
    parser.add_argument("--backend", default="NUMBA")
    args = parser.parse_args()
    pytensor.config.floatX = "float32"
    rng = np.random.default_rng(0)
    set_rng(np.random.RandomState(0))
    X, y = windows(np.linspace(0, 6 * np.pi, 600), args.window, 1.0, 1.0, 0.05, rng)
    X_in, _ = windows(np.linspace(0, 6 * np.pi, 200), args.window, 1.0, 1.0, 0.05, rng)
    X_out, _ = windows(np.linspace(6 * np.pi, 10 * np.pi, 200), args.window, 1.6, 1.7, 0.05, rng)
    bnet = build_model(
        lambda p: build(p, args.window, args.units),
        X,
        y,
        "normal",
        priors=GaussWeights(1.0),
        batch_size=100,
    )
    stamps: list[float] = []
    result = fit(
        bnet,
        X,
        y,
        n=args.iterations,
        learning_rate=0.01,
        mode=args.backend,
        random_seed=0,
        callbacks=[lambda a, l, i: stamps.append(time.perf_counter())],
    )
    seconds_per_step = float(np.median(np.diff(stamps[10:]))) if len(stamps) > 20 else float("nan")
    pp = PosteriorPredictive(bnet, result, mode=args.backend, random_seed=1)
    std_in = float(pp.draws(X_in, draws=100).std(axis=0).mean())
    std_out = float(pp.draws(X_out, draws=100).std(axis=0).mean())
    row = {
        "model": "bayesian-lstm",
        "units": args.units,
        "window": args.window,
        "iterations": args.iterations,
        "compile_s": result.compile_seconds,
        "seconds_per_step": seconds_per_step,
        "final_loss": float(result.losses[-50:].mean()),
        "predictive_std_in_range": std_in,
        "predictive_std_out_of_range": std_out,
        "ratio_out_over_in": std_out / std_in,
        "peak_rss_mb": peak_rss_mb(),
    }
    print(markdown_table([row], list(row)))
    print("wrote", write_results("bayesian_lstm", [row]))


if __name__ == "__main__":
    main()
