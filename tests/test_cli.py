"""The command line, run as a subprocess on tiny data the tests write."""

import gzip
import json
import os
import shutil
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from plasagne import datasets


def tiny_npz(path, n_train=120, n_test=40, seed=0):
    rng = np.random.default_rng(seed)
    sample = datasets.load_mnist_sample()
    np.savez(
        path,
        x_train=(sample.x_train[:n_train, 0] * 255).round().astype(np.uint8),
        y_train=sample.y_train[:n_train].astype(np.uint8),
        x_test=(sample.x_test[:n_test, 0] * 255).round().astype(np.uint8),
        y_test=sample.y_test[:n_test].astype(np.uint8),
    )
    _ = rng
    return path


def plasagne(*args, timeout=600):
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    return subprocess.run(
        [sys.executable, "-m", "plasagne", *map(str, args)],
        capture_output=True,
        text=True,
        timeout=timeout,
        env=env,
    )


FAST = [
    "--backend",
    "fast_compile",
    "--batch-size",
    "40",
    "--draws",
    "5",
    "--no-progress",
    "--checkpoint-every",
    "5",
]


@pytest.fixture(scope="module")
def data(tmp_path_factory):
    return tiny_npz(tmp_path_factory.mktemp("data") / "tiny.npz")


@pytest.fixture(scope="module")
def trained(data, tmp_path_factory):
    out = tmp_path_factory.mktemp("run") / "mlp"
    res = plasagne(
        "train", "--model", "mlp", "--data", data, "--iterations", 12, "--out", out, *FAST
    )
    assert res.returncode == 0, res.stderr
    return out, res


def test_train_writes_every_file_and_consistent_metrics(trained):
    out, res = trained
    assert "test accuracy" in res.stdout
    for name in [
        "config.json",
        "checkpoint.npz",
        "losses.npy",
        "predictions.npz",
        "metrics.json",
        "report.md",
        "elbo.png",
        "confusion.png",
        "uncertainty.png",
        "reliability.png",
        "uncertain.png",
    ]:
        assert (out / name).stat().st_size > 0, name
    metrics = json.loads((out / "metrics.json").read_text())
    with np.load(out / "predictions.npz") as pred:
        probs, labels, y = pred["per_draw_probs"], pred["sampled_labels"], pred["y_test"]
    mean = probs.mean(0)
    assert probs.shape == (5, 40, 10)
    assert np.isclose(metrics["accuracy"], np.mean(mean.argmax(1) == y))
    assert np.isclose(metrics["nll"], -np.mean(np.log(np.clip(mean[np.arange(40), y], 1e-12, 1))))
    modes = [np.bincount(labels[:, i], minlength=10).argmax() for i in range(40)]
    assert np.isclose(metrics["accuracy_mode"], np.mean(np.array(modes) == y))
    assert metrics["timings"]["iterations"] == 12 and metrics["seed"] == 0
    assert set(metrics["versions"]) >= {"plasagne", "pytensor", "pymc", "numpy"}
    assert len(np.load(out / "losses.npy")) == 12


def test_evaluate_recomputes_the_same_predictions(trained, data):
    out, _ = trained
    before = json.loads((out / "metrics.json").read_text())
    res = plasagne("evaluate", out, "--data", data, "--no-progress")
    assert res.returncode == 0, res.stderr
    after = json.loads((out / "metrics.json").read_text())
    for key in ["accuracy", "accuracy_mode", "nll", "ece"]:
        assert np.isclose(before[key], after[key]), key


def test_evaluate_with_local_prediction_records_it(trained, data, tmp_path):
    out = tmp_path / "copy"
    shutil.copytree(trained[0], out)
    with np.load(out / "predictions.npz") as pred:
        before = pred["per_draw_probs"]
    res = plasagne(
        "evaluate", out, "--data", data, "--predict-reparameterization", "local", "--no-progress"
    )
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["predict_reparameterization"] == "local"
    with np.load(out / "predictions.npz") as pred:
        probs, y = pred["per_draw_probs"], pred["y_test"]
    assert probs.shape == before.shape and not np.allclose(probs, before)
    np.testing.assert_allclose(probs.sum(-1), 1.0, rtol=1e-5)
    assert np.isclose(metrics["accuracy"], np.mean(probs.mean(0).argmax(1) == y))


def test_resume_continues_exactly(data, tmp_path):
    full = tmp_path / "full"
    part = tmp_path / "part"
    assert (
        plasagne("train", "--data", data, "--iterations", 10, "--out", full, *FAST).returncode == 0
    )
    assert (
        plasagne("train", "--data", data, "--iterations", 6, "--out", part, *FAST).returncode == 0
    )
    res = plasagne("train", "--resume", part, "--iterations", 10, "--no-progress")
    assert res.returncode == 0, res.stderr
    with np.load(full / "checkpoint.npz") as a, np.load(part / "checkpoint.npz") as b:
        assert sorted(a.files) == sorted(b.files)
        for key in a.files:
            np.testing.assert_array_equal(a[key], b[key], err_msg=key)


