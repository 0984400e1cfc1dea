"""The Dataset container and the checks every dataset read from files passes.

Inputs must end in [0, 1], the range of the network's states: arrays of bytes
(``uint8``, as in IDX files) are divided by 255; any other numeric array must
already lie in [0, 1] and is refused otherwise (rescaling it here would train
on data other than the user's).  Labels are the class indices 0..K-1, each
class with at least one training sample; every test label is one of them.
"""
from __future__ import annotations

from dataclasses import dataclass

import numpy as np

from ..errors import DataError


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


@dataclass(frozen=True)
class Split:
    """One split as read: inputs (samples first), labels, and where each came from (named in errors)."""
    x: np.ndarray
    y: np.ndarray
    x_source: str
    y_source: str


def make_dataset(name: str, train: Split, test: Split) -> Dataset:
    """A checked Dataset: inputs (samples, features) or (samples, height, width) images, flattened and in
    [0, 1]; labels 0..K-1.  Raises DataError naming the file and the defect."""
    x_train, image_shape = _inputs(train)
    x_test, _ = _inputs(test)
    if train.x.shape[1:] != test.x.shape[1:]:
        raise DataError(f"{test.x_source}: samples of shape {test.x.shape[1:]}, but the training samples "
                        f"({train.x_source}) have shape {train.x.shape[1:]}")
    y_train, y_test = _labels(train), _labels(test)
    k = int(y_train.max()) + 1
    missing = np.setdiff1d(np.arange(k), y_train)
    if missing.size:
        raise DataError(f"{train.y_source}: labels must be the classes 0..{k - 1}, each with training samples; "
                        f"none has label {', '.join(map(str, missing[:5]))}")
    beyond = np.flatnonzero(y_test >= k)
    if beyond.size:
        i = int(beyond[0])
        raise DataError(f"{test.y_source}: label {y_test[i]} of sample {i} is not a training class (0..{k - 1})")
    return Dataset(name, x_train, y_train, x_test, y_test, image_shape)


def _inputs(split: Split) -> tuple[np.ndarray, tuple[int, int] | None]:
    """The split's inputs as float64 rows in [0, 1], and their image shape (None for flat features)."""
    x, where = split.x, split.x_source
    if x.dtype.kind not in "biuf":
        raise DataError(f"{where}: inputs must be numbers, got dtype {x.dtype}")
    if x.ndim not in (2, 3):
        raise DataError(f"{where}: inputs of shape {x.shape}; expected (samples, features) "
                        "or (samples, height, width)")
    if len(x) == 0:
        raise DataError(f"{where}: no samples")
    if x[0].size == 0:
        raise DataError(f"{where}: samples have no features (shape {x.shape})")
    values = x / 255.0 if x.dtype == np.uint8 else x.astype(np.float64)
    finite = np.isfinite(values)
    if not finite.all():
        sample = int(np.argwhere(~finite)[0][0])
        raise DataError(f"{where}: {finite.size - np.count_nonzero(finite)} NaN or infinite input value(s), "
                        f"the first in sample {sample}")
    lo, hi = values.min(), values.max()
    if lo < 0 or hi > 1:
        raise DataError(f"{where}: inputs range over [{lo:g}, {hi:g}]; they must lie in [0, 1], the network's "
                        "state range (scale them first; only uint8 bytes are divided by 255 on loading)")
    image_shape = tuple(int(s) for s in x.shape[1:]) if x.ndim == 3 else None
    return values.reshape(len(x), -1), image_shape


def _labels(split: Split) -> np.ndarray:
    """The split's labels as int64 class indices >= 0, one per sample."""
    y, where = split.y, split.y_source
    if y.ndim != 1:
        raise DataError(f"{where}: labels of shape {y.shape}; expected one label per sample")
    if len(y) != len(split.x):
        raise DataError(f"{split.x_source} holds {len(split.x)} samples but {where} holds {len(y)} labels")
    if y.dtype.kind not in "iuf":
        raise DataError(f"{where}: labels must be integers, got dtype {y.dtype}")
    if y.dtype.kind == "f":
        bad = np.flatnonzero(~np.isfinite(y) | (y != np.round(y)))
        if bad.size:
            i = int(bad[0])
            raise DataError(f"{where}: label {y[i]:g} of sample {i} is not an integer class index")
    negative = np.flatnonzero(y < 0)
    if negative.size:
        i = int(negative[0])
        raise DataError(f"{where}: label {y[i]:g} of sample {i} is negative; labels are class indices 0..K-1")
    return y.astype(np.int64)
