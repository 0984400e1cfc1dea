"""Centred two-phase updates (``centered``): presynaptic rates minus their batch mean, in every driver."""
import json

import numpy as np
import pytest

from analogprop.circuit.mismatch import Mismatch
from analogprop.cli import main
from analogprop.model.conv_network import ConvNetwork
from analogprop.drivers.circuit import CircuitDriver
from analogprop.drivers.ideal import IdealDriver
from analogprop.drivers.visa import VisaDriver
from analogprop.model.dynamics import rho
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer
from bench_helpers import emulated, profile
from conftest import load_script


def phases(drv, x, y, beta=0.5):
    free = drv.relax_free(x)
    return free, drv.relax_nudged(x, y, beta, free)


def test_centred_update_is_eq56_minus_bias_update_times_mean_rate():
    """sum_n dh_n (r_n - mean r) = Eq. 56 - (bias update) (mean r)^T for every weight; biases unchanged."""
    rng = np.random.default_rng(0)
    net = Network.create((6, 5, 4, 3), seed=1)
    drv = IdealDriver(net, FastSolver(tol=1e-12))
    x, y = rng.uniform(0, 1, (9, 6)), np.eye(3)[rng.integers(0, 3, 9)]
    free, nudged = phases(drv, x, y)
    plain, centred = drv.local_update(x, free, nudged), drv.local_update(x, free, nudged, centered=True)
    mean = [rho(x).mean(0)] + [rho(s).mean(0) for s in free.states]
    for k in range(3):
        np.testing.assert_allclose(centred[f"fwd{k}"], plain[f"fwd{k}"] - np.outer(plain[f"bias{k + 1}"], mean[k]),
                                   atol=1e-12)
        np.testing.assert_allclose(centred[f"bias{k + 1}"], plain[f"bias{k + 1}"], atol=0)
    for k in (1, 2):
        np.testing.assert_allclose(centred[f"bwd{k}"], plain[f"bwd{k}"] - np.outer(plain[f"bias{k}"], mean[k + 1]),
                                   atol=1e-12)
    assert not np.allclose(centred["fwd0"], plain["fwd0"])


def test_centred_kernels_of_a_batch_of_one_image_repeated_vanish():
    """Convolutions too: identical samples have no spread about their mean, so no kernel moves; biases do."""
    net = ConvNetwork.create("1x8x8-c3k3p2-5", seed=0)
    drv = IdealDriver(net, FastSolver(tol=1e-12))
    x = np.repeat(np.random.default_rng(1).uniform(0, 1, (1, 64)), 4, axis=0)
    free, nudged = phases(drv, x, np.eye(5)[[2, 2, 2, 2]])
    upd = drv.local_update(x, free, nudged, centered=True)
    for k in ("fwd0", "fwd1", "bwd1"):
        np.testing.assert_allclose(upd[k], 0, atol=1e-12)
    assert np.abs(upd["bias2"]).max() > 1e-3


@pytest.mark.parametrize("level", ["behavioural", "crossbar"])
def test_circuit_centres_its_measured_voltages_but_not_the_bias_rail(level):
    """A repeated sample: every weight element's centred update is 0; the bias pair keeps its rail term."""
    net = Network.create((5, 4, 3), seed=2)
    drv = CircuitDriver.from_network(net.sizes, net.params, level, Mismatch(g_dtod=0.01), die=3)
    x = np.repeat(np.random.default_rng(4).uniform(0, 1, (1, 5)), 3, axis=0)
    free, nudged = phases(drv, x, np.eye(3)[[1, 1, 1]])
    plain, centred = drv.local_update(x, free, nudged), drv.local_update(x, free, nudged, centered=True)
    weights = [k for k in centred if not k.startswith("bias")]
    assert weights and all(np.abs(centred[k]).max() < 1e-9 for k in weights)
    assert max(np.abs(plain[k]).max() for k in weights) > 1e-4
    if level == "crossbar":  # the rail part rail * sum(d) is the difference of the pair's updates
        np.testing.assert_allclose(centred["bias1_p"] - centred["bias1_n"], plain["bias1_p"] - plain["bias1_n"],
                                   atol=1e-12)
    else:
        np.testing.assert_allclose(centred["bias1"], plain["bias1"], atol=1e-12)


def test_visa_board_centres_like_the_ideal_model():
    def contracting():
        net = Network.create((6, 4, 3), seed=1)
        net.params["bwd1"] *= 0.3
        return net

    rng = np.random.default_rng(0)
    x, y = rng.uniform(0, 1, (8, 6)), np.eye(3)[rng.integers(0, 3, 8)]
    with emulated(profile(physics="ideal")) as (_, p), VisaDriver(p, contracting(), log=lambda m: None) as drv:
        upd = drv.local_update(x, *phases(drv, x, y), centered=True)
        ideal = IdealDriver(Network((6, 4, 3), drv.effective_weights()), FastSolver(tol=1e-10))
        ref = ideal.local_update(x, *phases(ideal, x, y), centered=True)
    for k in ref:
        np.testing.assert_allclose(upd[k], ref[k], atol=2e-5)


def test_trainer_refuses_centring_with_a_driver_that_cannot():
    script = load_script("examples/custom_driver.py")
    system = script.SoftNeuronSystem((4, 3, 2), seed=0)
    TwoPhaseTrainer(system, TrainConfig(lrs=(0.1,)))
    with pytest.raises(ConfigError, match="takes no 'centered' argument"):
        TwoPhaseTrainer(system, TrainConfig(lrs=(0.1,), centered=True))


def test_centred_training_from_the_command_line(tmp_path, capsys):
    """--centered is saved in the run and changes the training; the net still learns the digits."""
    errors = {}
    for name, extra in (("plain", []), ("centred", ["--centered"])):
        assert main(["train", "--arch", "64-32-10", "--epochs", "3", "--out", str(tmp_path / name), "--quiet",
                     *extra]) == 0
        cfg = json.loads((tmp_path / name / "config.json").read_text())
        assert cfg["centered"] is bool(extra)
        errors[name] = [json.loads(line)["test_error"] for line in (tmp_path / name / "metrics.jsonl").open()]
    assert errors["centred"] != errors["plain"]
    assert errors["centred"][-1] < 0.2 and errors["centred"][-1] < errors["centred"][0]


def test_diagnostics_measure_the_centred_update_the_trainer_applies():
    """two_phase_estimate (diagnose, --probe) with centered is the driver's centred update / (beta n)."""
    from analogprop.model.gradients import two_phase_estimate
    rng = np.random.default_rng(3)
    net = Network.create((6, 5, 3), seed=4)
    solver = FastSolver(tol=1e-12)
    drv = IdealDriver(net, solver)
    x, y = rng.uniform(0, 1, (7, 6)), np.eye(3)[rng.integers(0, 3, 7)]
    upd = drv.local_update(x, *phases(drv, x, y), centered=True)
    est, _, _ = two_phase_estimate(net, solver, x, y, 0.5, centered=True)
    plain, _, _ = two_phase_estimate(net, solver, x, y, 0.5)
    for k in upd:
        np.testing.assert_allclose(est[k], upd[k] / (0.5 * 7), atol=1e-12)
    assert not np.allclose(est["fwd0"], plain["fwd0"])
