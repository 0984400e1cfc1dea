"""Per-epoch diagnostics, the true-gradient baseline trainer, rule selection and plots."""
import json

import numpy as np
import pytest

from analogprop.model import gradients as G
from analogprop.cli import main
from analogprop.data import load_digits
from analogprop.training.diagnostics import ProbeDiagnostics, probe_batch
from analogprop.drivers import IdealDriver
from analogprop.errors import ConfigError, DataError
from analogprop.model.network import Network
from analogprop.runs.plots import plot_runs
from analogprop.model.relax import FastSolver
from analogprop.training.rules import GradientTrainer, make_trainer
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer, one_hot


@pytest.fixture(scope="module")
def small():
    return load_digits().subset(300, 100)


def driver(sizes=(64, 16, 10), tied=False, seed=0):
    return IdealDriver(Network.create(sizes, seed=seed, tied=tied), FastSolver(tol=1e-8))


def test_two_phase_records_carry_diagnostics(small):
    drv = driver()
    x, labels = probe_batch(small, 30)
    tr = TwoPhaseTrainer(drv, TrainConfig(lrs=(0.5, 0.2), epochs=2), ProbeDiagnostics(x, labels, 10, 0.5))
    records = []
    tr.fit(small, on_epoch=records.append)
    for r in records:
        assert 0 < r["angle_nu_grad"] < 90
        assert 0 < r["angle_update_grad"] < 90
        assert len(r["angle_nu_grad_layers"]) == 2
        assert r["probe_unconverged"] == 0.0
        assert r["probe_cost"] > 0
    assert records[-1]["train_cost"] < records[0]["train_cost"]


def test_tied_network_angle_is_zero(small):
    drv = driver(tied=True)
    x, labels = probe_batch(small, 20)
    rec = ProbeDiagnostics(x, labels, 10, 0.5)(drv)
    assert rec["angle_nu_grad"] < 1e-3
    assert rec["angle_nu_grad_layers"][1] < 1e-3


def test_mirrored_feedback_init_through_the_config_starts_on_the_gradient(small):
    """Untied, but with the feedback weights equal to the forward ones the rule starts as EP (nu = -dJ/dW)."""
    from analogprop.runs.build import build

    _, drv, _ = build({"arch": "64-16-10", "feedback_init": "mirrored"})
    x, labels = probe_batch(small, 20)
    assert not drv.network.tied
    assert ProbeDiagnostics(x, labels, 10, 0.5)(drv)["angle_nu_grad"] < 1e-3
    _, drv, _ = build({"arch": "64-16-10"})
    assert ProbeDiagnostics(x, labels, 10, 0.5)(drv)["angle_nu_grad"] > 10
    with pytest.raises(ConfigError, match="feedback_init"):
        build({"arch": "64-16-10", "feedback_init": "symmetric"})


def test_unconverged_probe_samples_are_counted_and_left_out(small):
    drv = IdealDriver(Network.create((64, 16, 10), seed=0), FastSolver(tol=1e-8, max_sweeps=1))
    x, labels = probe_batch(small, 20)
    rec = ProbeDiagnostics(x, labels, 10, 0.5)(drv)
    assert rec["probe_unconverged"] == 1.0 and "angle_nu_grad" not in rec


def test_diagnostics_skip_drivers_without_an_ideal_network(small):
    class Opaque:
        sizes = (64, 16, 10)

    x, labels = probe_batch(small, 5)
    assert ProbeDiagnostics(x, labels, 10, 0.5)(Opaque()) == {}


def test_gradient_trainer_steps_along_minus_dJ_dW(small):
    drv = driver()
    tr = GradientTrainer(drv, TrainConfig(lrs=(0.3, 0.1)))
    x, labels = small.x_train[:20], small.y_train[:20]
    before = drv.get_parameters()
    free = drv.relax_free(x)
    grad = G.neg_gradient(drv.network, G.FixedPoint.at(drv.network, x, free.states), one_hot(labels, 10))
    stats = tr.step(x, labels)
    after = drv.get_parameters()
    assert stats["samples"] == 20 and stats["unconverged_nudged"] == 0
    for name in before:
        lr = 0.3 if name in ("fwd0", "bias1") else 0.1
        np.testing.assert_allclose(after[name] - before[name], lr * grad[name], atol=1e-12)


def test_gradient_trainer_lowers_the_cost(small):
    tr = GradientTrainer(driver(), TrainConfig(lrs=(0.1, 0.05), epochs=3))
    records = []
    tr.fit(small, on_epoch=records.append)
    assert records[-1]["train_cost"] < records[0]["train_cost"] - 0.02


def test_gradient_rule_needs_the_ideal_network():
    class Opaque:
        sizes = (64, 16, 10)

        def parameter_groups(self):
            return {}

    with pytest.raises(ConfigError, match="needs the ideal"):
        GradientTrainer(Opaque(), TrainConfig(lrs=(0.1,)))


@pytest.mark.parametrize("cfg, match", [({"rule": "backprop"}, "unknown rule"), ({"probe": -1}, "probe"),
                                        ({"probe": 2.5}, "probe")])
def test_make_trainer_refuses_bad_settings(small, cfg, match):
    with pytest.raises(ConfigError, match=match):
        make_trainer(cfg, driver(), TrainConfig(lrs=(0.1,)), small)


