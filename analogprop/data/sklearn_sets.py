"""scikit-learn's bundled datasets (``sklearn:<name>``), read offline from the installed library.

Each is split once, stratified by class, with a fixed seed (the same split on
every machine and run); each feature is min-max scaled to [0, 1] by its range
in the training split, test values clipped to [0, 1].  The digits keep their
8x8 image shape.
"""
from __future__ import annotations

from ..errors import ConfigError
from .dataset import Dataset, Split, make_dataset

#: name -> image shape (None: flat features)
SKLEARN_SETS = {"digits": (8, 8), "iris": None, "wine": None, "breast_cancer": None}
TEST_FRACTION = 0.2
SPLIT_SEED = 0


def load_sklearn(name: str) -> Dataset:
    """The ``sklearn:<name>`` dataset, <name> one of :data:`SKLEARN_SETS`."""
    if name not in SKLEARN_SETS:
        raise ConfigError(f"unknown scikit-learn dataset {name!r} (accepted: "
                          f"{', '.join('sklearn:' + n for n in SKLEARN_SETS)})")
    from sklearn import datasets
    from sklearn.model_selection import train_test_split
    from sklearn.preprocessing import MinMaxScaler

    bunch = getattr(datasets, f"load_{name}")()
    x_train, x_test, y_train, y_test = train_test_split(
        bunch.data, bunch.target, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=bunch.target)
    scaler = MinMaxScaler(clip=True).fit(x_train)
    shape = SKLEARN_SETS[name] or x_train.shape[1:]
    source = f"scikit-learn's {name}"
    return make_dataset(f"sklearn:{name}",
                        Split(scaler.transform(x_train).reshape(-1, *shape), y_train, source, source),
                        Split(scaler.transform(x_test).reshape(-1, *shape), y_test, source, source))
