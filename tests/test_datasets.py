"""MNIST loading from IDX files and archives the tests write themselves."""

import gzip
import struct

import numpy as np
import pytest

from plasagne import datasets
from plasagne.datasets import DataError, DataNotFoundError, load_mnist, read_idx


def idx_bytes(array, code=0x08):
    header = struct.pack(">BBBB", 0, 0, code, array.ndim) + struct.pack(
        f">{array.ndim}I", *array.shape
    )
    dtype = {0x08: ">u1", 0x0C: ">i4", 0x0D: ">f4"}[code]
    return header + array.astype(dtype).tobytes()


def fake_mnist(n_train=12, n_test=5, seed=0):
    rng = np.random.default_rng(seed)
    return {
        "x_train": rng.integers(0, 256, (n_train, 28, 28), dtype=np.uint8),
        "y_train": rng.integers(0, 10, n_train, dtype=np.uint8),
        "x_test": rng.integers(0, 256, (n_test, 28, 28), dtype=np.uint8),
        "y_test": rng.integers(0, 10, n_test, dtype=np.uint8),
    }


def write_idx_dir(directory, arrays, compress=True):
    for key, filename in datasets.IDX_FILES.items():
        blob = idx_bytes(arrays[key])
        if compress:
            (directory / filename).write_bytes(gzip.compress(blob))
        else:
            (directory / filename[:-3]).write_bytes(blob)


def check_same(loaded, arrays):
    np.testing.assert_array_equal(loaded.x_train[:, 0], arrays["x_train"] / np.float32(255))
    np.testing.assert_array_equal(loaded.y_train, arrays["y_train"])
    np.testing.assert_array_equal(loaded.x_test[:, 0], arrays["x_test"] / np.float32(255))
    np.testing.assert_array_equal(loaded.y_test, arrays["y_test"])
    assert loaded.x_train.dtype == np.float32 and loaded.y_train.dtype == np.int32


@pytest.mark.parametrize("compress", [True, False])
def test_idx_directory_roundtrip(tmp_path, compress):
    arrays = fake_mnist()
    write_idx_dir(tmp_path, arrays, compress)
    check_same(load_mnist(tmp_path), arrays)


def test_read_idx_big_endian_types(tmp_path):
    ints = np.array([[1, -2, 70000], [3, 4, -5]], dtype=np.int32)
    (tmp_path / "a.idx").write_bytes(idx_bytes(ints, 0x0C))
    np.testing.assert_array_equal(read_idx(tmp_path / "a.idx"), ints)
    floats = np.array([0.5, -1.25], dtype=np.float32)
    (tmp_path / "b.idx.gz").write_bytes(gzip.compress(idx_bytes(floats, 0x0D)))
    np.testing.assert_array_equal(read_idx(tmp_path / "b.idx.gz"), floats)


def test_npz_and_environment_variable(tmp_path, monkeypatch):
    arrays = fake_mnist()
    np.savez(tmp_path / "m.npz", **arrays)
    check_same(load_mnist(tmp_path / "m.npz"), arrays)
    monkeypatch.setenv("PLASAGNE_DATA", str(tmp_path / "m.npz"))
    check_same(load_mnist(), arrays)
    monkeypatch.delenv("PLASAGNE_DATA")
    cache = tmp_path / "cache"
    cache.mkdir()
    write_idx_dir(cache, arrays)
    check_same(load_mnist(cache_dir=cache), arrays)


def test_missing_data_says_where_to_put_it(tmp_path, monkeypatch):
    monkeypatch.delenv("PLASAGNE_DATA", raising=False)
    with pytest.raises(
        DataNotFoundError, match=f"looked in {tmp_path}.*train-images-idx3-ubyte.gz"
    ):
        load_mnist(cache_dir=tmp_path)
    with pytest.raises(DataNotFoundError, match="does not exist"):
        load_mnist(tmp_path / "nope")


@pytest.mark.parametrize(
    "corrupt, message",
    [
        (lambda b: b[:100], "truncated data"),
        (lambda b: b[:6], "truncated IDX header"),
        (lambda b: b"\x01\x02" + b[2:], "not an IDX file"),
    ],
)
def test_corrupt_idx_files(tmp_path, corrupt, message):
    arrays = fake_mnist()
    write_idx_dir(tmp_path, arrays)
    path = tmp_path / datasets.IDX_FILES["x_train"]
    path.write_bytes(gzip.compress(corrupt(gzip.decompress(path.read_bytes()))))
    with pytest.raises(DataError, match=message):
        load_mnist(tmp_path)


def test_wrong_shapes_labels_and_counts(tmp_path):
    arrays = fake_mnist()
    bad = dict(arrays, x_test=np.zeros((5, 27, 28), np.uint8))
    np.savez(tmp_path / "a.npz", **bad)
    with pytest.raises(DataError, match=r"\(N, 28, 28\), found \(5, 27, 28\)"):
        load_mnist(tmp_path / "a.npz")
    bad = dict(arrays, y_train=np.full(12, 11, np.uint8))
    np.savez(tmp_path / "b.npz", **bad)
    with pytest.raises(DataError, match="digits 0-9"):
        load_mnist(tmp_path / "b.npz")
    bad = dict(arrays, y_train=arrays["y_train"][:5])
    np.savez(tmp_path / "c.npz", **bad)
    with pytest.raises(DataError, match="12 images but 5 labels"):
        load_mnist(tmp_path / "c.npz")
    np.savez(tmp_path / "d.npz", x_train=arrays["x_train"])
    with pytest.raises(DataError, match="missing arrays"):
        load_mnist(tmp_path / "d.npz")


def test_download_checks_checksums(tmp_path, monkeypatch):
    import hashlib

    mirror = tmp_path / "mirror"
    mirror.mkdir()
    arrays = fake_mnist()
    write_idx_dir(mirror, arrays)
    sums = {
        f: hashlib.sha256((mirror / f).read_bytes()).hexdigest()
        for f in datasets.IDX_FILES.values()
    }
    target = datasets.download_mnist(
        tmp_path / "cache", mirrors=[mirror.as_uri() + "/"], checksums=sums
    )
    check_same(load_mnist(cache_dir=target), arrays)
    # load_mnist(download=True) goes through the (patched) mirror list and checksums
    monkeypatch.setattr(datasets, "MIRRORS", [mirror.as_uri() + "/"])
    monkeypatch.setattr(datasets, "CHECKSUMS", sums)
    monkeypatch.delenv("PLASAGNE_DATA", raising=False)
    check_same(load_mnist(download=True, cache_dir=tmp_path / "fresh"), arrays)
    assert sorted(p.name for p in (tmp_path / "fresh").iterdir()) == sorted(sums)
    wrong = dict(sums, **{datasets.IDX_FILES["y_test"]: "0" * 64})
    with pytest.raises(DataNotFoundError, match="checksum mismatch"):
        datasets.download_mnist(
            tmp_path / "other", mirrors=[mirror.as_uri() + "/"], checksums=wrong
        )


def test_shipped_sample():
    data = datasets.load_mnist_sample()
    assert data.x_train.shape == (6000, 1, 28, 28) and data.x_test.shape == (1000, 1, 28, 28)
    assert data.x_train.min() >= 0 and data.x_train.max() <= 1
    assert set(np.unique(data.y_train)) == set(range(10))
    assert data.y_test[:10].tolist() == [7, 2, 1, 0, 4, 1, 4, 9, 5, 9]
