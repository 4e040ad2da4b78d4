"""Shared pieces of the benchmark scripts: data, machine facts, tables and JSON output."""

from __future__ import annotations

import json
import os
import platform
import resource
import sys
import time
from pathlib import Path
from typing import Any

# plasagne first: its idle-thread settings must precede SciPy's BLAS (parallel kernels)
import plasagne  # noqa: F401

# isort: split
import numpy as np

RESULTS_DIR = Path(__file__).resolve().parent / "results"
SHARED_MNIST = Path(__file__).resolve().parents[1].parent / "shared" / "data" / "mnist.npz"


def mnist_path() -> Path:
    """Where the full MNIST archive lies: $PLASAGNE_MNIST, else ../shared/data/mnist.npz."""
    path = Path(os.environ.get("PLASAGNE_MNIST", SHARED_MNIST))
    if not path.exists():
        sys.exit(
            f"benchmark: MNIST not found at {path}; set PLASAGNE_MNIST to an .npz with "
            "x_train, y_train, x_test, y_test"
        )
    return path


def load_mnist_protocol(dtype: str = "float32") -> dict[str, np.ndarray]:
    """The 2016 post's protocol: first 50,000 for training, last 10,000 for validation, test 10,000."""
    with np.load(mnist_path(), allow_pickle=False) as data:
        x_train = data["x_train"].astype(dtype)[:, None] / 255.0
        x_test = data["x_test"].astype(dtype)[:, None] / 255.0
        y_train = data["y_train"].astype("int32")
        y_test = data["y_test"].astype("int32")
    return {
        "x_train": x_train[:50000],
        "y_train": y_train[:50000],
        "x_val": x_train[50000:],
        "y_val": y_train[50000:],
        "x_test": x_test,
        "y_test": y_test,
    }


def peak_rss_mb() -> float:
    """Peak resident memory of this process so far, in MiB."""
    return resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024.0


class RssRise:
    """Peak rise of this process's resident memory while the block runs, in MiB.

    A thread reads ``/proc/self/statm`` every ``interval`` seconds; unlike tracemalloc
    this sees every allocator (numpy's, XLA's, BLAS's). ``rise_mib`` is the largest
    resident size seen minus the size on entry (memory an allocator kept from earlier
    calls is reused and does not count again).

        with RssRise() as rss:
            work()
        print(rss.rise_mib)
    """

    def __init__(self, interval: float = 0.002) -> None:
        self.interval = interval
        self.rise_mib = 0.0

    @staticmethod
    def _resident_mib() -> float:
        with open("/proc/self/statm") as f:
            return int(f.read().split()[1]) * resource.getpagesize() / 2**20

    def _watch(self) -> None:
        while not self._stop.wait(self.interval):
            self._peak = max(self._peak, self._resident_mib())

    def __enter__(self) -> RssRise:
        import threading

        self._start = self._peak = self._resident_mib()
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._watch, daemon=True)
        self._thread.start()
        return self

    def __exit__(self, *exc: Any) -> None:
        self._stop.set()
        self._thread.join()
        self._peak = max(self._peak, self._resident_mib())
        self.rise_mib = self._peak - self._start


def machine_info() -> dict[str, Any]:
    """Versions and machine facts recorded with every result."""
    import pymc
    import pytensor

    from plasagne.ops import blas_threads

    info: dict[str, Any] = {
        "python": platform.python_version(),
        "machine": platform.machine(),
        "processor": platform.processor(),
        "cpus": os.cpu_count(),
        "numpy": np.__version__,
        "pytensor": pytensor.__version__,
        "pymc": pymc.__version__,
        "floatX": pytensor.config.floatX,
        "date": time.strftime("%Y-%m-%d %H:%M:%S"),
        "parallel_kernels": blas_threads.parallel_kernels(),
        "serial_kernels_because": blas_threads.why_serial(),
    }
    try:
        import threadpoolctl

        info["blas"] = [
            {k: lib.get(k) for k in ("internal_api", "version", "num_threads")}
            for lib in threadpoolctl.threadpool_info()
        ]
    except ImportError:
        pass
    return info


def markdown_table(rows: list[dict[str, Any]], columns: list[str]) -> str:
    """Render rows as a markdown table with the given columns."""

    def fmt(v: Any) -> str:
        if isinstance(v, float):
            return f"{v:.4g}"
        return str(v)

    lines = ["| " + " | ".join(columns) + " |", "|" + "---|" * len(columns)]
    for row in rows:
        lines.append("| " + " | ".join(fmt(row.get(c, "")) for c in columns) + " |")
    return "\n".join(lines)


def _row_key(row: dict[str, Any]) -> tuple:
    keys = ("model", "implementation", "backend", "prior", "reparameterization", "kl_weight")
    return tuple(str(row.get(k)) for k in keys)


def write_results(
    name: str, rows: list[dict[str, Any]], extra: dict[str, Any] | None = None
) -> Path:
    """Write rows plus machine facts as JSON into benchmarks/results/<name>.json.

    Rows from earlier runs whose (model, implementation, backend, prior, reparameterization)
    this run did not measure
    are kept, so running one model at a time does not erase the others; every row carries
    the date it was measured.
    """
    RESULTS_DIR.mkdir(parents=True, exist_ok=True)
    path = RESULTS_DIR / f"{name}.json"
    machine = machine_info()
    rows = [{"measured": machine["date"], **row} for row in rows]
    new_keys = {_row_key(row) for row in rows}
    kept: list[dict[str, Any]] = []
    if path.exists():
        try:
            earlier = json.loads(path.read_text())
        except (OSError, ValueError):
            earlier = {}
        stamp = earlier.get("machine", {}).get("date")
        for row in earlier.get("results", []):
            if _row_key(row) not in new_keys:
                kept.append({"measured": stamp, **row})
    payload = {"benchmark": name, "machine": machine, "results": kept + rows, **(extra or {})}
    path.write_text(json.dumps(payload, indent=2, default=str))
    return path
