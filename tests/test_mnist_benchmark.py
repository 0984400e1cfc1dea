"""`analogprop train` on MNIST end to end (subsets, resume, --init, --init-matching, --threads, CPU time per
epoch) on a small slice of a fake MNIST directory, and the checkpoint example."""
import hashlib
import json

import numpy as np
import pytest

from analogprop import data as D
from analogprop.runs.directory import load_checkpoint
from analogprop.cli import main
from analogprop.runs.directory import RunDir
from conftest import load_script, printed_values
from test_data_runs import idx_bytes


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """An MNIST-format directory (raw IDX files, class-dependent patches) with its checksums registered."""
    rng = np.random.default_rng(0)
    labels = rng.integers(0, 10, 70000)
    images = np.zeros((70000, 28, 28), np.uint8)
    for c in range(10):
        images[labels == c, 2 * c:2 * c + 6, 4:20] = 200
    files = {"train-images-idx3-ubyte": images[:60000], "train-labels-idx1-ubyte": labels[:60000],
             "t10k-images-idx3-ubyte": images[60000:], "t10k-labels-idx1-ubyte": labels[60000:]}
    md5 = {}
    for stem, arr in files.items():
        raw = idx_bytes(arr)
        md5[stem] = hashlib.md5(raw).hexdigest()
        (tmp_path / stem).write_bytes(raw)
    monkeypatch.setattr(D, "MNIST_MD5", md5)
    return tmp_path


def _args(data_dir, out, epochs):
    return ["train", "--dataset", "mnist", "--data-dir", str(data_dir), "--arch", "784-24-16-10",
            "--lrs", "0.4,0.1,0.01", "--beta", "1", "--tol", "1e-4", "--dtype", "float32", "--train-subset", "60",
            "--test-subset", "30", "--epochs", str(epochs), "--out", str(out), "--quiet"]


def test_train_on_mnist_subsets_resumes_and_example_evaluates(fake_mnist, tmp_path, capsys):
    full, part = tmp_path / "full", tmp_path / "part"
    assert main(_args(fake_mnist, full, 2) + ["--threads", "2"]) == 0
    records = RunDir(full).metrics()
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(len(r["alignment"]) == 2 and 0 <= r["test_error"] <= 1 for r in records)
    for r in records:  # CPU seconds per epoch: training and evaluation
        assert 0 < r["cpu_eval_seconds"] < r["cpu_seconds"]
    assert f"test error {records[-1]['test_error']:.2%}" in capsys.readouterr().out
    cfg = json.loads((full / "config.json").read_text())
    assert (cfg["train_subset"], cfg["test_subset"], cfg["dataset"]) == (60, 30, "mnist")

    # one epoch, then resume to two: same parameters as the uninterrupted run, subsets kept from config.json
    assert main(_args(fake_mnist, part, 1)) == 0
    assert main(["train", "--data-dir", str(fake_mnist), "--out", str(part), "--epochs", "2", "--resume",
                 "--quiet"]) == 0  # no --arch, no subsets: the run's
    a, meta = load_checkpoint(full / "checkpoint.npz")
    b, _ = load_checkpoint(part / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2
    assert all(np.array_equal(a[k], b[k]) for k in a)
    assert RunDir(part).metrics()[-1]["test_error"] == records[-1]["test_error"]
    # a resumed run refuses other subsets
    assert main(["train", "--out", str(part), "--epochs", "3", "--resume", "--train-subset", "50"]) == 2
    assert "train_subset is 60; got 50" in capsys.readouterr().err

    # --init starts from a checkpoint's parameters (zero learning rates: they stay as loaded)
    init = tmp_path / "init"
    assert main(_args(fake_mnist, init, 1) + ["--init", str(full / "checkpoint.npz"), "--lrs", "0,0,0"]) == 0
    c, meta = load_checkpoint(init / "checkpoint.npz")
    assert all(np.array_equal(a[k], c[k]) for k in a) and meta["init"] == str(full / "checkpoint.npz")
    # zero rates for some pairs freeze them (a frozen readout trains the output pair alone)
    frozen = tmp_path / "frozen"
    assert main(_args(fake_mnist, frozen, 1) + ["--init", str(full / "checkpoint.npz"), "--lrs", "0,0,0.01"]) == 0
    f, _ = load_checkpoint(frozen / "checkpoint.npz")
    assert all(np.array_equal(a[k], f[k]) for k in ("fwd0", "fwd1", "bwd1", "bias1", "bias2"))
    assert not np.array_equal(a["fwd2"], f["fwd2"])
    # --init-matching moves the layers whose names and shapes match into a wider net; the rest start fresh
    wide = _args(fake_mnist, tmp_path / "wide", 1)
    wide[wide.index("784-24-16-10")] = "784-24-32-10"
    capsys.readouterr()
    assert main(wide + ["--init-matching", str(full / "checkpoint.npz"), "--lrs", "0,0,0"]) == 0
    assert "parameters taken from" in capsys.readouterr().err
    w, meta = load_checkpoint(tmp_path / "wide" / "checkpoint.npz")
    assert np.array_equal(w["fwd0"], a["fwd0"]) and np.array_equal(w["bias1"], a["bias1"])
    assert w["fwd1"].shape == (32, 24) and w["bias2"].shape == (32,)
    assert not np.array_equal(w["fwd2"][:, :16], a["fwd2"])  # fresh (shape differs)
    assert "fwd0" in meta["init_taken"] and "fwd1" not in meta["init_taken"]
    # --init of a checkpoint that does not fit the architecture is refused before anything is written
    bad = [tmp_path / "bad" if v == str(tmp_path / "wide") else v for v in wide]
    assert main([str(v) for v in bad] + ["--init", str(full / "checkpoint.npz")]) == 2
    assert "analogprop: error:" in capsys.readouterr().err and not (tmp_path / "bad" / "config.json").exists()

    example = load_script("examples/evaluate_mnist_checkpoint.py")
    assert example.main([str(full), "--limit", "30"]) == 0
    printed = printed_values(capsys.readouterr().out)
    assert printed["epochs_trained"] == "2"
    assert printed["test_error"] == f"{100 * records[-1]['test_error']:.2f}%"  # same checkpoint, same 30 samples


def test_train_reports_missing_mnist(tmp_path, capsys):
    assert main(["train", "--dataset", "mnist", "--data-dir", str(tmp_path / "nowhere"), "--epochs", "1",
                 "--out", str(tmp_path / "r"), "--quiet"]) == 2
    assert "does not exist" in capsys.readouterr().err
