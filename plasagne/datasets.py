"""MNIST loading: IDX files (gzip or not), ``.npz`` archives, a cache directory, downloads
with checksums, and a small sample shipped inside the package.

Images come back as float32 arrays ``(N, 1, 28, 28)`` scaled to ``[0, 1]`` (NCHW, ready for
the layers), labels as int32.
"""

from __future__ import annotations

import gzip
import hashlib
import io
import os
import shutil
import struct
import urllib.request
from importlib import resources
from pathlib import Path
from typing import IO, Any, NamedTuple

import numpy as np

__all__ = [
    "MNIST",
    "DataError",
    "DataNotFoundError",
    "read_idx",
    "load_mnist",
    "load_mnist_sample",
    "download_mnist",
    "cache_dir",
    "IDX_FILES",
    "MIRRORS",
]

IDX_FILES = {
    "x_train": "train-images-idx3-ubyte.gz",
    "y_train": "train-labels-idx1-ubyte.gz",
    "x_test": "t10k-images-idx3-ubyte.gz",
    "y_test": "t10k-labels-idx1-ubyte.gz",
}
# SHA-256 of the canonical gzip files.
CHECKSUMS = {
    "train-images-idx3-ubyte.gz": "440fcabf73cc546fa21475e81ea370265605f56be210a4024d2ca8f203523609",  # noqa: E501
    "train-labels-idx1-ubyte.gz": "3552534a0a558bbed6aed32b30c495cca23d567ec52cac8be1a0730e8010255c",  # noqa: E501
    "t10k-images-idx3-ubyte.gz": "8d422c7b0a1c1c79245a5bcf07fe86e33eeafee792b84584aec276f5a2dbc4e6",  # noqa: E501
    "t10k-labels-idx1-ubyte.gz": "f7ae60f92e00ec6debd23a6088c31dbd2371eca3ffa0defaefb259924204aec6",  # noqa: E501
}
MIRRORS = [
    "https://ossci-datasets.s3.amazonaws.com/mnist/",
    "https://storage.googleapis.com/cvdf-datasets/mnist/",
]
_IDX_DTYPES = {0x08: ">u1", 0x09: ">i1", 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


class DataError(ValueError):
    """A data file exists but is not valid MNIST (bad header, truncated, wrong shape...).

    Examples
    --------
    >>> isinstance(DataError("x"), ValueError)
    True
    """


class DataNotFoundError(FileNotFoundError):
    """No MNIST files were found where plasagne looks for them.

    Examples
    --------
    >>> issubclass(DataNotFoundError, FileNotFoundError)
    True
    """


class MNIST(NamedTuple):
    """Training and test images ``(N, 1, 28, 28)`` float32 in [0, 1] and int32 labels.

    Examples
    --------
    >>> data = load_mnist_sample()
    >>> data.x_train.shape[1:], data.y_train.dtype
    ((1, 28, 28), dtype('int32'))
    """

    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray


def cache_dir() -> Path:
    """``$XDG_CACHE_HOME/plasagne``, or ``~/.cache/plasagne``.

    Examples
    --------
    >>> cache_dir().name
    'plasagne'
    """
    base = os.environ.get("XDG_CACHE_HOME") or os.path.join(os.path.expanduser("~"), ".cache")
    return Path(base) / "plasagne"


def _open(path_or_file: Any) -> tuple[IO[bytes], str]:
    if hasattr(path_or_file, "read"):
        raw = path_or_file.read()
        name = getattr(path_or_file, "name", "<stream>")
    else:
        name = os.fspath(path_or_file)
        with open(name, "rb") as fh:
            raw = fh.read()
    if raw[:2] == b"\x1f\x8b":
        try:
            raw = gzip.decompress(raw)
        except (OSError, EOFError) as err:
            raise DataError(f"{name}: corrupt gzip data ({err})") from None
    return io.BytesIO(raw), str(name)


def read_idx(path_or_file: Any) -> np.ndarray:
    """Read an IDX file (gzip-compressed or not) into a numpy array.

    The header is two zero bytes, a type code (0x08 unsigned byte, 0x09 byte, 0x0B short,
    0x0C int, 0x0D float, 0x0E double), the number of dimensions, then each size as a
    big-endian 32-bit integer.

    Examples
    --------
    >>> import io, struct
    >>> blob = struct.pack(">BBBBI", 0, 0, 0x08, 1, 3) + bytes([1, 2, 3])
    >>> read_idx(io.BytesIO(blob)).tolist()
    [1, 2, 3]
    """
    fh, name = _open(path_or_file)
    header = fh.read(4)
    if len(header) < 4:
        raise DataError(f"{name}: truncated IDX header")
    zero1, zero2, code, ndim = struct.unpack(">BBBB", header)
    if zero1 != 0 or zero2 != 0 or code not in _IDX_DTYPES:
        raise DataError(f"{name}: not an IDX file (magic bytes {header.hex()})")
    size_bytes = fh.read(4 * ndim)
    if len(size_bytes) < 4 * ndim:
        raise DataError(f"{name}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", size_bytes)
    dtype = np.dtype(_IDX_DTYPES[code])
    expected = int(np.prod(shape)) * dtype.itemsize
    data = fh.read()
    if len(data) < expected:
        raise DataError(
            f"{name}: truncated data: header promises {expected} bytes for shape {shape}, "
            f"found {len(data)}"
        )
    return (
        np.frombuffer(data[:expected], dtype=dtype).reshape(shape).astype(dtype.newbyteorder("="))
    )


def _validate(x: np.ndarray, y: np.ndarray, where: str) -> None:
    if x.ndim != 3 or x.shape[1:] != (28, 28):
        raise DataError(f"{where}: images must have shape (N, 28, 28), found {x.shape}")
    if y.ndim != 1:
        raise DataError(f"{where}: labels must be a vector, found shape {y.shape}")
    if len(x) != len(y):
        raise DataError(f"{where}: {len(x)} images but {len(y)} labels")
    if y.size and (y.min() < 0 or y.max() > 9):
        raise DataError(f"{where}: labels must be digits 0-9, found {y.min()}..{y.max()}")


def _finish(arrays: dict[str, np.ndarray], where: str) -> MNIST:
    _validate(arrays["x_train"], arrays["y_train"], f"{where} (training set)")
    _validate(arrays["x_test"], arrays["y_test"], f"{where} (test set)")

    def images(x: np.ndarray) -> np.ndarray:
        x = x.astype(np.float32)
        if x.max(initial=0) > 1.0:
            x /= 255.0
        return x[:, None]

    return MNIST(
        images(arrays["x_train"]),
        arrays["y_train"].astype(np.int32),
        images(arrays["x_test"]),
        arrays["y_test"].astype(np.int32),
    )


def _load_npz(path: Path) -> MNIST:
    try:
        with np.load(path, allow_pickle=False) as data:
            missing = [k for k in IDX_FILES if k not in data.files]
            if missing:
                raise DataError(f"{path}: missing arrays {missing}; expected {list(IDX_FILES)}")
            arrays = {k: data[k] for k in IDX_FILES}
    except (OSError, ValueError) as err:
        if isinstance(err, DataError):
            raise
        raise DataError(f"{path}: not a readable .npz archive ({err})") from None
    return _finish(arrays, str(path))


def _find_idx(directory: Path, filename: str) -> Path | None:
    for candidate in (filename, filename[:-3]):
        if (directory / candidate).exists():
            return directory / candidate
    return None


def _load_dir(directory: Path) -> MNIST | None:
    found = {k: _find_idx(directory, f) for k, f in IDX_FILES.items()}
    if all(found.values()):
        return _finish({k: read_idx(p) for k, p in found.items()}, str(directory))
    npz = sorted(directory.glob("*.npz"))
    if npz:
        return _load_npz(npz[0])
    return None


def download_mnist(
    directory: str | os.PathLike | None = None,
    mirrors: list[str] | None = None,
    checksums: dict[str, str] | None = None,
) -> Path:
    """Download the four IDX files into ``directory`` (default: :func:`cache_dir`),
    trying each mirror in turn and checking SHA-256 checksums.

    Examples
    --------
    >>> download_mnist.__name__
    'download_mnist'
    """
    target = Path(directory) if directory is not None else cache_dir()
    target.mkdir(parents=True, exist_ok=True)
    checksums = CHECKSUMS if checksums is None else checksums
    for filename in IDX_FILES.values():
        if (target / filename).exists():
            continue
        errors = []
        for base in mirrors or MIRRORS:
            url = base + filename
            try:
                with urllib.request.urlopen(url, timeout=30) as response:
                    blob = response.read()
            except OSError as err:
                errors.append(f"{url}: {err}")
                continue
            digest = hashlib.sha256(blob).hexdigest()
            if digest != checksums[filename]:
                errors.append(f"{url}: checksum mismatch ({digest})")
                continue
            tmp = target / (filename + ".part")
            tmp.write_bytes(blob)
            shutil.move(tmp, target / filename)
            break
        else:
            raise DataNotFoundError(
                f"could not download {filename}: "
                + "; ".join(errors)
                + f". Put the MNIST IDX files into {target} by hand"
            )
    return target


_default_cache_dir = cache_dir


def load_mnist(
    path: str | os.PathLike | None = None,
    *,
    download: bool = False,
    cache_dir: str | os.PathLike | None = None,
) -> MNIST:
    """Load MNIST from ``path``, ``$PLASAGNE_DATA``, or the cache directory.

    Parameters
    ----------
    path : str or PathLike, optional
        A directory with the four IDX files (``train-images-idx3-ubyte.gz`` etc., gzip or
        not) or an ``.npz`` file with ``x_train, y_train, x_test, y_test``.
    download : bool
        If nothing is found, download the IDX files into the cache directory.
    cache_dir : str or PathLike, optional
        The cache directory (default: the function :func:`cache_dir`, i.e.
        ``$XDG_CACHE_HOME/plasagne`` or ``~/.cache/plasagne``).

    Raises
    ------
    DataNotFoundError
        Nothing found (the message says where to put the files).
    DataError
        Files found but invalid (truncated, wrong header, wrong shapes, labels out of 0-9).

    Examples
    --------
    >>> import tempfile
    >>> try:
    ...     load_mnist(cache_dir=tempfile.mkdtemp())
    ... except DataNotFoundError as err:
    ...     print("not found")
    not found
    """
    candidates: list[Path] = []
    if path is not None:
        p = Path(path)
        if not p.exists():
            raise DataNotFoundError(f"MNIST path {p} does not exist")
        candidates.append(p)
    elif os.environ.get("PLASAGNE_DATA"):
        candidates.append(Path(os.environ["PLASAGNE_DATA"]))
    cache_path = Path(cache_dir) if cache_dir is not None else _default_cache_dir()
    if path is None:
        candidates.append(cache_path)
    for candidate in candidates:
        if candidate.is_file():
            return _load_npz(candidate)
        if candidate.is_dir():
            loaded = _load_dir(candidate)
            if loaded is not None:
                return loaded
    if download and path is None:
        return _load_dir(download_mnist(cache_path))  # type: ignore[return-value]
    where = ", ".join(str(c) for c in candidates)
    raise DataNotFoundError(
        f"MNIST not found (looked in {where}). Put the four IDX files "
        f"({', '.join(IDX_FILES.values())}) or an .npz with {', '.join(IDX_FILES)} there, "
        "set PLASAGNE_DATA, or pass download=True"
    )


def load_mnist_sample() -> MNIST:
    """The MNIST sample shipped in the package: the first 6,000 training and first 1,000
    test images of MNIST (see ``plasagne/data/README.md``).

    Examples
    --------
    >>> data = load_mnist_sample()
    >>> data.x_train.shape, data.x_test.shape
    ((6000, 1, 28, 28), (1000, 1, 28, 28))
    """
    with resources.as_file(resources.files("plasagne") / "data" / "mnist_sample.npz") as p:
        return _load_npz(Path(p))
