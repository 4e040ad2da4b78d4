"""Plots and a markdown report of a fitted Bayesian network (matplotlib, optional).

Each ``plot_*`` function writes one PNG and returns its path; :func:`write_report` ties
metrics and figures together in ``report.md``.
"""

from __future__ import annotations

import os
from pathlib import Path
from typing import Any

import numpy as np

__all__ = [
    "confusion_matrix",
    "plot_elbo",
    "plot_confusion_matrix",
    "plot_uncertainty_histogram",
    "plot_reliability_diagram",
    "plot_uncertain_images",
    "write_report",
]


def _pyplot() -> Any:
    try:
        import matplotlib

        matplotlib.use("Agg")
        import matplotlib.pyplot as plt
    except ImportError:
        raise ImportError(
            "plasagne's plots need matplotlib: pip install 'plasagne[plots]'"
        ) from None
    return plt


def _save(fig: Any, path: str | os.PathLike) -> Path:
    path = Path(path)
    fig.savefig(path, dpi=110, bbox_inches="tight")
    _pyplot().close(fig)
    return path


def confusion_matrix(labels: np.ndarray, preds: np.ndarray, n_classes: int = 10) -> np.ndarray:
    """Counts ``C[true, predicted]``.

    Examples
    --------
    >>> confusion_matrix(np.array([0, 1, 1]), np.array([0, 0, 1]), 2).tolist()
    [[1, 0], [1, 1]]
    """
    labels, preds = np.asarray(labels), np.asarray(preds)
    if labels.shape != preds.shape or labels.ndim != 1:
        raise ValueError(
            f"expected labels and preds as equal-length 1-d arrays, got {labels.shape} and "
            f"{preds.shape}"
        )
    for name, arr in (("labels", labels), ("preds", preds)):
        if arr.size and (arr.min() < 0 or arr.max() >= n_classes):
            raise ValueError(f"{name} must lie in [0, {n_classes}), found {arr.min()}..{arr.max()}")
    out = np.zeros((n_classes, n_classes), dtype=np.int64)
    np.add.at(out, (labels, preds), 1)
    return out


