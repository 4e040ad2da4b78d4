"""The 2016 post's networks trained deterministically with plasagne.updates.adam.

Trains the 800-800 tanh MLP and the CNN (conv32 5x5 - pool2 - conv32 5x5 - pool2 - dense256 -
softmax10), Glorot weights, on the first 50,000 MNIST training images; prints seconds per epoch
and test accuracy, and writes benchmarks/results/mnist_deterministic.json.

    PYTENSOR_FLAGS=floatX=float32 python benchmarks/mnist_deterministic.py --model mlp
    PYTENSOR_FLAGS=floatX=float32 python benchmarks/mnist_deterministic.py --model cnn \
        --epochs 6 --batch-size 128 --lr-decay 0.7

Mode names go through ``plasagne.pymc_bridge.resolve_mode`` (on Numba: the fast float32
kernels of ``plasagne.ops.fast_math``) and the process keeps freed memory for reuse
(``plasagne.memory``), as ``fit`` does.
"""

from __future__ import annotations

import argparse
import time

# plasagne first: its idle-thread settings must precede SciPy's BLAS (parallel kernels)
import plasagne

# isort: split
import numpy as np
import pytensor
import pytensor.tensor as pt

from _common import load_mnist_protocol, markdown_table, peak_rss_mb, write_results
from plasagne.layers import (
    Conv2DLayer,
    DenseLayer,
    InputLayer,
    MaxPool2DLayer,
    get_all_params,
    get_output,
)
from plasagne.memory import reuse_freed_memory
from plasagne.nonlinearities import rectify, softmax, tanh
from plasagne.pymc_bridge import resolve_mode


def build_mlp(init):
    l_in = InputLayer((None, 1, 28, 28))
    l_h1 = DenseLayer(l_in, 800, W=init, nonlinearity=tanh, name="hidden1")
    l_h2 = DenseLayer(l_h1, 800, W=init, nonlinearity=tanh, name="hidden2")
    return DenseLayer(l_h2, 10, W=init, nonlinearity=softmax, name="out")


def build_cnn(init):
    l_in = InputLayer((None, 1, 28, 28))
    net = Conv2DLayer(l_in, 32, (5, 5), W=init, nonlinearity=rectify, name="conv1")
    net = MaxPool2DLayer(net, (2, 2))
    net = Conv2DLayer(net, 32, (5, 5), W=init, nonlinearity=rectify, name="conv2")
    net = MaxPool2DLayer(net, (2, 2))
    net = DenseLayer(net, 256, W=init, nonlinearity=rectify, name="dense")
    return DenseLayer(net, 10, W=init, nonlinearity=softmax, name="out")


def train(
    model: str,
    data: dict,
    epochs: int,
    batch_size: int,
    mode: str,
    lr: float,
    seed: int,
    lr_decay: float = 1.0,
):
    plasagne.random.set_rng(np.random.RandomState(seed))
    net = (build_mlp if model == "mlp" else build_cnn)(plasagne.init.GlorotUniform())
    x, y = pt.tensor4("x"), pt.ivector("y")
    probs = get_output(net, x)
    loss = plasagne.objectives.categorical_crossentropy(probs, y).mean()
    params = get_all_params(net, trainable=True)
    learning_rate = pytensor.shared(np.asarray(lr, dtype=pytensor.config.floatX))
    updates = plasagne.updates.adam(loss, params, learning_rate=learning_rate)
    test_probs = get_output(net, x, deterministic=True)
    t0 = time.perf_counter()
    compiled_mode = resolve_mode(mode)  # backend names get the fast float32 kernels on Numba
    step = pytensor.function([x, y], loss, updates=updates, mode=compiled_mode)
    predict = pytensor.function([x], test_probs.argmax(axis=1), mode=compiled_mode)
    compile_s = time.perf_counter() - t0

    def accuracy(xs, ys):
        preds = np.concatenate([predict(xs[i : i + 1000]) for i in range(0, len(xs), 1000)])
        return float((preds == ys).mean())

    rng = np.random.default_rng(seed)
    n = len(data["x_train"])
    epoch_times = []
    for epoch in range(epochs):
        order = rng.permutation(n)
        t0 = time.perf_counter()
        losses = [
            step(data["x_train"][idx], data["y_train"][idx])
            for idx in np.array_split(order, n // batch_size)
        ]
        epoch_times.append(time.perf_counter() - t0)
        learning_rate.set_value(
            learning_rate.get_value() * np.asarray(lr_decay, dtype=learning_rate.dtype)
        )
        print(
            f"{model} epoch {epoch + 1}/{epochs}: loss {np.mean(losses):.4f}, "
            f"val acc {accuracy(data['x_val'], data['y_val']):.4f}, {epoch_times[-1]:.1f} s",
            flush=True,
        )
    return {
        "model": model,
        "mode": mode,
        "dtype": pytensor.config.floatX,
        "epochs": epochs,
        "batch_size": batch_size,
        "lr": lr,
        "lr_decay": lr_decay,
        "compile_s": compile_s,
        "s_per_epoch": float(np.median(epoch_times)),
        "steps_per_s": float((n // batch_size) / np.median(epoch_times)),
        "test_accuracy": accuracy(data["x_test"], data["y_test"]),
        "peak_rss_mb": peak_rss_mb(),
    }


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--model", choices=["mlp", "cnn", "both"], default="both")
    parser.add_argument("--epochs", type=int, default=None, help="default: 20 (MLP), 12 (CNN)")
    parser.add_argument("--batch-size", type=int, default=500)
    parser.add_argument("--lr", type=float, default=1e-3)
    parser.add_argument("--lr-decay", type=float, default=1.0, help="factor per epoch")
    parser.add_argument("--mode", default="NUMBA", help="pytensor mode: NUMBA, CVM (C), JAX")
    parser.add_argument("--seed", type=int, default=1)
    args = parser.parse_args()
    reuse_freed_memory()
    data = load_mnist_protocol(pytensor.config.floatX)
    rows = []
    for model in ["mlp", "cnn"] if args.model == "both" else [args.model]:
        epochs = args.epochs or (20 if model == "mlp" else 12)
        rows.append(
            train(
                model, data, epochs, args.batch_size, args.mode, args.lr, args.seed, args.lr_decay
            )
        )
    columns = [
        "model",
        "mode",
        "dtype",
        "epochs",
        "compile_s",
        "s_per_epoch",
        "steps_per_s",
        "test_accuracy",
        "peak_rss_mb",
    ]
    print(markdown_table(rows, columns))
    print("wrote", write_results("mnist_deterministic", rows))


if __name__ == "__main__":
    main()
