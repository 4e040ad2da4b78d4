"""A second process that compiles a graph's kernels while this one compiles the graph.

Numba compiles in one thread under a global lock, so a cold compile of a step function
uses one core. The kernels behind C calls (:mod:`plasagne.ops.opaque_calls`) need
nothing from the rest of the graph: only their Op and their inputs' types. So when
:class:`plasagne.ops.numba_linker.DirectNumbaLinker` converts a graph whose kernels are
not in the disk cache yet, it hands those nodes to a :class:`KernelWorker`: a fresh
Python process (``python -m plasagne.ops.kernel_worker``) that funcifies each node as
the linker would, which compiles the node's kernels into PyTensor's Numba cache. This
process meanwhile compiles everything else; a kernel's caller asks for its address on
its first call (:func:`plasagne.ops.opaque_calls.deferred_kernels`), which waits for the
worker to report that node and then loads the kernel from the cache.

Nothing depends on the worker succeeding: if it fails, dies or reports a node as
failed, the kernel is compiled here as it would have been. A child forked from this
process (PyMC's samplers) never waits for its parent's worker.

Examples
--------
>>> KERNEL_WORKER_SETTING
'PLASAGNE_KERNEL_WORKER'
"""

from __future__ import annotations

import atexit
import os
import pickle
import subprocess
import sys
import tempfile
import threading
from pathlib import Path
from typing import Any

__all__ = ["KERNEL_WORKER_SETTING", "KernelWorker", "worker_enabled"]

#: Environment variable: ``0`` (or ``off``) compiles everything in the fitting process.
KERNEL_WORKER_SETTING = "PLASAGNE_KERNEL_WORKER"

# longest wait for one node before this process compiles its kernels itself
_WAIT_LIMIT_S = 900.0


def worker_enabled() -> bool:
    """Whether graphs' uncached kernels go to a worker process (the default, unless the
    environment variable :data:`KERNEL_WORKER_SETTING` is ``0``, or Numba's cache is
    off, through which the kernels come back).

    Examples
    --------
    >>> isinstance(worker_enabled(), bool)
    True
    """
    from pytensor.configdefaults import config

    if _setting() in ("0", "false", "no", "off"):
        return False
    return bool(config.numba__cache)


def _setting() -> str:
    return os.environ.get(KERNEL_WORKER_SETTING, "1").strip().lower()


def _settings() -> dict[str, Any]:
    """What the worker must compile with to fill the cache this process reads."""
    from pytensor.configdefaults import config
    from pytensor.link.numba import cache

    return {
        "floatX": config.floatX,
        "numba__fastmath": bool(config.numba__fastmath),
        "cache_path": str(cache.NUMBA_CACHE_PATH),
    }


def _worker_environment(package_root: Path) -> dict[str, str]:
    """This process's environment, with ``package_root`` (the folder holding this
    plasagne) first on PYTHONPATH when it is a source tree; an installed plasagne imports
    anyway, and site-packages on PYTHONPATH would come before the standard library."""
    env = dict(os.environ)
    if package_root.name not in ("site-packages", "dist-packages"):
        paths = [str(package_root), *filter(None, [env.get("PYTHONPATH")])]
        env["PYTHONPATH"] = os.pathsep.join(paths)
    return env


