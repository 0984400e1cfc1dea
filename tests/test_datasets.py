"""Datasets beyond the embedded digits: IDX directories (Fashion-MNIST layout, SHA256SUMS), .npz, CSV and
scikit-learn's bundled sets; training on them end to end; one clear error line for each kind of bad data."""
import gzip
import hashlib
import json
import re
import struct

import numpy as np
import pytest

from analogprop.cli import main
from analogprop.data import load_dataset, load_mnist
from analogprop.errors import DataError

N_TRAIN, N_TEST, H, W, K = 300, 30, 3, 4, 3
ARCH = f"{H * W}-8-{K}"


def images(n, seed):
    """n uint8 HxW images of classes 0..K-1 in turn: class c has its row c bright, the rest dark."""
    rng = np.random.default_rng(seed)
    y = np.arange(n) % K
    x = rng.integers(0, 60, (n, H, W))
    x[np.arange(n), y] = rng.integers(190, 256, (n, W))
    return x.astype(np.uint8), y.astype(np.uint8)


def idx_bytes(arr, type_code=0x08, dtype=np.uint8):
    arr = np.asarray(arr)
    return bytes([0, 0, type_code, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.astype(dtype).tobytes()


def write_idx(directory, gz=True, sums=True):
    """A Fashion-MNIST-like directory: the four MNIST-named IDX files (gzip), listed in SHA256SUMS."""
    (xtr, ytr), (xte, yte) = images(N_TRAIN, 0), images(N_TEST, 1)
    directory.mkdir(exist_ok=True)
    arrays = {"train-images-idx3-ubyte": xtr, "train-labels-idx1-ubyte": ytr,
              "t10k-images-idx3-ubyte": xte, "t10k-labels-idx1-ubyte": yte}
    for stem, arr in arrays.items():
        raw = idx_bytes(arr)
        (directory / (stem + ".gz" if gz else stem)).write_bytes(gzip.compress(raw) if gz else raw)
    if sums:
        write_sums(directory)
    return arrays


def write_sums(directory):
    lines = [f"{hashlib.sha256(p.read_bytes()).hexdigest()}  {p.name}"
             for p in sorted(directory.iterdir()) if p.name != "SHA256SUMS"]
    (directory / "SHA256SUMS").write_text("\n".join(lines) + "\n")


def write_npz(path, **changes):
    (xtr, ytr), (xte, yte) = images(N_TRAIN, 0), images(N_TEST, 1)
    arrays = {"x_train": xtr, "y_train": ytr, "x_test": xte, "y_test": yte, **changes}
    np.savez(path, **{k: v for k, v in arrays.items() if v is not None})
    return arrays


def csv_text(x, y, header=True):
    rows = [",".join(["label"] + [f"f{i}" for i in range(x.shape[1])])] if header else []
    rows += [",".join([str(int(label))] + [repr(float(v)) for v in row]) for row, label in zip(x, y)]
    return "\n".join(rows) + "\n"


def write_csv(directory):
    directory.mkdir(exist_ok=True)
    (xtr, ytr), (xte, yte) = images(N_TRAIN, 0), images(N_TEST, 1)
    (directory / "train.csv").write_text(csv_text(xtr.reshape(N_TRAIN, -1) / 255, ytr))
    (directory / "test.csv").write_text(csv_text(xte.reshape(N_TEST, -1) / 255, yte, header=False))
    return xtr.reshape(N_TRAIN, -1) / 255, ytr


def test_fashion_mnist_layout_loads_as_idx_but_not_as_mnist(tmp_path):
    arrays = write_idx(tmp_path)
    d = load_dataset("idx", tmp_path)
    assert d.name == "idx" and d.image_shape == (H, W) and d.n_inputs == H * W and d.n_classes == K
    np.testing.assert_array_equal(d.x_train, arrays["train-images-idx3-ubyte"].reshape(N_TRAIN, -1) / 255.0)
    np.testing.assert_array_equal(d.y_test, arrays["t10k-labels-idx1-ubyte"])
    with pytest.raises(DataError, match="MD5 .* expected .* not MNIST"):
        load_mnist(tmp_path)


def test_raw_idx_files_without_checksums(tmp_path):
    arrays = write_idx(tmp_path, gz=False, sums=False)
    d = load_dataset("idx", tmp_path)
    assert d.x_test.shape == (N_TEST, H * W) and d.x_train.max() == arrays["train-images-idx3-ubyte"].max() / 255


def test_npz_images_and_flat_features(tmp_path):
    arrays = write_npz(tmp_path / "a.npz")
    d = load_dataset("npz", tmp_path / "a.npz")
    assert d.image_shape == (H, W) and d.x_train.dtype == np.float64
    np.testing.assert_array_equal(d.x_test, arrays["x_test"].reshape(N_TEST, -1) / 255.0)
    flat = np.random.default_rng(2).random((N_TRAIN, 5))
    write_npz(tmp_path / "b.npz", x_train=flat, x_test=flat[:N_TEST], y_train=np.arange(N_TRAIN) % K * 1.0)
    d = load_dataset("npz", tmp_path / "b.npz")
    assert d.image_shape is None and np.array_equal(d.x_train, flat) and d.y_train.dtype == np.int64


def test_csv_with_and_without_header(tmp_path):
    x, y = write_csv(tmp_path)
    with open(tmp_path / "test.csv", "a") as f:
        f.write("\n")  # a trailing blank line is skipped
    d = load_dataset("csv", tmp_path)
    assert d.image_shape is None and d.x_train.shape == (N_TRAIN, H * W) and d.x_test.shape == (N_TEST, H * W)
    np.testing.assert_allclose(d.x_train, x)
    np.testing.assert_array_equal(d.y_train, y)


@pytest.mark.parametrize("name, n, classes, shape", [("digits", 1797, 10, (8, 8)), ("iris", 150, 3, None),
                                                    ("wine", 178, 3, None), ("breast_cancer", 569, 2, None)])
def test_sklearn_sets_split_stratified_and_scaled(name, n, classes, shape):
    d = load_dataset(f"sklearn:{name}")
    assert d.name == f"sklearn:{name}" and d.n_classes == classes and d.image_shape == shape
    assert len(d.y_train) + len(d.y_test) == n and len(d.y_test) == pytest.approx(0.2 * n, abs=1)
    share_train, share_test = (np.bincount(y, minlength=classes) / len(y) for y in (d.y_train, d.y_test))
    np.testing.assert_allclose(share_train, share_test, atol=0.03)
    for x in (d.x_train, d.x_test):
        assert x.min() >= 0 and x.max() <= 1
    assert d.x_train.max(axis=0).max() == 1
    again = load_dataset(f"sklearn:{name}")
    assert np.array_equal(again.x_test, d.x_test) and np.array_equal(again.y_train, d.y_train)


def train(tmp_path, dataset, data_dir, *extra):
    out = tmp_path / "run"
    assert main(["train", "--dataset", dataset, "--data-dir", str(data_dir), "--arch", ARCH, "--epochs", "1",
                 "--lrs", "1.0,0.5", "--beta", "1", "--batch-size", "5", "--out", str(out), "--quiet", *extra]) == 0
    return out


def test_train_and_evaluate_on_an_idx_directory(tmp_path, capsys):
    write_idx(tmp_path / "fashion")
    out = train(tmp_path, "idx", tmp_path / "fashion")
    assert json.loads((out / "config.json").read_text())["data_dir"] == str(tmp_path / "fashion")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["dataset"] == "idx" and res["test_error"] < 1 / 3  # chance: 2/3


def test_train_on_npz_then_evaluate_on_the_same_data_as_csv(tmp_path, capsys):
    write_npz(tmp_path / "data.npz")
    out = train(tmp_path, "npz", tmp_path / "data.npz")
    write_csv(tmp_path / "csv")
    capsys.readouterr()
    assert main(["evaluate", str(out), "--dataset", "csv", "--data-dir", str(tmp_path / "csv"), "--json"]) == 0
    res = json.loads(capsys.readouterr().out)
    assert res["dataset"] == "csv" and res["test_error"] < 1 / 3


def _rewrite_idx(stem, transform, sums=False):
    """Replace an IDX file of the directory by transform(its uncompressed bytes) (bytes written as given)."""
    def change(d):
        path = d / f"{stem}.gz"
        path.write_bytes(transform(gzip.decompress(path.read_bytes())))
        if sums:
            write_sums(d)
    return change


def _gz(raw):
    return gzip.compress(raw)


def _corrupt_deflate(raw):
    packed = bytearray(gzip.compress(raw))
    packed[12:30] = b"\xff" * 18
    return bytes(packed)


def _append_sums(text):
    def change(d):
        with open(d / "SHA256SUMS", "ab") as f:
            f.write(text)
    return change


def _npz(**changes):
    return lambda d: write_npz(d / "data.npz", **changes)


def _csv_line(name, line, text):
    """Replace line `line` (1-based) of the CSV file `name`."""
    def change(d):
        lines = (d / name).read_text().splitlines()
        lines[line - 1] = text
        (d / name).write_text("\n".join(lines) + "\n")
    return change


_x, _y = images(N_TRAIN, 0)
BAD = [
    # IDX directories (the Fashion-MNIST layout, with SHA256SUMS)
    ("idx", lambda d: (d / "t10k-labels-idx1-ubyte.gz").unlink(), r"t10k-labels-idx1-ubyte\[\.gz\]: file not found"),
    ("idx", _rewrite_idx("train-labels-idx1-ubyte", lambda raw: _gz(idx_bytes(_y[:-1])), sums=True),
     r"train-images-idx3-ubyte\.gz holds 300 samples but \S+train-labels-idx1-ubyte\.gz holds 299 labels"),
    ("idx", _rewrite_idx("t10k-images-idx3-ubyte", lambda raw: b"\x1f\x8b garbage", sums=True),
     r"t10k-images-idx3-ubyte\.gz: cannot read or decompress \(Unknown compression method\)"),  # BadGzipFile
    ("idx", _rewrite_idx("t10k-images-idx3-ubyte", _corrupt_deflate, sums=True),
     r"t10k-images-idx3-ubyte\.gz: cannot read or decompress \(Error -3 while decompressing"),  # zlib.error
    ("idx", _rewrite_idx("t10k-images-idx3-ubyte", lambda raw: _gz(raw)[:-30], sums=True),
     r"t10k-images-idx3-ubyte\.gz: cannot read or decompress .*end-of-stream"),  # EOFError
    ("idx", _rewrite_idx("train-images-idx3-ubyte", lambda raw: _gz(raw[:-5]), sums=True),
     r"train-images-idx3-ubyte\.gz: IDX header promises \(300, 3, 4\) \(3600 bytes of data\), file holds 3595"),
    ("idx", _rewrite_idx("train-images-idx3-ubyte", lambda raw: _gz(b"PK\x03\x04" + raw[4:]), sums=True),
     r"train-images-idx3-ubyte\.gz: not an IDX file \(bad magic number 504b0304\)"),
    ("idx", _rewrite_idx("train-images-idx3-ubyte", lambda raw: _gz(raw[:100] + bytes([raw[100] ^ 1]) + raw[101:])),
     r"train-images-idx3-ubyte\.gz: SHA-256 [0-9a-f]{64} does not match [0-9a-f]{64} listed in SHA256SUMS"),
    ("idx", _append_sums(b"d41d8cd98f00b204e9800998ecf8427e  README\n"),
     r"SHA256SUMS, line 5: 'd41d8cd98f00b204e9800998ecf8427e  README' is not a sha256sum line"),
    ("idx", _append_sums(b"\xff\xfe junk\n"), r"SHA256SUMS: not UTF-8 text \(byte \d+\)"),
    ("idx", lambda d: (d / "SHA256SUMS").write_text((d / "SHA256SUMS").read_text().splitlines()[0] + "\n"),
     r"train-images-idx3-ubyte\.gz: not listed in \S+SHA256SUMS"),
    ("idx", _rewrite_idx("t10k-labels-idx1-ubyte", lambda raw: _gz(idx_bytes(np.full(N_TEST, 7))), sums=True),
     r"t10k-labels-idx1-ubyte\.gz: label 7 of sample 0 is not a training class \(0\.\.2\)"),
    ("idx", _rewrite_idx("train-labels-idx1-ubyte", lambda raw: _gz(idx_bytes(_y + 1)), sums=True),
     r"train-labels-idx1-ubyte\.gz: labels must be the classes 0\.\.3, each with training samples; none has label 0"),
    ("idx", _rewrite_idx("train-images-idx3-ubyte", lambda raw: _gz(idx_bytes(_x.reshape(N_TRAIN, 1, H, W))), sums=True),
     r"train-images-idx3-ubyte\.gz: inputs of shape \(300, 1, 3, 4\); expected \(samples, features\) or "
     r"\(samples, height, width\)"),
    ("idx", _rewrite_idx("t10k-images-idx3-ubyte", lambda raw: _gz(idx_bytes(np.zeros((N_TEST, W, H)))), sums=True),
     r"t10k-images-idx3-ubyte\.gz: samples of shape \(4, 3\), but the training samples .* have shape \(3, 4\)"),
    ("idx", _rewrite_idx("train-images-idx3-ubyte", lambda raw: _gz(idx_bytes(
        np.where(np.arange(N_TRAIN * H * W).reshape(N_TRAIN, H, W) == 40, np.nan, 0.5), 0x0D, ">f4")), sums=True),
     r"train-images-idx3-ubyte\.gz: 1 NaN or infinite input value\(s\), the first in sample 3"),
    ("idx", lambda d: [p.unlink() for p in d.iterdir()] and d.rmdir(), r"IDX directory \S+ does not exist"),
    # .npz archives
    ("npz", _npz(y_test=None), r"data\.npz: no array y_test \(expected x_train, y_train, x_test, y_test"),
    ("npz", _npz(y_train=_y[:-1]), r"data\.npz\[x_train\] holds 300 samples but \S+data\.npz\[y_train\] holds 299 labels"),
    ("npz", _npz(y_train=_y + 0.5), r"data\.npz\[y_train\]: label 0\.5 of sample 0 is not an integer class index"),
    ("npz", _npz(y_test=np.r_[0, -1, np.zeros(N_TEST - 2)].astype(int)),
     r"data\.npz\[y_test\]: label -1 of sample 1 is negative"),
    ("npz", _npz(x_train=_x.astype(float)),
     r"data\.npz\[x_train\]: inputs range over \[0, 255\]; they must lie in \[0, 1\]"),
    ("npz", _npz(x_test=np.full((N_TEST, H, W), np.inf)), r"data\.npz\[x_test\]: 360 NaN or infinite input value"),
    ("npz", _npz(x_test=np.zeros((0, H, W)), y_test=np.zeros(0)), r"data\.npz\[x_test\]: no samples"),
    ("npz", _npz(x_train=np.full((N_TRAIN, 2), "a")), r"data\.npz\[x_train\]: inputs must be numbers, got dtype <U1"),
    ("npz", _npz(y_train=_y.reshape(-1, 1)), r"data\.npz\[y_train\]: labels of shape \(300, 1\)"),
    ("npz", lambda d: (d / "data.npz").write_bytes(b"not a zip archive"), r"data\.npz: not a readable \.npz archive"),
    ("npz", lambda d: (d / "data.npz").unlink(), r"data\.npz: file not found"),
    # CSV directories (train.csv with a header line, test.csv without)
    ("csv", _csv_line("train.csv", 3, "1,0.5"), r"train\.csv, line 3: 2 fields, but line 2 has 13"),
    ("csv", _csv_line("test.csv", 2, "1,abc" + ",0" * 11), r"test\.csv, line 2, column 2: 'abc' is not a number"),
    ("csv", _csv_line("test.csv", 4, "1,nan" + ",0" * 11), r"test\.csv: 1 NaN or infinite input value\(s\), "
     r"the first in sample 3"),
    ("csv", _csv_line("train.csv", 2, "2.5" + ",0" * 12), r"train\.csv \(label column\): label 2\.5 of sample 0 "
     r"is not an integer"),
    ("csv", lambda d: (d / "test.csv").write_text(""), r"test\.csv: no samples"),
    ("csv", lambda d: (d / "test.csv").write_bytes(b"1,0.5\n\xe9\n"), r"test\.csv: not UTF-8 text"),
    ("csv", lambda d: (d / "test.csv").write_text("0\n1\n"), r"test\.csv: no feature columns after the label"),
    ("csv", lambda d: (d / "test.csv").unlink(), r"test\.csv: file not found"),
]


@pytest.mark.parametrize("kind, change, message", BAD, ids=[f"{b[0]}-{i}" for i, b in enumerate(BAD)])
def test_bad_data_is_one_clear_line(tmp_path, capsys, kind, change, message):
    data = tmp_path / "data"
    {"idx": write_idx, "npz": lambda d: d.mkdir() or write_npz(d / "data.npz"), "csv": write_csv}[kind](data)
    change(data)
    path = data / "data.npz" if kind == "npz" else data
    assert main(["train", "--dataset", kind, "--data-dir", str(path), "--arch", ARCH, "--epochs", "1",
                 "--out", str(tmp_path / "run"), "--quiet"]) == 2
    err = capsys.readouterr().err
    assert len(err.strip().splitlines()) == 1 and re.search(message, err), err
    assert not (tmp_path / "run" / "checkpoint.npz").exists()


@pytest.mark.parametrize("args, message", [
    (["--dataset", "fashion"], r"unknown dataset 'fashion' \(accepted: digits, mnist, idx, npz, csv, or "
                               r"sklearn:<name> with <name> one of digits, iris, wine, breast_cancer\)"),
    (["--dataset", "sklearn:boston"], r"unknown scikit-learn dataset 'boston' \(accepted: sklearn:digits, "
                                      r"sklearn:iris, sklearn:wine, sklearn:breast_cancer\)"),
    (["--dataset", "idx"], r"dataset idx reads data_dir \(--data-dir\), which is not set"),
    (["--dataset", "sklearn:iris", "--arch", "4-8-3", "--shift", "1"], r"shift needs images"),
    (["--dataset", "idx", "--data-dir", "{idx}", "--arch", ARCH, "--shift", "3"],
     r"shift 3 moves 3x4 images out of the frame \(at most 2\)"),  # the IDX files' image shape is kept
])
def test_dataset_configuration_errors(tmp_path, capsys, args, message):
    write_idx(tmp_path / "idx")
    args = [a.format(idx=tmp_path / "idx") for a in args]
    assert main(["train", *args, "--out", str(tmp_path / "run"), "--quiet"]) == 2
    assert re.search(message, capsys.readouterr().err)
