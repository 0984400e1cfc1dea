"""The embedded dataset: scikit-learn's 8x8 digits with the split every ``digits`` run has used."""
from __future__ import annotations

import numpy as np

from .dataset import Dataset


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