def plot_elbo(losses: np.ndarray, path: str | os.PathLike, window: int = 100) -> Path:
    """The loss (negative ELBO) per iteration and its moving average.

    Examples
    --------
    >>> import tempfile, os
    >>> p = plot_elbo(np.linspace(10, 1, 50), os.path.join(tempfile.mkdtemp(), "elbo.png"))
    >>> p.suffix
    '.png'
    """
    plt = _pyplot()
    losses = np.asarray(losses, dtype=float)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    ax.plot(losses, lw=0.5, alpha=0.4, label="per iteration")
    w = max(1, min(window, len(losses) // 5 or 1))
    if len(losses) >= w:
        smooth = np.convolve(losses, np.ones(w) / w, mode="valid")
        ax.plot(np.arange(w - 1, len(losses)), smooth, lw=1.5, label=f"moving average ({w})")
    if np.all(losses[np.isfinite(losses)] > 0):
        ax.set_yscale("log")
    ax.set_xlabel("iteration")
    ax.set_ylabel("loss (negative ELBO)")
    ax.legend()
    return _save(fig, path)


def plot_confusion_matrix(
    labels: np.ndarray, preds: np.ndarray, path: str | os.PathLike, n_classes: int = 10
) -> Path:
    """Heat map of :func:`confusion_matrix` with the counts written in.

    Examples
    --------
    >>> import tempfile, os
    >>> y = np.array([0, 1, 2, 2])
    >>> plot_confusion_matrix(y, y, os.path.join(tempfile.mkdtemp(), "c.png"), 3).name
    'c.png'
    """
    plt = _pyplot()
    cm = confusion_matrix(labels, preds, n_classes)
    fig, ax = plt.subplots(figsize=(5, 4.5))
    im = ax.imshow(cm, cmap="Blues")
    for i in range(n_classes):
        for j in range(n_classes):
            if cm[i, j]:
                ax.text(
                    j,
                    i,
                    str(cm[i, j]),
                    ha="center",
                    va="center",
                    fontsize=7,
                    color="white" if cm[i, j] > cm.max() / 2 else "black",
                )
    ax.set_xlabel("predicted")
    ax.set_ylabel("true")
    ax.set_xticks(range(n_classes))
    ax.set_yticks(range(n_classes))
    fig.colorbar(im, ax=ax)
    return _save(fig, path)


def plot_uncertainty_histogram(
    uncertainty: np.ndarray,
    correct: np.ndarray,
    path: str | os.PathLike,
    label: str = "uncertainty",
) -> Path:
    """Histograms of an uncertainty statistic for correct and wrong predictions (the 2016
    post's figure, with its chi-square statistic).

    Examples
    --------
    >>> import tempfile, os
    >>> u = np.random.default_rng(0).random(50); ok = u < 0.7
    >>> plot_uncertainty_histogram(u, ok, os.path.join(tempfile.mkdtemp(), "u.png")).name
    'u.png'
    """
    plt = _pyplot()
    u, correct = np.asarray(uncertainty, dtype=float), np.asarray(correct, dtype=bool)
    fig, ax = plt.subplots(figsize=(6, 3.5))
    bins = np.linspace(u.min(), u.max() + 1e-12, 30)
    for mask, name in ((correct, "correct"), (~correct, "wrong")):
        if mask.any():
            ax.hist(
                u[mask], bins=bins, alpha=0.6, density=True, label=f"{name} ({int(mask.sum())})"
            )
    ax.set_xlabel(label)
    ax.set_ylabel("density")
    ax.legend()
    return _save(fig, path)


def plot_reliability_diagram(bins: dict, path: str | os.PathLike) -> Path:
    """Accuracy against confidence per bin (from ``expected_calibration_error``).

    Examples
    --------
    >>> import tempfile, os
    >>> from plasagne.pymc_bridge.metrics import expected_calibration_error
    >>> p = np.random.default_rng(0).dirichlet(np.ones(3), 100)
    >>> _, b = expected_calibration_error(p, p.argmax(1))
    >>> plot_reliability_diagram(b, os.path.join(tempfile.mkdtemp(), "r.png")).name
    'r.png'
    """
    plt = _pyplot()
    edges = np.asarray(bins["edges"])
    centers = (edges[:-1] + edges[1:]) / 2
    acc = np.nan_to_num(np.asarray(bins["accuracy"], dtype=float))
    fig, ax = plt.subplots(figsize=(4.5, 4.5))
    ax.bar(centers, acc, width=np.diff(edges), edgecolor="k", alpha=0.7, label="accuracy")
    ax.plot([0, 1], [0, 1], "r--", label="perfect calibration")
    ax.set_xlabel("confidence")
    ax.set_ylabel("accuracy")
    ax.set_xlim(0, 1)
    ax.set_ylim(0, 1)
    ax.legend(loc="upper left")
    return _save(fig, path)


def plot_uncertain_images(
    images: np.ndarray, probs: np.ndarray, labels: np.ndarray, path: str | os.PathLike, k: int = 16
) -> Path:
    """The ``k`` test images with the most entropic predictive distribution, each with a
    bar chart of that distribution (true class in red).

    Examples
    --------
    >>> import tempfile, os
    >>> rng = np.random.default_rng(0)
    >>> imgs, p = rng.random((8, 1, 28, 28)), rng.dirichlet(np.ones(10), 8)
    >>> plot_uncertain_images(imgs, p, np.arange(8), os.path.join(tempfile.mkdtemp(), "i.png"),
    ...                       k=4).name
    'i.png'
    """
    plt = _pyplot()
    probs = np.asarray(probs, dtype=float)
    entropy = -(np.where(probs > 0, probs * np.log(np.maximum(probs, 1e-300)), 0)).sum(1)
    order = np.argsort(-entropy)[:k]
    cols = 4
    rows = int(np.ceil(len(order) / cols))
    fig, axes = plt.subplots(
        rows, 2 * cols, figsize=(2.2 * cols * 2 / 1.6, 1.6 * rows), squeeze=False
    )
    for slot in range(rows * cols):
        ax_img, ax_bar = (
            axes[slot // cols, 2 * (slot % cols)],
            axes[slot // cols, 2 * (slot % cols) + 1],
        )
        ax_img.axis("off")
        if slot >= len(order):
            ax_bar.axis("off")
            continue
        i = order[slot]
        ax_img.imshow(np.asarray(images[i]).reshape(28, 28), cmap="gray_r")
        ax_img.set_title(f"true {labels[i]}", fontsize=7)
        colors = ["tab:red" if c == labels[i] else "tab:blue" for c in range(probs.shape[1])]
        ax_bar.bar(range(probs.shape[1]), probs[i], color=colors)
        ax_bar.set_ylim(0, 1)
        ax_bar.set_xticks(range(probs.shape[1]))
        ax_bar.tick_params(labelsize=5)
    fig.tight_layout()
    return _save(fig, path)


def write_report(out_dir: str | os.PathLike, metrics: dict, figures: dict[str, Any]) -> Path:
    """Write ``report.md``: a table of the metrics and every figure.

    Examples
    --------
    >>> import tempfile
    >>> p = write_report(tempfile.mkdtemp(), {"accuracy": 0.9}, {"ELBO": "elbo.png"})
    >>> "accuracy" in p.read_text() and "elbo.png" in p.read_text()
    True
    """
    out_dir = Path(out_dir)
    lines = ["# plasagne run report", "", "| metric | value |", "| --- | --- |"]
    for key, value in metrics.items():
        shown = f"{value:.4f}" if isinstance(value, float) else str(value)
        lines.append(f"| {key} | {shown} |")
    lines.append("")
    for title, fig_path in figures.items():
        fig = Path(fig_path)
        rel = fig.relative_to(out_dir) if fig.is_relative_to(out_dir) else fig
        lines += [f"## {title}", "", f"![{title}]({rel.as_posix()})", ""]
    path = out_dir / "report.md"
    tmp = out_dir / "report.md.tmp"
    tmp.write_text("\n".join(lines))
    os.replace(tmp, path)
    return path
