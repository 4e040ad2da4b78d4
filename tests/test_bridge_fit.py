"""fit: accuracy, exact resume, float32, MAP / full rank, noise scale, callbacks, checkpoints."""

import numpy as np
import pymc as pm
import pytensor
import pytest

from plasagne.layers import DenseLayer, InputLayer
from plasagne.nonlinearities import softmax, tanh
from plasagne.pymc_bridge import GaussWeights, build_model, fit


def _blobs(seed=0, N=200):
    rng = np.random.default_rng(seed)
    y = rng.integers(0, 2, N)
    X = rng.normal(size=(N, 2)) + np.where(y[:, None] == 1, 2.0, -2.0)
    return X, y


def _build(prior):
    h = DenseLayer(InputLayer((None, 2)), 8, W=prior, b=prior, nonlinearity=tanh, name="h")
    return DenseLayer(h, 2, W=prior, b=prior, nonlinearity=softmax, name="out")


def _accuracy(point, X, y):
    h = np.tanh(X @ point["h.W"] + point["h.b"])
    return ((h @ point["out.W"] + point["out.b"]).argmax(1) == y).mean()


def _bnet(X, y, batch_size=50):
    from plasagne.random import set_rng

    set_rng(np.random.RandomState(0))  # the same initial values for every build
    return build_model(_build, X, y, priors=GaussWeights(1.0), batch_size=batch_size)


def test_advi_reaches_high_accuracy():
    X, y = _blobs()
    res = fit(_bnet(X, y), X, y, n=300, learning_rate=0.05, random_seed=1, progressbar=False)
    assert res.iterations == 300 and res.losses.shape == (300,)
    assert np.all(np.isfinite(res.losses))
    assert res.losses[-30:].mean() < res.losses[:30].mean() / 5
    assert _accuracy(res.point_estimate(), X, y) >= 0.95
    assert res.compile_seconds > 0 and res.fit_seconds > 0


def test_resume_after_interrupt_is_bit_identical(tmp_path):
    X, y = _blobs(N=60)
    n = 25
    kwargs = dict(learning_rate=0.05, random_seed=3, progressbar=False, batch_size=16)
    full = fit(_bnet(X, y), X, y, n=n, **kwargs)

    def interrupt(approx, losses, i):
        if i == 11:
            raise KeyboardInterrupt

    path = tmp_path / "ckpt.npz"
    part = fit(_bnet(X, y), X, y, n=n, callbacks=[interrupt], checkpoint_path=path, **kwargs)
    assert part.interrupted and part.iterations == 11
    with np.load(path, allow_pickle=False) as data:
        assert "header" in data.files
    assert not np.array_equal(
        part.approximation.params[0].get_value(), full.approximation.params[0].get_value()
    )
    resumed = fit(_bnet(X, y), X, y, n=n, resume=path, **kwargs)
    assert resumed.iterations == n
    np.testing.assert_array_equal(resumed.losses, full.losses)
    for a, b in zip(resumed.approximation.params, full.approximation.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())
    # Periodic checkpoints resume exactly too (MAP, whose optimizer state is in the file).
    fit(_bnet(X, y), X, y, n=14, method="map", checkpoint_every=7, checkpoint_path=path, **kwargs)
    a = fit(_bnet(X, y), X, y, n=20, method="map", resume=path, **kwargs)
    b = fit(_bnet(X, y), X, y, n=20, method="map", **kwargs)
    np.testing.assert_array_equal(a.losses, b.losses)


