"""The datasets by name: the ``dataset`` configuration key (``--dataset``), read from ``data_dir`` (``--data-dir``)."""
from __future__ import annotations

from ..errors import ConfigError
from .arrays import CSV_FILES, NPZ_KEYS, load_csv, load_npz
from .dataset import Dataset
from .embedded import load_digits
from .idx import load_idx_dir
from .mnist import load_mnist
from .sklearn_sets import SKLEARN_SETS, load_sklearn

#: datasets read from ``data_dir``: name -> (loader, what ``data_dir`` must be)
_FROM_DATA_DIR = {
    "idx": (load_idx_dir, "a directory of the four MNIST-named IDX files"),
    "npz": (load_npz, f"a .npz file with arrays {', '.join(NPZ_KEYS)}"),
    "csv": (load_csv, f"a directory with {' and '.join(CSV_FILES)}"),
}
ACCEPTED = (f"digits, mnist, {', '.join(_FROM_DATA_DIR)}, or sklearn:<name> with <name> one of "
            f"{', '.join(SKLEARN_SETS)}")


def load_dataset(name: str, data_dir_option=None, download: bool = False) -> Dataset:
    """The dataset `name`:

    - ``digits``: scikit-learn's 8x8 digits with the fixed split of :func:`load_digits` (``data_dir`` unused);
    - ``mnist``: MNIST, MD5-verified, in ``data_dir``, ``$ANALOGPROP_DATA`` or ``~/.cache/analogprop/mnist``;
      ``download`` fetches it (the only dataset it applies to);
    - ``idx``: the IDX files in the directory ``data_dir`` (:mod:`.idx`; Fashion-MNIST, for one);
    - ``npz``: the .npz file ``data_dir``; ``csv``: the directory ``data_dir`` of two CSV files (:mod:`.arrays`);
    - ``sklearn:<name>``: a dataset bundled with scikit-learn (:mod:`.sklearn_sets`).
    """
    if name == "digits":
        return load_digits()
    if name == "mnist":
        return load_mnist(data_dir_option, download)
    if name in _FROM_DATA_DIR:
        loader, what = _FROM_DATA_DIR[name]
        if not data_dir_option:
            raise ConfigError(f"dataset {name} reads data_dir (--data-dir), which is not set: give {what}")
        return loader(data_dir_option)
    if isinstance(name, str) and name.startswith("sklearn:"):
        return load_sklearn(name.removeprefix("sklearn:"))
    raise ConfigError(f"unknown dataset {name!r} (accepted: {ACCEPTED})")
