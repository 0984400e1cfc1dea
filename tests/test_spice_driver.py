"""The ngspice driver and the ``analogprop netlist`` command (issue 3, items 4, 5)."""
import numpy as np
import pytest

from analogprop.runs.build import build
from analogprop.circuit import Mismatch
from analogprop.cli import main
from analogprop.data import load_dataset
from analogprop.drivers.circuit import CircuitDriver
from analogprop.drivers.ngspice import NgspiceDriver
from analogprop.model.network import Network
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer, one_hot

from conftest import saturating_network

MISMATCH = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=0.01, leak_dtod=0.05)


@pytest.mark.parametrize("level,clamp", [("behavioural", True), ("behavioural", False), ("crossbar", False),
                                         ("crossbar", True)])   # offsets invert some crossbar clamp windows
def test_phases_and_local_rule_match_the_fast_circuit_driver(level, clamp):
    net = saturating_network((20, 12, 5), seed=0, gain=2.0, feedback=0.3)   # unique fixed points
    x = np.random.default_rng(0).uniform(0, 1, (30, 20))
    y = one_hot(np.arange(30) % 5, 5)
    fast = CircuitDriver.from_network(net.sizes, net.params, level, MISMATCH, die=4, clamp=clamp)
    spice = NgspiceDriver.from_network(net.sizes, net.params, level, MISMATCH, die=4, clamp=clamp)
    out = {}
    for name, drv in (("fast", fast), ("spice", spice)):
        free = drv.relax_free(x)
        nudged = drv.relax_nudged(x, y, 0.5, free)
        out[name] = (free, nudged, drv.local_update(x, free, nudged))
    for a, b in zip(out["fast"][:2], out["spice"][:2]):
        assert a.converged.all() and b.converged.all()
        assert max(np.abs(p - q).max() for p, q in zip(a.probes["V"], b.probes["V"])) < 1e-5
    for k, v in out["fast"][2].items():
        assert np.allclose(out["spice"][2][k], v, rtol=1e-4, atol=1e-6), k


def test_training_through_ngspice_lowers_the_error():
    data = load_dataset("digits")
    x, labels = data.x_train[:200], data.y_train[:200]
    net = Network.create((64, 16, 10), seed=0)
    driver = NgspiceDriver.from_network(net.sizes, net.params, "behavioural", MISMATCH, die=1)
    trainer = TwoPhaseTrainer(driver, TrainConfig(beta=1.0, lrs=(1.0, 0.5), batch_size=20, epochs=1))
    before = trainer.evaluate(x, labels)
    for epoch in range(3):
        order = np.random.default_rng(epoch).permutation(len(labels))
        for i in range(0, len(labels), 20):
            idx = order[i:i + 20]
            trainer.step(x[idx], labels[idx])
    after = trainer.evaluate(x, labels)
    assert after["unconverged"] == 0
    assert after["cost"] < 0.6 * before["cost"]
    assert after["error"] < before["error"] - 0.25


def test_driver_from_config_writes_its_netlist_where_asked(tmp_path):
    cfg = {"driver": "ngspice", "arch": "64-8-10", "driver_level": "crossbar", "driver_die": 2,
           "driver_g_dtod": 0.05, "driver_netlist_dir": str(tmp_path / "nets")}
    data, driver, _ = build(cfg)
    with driver:
        phase = driver.relax_free(data.x_test[:7])
    assert phase.converged.all() and phase.output.shape == (7, 10)
    text = (tmp_path / "nets" / "minibatch.cir").read_text()
    assert "crossbar circuit 64-8-10, die seed 2" in text and "dc vsel 0 N-1 1" in text


def test_netlist_command(tmp_path, capsys):
    out = tmp_path / "net.cir"
    assert main(["netlist", "--arch", "64-8-10", "--level", "crossbar", "--die", "5", "--g-dtod", "0.1",
                 "--samples", "4", "--out", str(out)]) == 0
    text = out.read_text()
    assert "die seed 5" in text and ".dc vsel 0 3 1" in text and "\nrfp0_" in text
    assert "ngspice -b" in capsys.readouterr().out
    bad = tmp_path / "evil.lib"
    bad.write_text("* looks harmless\nshell curl example.com\n")
    assert main(["netlist", "--include", str(bad), "--out", str(tmp_path / "x.cir")]) == 2
    assert "evil.lib line 2: 'shell' is not allowed" in capsys.readouterr().err
    assert main(["netlist", "--arch", "5-3-2", "--out", str(tmp_path / "y.cir")]) == 2
    assert "input layer has 5" in capsys.readouterr().err


def test_netlist_of_a_circuit_run_holds_its_trained_devices(tmp_path):
    run = tmp_path / "run"
    assert main(["train", "--driver", "circuit", "--arch", "64-8-10", "--epochs", "1", "--g-dtod", "0.1",
                 "--die", "3", "--out", str(run), "--quiet"]) == 0
    out = tmp_path / "trained.cir"
    assert main(["netlist", str(run), "--samples", "2", "--out", str(out)]) == 0
    from analogprop.runs.directory import load_checkpoint
    from analogprop.cli.netlist import circuit_of

    params, meta = load_checkpoint(run / "checkpoint.npz")
    circuit, _ = circuit_of(meta["config"], params)
    g = float(circuit.values["fwd1"][4, 6] * circuit.g_unit)
    assert f"gf1_4_6 0 h2_4 r1_6 0 {g!r}\n" in out.read_text()
    assert np.allclose(circuit.nominal["fwd1"], params["fwd1"])
