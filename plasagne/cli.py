"""The ``plasagne`` command line: train, evaluate and demo Bayesian networks on MNIST.

    plasagne train --model cnn --data ~/mnist --iterations 5000 --out runs/cnn
    plasagne evaluate runs/cnn
    plasagne demo
    plasagne precompile

Every failure the user can cause (missing or corrupt data, an unknown model, an
unwritable output directory, a checkpoint from another model) ends with one line on
stderr and a non-zero exit, never a traceback. Ctrl-C during training writes a
checkpoint and exits with status 130; ``--resume DIR`` continues it exactly.
"""

from __future__ import annotations

import argparse
import json
import sys
import time
from pathlib import Path
from typing import Any

__all__ = ["main", "CLIError", "BACKENDS"]

BACKENDS = {"numba": "NUMBA", "c": "CVM", "jax": "JAX", "fast_compile": "FAST_COMPILE"}
CONFIG = "config.json"
CHECKPOINT = "checkpoint.npz"
PREDICTIONS = "predictions.npz"
METRICS = "metrics.json"


class CLIError(Exception):
    """An error reported to the user as one line, with exit status 2.

    Examples
    --------
    >>> str(CLIError("no such file"))
    'no such file'
    """


def _parser() -> argparse.ArgumentParser:
    parser = argparse.ArgumentParser(
        prog="plasagne", description="Bayesian neural networks on MNIST with plasagne and PyMC."
    )
    sub = parser.add_subparsers(dest="command", required=True)

    train = sub.add_parser("train", help="fit a Bayesian network and write a report")
    train.add_argument("--model", default=None, help="mlp (default), hier-mlp or cnn")
    train.add_argument(
        "--data",
        default=None,
        help="MNIST: a directory of IDX files or an .npz (default: "
        "$PLASAGNE_DATA, the cache directory, else the shipped sample)",
    )
    train.add_argument("--iterations", type=int, default=5000)
    train.add_argument("--batch-size", type=int, default=500)
    train.add_argument("--method", default="advi", help="advi, fullrank_advi or map")
    train.add_argument("--backend", default="numba", help="numba, c, jax or fast_compile")
    train.add_argument(
        "--reparameterization",
        default="weights",
        help="weights (one weight draw per step, PyMC's ADVI), local (per-example noise: "
        "local reparameterization in dense layers, Flipout in convolutions) or flipout",
    )
    train.add_argument(
        "--kl-weight",
        type=float,
        default=1.0,
        help="weight of the KL term in the ADVI objective (1: the ELBO; below 1 tempers "
        "the posterior, a modelling choice)",
    )
    train.add_argument("--float32", action="store_true", help="compute in float32")
    train.add_argument("--learning-rate", type=float, default=0.01)
    train.add_argument("--seed", type=int, default=0)
    train.add_argument("--draws", type=int, default=100, help="posterior draws for evaluation")
    train.add_argument(
        "--predict-reparameterization",
        default="weights",
        help="weights (one weight draw per posterior draw) or local (--method advi: the "
        "first dense layer's outputs sampled per image from their exact moments, faster)",
    )
    train.add_argument(
        "--predict-backend",
        default=None,
        help="backend of the posterior-predictive evaluation (default: --backend); "
        "jax predicts the CNN about 3x faster than numba on a CPU",
    )
    train.add_argument("--checkpoint-every", type=int, default=500)
    train.add_argument(
        "--train-size", type=int, default=None, help="use only the first N training images"
    )
    train.add_argument("--out", default=None, help="output directory (required unless --resume)")
    train.add_argument(
        "--resume", default=None, metavar="DIR", help="continue an interrupted run in DIR"
    )
    train.add_argument("--no-progress", action="store_true")

    evaluate = sub.add_parser("evaluate", help="recompute metrics and plots of a trained run")
    evaluate.add_argument("dir")
    evaluate.add_argument("--data", default=None)
    evaluate.add_argument("--draws", type=int, default=None)
    evaluate.add_argument(
        "--predict-reparameterization", default=None, help="weights or local (default: the run's)"
    )
    evaluate.add_argument(
        "--predict-backend", default=None, help="numba, c, jax or fast_compile (default: the run's)"
    )
    evaluate.add_argument("--no-progress", action="store_true")

    demo = sub.add_parser("demo", help="a Bayesian CNN on the shipped MNIST sample (minutes)")
    demo.add_argument("--out", default="plasagne-demo")
    demo.add_argument("--iterations", type=int, default=600)
    demo.add_argument("--backend", default="numba")
    demo.add_argument("--seed", type=int, default=0)
    demo.add_argument("--no-progress", action="store_true")

    pre = sub.add_parser(
        "precompile",
        help="compile, once per machine, the kernels every later fit reuses (minutes)",
    )
    pre.add_argument("--backend", default="numba", help="numba (default), c, jax or fast_compile")
    pre.add_argument("--models", nargs="+", default=None, help="default: mlp hier-mlp cnn")
    pre.add_argument("--dtypes", nargs="+", default=None, help="default: float32 float64")
    pre.add_argument(
        "--reparameterizations", nargs="+", default=["weights"], help="weights, local, flipout"
    )
    pre.add_argument(
        "--no-predictive", action="store_true", help="skip the posterior-predictive functions"
    )
    pre.add_argument(
        "--jobs", type=int, default=None, help="worker processes (default: the number of CPUs)"
    )
    pre.add_argument("--no-progress", action="store_true")
    return parser


