"""Runs kept in the repository under experiments/<name>/ (made with `analogprop export`): the finished ones in
run/ and a long run not finished yet, kept with its checkpoint at an epoch's end in records/, consistent with
their records, and, where MNIST is on this machine, the finished ones reproducing their final test error; and
the records (configuration and per-epoch metrics, no weights) of finished runs not shipped, in records/."""
from pathlib import Path

import numpy as np
import pytest

from analogprop.model.conv_network import arch_sizes, create_network
from analogprop.data import data_dir
from analogprop.runs.directory import RunDir, load_checkpoint
from conftest import ROOT, load_script

EXPERIMENTS = ROOT / "experiments"
SHIPPED = sorted(p.parent for p in EXPERIMENTS.glob("*/run/config.json"))
KEPT = sorted(p.parent for p in EXPERIMENTS.glob("*/records/*/config.json"))
IN_PROGRESS = [p for p in KEPT if (p / "checkpoint.npz").exists()]
RECORDS = [p for p in KEPT if p not in IN_PROGRESS]


def mnist_dir() -> Path | None:
    """The project's own lookup ($ANALOGPROP_DATA, then the user cache), then the workplace's copy."""
    for d in (data_dir(), ROOT.parent / "shared" / "datasets" / "mnist"):
        if (d / "t10k-images-idx3-ubyte.gz").exists():
            return d
    return None


def test_the_mnist_model_is_shipped():
    assert "mnist-784-512-512-10" in {p.parent.name for p in SHIPPED}


@pytest.mark.parametrize("path", SHIPPED + IN_PROGRESS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_kept_run_is_consistent(path):
    run = RunDir(path)
    cfg, (params, meta), records = run.read_config(), load_checkpoint(run.checkpoint_path), run.metrics()
    net = create_network(cfg["arch"], bias=cfg["bias"], tied=cfg["tied"], linear_output=cfg["linear_output"],
                         readout=cfg.get("readout", "dynamic"))
    assert params.keys() == net.params.keys()
    net.params = params
    net.validate()  # every shape right, every value finite
    assert {v.dtype for v in params.values()} == {np.dtype(cfg["dtype"])}
    assert meta["state"]["epoch"] == len(records) and meta["state"]["batch"] == 0
    assert (len(records) == cfg["epochs"]) == (path in SHIPPED)  # finished runs, and only they, in run/
    assert [r["epoch"] for r in records] == list(range(1, len(records) + 1))


@pytest.mark.parametrize("path", SHIPPED, ids=lambda p: p.parent.name)
def test_shipped_run_reproduces_its_final_test_error(path):
    data = mnist_dir()
    if data is None:
        pytest.skip("MNIST not on this machine (set ANALOGPROP_DATA)")
    example = load_script("examples/evaluate_mnist_checkpoint.py")
    res = example.evaluate(path, data_dir=data)
    final = RunDir(path).metrics()[-1]
    assert res["unconverged"] == final.get("unconverged_test", 0)  # samples left at the sweep limit, as in training
    assert res["test_error"] == final["test_error"]


@pytest.mark.parametrize("path", RECORDS, ids=lambda p: str(p.relative_to(EXPERIMENTS)))
def test_kept_record_is_a_finished_run(path):
    run = RunDir(path)
    cfg, records = run.read_config(), run.metrics()
    assert [r["epoch"] for r in records] == list(range(1, cfg["epochs"] + 1))
    assert all(0 <= r["test_error"] <= 1 and len(r["alignment"]) == len(arch_sizes(cfg["arch"])) - 2 for r in records)
    assert not run.checkpoint_path.exists()  # weights of finished runs are shipped in run/ or not kept