def test_make_trainer_picks_rule_and_probe(small):
    tr = make_trainer({"rule": "gradient", "probe": 7}, driver(), TrainConfig(lrs=(0.1,)), small)
    assert isinstance(tr, GradientTrainer) and len(tr.diagnostics.x) == 7
    assert make_trainer({}, driver(), TrainConfig(lrs=(0.1,)), small).diagnostics is None


def test_cli_gradient_run_and_plots(tmp_path):
    a, b = tmp_path / "tp", tmp_path / "gr"
    common = ["--arch", "64-12-10", "--epochs", "2", "--probe", "10", "--quiet"]
    assert main(["train", *common, "--out", str(a)]) == 0
    assert main(["train", *common, "--rule", "gradient", "--out", str(b)]) == 0
    rec = [json.loads(line) for line in (b / "metrics.jsonl").read_text().splitlines()]
    assert len(rec) == 2 and "angle_nu_grad" in rec[0]
    assert json.loads((b / "config.json").read_text())["rule"] == "gradient"
    assert "angle_nu_grad" in (a / "metrics.csv").read_text().splitlines()[0]
    assert main(["plot", str(a), str(b), "--out", str(tmp_path / "fig")]) == 0
    for name in ("errors", "alignment", "angle", "summary"):
        data = (tmp_path / "fig" / f"{name}.png").read_bytes()
        assert data[:8] == b"\x89PNG\r\n\x1a\n" and len(data) > 5000


def test_plot_without_diagnostics_has_no_angle_figure(tmp_path):
    run = tmp_path / "run"
    run.mkdir()
    (run / "metrics.jsonl").write_text(json.dumps({"epoch": 1, "train_error": 0.5, "test_error": 0.4,
                                                   "alignment": [0.1]}) + "\n")
    names = {p.name for p in plot_runs([run], tmp_path / "fig")}
    assert names == {"errors.png", "alignment.png", "summary.png"}


def test_alignment_curves_start_at_epoch_0_when_the_run_recorded_it():
    import matplotlib

    matplotlib.use("Agg")
    import matplotlib.pyplot as plt

    from analogprop.runs.plots import PANELS

    rec = [{"epoch": 1, "alignment": [0.1, 0.2], "alignment_start": [0.0, -0.01]}, {"epoch": 2, "alignment": [0.15, 0.3]}]
    fig, ax = plt.subplots()
    PANELS["alignment"](ax, [("run", rec)])
    assert [list(line.get_xdata()) for line in ax.lines] == [[0, 1, 2], [0, 1, 2]]
    assert [list(line.get_ydata()) for line in ax.lines] == [[0.0, 0.1, 0.15], [-0.01, 0.2, 0.3]]
    ax.clear()
    PANELS["alignment"](ax, [("older run", [{k: v for k, v in r.items() if k != "alignment_start"} for r in rec])])
    assert [list(line.get_xdata()) for line in ax.lines] == [[1, 2], [1, 2]]
    plt.close(fig)


def test_plot_refuses_missing_or_corrupt_runs(tmp_path, capsys):
    with pytest.raises(DataError, match="no metrics.jsonl"):
        plot_runs([tmp_path / "nothing"], tmp_path / "fig")
    bad = tmp_path / "bad"
    bad.mkdir()
    (bad / "metrics.jsonl").write_text("{not json\n")
    with pytest.raises(DataError, match="malformed"):
        plot_runs([bad], tmp_path / "fig")
    assert main(["plot", str(bad), "--out", str(tmp_path / "fig")]) == 2
    assert "malformed" in capsys.readouterr().err


def test_convolutional_networks_get_diagnostics_and_the_gradient_rule(small):
    from analogprop.model.conv_network import ConvNetwork

    drv = IdealDriver(ConvNetwork.create("1x8x8-c4k3p2-10", seed=0), FastSolver(tol=1e-8))
    x, labels = probe_batch(small, 20)
    rec = ProbeDiagnostics(x, labels, 10, 0.5)(drv)
    assert 0 < rec["angle_nu_grad"] < 90 and len(rec["angle_nu_grad_layers"]) == 2
    tr = make_trainer({"probe": 20, "rule": "gradient"}, drv, TrainConfig(lrs=(0.2, 0.1), epochs=2), small)
    assert isinstance(tr, GradientTrainer) and tr.diagnostics is not None
    before = tr.evaluate(small.x_test, small.y_test)["cost"]
    records = []
    tr.fit(small, on_epoch=records.append)
    assert records[-1]["test_cost"] < before and "angle_nu_grad" in records[-1]


def test_gradient_run_resumes_like_an_uninterrupted_one(tmp_path):
    common = ["--arch", "64-12-10", "--rule", "gradient", "--probe", "5", "--quiet"]
    assert main(["train", *common, "--epochs", "2", "--out", str(tmp_path / "whole")]) == 0
    assert main(["train", *common, "--epochs", "1", "--out", str(tmp_path / "split")]) == 0
    assert main(["train", "--resume", "--epochs", "2", "--quiet", "--out", str(tmp_path / "split")]) == 0
    whole = np.load(tmp_path / "whole" / "checkpoint.npz")
    split = np.load(tmp_path / "split" / "checkpoint.npz")
    for key in whole.files:
        if key.startswith("param/"):
            np.testing.assert_array_equal(whole[key], split[key])
    rec = [json.loads(line) for line in (tmp_path / "split" / "metrics.jsonl").read_text().splitlines()]
    assert [r["epoch"] for r in rec] == [1, 2] and all("angle_nu_grad" in r for r in rec)