def _versions() -> dict[str, str]:
    import numpy
    import pymc
    import pytensor

    import plasagne

    return {
        "plasagne": plasagne.__version__,
        "pytensor": pytensor.__version__,
        "pymc": pymc.__version__,
        "numpy": numpy.__version__,
        "python": sys.version.split()[0],
    }


def _load_data(path: str | None, train_size: int | None = None) -> Any:
    from . import datasets

    try:
        if path == "sample":
            data = datasets.load_mnist_sample()
        elif path is None:
            try:
                data = datasets.load_mnist()
            except datasets.DataNotFoundError:
                data = datasets.load_mnist_sample()
        else:
            if not Path(path).exists():
                raise CLIError(f"data path {path} does not exist")
            data = datasets.load_mnist(path)
    except (datasets.DataError, datasets.DataNotFoundError, OSError) as err:
        raise CLIError(str(err)) from None
    if train_size is not None:
        data = data._replace(x_train=data.x_train[:train_size], y_train=data.y_train[:train_size])
    return data


def _prepare_out(out: Path) -> None:
    try:
        out.mkdir(parents=True, exist_ok=True)
        probe = out / ".write-test"
        probe.write_text("")
        probe.unlink()
    except OSError as err:
        raise CLIError(f"cannot write to output directory {out}: {err.strerror or err}") from None


def _check_choices(
    model: str,
    method: str,
    backend: str,
    reparameterization: str = "weights",
    kl_weight: float = 1.0,
    predict_reparameterization: str = "weights",
    predict_backend: str | None = None,
) -> None:
    from .models import MODELS
    from .pymc_bridge.fit import check_kl_weight
    from .pymc_bridge.predict import PREDICTION_ESTIMATORS
    from .pymc_bridge.reparam import check_estimator

    if model not in MODELS:
        raise CLIError(f"unknown model {model!r}; choose one of {', '.join(MODELS)}")
    if method not in ("advi", "fullrank_advi", "map", "svgd"):
        raise CLIError(f"unknown method {method!r}; choose advi, fullrank_advi, svgd or map")
    for option, value in (("backend", backend), ("predict backend", predict_backend or backend)):
        if value not in BACKENDS:
            raise CLIError(f"unknown {option} {value!r}; choose one of {', '.join(BACKENDS)}")
    try:
        check_estimator(reparameterization, method)
        check_kl_weight(kl_weight, method)
    except (TypeError, ValueError) as err:
        raise CLIError(str(err)) from None
    if predict_reparameterization not in PREDICTION_ESTIMATORS:
        raise CLIError(
            f"unknown predict reparameterization {predict_reparameterization!r}; choose "
            f"{' or '.join(PREDICTION_ESTIMATORS)}"
        )
    if predict_reparameterization == "local" and method != "advi":
        raise CLIError(f"--predict-reparameterization local needs --method advi, not {method!r}")
    if "jax" in (backend, predict_backend):
        try:
            import jax  # noqa: F401
        except ImportError:
            raise CLIError("the jax backend needs jax: pip install 'plasagne[jax]'") from None


def _build(config: dict, X: Any, y: Any) -> Any:
    import numpy as np

    from .models import MODELS, default_prior
    from .pymc_bridge import build_model
    from .random import set_rng

    set_rng(np.random.RandomState(config["seed"]))  # initial weights follow --seed
    builder = MODELS[config["model"]]
    return build_model(
        builder,
        X,
        y,
        priors=default_prior(config["model"]),
        batch_size=min(config["batch_size"], len(X)),
    )


