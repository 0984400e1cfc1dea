"""MNIST: where its IDX files are looked up, how they are fetched, and their known MD5s."""
from __future__ import annotations

import os
import urllib.request
from pathlib import Path

from ..errors import DataError
from .dataset import Dataset
from .idx import idx_dataset, read_idx_files

#: MD5 of the uncompressed MNIST files (Y. LeCun's distribution).
MNIST_MD5 = {
    "train-images-idx3-ubyte": "6bbc9ace898e44ae57da46a324031adb",
    "train-labels-idx1-ubyte": "a25bea736e30d166cdddb491f175f624",
    "t10k-images-idx3-ubyte": "2646ac647ad5339dbf082846283269ea",
    "t10k-labels-idx1-ubyte": "27ae3e4e09519cfbb04c329615203637",
}
MNIST_MIRROR = "https://ossci-datasets.s3.amazonaws.com/mnist/"
DATA_ENV = "ANALOGPROP_DATA"


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
    """MNIST from IDX files, verified against the MD5s of ``analogprop.data.MNIST_MD5`` (looked up there when
    called, so that a replaced table applies) and ``SHA256SUMS`` when present."""
    from . import MNIST_MD5 as md5s

    directory = data_dir(directory)
    if download:
        download_mnist(directory)
    if not directory.is_dir():
        raise DataError(f"MNIST directory {directory} does not exist (give --data-dir, set {DATA_ENV}, or use --download)")
    files = read_idx_files(directory)
    for stem, md5 in md5s.items():
        path, _, digest = files[stem]
        if digest != md5:
            raise DataError(f"{path}: MD5 of the uncompressed data is {digest}, expected {md5} (corrupt or not MNIST)")
    return idx_dataset("mnist", files)