@pytest.mark.backend
def test_float32_numba_resume_is_bit_identical(tmp_path):
    """On Numba in float32 the approximation draws from plasagne's counter-based generator
    (plasagne.ops.fast_random): an interrupted fit resumed from its checkpoint still equals
    the uninterrupted one bit for bit."""
    from pytensor.tensor.basic import Join
    from pytensor.tensor.subtensor import IncSubtensor

    from plasagne.ops.fast_random import FastNormalDraws

    X, y = _blobs(N=60)
    n = 12
    kwargs = dict(mode="numba", random_seed=4, progressbar=False, batch_size=16)

    def interrupt(approx, losses, i):
        if i == 5:
            raise KeyboardInterrupt

    path = tmp_path / "ckpt32.npz"
    with pytensor.config.change_flags(floatX="float32"):
        X32 = X.astype("float32")
        full = fit(_bnet(X32, y), X32, y, n=n, **kwargs)
        nodes = full.extra["step_function"].maker.fgraph.apply_nodes
        assert any(isinstance(node.op, FastNormalDraws) for node in nodes)
        # the flat gradient is one Join of the layers' gradients (plasagne.ops.join_slices)
        flat = full.approximation.params[0].type.shape
        assert any(
            isinstance(node.op, Join) and node.outputs[0].type.shape == flat for node in nodes
        )
        assert not [n for n in nodes if isinstance(n.op, IncSubtensor) and n.inputs[0].ndim == 1]
        part = fit(
            _bnet(X32, y), X32, y, n=n, callbacks=[interrupt], checkpoint_path=path, **kwargs
        )
        assert part.interrupted and part.iterations == 5
        resumed = fit(_bnet(X32, y), X32, y, n=n, resume=path, **kwargs)
    np.testing.assert_array_equal(resumed.losses, full.losses)
    for a, b in zip(resumed.approximation.params, full.approximation.params):
        np.testing.assert_array_equal(a.get_value(), b.get_value())


def test_static_batch_aliases_share_the_data_containers():
    """The step sees the minibatch through aliases with its static shape that share the
    data containers' storage: no shape-check node, and what set_batch writes is what the
    step reads."""
    from pytensor.tensor.shape import SpecifyShape

    from plasagne.pymc_bridge.fit import _static_batch

    X, y = _blobs(N=40)
    bnet = _bnet(X, y, batch_size=8)
    aliases = _static_batch(bnet, 8)
    for data, alias in aliases.items():
        assert alias.container is data.container
        assert alias.type.shape[0] == 8 and data.type.shape[0] is None
    bnet.set_batch(X[:8], y[:8])
    np.testing.assert_array_equal(aliases[bnet.input_data].get_value(), X[:8])
    result = fit(bnet, X, y, n=3, batch_size=8, random_seed=0, progressbar=False)
    graph = result.extra["step_function"].maker.fgraph
    checked = [
        n.inputs[0].name
        for n in graph.apply_nodes
        if isinstance(n.op, SpecifyShape) and n.inputs[0].name in ("X_batch", "y_batch")
    ]
    assert not checked


def test_resume_rejects_a_different_run(tmp_path):
    X, y = _blobs(N=40)
    path = tmp_path / "c.npz"
    fit(_bnet(X, y), X, y, n=2, checkpoint_path=path, random_seed=0, progressbar=False)
    with pytest.raises(ValueError, match="method"):
        fit(_bnet(X, y), X, y, n=4, method="map", resume=path, progressbar=False)


def test_float32_fit_stays_finite():
    X, y = _blobs(N=120)
    with pytensor.config.change_flags(floatX="float32"):
        bnet = _bnet(X, y, batch_size=30)
        assert bnet.input_data.dtype == "float32"
        res = fit(bnet, X, y, n=300, learning_rate=0.05, random_seed=0, progressbar=False)
        assert res.approximation.params[0].dtype == "float32"
    assert np.all(np.isfinite(res.losses))
    assert all(np.all(np.isfinite(v)) for v in res.point_estimate().values())
    assert _accuracy(res.point_estimate(), X, y) >= 0.95