def _predict_backend(config: dict) -> str:
    return config.get("predict_backend") or config["backend"]


def _set_float(config: dict) -> None:
    import pytensor

    pytensor.config.floatX = "float32" if config["float32"] else "float64"


def train(args: argparse.Namespace) -> int:
    """Run ``plasagne train``; returns the exit status."""
    if args.resume:
        out = Path(args.resume)
        cfg_path = out / CONFIG
        if not cfg_path.exists():
            raise CLIError(f"{out} holds no run to resume ({CONFIG} missing)")
        config = json.loads(cfg_path.read_text())
        if args.model is not None and args.model != config["model"]:
            raise CLIError(
                f"the checkpoint in {out} is from model {config['model']!r}, not {args.model!r}"
            )
        config["iterations"] = args.iterations
    else:
        if args.out is None:
            raise CLIError("train needs --out DIR (or --resume DIR)")
        out = Path(args.out)
        args.model = args.model or "mlp"
        config = {
            k: getattr(args, k)
            for k in (
                "model",
                "data",
                "iterations",
                "batch_size",
                "method",
                "backend",
                "reparameterization",
                "kl_weight",
                "float32",
                "learning_rate",
                "seed",
                "draws",
                "predict_reparameterization",
                "predict_backend",
                "checkpoint_every",
                "train_size",
            )
        }
    config.setdefault("reparameterization", "weights")  # runs from before the options
    config.setdefault("kl_weight", 1.0)
    config.setdefault("predict_reparameterization", "weights")
    _check_choices(
        config["model"],
        config["method"],
        config["backend"],
        config["reparameterization"],
        config["kl_weight"],
        config["predict_reparameterization"],
        config.get("predict_backend"),
    )
    _prepare_out(out)
    for stale in (METRICS, "report.md"):
        (out / stale).unlink(missing_ok=True)
    _set_float(config)
    data = _load_data(config["data"], config.get("train_size"))
    (out / CONFIG).write_text(json.dumps(config, indent=2))
    return _fit_and_report(
        config, data, out, resume=bool(args.resume), progress=not args.no_progress
    )


def _fit_and_report(config: dict, data: Any, out: Path, resume: bool, progress: bool) -> int:
    from .pymc_bridge import fit
    from .pymc_bridge.checkpoint import CheckpointError

    X, y = data.x_train, data.y_train
    t0 = time.perf_counter()
    bnet = _build(config, X, y)
    build_s = time.perf_counter() - t0
    ckpt = out / CHECKPOINT
    if resume and not ckpt.exists():
        raise CLIError(f"{out} holds no checkpoint to resume from")
    try:
        result = fit(
            bnet,
            X,
            y,
            n=config["iterations"],
            method=config["method"],
            reparameterization=config["reparameterization"],
            kl_weight=config["kl_weight"],
            learning_rate=config["learning_rate"],
            mode=BACKENDS[config["backend"]],
            checkpoint_every=config["checkpoint_every"],
            checkpoint_path=ckpt,
            resume=ckpt if resume else None,
            random_seed=config["seed"],
            progressbar=progress,
        )
    except (CheckpointError, ValueError) as err:
        raise CLIError(f"cannot resume from {ckpt}: {err}") from None
    if result.interrupted:
        print(
            f"interrupted after {result.iterations} iterations; checkpoint written to {ckpt}. "
            f"Continue with: plasagne train --resume {out} --iterations {config['iterations']}",
            file=sys.stderr,
        )
        return 130
    timings = {
        "build_s": build_s,
        "compile_s": result.compile_seconds,
        "fit_s": result.fit_seconds,
        "iterations": result.iterations,
    }
    np_losses = result.losses
    import numpy as np

    np.save(out / "losses.npy", np_losses)
    return _evaluate(config, bnet, result, data, out, timings, progress)


