"""Report plots are valid PNGs; counts and links are right."""

import matplotlib.image
import numpy as np
import pytest

from plasagne import report
from plasagne.pymc_bridge.metrics import expected_calibration_error

PNG = b"\x89PNG\r\n\x1a\n"


def check_png(path):
    assert path.read_bytes()[:8] == PNG
    img = matplotlib.image.imread(path)
    assert img.shape[0] > 50 and img.shape[1] > 50


def test_confusion_matrix_counts():
    rng = np.random.default_rng(0)
    y, p = rng.integers(0, 4, 200), rng.integers(0, 4, 200)
    expected = np.zeros((4, 4), int)
    for a, b in zip(y, p):
        expected[a, b] += 1
    np.testing.assert_array_equal(report.confusion_matrix(y, p, 4), expected)
    with pytest.raises(ValueError, match=r"preds must lie in \[0, 4\), found 0..4"):
        report.confusion_matrix(np.array([0, 1]), np.array([0, 4]), 4)
    with pytest.raises(ValueError, match="equal-length"):
        report.confusion_matrix(np.array([0, 1]), np.array([0]), 4)


def test_all_plots_and_the_report(tmp_path):
    rng = np.random.default_rng(1)
    probs = rng.dirichlet(np.ones(10), 40)
    y = rng.integers(0, 10, 40)
    pred = probs.argmax(1)
    _, bins = expected_calibration_error(probs, y)
    figures = {
        "ELBO": report.plot_elbo(
            np.exp(-np.linspace(0, 3, 300)) + rng.random(300) * 0.1, tmp_path / "elbo.png"
        ),
        "Confusion": report.plot_confusion_matrix(y, pred, tmp_path / "confusion.png"),
        "Uncertainty": report.plot_uncertainty_histogram(
            rng.random(40), pred == y, tmp_path / "u.png"
        ),
        "Reliability": report.plot_reliability_diagram(bins, tmp_path / "rel.png"),
        "Images": report.plot_uncertain_images(
            rng.random((40, 1, 28, 28)), probs, y, tmp_path / "img.png"
        ),
    }
    for path in figures.values():
        check_png(path)
    metrics = {"accuracy": 0.5, "nll": 1.25, "model": "mlp"}
    md = report.write_report(tmp_path, metrics, figures).read_text()
    for key in metrics:
        assert f"| {key} |" in md
    for title, path in figures.items():
        assert f"![{title}]({path.name})" in md


def test_missing_matplotlib_gives_a_clear_error(monkeypatch):
    import builtins

    real_import = builtins.__import__

    def fake_import(name, *args, **kwargs):
        if name.startswith("matplotlib"):
            raise ImportError(name)
        return real_import(name, *args, **kwargs)

    monkeypatch.setattr(builtins, "__import__", fake_import)
    with pytest.raises(ImportError, match=r"plasagne\[plots\]"):
        report.plot_elbo(np.ones(3), "x.png")
