"""Datasets: the embedded 8x8 digits and MNIST-format IDX files.

Inputs are scaled to [0, 1]; labels are integers.  IDX files may be gzip
compressed or raw; each is verified against the known MD5 of its
uncompressed content and, when the directory has a ``SHA256SUMS`` file,
against that too.
"""
from __future__ import annotations

import gzip
import hashlib
import os
import struct
import urllib.request
from dataclasses import dataclass
from pathlib import Path

import numpy as np

from .errors import DataError

#: MD5 of the uncompressed MNIST files (Y. LeCun's distribution).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
DATA_ENV = "ANALOGPROP_DATA"
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}


@dataclass
class Dataset:
    name: str
    x_train: np.ndarray
    y_train: np.ndarray
    x_test: np.ndarray
    y_test: np.ndarray
    image_shape: tuple[int, int] | None = None  # (height, width) of the flattened inputs, if they are images

    @property
    def n_inputs(self) -> int:
        return self.x_train.shape[1]

    @property
    def n_classes(self) -> int:
        return int(max(self.y_train.max(), self.y_test.max())) + 1

    def subset(self, n_train=None, n_test=None) -> "Dataset":
        return Dataset(self.name, self.x_train[:n_train], self.y_train[:n_train],
                       self.x_test[:n_test], self.y_test[:n_test], self.image_shape)


def load_digits(test_fraction: float = 0.2) -> Dataset:
    """scikit-learn's 8x8 digits (1,797 samples, shipped with the library), split with a fixed seed."""
    from sklearn.datasets import load_digits as sk_digits

    d = sk_digits()
    x = (d.data / 16.0).astype(np.float64)
    y = d.target.astype(np.int64)
    order = np.random.default_rng(0).permutation(len(y))
    n_test = int(round(len(y) * test_fraction))
    test, train = order[:n_test], order[n_test:]
    return Dataset("digits", x[train], y[train], x[test], y[test], (8, 8))


def read_idx(path) -> tuple[np.ndarray, str]:
    """Read one IDX file (gzip or raw): its array and the MD5 of its uncompressed bytes.

    Raises DataError naming the file on any defect.
    """
    path = Path(path)
    try:
        raw = path.read_bytes()
        if raw[:2] == b"\x1f\x8b":
            raw = gzip.decompress(raw)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, EOFError) as e:
        raise DataError(f"{path}: cannot read or decompress ({e})") from None
    if len(raw) < 4 or raw[0] != 0 or raw[1] != 0 or raw[2] not in _IDX_TYPES:
        raise DataError(f"{path}: not an IDX file (bad magic number {raw[:4].hex()})")
    ndim = raw[3]
    header = 4 + 4 * ndim
    if len(raw) < header:
        raise DataError(f"{path}: truncated IDX header")
    shape = struct.unpack(f">{ndim}I", raw[4:header])
    dtype = np.dtype(_IDX_TYPES[raw[2]])
    expected = int(np.prod(shape)) * dtype.itemsize
    if len(raw) - header != expected:
        raise DataError(f"{path}: IDX header promises {shape} ({expected} bytes of data), file holds {len(raw) - header}")
    return np.frombuffer(raw, dtype, offset=header).reshape(shape), hashlib.md5(raw).hexdigest()


def _find(directory: Path, stem: str) -> Path:
    for name in (stem + ".gz", stem):
        if (directory / name).exists():
            return directory / name
    raise DataError(f"{directory / stem}[.gz]: file not found (expected the MNIST-format file {stem})")


def _sha256_table(directory: Path) -> dict[str, str]:
    sums = directory / "SHA256SUMS"
    if not sums.exists():
        return {}
    table = {}
    for line in sums.read_text().splitlines():
        parts = line.split()
        if len(parts) == 2:
            table[parts[1].lstrip("*")] = parts[0].lower()
    return table


def data_dir(option=None) -> Path:
    """The MNIST directory: option, then $ANALOGPROP_DATA, then the user cache."""
    if option:
        return Path(option)
    if os.environ.get(DATA_ENV):
        return Path(os.environ[DATA_ENV])
    return Path(os.environ.get("XDG_CACHE_HOME", Path.home() / ".cache")) / "analogprop" / "mnist"


def download_mnist(directory: Path) -> None:
    """Fetch the four MNIST files into `directory` (only when asked: needs the network)."""
    directory.mkdir(parents=True, exist_ok=True)
    for stem in MNIST_MD5:
        target = directory / f"{stem}.gz"
        if not target.exists():
            tmp = target.with_suffix(".part")
            urllib.request.urlretrieve(MNIST_MIRROR + target.name, tmp)
            os.replace(tmp, target)


def load_mnist(directory=None, download: bool = False) -> Dataset:
    """MNIST from IDX files, verified against known checksums."""
    directory = data_dir(directory)
    if download:
        download_mnist(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory {directory} does not exist (give --data-dir, set {DATA_ENV}, or use --download)")
    sha = _sha256_table(directory)
    arrays = {}
    for stem, md5 in MNIST_MD5.items():
        path = _find(directory, stem)
        if path.name in sha:
            got = hashlib.sha256(path.read_bytes()).hexdigest()
            if got != sha[path.name]:
                raise DataError(f"{path}: SHA-256 {got} does not match {sha[path.name]} listed in SHA256SUMS (corrupt file)")
        arr, digest = read_idx(path)
        if digest != md5:
            raise DataError(f"{path}: MD5 of the uncompressed data is {digest}, expected {md5} (corrupt or not MNIST)")
        arrays[stem] = arr
    xtr = arrays["train-images-idx3-ubyte"].reshape(60000, -1) / 255.0
    xte = arrays["t10k-images-idx3-ubyte"].reshape(10000, -1) / 255.0
    return Dataset("mnist", xtr, arrays["train-labels-idx1-ubyte"].astype(np.int64),
                   xte, arrays["t10k-labels-idx1-ubyte"].astype(np.int64), (28, 28))


def load_dataset(name: str, data_dir_option=None, download: bool = False) -> Dataset:
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(data_dir_option, download)
    raise DataError(f"unknown dataset {name!r} (choose 'digits' or 'mnist')")