def _evaluate(
    config: dict, bnet: Any, result: Any, data: Any, out: Path, timings: dict, progress: bool
) -> int:
    import numpy as np

    from . import report
    from .pymc_bridge.predict import PosteriorPredictive, sample_labels

    t0 = time.perf_counter()
    pp = PosteriorPredictive(
        bnet,
        result,
        draws_per_call=1,
        mode=BACKENDS[_predict_backend(config)],
        random_seed=config["seed"] + 1,
        reparameterization=config["predict_reparameterization"],
    )
    per_draw = pp.draws(data.x_test, draws=config["draws"], chunk_size=1000, progressbar=progress)
    timings["predict_s"] = time.perf_counter() - t0
    labels = sample_labels(per_draw, random_seed=config["seed"] + 2)
    np.savez_compressed(
        out / PREDICTIONS, per_draw_probs=per_draw, sampled_labels=labels, y_test=data.y_test
    )
    summary = summarise_predictions(per_draw, labels, data.y_test)
    summary.update(
        timings=timings,
        versions=_versions(),
        seed=config["seed"],
        model=config["model"],
        method=config["method"],
        backend=config["backend"],
        predict_backend=_predict_backend(config),
        predict_reparameterization=config["predict_reparameterization"],
        float32=config["float32"],
        n_train=int(len(data.x_train)),
        n_test=int(len(data.y_test)),
        draws=int(per_draw.shape[0]),
    )
    figures = _plots(out, per_draw, labels, data, summary)
    report.write_report(out, {k: v for k, v in summary.items() if not isinstance(v, dict)}, figures)
    (out / METRICS).write_text(json.dumps(summary, indent=2, default=float))
    print(
        f"test accuracy {summary['accuracy']:.4f} (mode of sampled labels "
        f"{summary['accuracy_mode']:.4f}); report: {out / 'report.md'}"
    )
    return 0


def summarise_predictions(per_draw: Any, labels: Any, y: Any) -> dict:
    """Metrics of a run from its saved predictions (what ``metrics.json`` holds).

    Examples
    --------
    >>> p = np.array([[[0.9, 0.1], [0.2, 0.8]]])
    >>> round(summarise_predictions(p, np.array([[0, 1]]), np.array([0, 1]))["accuracy"], 2)
    1.0
    """
    from .pymc_bridge import metrics as m

    probs = per_draw.mean(axis=0)
    pred = m.mean_prediction(probs)
    ece, _ = m.expected_calibration_error(probs, y)
    return {
        "accuracy": float(m.accuracy(pred, y)),
        "accuracy_mode": float(m.accuracy(m.mode_prediction(labels), y)),
        "nll": float(m.nll(probs, y)),
        "brier": float(m.brier_score(probs, y)),
        "ece": float(ece),
        "mean_predictive_entropy": float(m.predictive_entropy(probs).mean()),
        "mean_mutual_information": float(m.mutual_information(per_draw).mean()),
        "auroc_entropy_errors": float(m.auroc(m.predictive_entropy(probs), pred != y)),
    }


def _plots(out: Path, per_draw: Any, labels: Any, data: Any, summary: dict) -> dict:
    import numpy as np

    from . import report
    from .pymc_bridge import metrics as m

    probs = per_draw.mean(axis=0)
    pred = probs.argmax(axis=1)
    y = data.y_test
    figures = {}
    losses_path = out / "losses.npy"
    if losses_path.exists():
        figures["ELBO"] = report.plot_elbo(np.load(losses_path), out / "elbo.png")
    figures["Confusion matrix"] = report.plot_confusion_matrix(y, pred, out / "confusion.png")
    stat, _ = m.chi2_uniformity(labels, per_draw.shape[-1])
    figures["Uncertainty (chi-square uniformity of sampled labels)"] = (
        report.plot_uncertainty_histogram(
            stat, pred == y, out / "uncertainty.png", label="chi-square statistic"
        )
    )
    _, bins = m.expected_calibration_error(probs, y)
    figures["Reliability diagram"] = report.plot_reliability_diagram(bins, out / "reliability.png")
    figures["Most uncertain test images"] = report.plot_uncertain_images(
        data.x_test, probs, y, out / "uncertain.png", k=16
    )
    return {k: str(v) for k, v in figures.items()}


