"""IDX files (the format of MNIST and Fashion-MNIST) and their checksums.

A dataset directory holds the four files under MNIST's names,
``train-images-idx3-ubyte``, ``train-labels-idx1-ubyte``,
``t10k-images-idx3-ubyte`` and ``t10k-labels-idx1-ubyte``, each raw or gzip
compressed (``.gz`` added to the name).  When the directory has a
``SHA256SUMS`` file (``sha256sum`` output: ``<64 hex digits>  <file name>``
per line), every file read must be listed there with a matching SHA-256.
"""
from __future__ import annotations

import gzip
import hashlib
import re
import struct
import zlib
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Split, make_dataset

#: split -> (images, labels) file names, without ``.gz``.
IDX_FILES = {"train": ("train-images-idx3-ubyte", "train-labels-idx1-ubyte"),
             "test": ("t10k-images-idx3-ubyte", "t10k-labels-idx1-ubyte")}
_IDX_TYPES = {0x08: np.uint8, 0x09: np.int8, 0x0B: ">i2", 0x0C: ">i4", 0x0D: ">f4", 0x0E: ">f8"}
_SUM_LINE = re.compile(r"([0-9a-fA-F]{64}) [ *](.+)")


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
    except (OSError, EOFError, zlib.error) as e:
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


def find_idx(directory: Path, stem: str) -> Path:
    """``stem.gz`` or ``stem`` in `directory`."""
    for name in (stem + ".gz", stem):
        if (directory / name).exists():
            return directory / name
    raise DataError(f"{directory / stem}[.gz]: file not found (expected the MNIST-format file {stem})")


def read_sha256sums(directory: Path) -> dict[str, str] | None:
    """File name -> SHA-256 from the directory's ``SHA256SUMS``; None without one."""
    sums = directory / "SHA256SUMS"
    if not sums.exists():
        return None
    try:
        text = sums.read_bytes().decode("utf-8")
    except UnicodeDecodeError as e:
        raise DataError(f"{sums}: not UTF-8 text (byte {e.start})") from None
    except OSError as e:
        raise DataError(f"{sums}: cannot read ({e})") from None
    table = {}
    for number, line in enumerate(text.splitlines(), 1):
        if not line.strip():
            continue
        match = _SUM_LINE.fullmatch(line.rstrip())
        if match is None:
            raise DataError(f"{sums}, line {number}: {line[:60]!r} is not a sha256sum line "
                            "('<64 hex digits>  <file name>')")
        table[match[2]] = match[1].lower()
    return table


def verify_sha256(path: Path, table: dict[str, str] | None) -> None:
    """Check `path` against the ``SHA256SUMS`` table of its directory (None: no such file)."""
    if table is None:
        return
    if path.name not in table:
        raise DataError(f"{path}: not listed in {path.parent / 'SHA256SUMS'} (every file read must be)")
    with open(path, "rb") as f:
        got = hashlib.file_digest(f, "sha256").hexdigest()
    if got != table[path.name]:
        raise DataError(f"{path}: SHA-256 {got} does not match {table[path.name]} listed in SHA256SUMS (corrupt file)")


def read_idx_files(directory: Path) -> dict[str, tuple[Path, np.ndarray, str]]:
    """File stem -> (path, array, MD5 of the uncompressed bytes) of the four IDX files in `directory`,
    each verified against ``SHA256SUMS`` when the directory has one."""
    sums = read_sha256sums(directory)
    files = {}
    for stem in (stem for pair in IDX_FILES.values() for stem in pair):
        path = find_idx(directory, stem)
        verify_sha256(path, sums)
        files[stem] = (path, *read_idx(path))
    return files


def idx_dataset(name: str, files: dict[str, tuple[Path, np.ndarray, str]]) -> Dataset:
    """The checked Dataset of :func:`read_idx_files`' arrays (bytes scaled by 1/255, 3-D images kept as such)."""
    splits = []
    for images, labels in IDX_FILES.values():
        (x_path, x, _), (y_path, y, _) = files[images], files[labels]
        splits.append(Split(x, y, str(x_path), str(y_path)))
    return make_dataset(name, *splits)


def load_idx_dir(directory) -> Dataset:
    """The ``idx`` dataset: the four MNIST-named IDX files in `directory` (e.g. Fashion-MNIST)."""
    directory = Path(directory)
    if not directory.exists():
        raise DataError(f"IDX directory {directory} does not exist")
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory (dataset idx reads the IDX files in a directory)")
    return idx_dataset("idx", read_idx_files(directory))
