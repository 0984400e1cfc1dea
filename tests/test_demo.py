"""The main job (``make demo``) end to end, shortened: ideal training, deployment on a mismatched die
measured in ngspice, training in ngspice, netlist, transient and plots."""
from analogprop.runs.demo import run_demo


def test_demo_runs_end_to_end(tmp_path, capsys):
    summary = run_demo(tmp_path, epochs=3, circuit_epochs=1, progress=False)
    assert 0 <= summary["ideal_test_error"] < 0.5
    # training in the circuit recovers part of what the transfer to the mismatched die lost
    assert summary["in_circuit_test_error"] < summary["transferred_test_error"]
    assert summary["settle_free_s"] > 0 and summary["energy_nudged_J"] > 0
    out = capsys.readouterr().out
    assert "trained in the circuit, 1 epochs in ngspice" in out
    assert (tmp_path / "circuit.cir").read_text().rstrip().endswith(".end")
    for name in ("errors.png", "transient.png"):
        assert (tmp_path / "plots" / name).stat().st_size > 1000