def test_ctrl_c_writes_a_checkpoint_and_resume_finishes(data, tmp_path):
    out = tmp_path / "run"
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [
            sys.executable,
            "-m",
            "plasagne",
            "train",
            "--data",
            str(data),
            "--iterations",
            "100000",
            "--out",
            str(out),
            *FAST,
        ],
        stdout=subprocess.PIPE,
        stderr=subprocess.PIPE,
        text=True,
        env=env,
        # A test run started in the background (`cmd &` in a script, nohup) ignores
        # SIGINT, and children inherit that: Python then installs no KeyboardInterrupt
        # handler and Ctrl-C never arrives. Give the child the default disposition.
        preexec_fn=lambda: signal.signal(signal.SIGINT, signal.SIG_DFL),
    )
    deadline = time.time() + 300
    while not (out / "checkpoint.npz").exists() and time.time() < deadline:
        time.sleep(0.5)
    time.sleep(1.0)
    proc.send_signal(signal.SIGINT)
    try:
        _, err = proc.communicate(timeout=120)
    finally:
        proc.kill()  # never leave a training process behind
    assert proc.returncode == 130, err
    assert "--resume" in err and "Traceback" not in err
    assert (out / "checkpoint.npz").exists() and not (out / "metrics.json").exists()
    res = plasagne("train", "--resume", out, "--iterations", 30, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "metrics.json").read_text())["timings"]["iterations"] == 30


