"""Datasets (embedded digits, IDX files with checksums), checkpoints and resume."""
import gzip
import hashlib
import json
import struct

import numpy as np
import pytest

from analogprop import data as D
from analogprop.runs.build import load_run
from analogprop.errors import ConfigError, DataError
from analogprop.runs.directory import RunDir, average, branch, export, load_checkpoint, load_device_state, save_checkpoint
from analogprop.runs.training import evaluate, train


def idx_bytes(arr):
    arr = np.asarray(arr, np.uint8)
    return bytes([0, 0, 8, arr.ndim]) + struct.pack(f">{arr.ndim}I", *arr.shape) + arr.tobytes()


@pytest.fixture
def fake_mnist(tmp_path, monkeypatch):
    """A tiny MNIST-format directory whose checksums are registered for the test."""
    rng = np.random.default_rng(0)
    files = {"train-images-idx3-ubyte": rng.integers(0, 256, (60000, 28, 28)),
             "train-labels-idx1-ubyte": rng.integers(0, 10, 60000),
             "t10k-images-idx3-ubyte": rng.integers(0, 256, (10000, 28, 28)),
             "t10k-labels-idx1-ubyte": rng.integers(0, 10, 10000)}
    md5 = {}
    for stem, arr in files.items():
        raw = idx_bytes(arr)
        md5[stem] = hashlib.md5(raw).hexdigest()
        (tmp_path / f"{stem}.gz").write_bytes(gzip.compress(raw, compresslevel=1))
    monkeypatch.setattr(D, "MNIST_MD5", md5)
    return tmp_path


def test_digits_embedded():
    d = D.load_digits()
    assert d.x_train.shape[1] == 64 and d.n_classes == 10
    assert len(d.y_train) + len(d.y_test) == 1797
    assert 0 <= d.x_train.min() and d.x_train.max() <= 1


def test_idx_loader_reads_gz_and_raw(fake_mnist):
    d = D.load_mnist(fake_mnist)
    assert d.x_train.shape == (60000, 784) and d.x_test.shape == (10000, 784)
    raw = gzip.decompress((fake_mnist / "t10k-labels-idx1-ubyte.gz").read_bytes())
    (fake_mnist / "t10k-labels-idx1-ubyte.gz").unlink()
    (fake_mnist / "t10k-labels-idx1-ubyte").write_bytes(raw)
    assert np.array_equal(D.load_mnist(fake_mnist).y_test, d.y_test)


def test_missing_file_named(fake_mnist):
    (fake_mnist / "train-labels-idx1-ubyte.gz").unlink()
    with pytest.raises(DataError, match="train-labels-idx1-ubyte.*not found"):
        D.load_mnist(fake_mnist)


def test_corrupt_file_named(fake_mnist):
    p = fake_mnist / "t10k-images-idx3-ubyte.gz"
    raw = bytearray(gzip.decompress(p.read_bytes()))
    raw[5000] ^= 0xFF
    p.write_bytes(gzip.compress(bytes(raw), compresslevel=1))
    with pytest.raises(DataError, match="t10k-images-idx3-ubyte.gz: MD5 .* expected"):
        D.load_mnist(fake_mnist)


def test_truncated_and_garbage_files(tmp_path):
    (tmp_path / "a").write_bytes(b"\x1f\x8b garbage")
    with pytest.raises(DataError, match="decompress"):
        D.read_idx(tmp_path / "a")
    (tmp_path / "b").write_bytes(idx_bytes(np.zeros((4, 3)))[:-2])
    with pytest.raises(DataError, match="promises"):
        D.read_idx(tmp_path / "b")
    (tmp_path / "c").write_bytes(b"PK\x03\x04")
    with pytest.raises(DataError, match="magic"):
        D.read_idx(tmp_path / "c")


def test_sha256sums_checked(fake_mnist):
    (fake_mnist / "SHA256SUMS").write_text("0" * 64 + "  train-images-idx3-ubyte.gz\n")
    with pytest.raises(DataError, match="SHA-256"):
        D.load_mnist(fake_mnist)


def test_data_dir_from_environment(monkeypatch, tmp_path):
    monkeypatch.setenv(D.DATA_ENV, str(tmp_path / "x"))
    assert D.data_dir(None) == tmp_path / "x"
    assert D.data_dir("/opt/y").as_posix() == "/opt/y"
    with pytest.raises(DataError, match="does not exist"):
        D.load_mnist()


def test_checkpoint_roundtrip_without_pickle(tmp_path):
    p = {"fwd0": np.arange(6.0).reshape(2, 3)}
    save_checkpoint(tmp_path / "c.npz", p, {"state": {"epoch": 2}})
    q, meta = load_checkpoint(tmp_path / "c.npz")
    assert np.array_equal(q["fwd0"], p["fwd0"]) and meta["state"]["epoch"] == 2
    (tmp_path / "bad.npz").write_bytes(b"not a zip")
    with pytest.raises(DataError, match="bad.npz"):
        load_checkpoint(tmp_path / "bad.npz")


