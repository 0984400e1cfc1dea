"""Datasets from arrays: a ``.npz`` archive, or a directory of two CSV files.

``npz``: one ``.npz`` file holding ``x_train``, ``y_train``, ``x_test`` and
``y_test`` (the layout of Keras's ``mnist.npz``): inputs of shape (samples,
features) or (samples, height, width), one integer label per sample.

``csv``: ``train.csv`` and ``test.csv`` in one directory, comma-separated, one
sample per line: the label first, then the numeric features; a first line with
no number in it is a header and skipped; blank lines are skipped.

Inputs must lie in [0, 1]; ``uint8`` arrays are bytes and divided by 255
(see :mod:`.dataset`).
"""
from __future__ import annotations

import csv
import warnings
import zipfile
from pathlib import Path

import numpy as np

from ..errors import DataError
from .dataset import Dataset, Split, make_dataset

NPZ_KEYS = ("x_train", "y_train", "x_test", "y_test")
CSV_FILES = ("train.csv", "test.csv")


def load_npz(path) -> Dataset:
    """The ``npz`` dataset: arrays :data:`NPZ_KEYS` of the archive `path` (never unpickled)."""
    path = Path(path)
    try:
        archive = np.load(path, allow_pickle=False)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
        raise DataError(f"{path}: not a readable .npz archive ({e})") from None
    if not isinstance(archive, np.lib.npyio.NpzFile):
        raise DataError(f"{path}: a single array; expected a .npz archive of {', '.join(NPZ_KEYS)}")
    with archive:
        missing = [k for k in NPZ_KEYS if k not in archive.files]
        if missing:
            raise DataError(f"{path}: no array {', '.join(missing)} (expected {', '.join(NPZ_KEYS)}; "
                            f"holds {', '.join(archive.files) or 'nothing'})")
        try:
            a = {k: archive[k] for k in NPZ_KEYS}
        except (OSError, ValueError, EOFError, zipfile.BadZipFile) as e:
            raise DataError(f"{path}: cannot read its arrays ({e})") from None
    return make_dataset("npz", *(Split(a[f"x_{s}"], a[f"y_{s}"], f"{path}[x_{s}]", f"{path}[y_{s}]")
                                 for s in ("train", "test")))


def load_csv(directory) -> Dataset:
    """The ``csv`` dataset: :data:`CSV_FILES` in `directory`, the label in the first column."""
    directory = Path(directory)
    if not directory.is_dir():
        raise DataError(f"{directory}: not a directory (dataset csv reads {' and '.join(CSV_FILES)} in a directory)")
    splits = []
    for name in CSV_FILES:
        path = directory / name
        table = read_csv(path)
        if table.shape[1] < 2:
            raise DataError(f"{path}: no feature columns after the label")
        splits.append(Split(table[:, 1:], table[:, 0], str(path), f"{path} (label column)"))
    return make_dataset("csv", *splits)


def read_csv(path: Path) -> np.ndarray:
    """The numbers of a CSV file as a (rows, columns) float array; DataError naming the line of a defect."""
    header = False
    try:
        with open(path, encoding="utf-8", newline="") as f:
            header = _is_header(f.readline())
            if not header:
                f.seek(0)
            with warnings.catch_warnings():
                warnings.simplefilter("ignore", UserWarning)  # an empty file: reported below
                table = np.loadtxt(f, delimiter=",", comments=None, ndmin=2)
    except FileNotFoundError:
        raise DataError(f"{path}: file not found") from None
    except UnicodeDecodeError:
        raise DataError(f"{path}: not UTF-8 text") from None
    except ValueError as e:
        raise DataError(_first_defect(path, header) or f"{path}: {e}") from None
    except OSError as e:
        raise DataError(f"{path}: cannot read ({e})") from None
    if table.size == 0:
        raise DataError(f"{path}: no samples")
    return table


def _is_number(field: str) -> bool:
    try:
        float(field)
    except ValueError:
        return False
    return True


def _is_header(line: str) -> bool:
    return bool(line.strip()) and not any(_is_number(f) for f in line.split(","))


def _first_defect(path: Path, header: bool) -> str | None:
    """The first ragged row or non-numeric field of the CSV file `path`, as a message."""
    with open(path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        if header:
            next(reader)
        width = first = None
        for row in reader:
            if not row:
                continue
            if width is None:
                width, first = len(row), reader.line_num
            elif len(row) != width:
                return f"{path}, line {reader.line_num}: {len(row)} fields, but line {first} has {width}"
            for column, field in enumerate(row, 1):
                if not _is_number(field):
                    return f"{path}, line {reader.line_num}, column {column}: {field[:40]!r} is not a number"
    return None
