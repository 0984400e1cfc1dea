"""benchmarks/mnist.py end to end on a small slice of a fake MNIST directory, and the checkpoint example."""
import hashlib
import json

import numpy as np
import pytest

from analogprop import data as D
from analogprop.runs.directory import load_checkpoint
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
    return ["--data-dir", str(data_dir), "--arch", "784-24-16-10", "--lrs", "0.4,0.1,0.01",
            "--train-subset", "60", "--test-subset", "30", "--epochs", str(epochs), "--out", str(out)]


def test_mnist_benchmark_runs_resumes_and_example_evaluates(fake_mnist, tmp_path, capsys):
    bench = load_script("benchmarks/mnist.py")
    full, part = tmp_path / "full", tmp_path / "part"
    assert bench.main(_args(fake_mnist, full, 2)) == 0
    printed = printed_values(capsys.readouterr().out)
    assert printed["epochs"] == "2"
    bench_final = printed
    records = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(len(r["alignment"]) == 2 and 0 <= r["test_error"] <= 1 for r in records)
    assert float(printed["final test error %"]) == round(100 * records[-1]["test_error"], 2)
    for name in ("errors.png", "alignment.png"):
        assert (full / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # one epoch, then resume to two: same parameters as the uninterrupted run
    assert bench.main(_args(fake_mnist, part, 1)) == 0
    capsys.readouterr()
    resume = ["--data-dir", str(fake_mnist), "--out", str(part), "--epochs", "2", "--resume"]  # no --arch
    assert bench.main(resume) == 0
    printed = printed_values(capsys.readouterr().out)
    assert printed["architecture"] == "784-24-16-10"  # the run's, not the option's default
    a, meta = load_checkpoint(full / "checkpoint.npz")
    b, _ = load_checkpoint(part / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2 and meta["subsets"] == [60, 30]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    # --init starts from a checkpoint's parameters (zero learning rates: they stay as loaded)
    init_args = _args(fake_mnist, tmp_path / "init", 1) + ["--init", str(full / "checkpoint.npz"), "--lrs", "0,0,0"]
    assert bench.main(init_args) == 0
    c, _ = load_checkpoint(tmp_path / "init" / "checkpoint.npz")
    assert all(np.array_equal(a[k], c[k]) for k in a)
    # --init-matching moves the layers whose names and shapes match into a wider net; the rest start fresh
    wide = _args(fake_mnist, tmp_path / "wide", 1)
    wide[wide.index("784-24-16-10")] = "784-24-32-10"
    assert bench.main(wide + ["--init-matching", str(full / "checkpoint.npz"), "--lrs", "0,0,0"]) == 0
    assert "parameters taken from" in capsys.readouterr().err
    w, _ = load_checkpoint(tmp_path / "wide" / "checkpoint.npz")
    assert np.array_equal(w["fwd0"], a["fwd0"]) and np.array_equal(w["bias1"], a["bias1"])
    assert w["fwd1"].shape == (32, 24) and w["bias2"].shape == (32,)
    assert not np.array_equal(w["fwd2"][:, :16], a["fwd2"])  # fresh (shape differs)
    capsys.readouterr()

    example = load_script("examples/evaluate_mnist_checkpoint.py")
    assert example.main([str(full), "--limit", "30"]) == 0
    printed = printed_values(capsys.readouterr().out)
    assert printed["epochs_trained"] == "2"
    assert printed["test_error"] == f"{100 * records[-1]['test_error']:.2f}%"  # same checkpoint, same 30 samples
    # the benchmark's checkpoint training error is the example's on the same 60 training images
    assert example.main([str(full), "--limit", "60", "--train"]) == 0
    train_error = float(printed_values(capsys.readouterr().out)["train_error"].rstrip("%"))
    errors = round(train_error * 60 / 100)
    assert bench_final["checkpoint train error %"] == f"{100 * errors / 60:.3f} ({errors} of 60)"


def test_mnist_benchmark_reports_missing_data(tmp_path, capsys):
    bench = load_script("benchmarks/mnist.py")
    assert bench.main(["--data-dir", str(tmp_path / "nowhere"), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