def evaluate(args: argparse.Namespace) -> int:
    """Run ``plasagne evaluate``: recompute metrics and plots from the saved checkpoint."""
    from .pymc_bridge import fit
    from .pymc_bridge.checkpoint import CheckpointError

    out = Path(args.dir)
    if not (out / CONFIG).exists():
        raise CLIError(f"{out} is not a plasagne run directory ({CONFIG} missing)")
    config = json.loads((out / CONFIG).read_text())
    if args.draws is not None:
        config["draws"] = args.draws
    if args.data is not None:
        config["data"] = args.data
    if args.predict_reparameterization is not None:
        config["predict_reparameterization"] = args.predict_reparameterization
    if args.predict_backend is not None:
        config["predict_backend"] = args.predict_backend
    config.setdefault("reparameterization", "weights")  # runs from before the options
    config.setdefault("kl_weight", 1.0)
    config.setdefault("predict_reparameterization", "weights")
    _check_choices(
        config["model"],
        config["method"],
        config["backend"],
        config["reparameterization"],
        config["kl_weight"],
        config["predict_reparameterization"],
        config.get("predict_backend"),
    )
    _set_float(config)
    data = _load_data(config["data"], config.get("train_size"))
    ckpt = out / CHECKPOINT
    if not ckpt.exists():
        raise CLIError(f"{out} holds no checkpoint ({CHECKPOINT} missing)")
    bnet = _build(config, data.x_train, data.y_train)
    try:
        # resuming at the iteration count already done restores the fit without new steps
        import numpy as np

        with np.load(ckpt, allow_pickle=False) as saved:
            done = int(saved["iteration"]) if "iteration" in saved.files else config["iterations"]
        result = fit(
            bnet,
            data.x_train,
            data.y_train,
            n=done,
            method=config["method"],
            reparameterization=config["reparameterization"],
            kl_weight=config["kl_weight"],
            learning_rate=config["learning_rate"],
            mode=BACKENDS[config["backend"]],
            resume=ckpt,
            random_seed=config["seed"],
            progressbar=False,
        )
    except (CheckpointError, ValueError) as err:
        raise CLIError(f"cannot load {ckpt}: {err}") from None
    _prepare_out(out)
    return _evaluate(
        config, bnet, result, data, out, {"iterations": result.iterations}, not args.no_progress
    )


def demo(args: argparse.Namespace) -> int:
    """Run ``plasagne demo``: a Bayesian CNN on the shipped sample."""
    ns = argparse.Namespace(
        model="cnn",
        data="sample",
        iterations=args.iterations,
        batch_size=100,
        method="advi",
        backend=args.backend,
        reparameterization="weights",
        kl_weight=1.0,
        float32=True,
        learning_rate=0.01,
        seed=args.seed,
        draws=50,
        predict_reparameterization="weights",
        predict_backend=None,
        checkpoint_every=200,
        train_size=None,
        out=args.out,
        resume=None,
        no_progress=args.no_progress,
    )
    return train(ns)


def precompile(args: argparse.Namespace) -> int:
    """Run ``plasagne precompile``: fill the backend's caches with tiny fits."""
    from .models import MODELS
    from .pymc_bridge.precompile import PRECOMPILE_DTYPES
    from .pymc_bridge.precompile import precompile as run_precompile

    if args.backend not in BACKENDS:
        raise CLIError(f"unknown backend {args.backend!r}; choose one of {', '.join(BACKENDS)}")
    start = time.perf_counter()
    try:
        rows = run_precompile(
            BACKENDS[args.backend],
            models=args.models or tuple(MODELS),
            dtypes=args.dtypes or PRECOMPILE_DTYPES,
            reparameterizations=args.reparameterizations,
            predictive=not args.no_predictive,
            jobs=args.jobs,
            progressbar=not args.no_progress,
        )
    except ValueError as err:
        raise CLIError(str(err)) from None
    for row in rows:
        print(
            f"{row['model']:>8} {row['dtype']} {row['reparameterization']:<8} "
            f"{row['seconds']:6.1f} s"
        )
    print(f"precompiled {len(rows)} configurations in {time.perf_counter() - start:.0f} s")
    return 0


def main(argv: list[str] | None = None) -> int:
    """Entry point of the ``plasagne`` console script.

    Examples
    --------
    >>> main(["train", "--model", "resnet", "--out", "/tmp/x"])
    2
    """
    args = _parser().parse_args(argv)
    handlers = {"train": train, "evaluate": evaluate, "demo": demo, "precompile": precompile}
    try:
        return handlers[args.command](args)
    except CLIError as err:
        print(f"plasagne: error: {err}", file=sys.stderr)
        return 2
    except ImportError as err:
        print(f"plasagne: error: {err}", file=sys.stderr)
        return 2
    except KeyboardInterrupt:
        print("plasagne: interrupted", file=sys.stderr)
        return 130


if __name__ == "__main__":
    sys.exit(main())
