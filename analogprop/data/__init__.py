"""Datasets: the embedded 8x8 digits, MNIST, any directory of IDX files, a .npz archive, CSV files and
scikit-learn's bundled sets, selected by name with :func:`load_dataset`.  Inputs end in [0, 1] (the
network's state range) and labels are class indices 0..K-1; defective data raise DataError naming the file.
"""
from .catalog import load_dataset
from .dataset import Dataset
from .embedded import load_digits
from .idx import read_idx
from .mnist import DATA_ENV, MNIST_MD5, data_dir, load_mnist

__all__ = ["DATA_ENV", "MNIST_MD5", "Dataset", "data_dir", "load_digits", "load_dataset", "load_mnist", "read_idx"]