CFG = {"arch": "64-16-10", "epochs": 3, "checkpoint_every": 7, "lrs": [0.5, 0.2], "random_sign": True}


@pytest.mark.parametrize("extra", [{}, {"shift": 1}])
def test_resume_matches_uninterrupted_run(tmp_path, extra):
    cfg = {**CFG, **extra}
    train(cfg, tmp_path / "full", progress=False)
    calls = {"n": 0}

    def stop_after_100():
        calls["n"] += 1
        return calls["n"] == 100  # mid-epoch 2, between checkpoints

    train(cfg, tmp_path / "cut", progress=False, stop=stop_after_100)
    _, meta = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    assert meta["state"]["epoch"] == 1 and meta["state"]["batch"] > 0
    train({}, tmp_path / "cut", resume=True, progress=False, stop=lambda: False)
    a, _ = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    full = [json.loads(line) for line in (tmp_path / "full" / "metrics.jsonl").read_text().splitlines()]
    cut = [json.loads(line) for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert [r["train_error"] for r in full] == [r["train_error"] for r in cut]
    assert (tmp_path / "cut" / "metrics.csv").read_text().splitlines()[0].startswith("epoch,")


def test_alignment_before_training_survives_a_resume_inside_epoch_1(tmp_path):
    """Fig. 3 right starts at epoch 0: the first record carries the initial weights' alignment."""
    train(CFG, tmp_path / "full", progress=False)
    train(CFG, tmp_path / "cut", progress=False, stop=_stop_at(10))
    assert load_checkpoint(tmp_path / "cut" / "checkpoint.npz")[1]["state"]["epoch"] == 0
    train({}, tmp_path / "cut", resume=True, progress=False, stop=lambda: False)
    full, cut = (RunDir(tmp_path / name).metrics() for name in ("full", "cut"))
    assert full[0]["alignment_start"] == cut[0]["alignment_start"] != full[0]["alignment"]
    assert abs(full[0]["alignment_start"][0]) < 0.1  # independent random matrices: near 0
    assert all("alignment_start" not in r for r in full[1:])


def test_resume_onto_a_new_schedule_is_the_run_that_used_it_throughout(tmp_path):
    """A constant run resumed with a decay that starts after its checkpoint ends exactly where a run
    with that decay from the start ends; a schedule that rewrites trained epochs is refused."""
    decayed = {**CFG, "lr_decay": 0.5, "lr_decay_start": 3}
    train(decayed, tmp_path / "full", progress=False)
    train({**CFG, "epochs": 2}, tmp_path / "cut", progress=False)
    with pytest.raises(ConfigError, match="changes epoch 2"):
        train({"lr_decay": 0.5, "lr_decay_start": 2}, tmp_path / "cut", resume=True, progress=False)
    train({"epochs": 3, "lr_decay": 0.5, "lr_decay_start": 3}, tmp_path / "cut", resume=True, progress=False)
    a, _ = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    train(CFG, tmp_path / "const", progress=False)
    c, _ = load_checkpoint(tmp_path / "const" / "checkpoint.npz")
    assert not np.array_equal(a["fwd0"], c["fwd0"])
    scales = [json.loads(line)["lr_scale"] for line in (tmp_path / "cut" / "metrics.jsonl").read_text().splitlines()]
    assert scales == [1.0, 1.0, 0.5]


NOISY = {"arch": "64-16-10", "epochs": 2, "checkpoint_every": 7, "lrs": [0.5, 0.2], "driver": "circuit",
         "driver_g_dtod": 0.05, "driver_write_noise_std": 0.01, "driver_read_noise_std": 1e-3}


def _stop_at(n):
    calls = {"n": 0}

    def stop():
        calls["n"] += 1
        return calls["n"] == n
    return stop


def test_noisy_circuit_run_resumes_bit_for_bit(tmp_path):
    """Write noise (as-built devices) and the read-noise stream are checkpointed with the parameters,
    so a circuit run stopped mid-epoch and resumed ends exactly like an uninterrupted one."""
    train(NOISY, tmp_path / "full", progress=False, stop=lambda: False)
    train(NOISY, tmp_path / "cut", progress=False, stop=_stop_at(60))
    device = load_device_state(tmp_path / "cut" / "checkpoint.npz")
    assert int(device["writes"]) == 61 and "values/fwd0" in device  # 1 deployment + 60 updates
    train({}, tmp_path / "cut", resume=True, progress=False, stop=lambda: False)
    a, _ = load_checkpoint(tmp_path / "full" / "checkpoint.npz")
    b, _ = load_checkpoint(tmp_path / "cut" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    for name in ("full", "cut"):
        np.testing.assert_array_equal(load_device_state(tmp_path / "full" / "checkpoint.npz")["values/fwd0"],
                                      load_device_state(tmp_path / name / "checkpoint.npz")["values/fwd0"])
    full, cut = (evaluate(tmp_path / name) for name in ("full", "cut"))
    assert full == cut


def test_resume_refuses_a_corrupt_device_state(tmp_path):
    train(NOISY, tmp_path / "run", progress=False, stop=_stop_at(20))
    params, meta = load_checkpoint(tmp_path / "run" / "checkpoint.npz")
    device = load_device_state(tmp_path / "run" / "checkpoint.npz")
    device["values/fwd0"] = device["values/fwd0"][:, :3]
    save_checkpoint(tmp_path / "run" / "checkpoint.npz", params, meta, device)
    with pytest.raises(ConfigError, match="device state of fwd0 has shape"):
        train({}, tmp_path / "run", resume=True, progress=False)
    del device["values/fwd0"]
    save_checkpoint(tmp_path / "run" / "checkpoint.npz", params, meta, device)
    with pytest.raises(ConfigError, match="lacks the programmable elements \\['fwd0'\\]"):
        train({}, tmp_path / "run", resume=True, progress=False)
    # a checkpoint written without device state (older runs) resumes on freshly programmed devices
    save_checkpoint(tmp_path / "run" / "checkpoint.npz", params, meta)
    assert train({}, tmp_path / "run", resume=True, progress=False)["epoch"] == 2


def test_branch_from_a_kept_snapshot_is_the_run_with_the_new_schedule_throughout(tmp_path):
    """Snapshots every epoch; a branch after epoch 2 resumed with a decay from epoch 3 ends exactly
    where a run with that decay from the start ends, without retraining epochs 1-2."""
    train({**CFG, "keep_every": 1}, tmp_path / "const", progress=False)
    assert RunDir(tmp_path / "const").snapshots() == [1, 2, 3]
    branch(tmp_path / "const", 2, tmp_path / "branch")
    assert [r["epoch"] for r in RunDir(tmp_path / "branch").metrics()] == [1, 2]
    train({"lr_decay": 0.5, "lr_decay_start": 3}, tmp_path / "branch", resume=True, progress=False)
    train({**CFG, "lr_decay": 0.5, "lr_decay_start": 3}, tmp_path / "decayed", progress=False)
    a, _ = load_checkpoint(tmp_path / "decayed" / "checkpoint.npz")
    b, _ = load_checkpoint(tmp_path / "branch" / "checkpoint.npz")
    c, _ = load_checkpoint(tmp_path / "const" / "checkpoint.npz")
    for k in a:
        np.testing.assert_array_equal(a[k], b[k])
    assert not np.array_equal(b["fwd0"], c["fwd0"])
    assert [r["lr_scale"] for r in RunDir(tmp_path / "branch").metrics()] == [1.0, 1.0, 0.5]
    with pytest.raises(DataError, match=r"no snapshot after epoch 5 .*kept: \[1, 2, 3\]"):
        branch(tmp_path / "const", 5, tmp_path / "other")
    with pytest.raises(DataError, match="already holds a run"):
        branch(tmp_path / "const", 1, tmp_path / "branch")
    train(CFG, tmp_path / "plain", progress=False)
    with pytest.raises(DataError, match="train with --keep-every N"):
        branch(tmp_path / "plain", 1, tmp_path / "other")


def test_average_of_kept_snapshots(tmp_path):
    """The averaged run's checkpoint is the mean of the snapshots, carries the last averaged epoch's
    state and metrics, evaluates, and resumes; bad requests are refused and leave nothing behind."""
    train({**CFG, "keep_every": 1}, tmp_path / "run", progress=False)
    average(tmp_path / "run", [3, 2], tmp_path / "avg")
    snaps = [load_checkpoint(tmp_path / "run" / "snapshots" / f"epoch-00{e}.npz")[0] for e in (2, 3)]
    avg, meta = load_checkpoint(tmp_path / "avg" / "checkpoint.npz")
    for k in avg:
        np.testing.assert_allclose(avg[k], (snaps[0][k] + snaps[1][k]) / 2, rtol=0, atol=1e-15)
    assert not np.array_equal(avg["fwd0"], snaps[1]["fwd0"])
    assert meta["averaged_epochs"] == [2, 3] and meta["state"]["epoch"] == 3
    assert [r["epoch"] for r in RunDir(tmp_path / "avg").metrics()] == [1, 2, 3]
    assert evaluate(tmp_path / "avg")["test_error"] < 0.8  # a working model (chance: 0.9)
    train({"epochs": 4}, tmp_path / "avg", resume=True, progress=False)
    assert [r["epoch"] for r in RunDir(tmp_path / "avg").metrics()] == [1, 2, 3, 4]
    with pytest.raises(DataError, match=r"no snapshot after epoch\(s\) \[7\] .*kept: \[1, 2, 3\]"):
        average(tmp_path / "run", [2, 7], tmp_path / "bad")
    with pytest.raises(DataError, match="at least one epoch"):
        average(tmp_path / "run", [], tmp_path / "bad")
    with pytest.raises(DataError, match="already holds a run"):
        average(tmp_path / "run", [1], tmp_path / "avg")
    assert not (tmp_path / "bad").exists()


def test_averaged_circuit_run_programs_the_mean_onto_its_devices(tmp_path):
    train({**NOISY, "keep_every": 1}, tmp_path / "run", progress=False)
    average(tmp_path / "run", [1, 2], tmp_path / "avg")
    assert load_device_state(tmp_path / "avg" / "checkpoint.npz") == {}
    res = evaluate(tmp_path / "avg")
    assert res["test_error"] < 0.5 and res["unconverged"] == 0


def test_export_is_a_compact_run_that_evaluates_and_resumes_as_the_source(tmp_path):
    """Exported in the solver's dtype (float32), the run evaluates exactly as its source, in a
    smaller compressed file without snapshots, and resumes; float64 keeps the parameters bit-exact."""
    train({**CFG, "dtype": "float32", "keep_every": 1}, tmp_path / "run", progress=False)
    export(tmp_path / "run", tmp_path / "ship")
    src, dst = RunDir(tmp_path / "run"), RunDir(tmp_path / "ship")
    params, meta = load_checkpoint(dst.checkpoint_path)
    assert {v.dtype for v in params.values()} == {np.dtype(np.float32)}
    assert meta["state"] == load_checkpoint(src.checkpoint_path)[1]["state"]
    assert dst.checkpoint_path.stat().st_size < 0.6 * src.checkpoint_path.stat().st_size
    assert not (dst.path / "snapshots").exists() and dst.metrics() == src.metrics()
    assert evaluate(dst.path) == evaluate(src.path)
    train({"epochs": 4}, dst.path, resume=True, progress=False)
    assert [r["epoch"] for r in dst.metrics()] == [1, 2, 3, 4]
    export(tmp_path / "run", tmp_path / "exact", "float64")
    for k, v in load_checkpoint(src.checkpoint_path)[0].items():
        np.testing.assert_array_equal(load_checkpoint(tmp_path / "exact" / "checkpoint.npz")[0][k], v)
    with pytest.raises(DataError, match="cannot store parameters as int32"):
        export(tmp_path / "run", tmp_path / "bad", "int32")
    with pytest.raises(DataError, match="already holds a run"):
        export(tmp_path / "run", tmp_path / "ship")
    with pytest.raises(DataError, match="not a run directory"):
        export(tmp_path / "nothing", tmp_path / "bad2")
    assert not (tmp_path / "bad").exists() and not (tmp_path / "bad2").exists()


def test_export_keeps_a_circuit_run_s_device_state(tmp_path):
    train(NOISY, tmp_path / "run", progress=False)
    export(tmp_path / "run", tmp_path / "ship", "float64")
    before, after = (load_device_state(tmp_path / d / "checkpoint.npz") for d in ("run", "ship"))
    assert before and before.keys() == after.keys()
    for k in before:
        np.testing.assert_array_equal(after[k], before[k])
    assert evaluate(tmp_path / "ship") == evaluate(tmp_path / "run")


def test_load_run_gives_the_saved_circuit_with_its_devices(tmp_path):
    """load_run rebuilds a run as its checkpoint left it: parameters, as-built devices (write noise) and
    epoch; overrides replace configuration keys, and a missing run is named."""
    train(NOISY, tmp_path / "run", progress=False)
    data, driver, tc, meta = load_run(tmp_path / "run", data_dir=None)
    with driver:
        saved = load_device_state(tmp_path / "run" / "checkpoint.npz")
        for k, v in driver.device_state().items():
            if k.startswith("values/"):
                np.testing.assert_array_equal(v, saved[k])
        for k, v in load_checkpoint(tmp_path / "run" / "checkpoint.npz")[0].items():
            np.testing.assert_array_equal(driver.get_parameters()[k], v)
    assert meta["state"]["epoch"] == 2 and tc.epochs == 2 and data.name == "digits"
    assert load_run(tmp_path / "run", epochs=5)[2].epochs == 5
    with pytest.raises(DataError, match="nothing"):
        load_run(tmp_path / "nothing")