def test_float32_stable_likelihood_where_pymc_categorical_is_nan():
    """The cause of float32 NaN: log(softmax) underflows; the bridge's logits likelihood does not."""
    import pytensor.tensor as pt

    from plasagne.pymc_bridge.model import _categorical_logp

    with pytensor.config.change_flags(floatX="float32"):
        x = pt.matrix("x", dtype="float32")
        value = np.array([1], dtype="int32")
        naive = pm.logp(pm.Categorical.dist(p=softmax(x)), value).sum()
        stable = _categorical_logp(pt.as_tensor(value), x).sum()
        f = pytensor.function([x], [pt.grad(naive, x), stable, pt.grad(stable, x)])
        g_naive, lp, g = f(np.array([[120.0, 0.0]], dtype="float32"))
    assert np.isnan(g_naive).any()  # exp(-120) == 0 in float32: log(0), 0 * inf
    assert np.isclose(lp, -120.0) and np.allclose(g, [[-1.0, 1.0]])


@pytest.mark.parametrize("method", ["map", "fullrank_advi"])
def test_map_and_fullrank_lower_the_loss(method):
    X, y = _blobs(N=100)
    res = fit(
        _bnet(X, y, 25),
        X,
        y,
        n=150,
        method=method,
        learning_rate=0.05,
        random_seed=0,
        progressbar=False,
    )
    assert np.all(np.isfinite(res.losses))
    assert res.losses[-20:].mean() < res.losses[:5].mean() - 5
    assert _accuracy(res.point_estimate(), X, y) >= 0.95


def test_normal_likelihood_learns_noise_scale():
    rng = np.random.default_rng(0)
    N, noise = 300, 0.5
    X = rng.normal(size=(N, 2))
    y = X @ np.array([1.5, -2.0]) + 0.3 + noise * rng.normal(size=N)

    def build(prior):
        return DenseLayer(InputLayer((None, 2)), 1, W=prior, b=prior, nonlinearity=None, name="out")

    bnet = build_model(build, X, y, "normal", priors=GaussWeights(5.0), batch_size=50)
    res = fit(bnet, X, y, n=400, learning_rate=0.05, random_seed=0, progressbar=False)
    point = res.point_estimate()
    # Reference: the least-squares residual scale of the same data.
    A = np.c_[X, np.ones(N)]
    resid = y - A @ np.linalg.lstsq(A, y, rcond=None)[0]
    assert abs(point["noise.sigma"] - resid.std()) < 0.1
    np.testing.assert_allclose(point["out.W"][:, 0], [1.5, -2.0], atol=0.15)


def test_callback_stop_iteration_and_errors():
    X, y = _blobs(N=40)
    seen = []

    def stop(approx, losses, i):
        seen.append((i, len(losses)))
        if i == 5:
            raise StopIteration

    res = fit(_bnet(X, y), X, y, n=50, callbacks=[stop], random_seed=0, progressbar=False)
    assert res.stopped and res.iterations == 5 and seen[-1] == (5, 5)
    with pytest.raises(ValueError, match="method must be one of"):
        fit(_bnet(X, y), X, y, n=1, method="nuts")
    with pytest.raises(ValueError, match="built for 40 rows"):
        fit(_bnet(X, y), X[:10], y[:10], n=1)
    with pytest.raises(ValueError, match="unknown backend"):
        fit(_bnet(X, y), X, y, n=1, mode="nope")
    with pytest.raises(ValueError, match="checkpoint_path"):
        fit(_bnet(X, y), X, y, n=1, checkpoint_every=5)


@pytest.mark.backend
def test_numba_backend_matches_default_mode():
    X, y = _blobs(N=40)
    a = fit(_bnet(X, y, 10), X, y, n=20, mode="numba", random_seed=0, progressbar=False)
    b = fit(_bnet(X, y, 10), X, y, n=20, random_seed=0, progressbar=False)
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6)