def bad_data(tmp_path):
    sample = dict(np.load(tiny_npz(tmp_path / "ok.npz")))
    cases = {}
    truncated = tmp_path / "truncated"
    truncated.mkdir()
    for key, fname in datasets.IDX_FILES.items():
        arr = sample[key]
        header = bytes([0, 0, 8, arr.ndim]) + b"".join(int(s).to_bytes(4, "big") for s in arr.shape)
        blob = header + arr.tobytes()
        (truncated / fname).write_bytes(
            gzip.compress(blob[: len(blob) // 2] if key == "x_test" else blob)
        )
    cases["truncated"] = (truncated, "truncated data")
    np.savez(tmp_path / "shape.npz", **dict(sample, x_train=np.zeros((10, 20, 20), np.uint8)))
    cases["shape"] = (tmp_path / "shape.npz", "28, 28")
    np.savez(tmp_path / "labels.npz", **dict(sample, y_test=np.full(40, 12, np.uint8)))
    cases["labels"] = (tmp_path / "labels.npz", "digits 0-9")
    (tmp_path / "corrupt.npz").write_bytes(b"not a zip")
    cases["corrupt"] = (tmp_path / "corrupt.npz", "npz")
    cases["missing"] = (tmp_path / "nope.npz", "does not exist")
    return cases


@pytest.mark.parametrize("case", ["truncated", "shape", "labels", "corrupt", "missing"])
def test_bad_data_gives_one_line_errors(tmp_path, case):
    path, message = bad_data(tmp_path)[case]
    out = tmp_path / "out"
    res = plasagne("train", "--data", path, "--iterations", 2, "--out", out, *FAST)
    assert res.returncode == 2
    assert res.stderr.startswith("plasagne: error:") and message in res.stderr
    assert len(res.stderr.strip().splitlines()) == 1 and "Traceback" not in res.stderr
    assert not (out / "metrics.json").exists() and not (out / "report.md").exists()


@pytest.mark.parametrize(
    "args, message",
    [
        (["--model", "resnet"], "unknown model 'resnet'"),
        (["--backend", "cuda"], "unknown backend 'cuda'"),
        (["--method", "nuts"], "unknown method 'nuts'"),
        (["--reparameterization", "lrt"], "reparameterization must be one of"),
        (["--method", "map", "--reparameterization", "local"], "needs method='advi'"),
        (["--kl-weight", "-1"], "kl_weight must be positive"),
        (["--method", "map", "--kl-weight", "0.5"], "method 'map' has none"),
        (["--predict-reparameterization", "flipout"], "unknown predict reparameterization"),
        (["--method", "map", "--predict-reparameterization", "local"], "needs --method advi"),
        (["--predict-backend", "tpu"], "unknown predict backend 'tpu'"),
    ],
)
def test_bad_choices(data, tmp_path, args, message):
    res = plasagne("train", "--data", data, "--out", tmp_path / "o", *args)
    assert res.returncode == 2 and message in res.stderr and "Traceback" not in res.stderr


def test_unwritable_output_and_foreign_checkpoint(data, trained, tmp_path):
    blocker = tmp_path / "file"
    blocker.write_text("x")
    res = plasagne("train", "--data", data, "--out", blocker / "sub", *FAST)
    assert res.returncode == 2 and "cannot write to output directory" in res.stderr
    out, _ = trained
    res = plasagne("train", "--resume", out, "--model", "cnn", "--iterations", 20)
    assert res.returncode == 2 and "from model 'mlp', not 'cnn'" in res.stderr
    res = plasagne("evaluate", tmp_path)
    assert res.returncode == 2 and "not a plasagne run directory" in res.stderr


def test_train_with_per_example_weight_noise_and_a_tempered_kl(data, tmp_path):
    out = tmp_path / "local"
    res = plasagne(
        "train",
        "--model",
        "cnn",
        "--data",
        data,
        "--iterations",
        4,
        "--out",
        out,
        "--reparameterization",
        "local",
        "--kl-weight",
        0.5,
        *FAST,
    )
    assert res.returncode == 0, res.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["reparameterization"] == "local" and config["kl_weight"] == 0.5
    assert np.isfinite(np.load(out / "losses.npy")).all()
    # resuming keeps the setting: the checkpoint of a "local" fit fits a "local" step
    res = plasagne("train", "--resume", out, "--iterations", 6, "--no-progress")
    assert res.returncode == 0, res.stderr
    assert len(np.load(out / "losses.npy")) == 6


def test_demo_runs_end_to_end(tmp_path):
    """The README's main job, cut short (3 iterations, reference mode)."""
    out = tmp_path / "demo"
    res = plasagne(
        "demo", "--out", out, "--iterations", 3, "--backend", "fast_compile", "--no-progress"
    )
    assert res.returncode == 0, res.stderr
    config = json.loads((out / "config.json").read_text())
    assert config["model"] == "cnn" and config["reparameterization"] == "weights"
    assert (out / "report.md").stat().st_size > 0
    assert json.loads((out / "metrics.json").read_text())["timings"]["iterations"] == 3


@pytest.mark.parametrize("backend", ["jax", "numba"])
def test_the_cnn_has_one_node_per_convolution_on_every_backend(backend):
    """So that a JAX fit or prediction runs XLA's own convolution (CorrNd), whichever
    backend fitted the network."""
    from pytensor.graph.traversal import applys_between

    from plasagne import cli
    from plasagne.ops.corr_op import CorrNd

    sample = datasets.load_mnist_sample()
    config = {"seed": 0, "model": "cnn", "batch_size": 10, "backend": backend}
    bnet = cli._build(config, sample.x_train[:20], sample.y_train[:20])
    nodes = applys_between([], [bnet.output])
    assert sum(isinstance(node.op, CorrNd) for node in nodes) == 2


@pytest.mark.backend
def test_train_cnn_on_jax_end_to_end(data, tmp_path):
    pytest.importorskip("jax")
    out = tmp_path / "cnn-jax"
    args = [a if a != "fast_compile" else "jax" for a in FAST]
    res = plasagne(
        "train", "--model", "cnn", "--data", data, "--iterations", 4, "--out", out, *args
    )
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert metrics["backend"] == "jax" and 0.0 <= metrics["accuracy"] <= 1.0
    assert np.isfinite(np.load(out / "losses.npy")).all()


@pytest.mark.backend
def test_predict_backend_is_used_recorded_and_overridable(data, tmp_path):
    """Fit on one backend, predict on JAX (CorrNd, XLA's convolution), then re-evaluate on
    the reference backend. (On this tiny data the MAP CNN stays near uniform, so the
    agreement is a smoke check; tests/test_bridge_jax.py compares a trained CNN.)"""
    pytest.importorskip("jax")
    out = tmp_path / "cnn-map"
    res = plasagne(
        "train", "--model", "cnn", "--method", "map", "--data", data, "--iterations", 4,
        "--out", out, "--predict-backend", "jax", *FAST,
    )  # fmt: skip
    assert res.returncode == 0, res.stderr
    metrics = json.loads((out / "metrics.json").read_text())
    assert (metrics["backend"], metrics["predict_backend"]) == ("fast_compile", "jax")
    with np.load(out / "predictions.npz") as pred:
        on_jax = pred["per_draw_probs"]
    res = plasagne("evaluate", out, "--predict-backend", "fast_compile", "--no-progress")
    assert res.returncode == 0, res.stderr
    assert json.loads((out / "metrics.json").read_text())["predict_backend"] == "fast_compile"
    with np.load(out / "predictions.npz") as pred:
        np.testing.assert_allclose(on_jax, pred["per_draw_probs"], rtol=1e-4, atol=1e-6)
