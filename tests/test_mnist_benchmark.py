"""benchmarks/mnist.py end to end on a small slice of a fake MNIST directory, and the checkpoint example."""
import importlib.util
import json
from pathlib import Path

import numpy as np

from analogprop.runs import load_checkpoint
from test_data_runs import fake_mnist  # noqa: F401  (pytest fixture)

ROOT = Path(__file__).resolve().parents[1]


def _load(relpath):
    spec = importlib.util.spec_from_file_location(Path(relpath).stem, ROOT / relpath)
    mod = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(mod)
    return mod


def _args(data_dir, out, epochs):
    return ["--data-dir", str(data_dir), "--arch", "784-24-16-10", "--lrs", "0.4,0.1,0.01",
            "--train-subset", "60", "--test-subset", "30", "--epochs", str(epochs), "--out", str(out)]


def test_mnist_benchmark_runs_resumes_and_example_evaluates(fake_mnist, tmp_path, capsys):  # noqa: F811
    bench = _load("benchmarks/mnist.py")
    full, part = tmp_path / "full", tmp_path / "part"
    assert bench.main(_args(fake_mnist, full, 2)) == 0
    printed = dict(line.split(": ", 1) for line in capsys.readouterr().out.splitlines())
    assert printed["epochs"] == "2"
    records = [json.loads(line) for line in (full / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in records] == [1, 2]
    assert all(len(r["alignment"]) == 2 and 0 <= r["test_error"] <= 1 for r in records)
    assert float(printed["final test error %"]) == round(100 * records[-1]["test_error"], 2)
    for name in ("errors.png", "alignment.png"):
        assert (full / name).read_bytes()[:8] == b"\x89PNG\r\n\x1a\n"

    # one epoch, then resume to two: same parameters as the uninterrupted run
    assert bench.main(_args(fake_mnist, part, 1)) == 0
    assert bench.main(_args(fake_mnist, part, 2) + ["--resume"]) == 0
    a, meta = load_checkpoint(full / "checkpoint.npz")
    b, _ = load_checkpoint(part / "checkpoint.npz")
    assert meta["state"]["epoch"] == 2 and meta["subsets"] == [60, 30]
    assert all(np.array_equal(a[k], b[k]) for k in a)
    capsys.readouterr()

    example = _load("examples/evaluate_mnist_checkpoint.py")
    res = example.evaluate(full, limit=30)
    assert res["epochs_trained"] == 2
    assert abs(res["test_error"] - records[-1]["test_error"]) < 1e-12  # same checkpoint, same 30 samples
    assert example.main([str(full), "--limit", "30"]) == 0
    assert f"test_error: {100 * res['test_error']:.2f}%" in capsys.readouterr().out


def test_mnist_benchmark_reports_missing_data(tmp_path, capsys):
    bench = _load("benchmarks/mnist.py")
    assert bench.main(["--data-dir", str(tmp_path / "nowhere"), "--epochs", "1", "--out", str(tmp_path / "r")]) == 2
    assert "does not exist" in capsys.readouterr().err