def test_checkpoint_settings_are_checked_by_name_with_defaults_for_older_files(tmp_path):
    import pytensor

    from plasagne.pymc_bridge.checkpoint import CheckpointError, load_checkpoint, save_checkpoint

    path = tmp_path / "old.npz"
    save_checkpoint(path, [pytensor.shared(np.ones(2))], {}, {"method": "advi"})
    target = [pytensor.shared(np.zeros(2))]
    # a file from before the reparameterization setting existed reads as "weights"
    header, _ = load_checkpoint(
        path,
        target,
        expected={"method": "advi", "reparameterization": "weights"},
        defaults={"reparameterization": "weights"},
    )
    assert header["method"] == "advi" and target[0].get_value().tolist() == [1.0, 1.0]
    for expected, name in [
        ({"method": "map"}, "method"),
        ({"reparameterization": "local"}, "reparameterization"),
    ]:
        with pytest.raises(CheckpointError, match=f"written with {name}="):
            load_checkpoint(
                path, target, expected=expected, defaults={"reparameterization": "weights"}
            )


@pytest.mark.backend
def test_numba_cnn_fit_matches_default_mode():
    """The CNN's Numba step (chunked correlation, max-pool kernels, pooling before the
    activation, DirectNumbaLinker) against the reference mode's, step by step (float64:
    both draw with PyTensor's normal, so the same numbers)."""
    from plasagne.models import build_cnn
    from plasagne.random import set_rng

    rng = np.random.default_rng(3)
    y = rng.integers(0, 3, 32)
    X = rng.normal(size=(32, 1, 16, 16)) * 0.3
    X[np.arange(32), 0, y * 4 + 2, y * 4 + 2] += 3.0

    def bnet():
        set_rng(np.random.RandomState(0))
        return build_model(
            lambda p: build_cnn(
                p, input_shape=(None, 1, 16, 16), n_filters=3, n_dense=5, n_classes=3
            ),
            X,
            y,
            priors=GaussWeights(1.0),
            batch_size=8,
        )

    a = fit(bnet(), X, y, n=12, mode="numba", random_seed=0, progressbar=False)
    b = fit(bnet(), X, y, n=12, random_seed=0, progressbar=False)
    assert np.isfinite(a.losses).all()
    np.testing.assert_allclose(a.losses, b.losses, rtol=1e-6)
    step = a.extra["step_function"]
    ops = {type(node.op).__name__ for node in step.maker.fgraph.apply_nodes}
    assert {"ChunkedCorr", "ChunkedCorrGradFilters", "MaxPoolKernel", "MaxPoolKernelGrad"} <= ops
    assert type(step.maker.linker).__name__ == "DirectNumbaLinker"


class RecordingProgress:
    """Stands in for the rich progress bar: records what fit shows."""

    def __init__(self):
        self.shown = []

    def __enter__(self):
        return self

    def __exit__(self, *exc):
        return False

    def add_task(self, description, **fields):
        self.shown.append({"description": description, **fields})
        return 0

    def update(self, task, **fields):
        self.shown.append(fields)


def test_progress_says_compiling_until_the_first_step_and_rates_the_steps_after(monkeypatch):
    import importlib
    import time

    # the package's name "fit" is the function: get the module itself
    fit_module = importlib.import_module("plasagne.pymc_bridge.fit")
    shown = RecordingProgress()
    monkeypatch.setattr(fit_module, "progress_bar", lambda progressbar: shown)
    X, y = _blobs(N=60)
    bnet = _bnet(X, y, batch_size=20)
    set_batch = bnet.set_batch

    def slow_first_batch(*args):  # stands in for a first step that compiles for a while
        started = bool(shown.shown)  # the bar exists: the loop runs
        if started and not any(s.get("description") == "Fitting" for s in shown.shown):
            time.sleep(3.0)
        set_batch(*args)

    monkeypatch.setattr(bnet, "set_batch", slow_first_batch)
    fit(bnet, X, y, n=25, random_seed=0, progressbar=True)
    assert shown.shown[0]["description"] == "Compiling"
    assert shown.shown[1] == {"description": "Fitting", "completed": 1}
    rates = [s["rate"] for s in shown.shown[2:]]
    assert [s["completed"] for s in shown.shown[2:]] == [10, 20, 25]
    last = float(rates[-1].split()[0].replace(",", ""))
    assert last > 24 / 3.0 * 1.5  # with the first step counted it would be at most ~8 it/s