class KernelWorker:
    """A worker process compiling the kernels of ``nodes`` into the disk cache.

    Parameters
    ----------
    nodes : list of (Op, list of Type)
        Each node's Op and its inputs' types: the worker rebuilds the node from them.

    Examples
    --------
    >>> worker = KernelWorker([])  # nothing to compile: it reports nothing and ends
    >>> worker.wait_for(0)
    False
    """

    def __init__(self, nodes: list[tuple[Any, list[Any]]]) -> None:
        import plasagne

        self._owner = os.getpid()
        self._reported: dict[int, bool] = {}
        self._finished = False
        self._changed = threading.Condition()
        env = _worker_environment(Path(plasagne.__file__).resolve().parent.parent)
        self._log = tempfile.TemporaryFile()
        # the job goes through a file: a pipe would block this process until the worker,
        # still importing, reads it
        with tempfile.NamedTemporaryFile(prefix="plasagne-job-", delete=False) as job_file:
            pickle.dump({"settings": _settings(), "nodes": nodes}, job_file)
        self._job_path = job_file.name
        self._process = subprocess.Popen(
            [sys.executable, "-m", "plasagne.ops.kernel_worker", self._job_path],
            stdin=subprocess.DEVNULL,
            stdout=subprocess.PIPE,
            stderr=self._log,
            env=env,
        )
        threading.Thread(target=self._read_reports, daemon=True).start()
        atexit.register(self.stop)

    def _read_reports(self) -> None:
        assert self._process.stdout is not None
        for line in self._process.stdout:
            parts = line.decode(errors="replace").split()
            if len(parts) == 2 and parts[0] in ("done", "failed") and parts[1].isdigit():
                with self._changed:
                    self._reported[int(parts[1])] = parts[0] == "done"
                    self._changed.notify_all()
        self._process.wait()
        with self._changed:
            self._finished = True
            self._changed.notify_all()

    def wait_for(self, index: int, timeout: float = _WAIT_LIMIT_S) -> bool:
        """Wait until the worker has reported node ``index`` (or ended); True if it
        compiled that node's kernels. A forked child does not wait (False)."""
        if os.getpid() != self._owner:
            return False
        with self._changed:
            self._changed.wait_for(lambda: index in self._reported or self._finished, timeout)
            return self._reported.get(index, False)

    def log(self) -> str:
        """What the worker wrote to its standard error so far."""
        self._log.seek(0)
        return self._log.read().decode(errors="replace")

    def stop(self) -> None:
        """End the worker if it still runs (at exit: its work would be lost anyway) and
        remove its job file."""
        if os.getpid() != self._owner:
            return
        if self._process.poll() is None:
            self._process.kill()
        Path(self._job_path).unlink(missing_ok=True)


def hand_to_worker(deferred: Any) -> KernelWorker | None:
    """Give the uncached kernels of ``deferred`` (a
    :class:`~plasagne.ops.opaque_calls.DeferredKernels`) whose nodes are known to a new
    :class:`KernelWorker`, and have each wait for it before building; build the rest now.

    Examples
    --------
    >>> from plasagne.ops.opaque_calls import DeferredKernels
    >>> hand_to_worker(DeferredKernels()) is None
    True
    """
    from .opaque_calls import _address_of

    missing = deferred.build_cached()
    with_node = [kernel for kernel in missing if kernel.node is not None]
    worker = None
    if with_node and worker_enabled():
        nodes: list[tuple[Any, list[Any]]] = []
        index_of: dict[int, int] = {}
        for kernel in with_node:
            op, node = kernel.node
            if id(node) not in index_of:
                index_of[id(node)] = len(nodes)
                nodes.append((op, [variable.type for variable in node.inputs]))
        try:
            worker = KernelWorker(nodes)
        except (OSError, pickle.PicklingError, TypeError, AttributeError):
            worker = None  # no process, or an Op that does not pickle: compile here
        for kernel in with_node if worker is not None else []:
            index = index_of[id(kernel.node[1])]
            kernel.wait = lambda index=index, worker=worker: worker.wait_for(index)
    if worker is None:
        deferred.build_all()
    else:  # kernels no worker can rebuild are compiled here, now
        for kernel in missing:
            if kernel.node is None:
                _address_of(kernel)
    for kernel in deferred.kernels:
        kernel.node = None  # the node and its graph need not stay alive
    return worker


def _run(job: dict[str, Any], report: Any) -> None:
    """Compile the kernels of the job's nodes, reporting ``done i`` or ``failed i``."""
    import pytensor
    from pytensor.link.numba import cache

    settings = job["settings"]
    pytensor.config.floatX = settings["floatX"]
    pytensor.config.numba__fastmath = settings["numba__fastmath"]
    cache.NUMBA_CACHE_PATH = Path(settings["cache_path"])
    from pytensor.link.numba.dispatch.basic import numba_funcify

    from plasagne.ops.fast_math import fast_math_mode
    from plasagne.ops.lowering_scope import plasagne_lowerings

    fast_math_mode("NUMBA")  # registers the kernels' Numba implementations
    for index, (op, types) in enumerate(job["nodes"]):
        try:
            node = op.make_node(*[kind() for kind in types])
            with plasagne_lowerings():  # as the linker converts nodes
                numba_funcify(op, node=node)
            report(f"done {index}")
        except Exception:
            import traceback

            traceback.print_exc()
            report(f"failed {index}")


def main() -> None:
    """The worker process: read the job from the file named by its argument (and remove
    it), compile, report on standard output."""

    def report(line: str) -> None:
        print(line, flush=True)

    job_path = Path(sys.argv[1])
    with job_path.open("rb") as job_file:
        job = pickle.load(job_file)
    job_path.unlink(missing_ok=True)
    _run(job, report)


if __name__ == "__main__":
    main()
