"""Command line: help, clean one-line errors, train/evaluate round trip."""
import json
import subprocess
import sys

import pytest

from analogprop.cli import COMMANDS, main


def run(*args):
    return subprocess.run([sys.executable, "-m", "analogprop", *args], capture_output=True, text=True, timeout=300)


@pytest.mark.parametrize("cmd", [[]] + [[c] for c in COMMANDS])
def test_help_everywhere(cmd):
    r = run(*cmd, "--help")
    assert r.returncode == 0 and "usage: analogprop" in r.stdout


@pytest.mark.parametrize("args, message", [
    (["--beta", "-1"], "training.beta (--beta, config key 'beta') must be a finite number > 0, got -1.0"),
    (["--lrs", "0.1,-0.1"], "must be a list of finite numbers >= 0 (at least one), got [0.1, -0.1] (item 1 is -0.1)"),
    (["--arch", "64-0-10"], "layer 1 has size 0"),
    (["--arch", "64-32-5"], "10 classes but the output layer has 5"),
    (["--arch", "60-32-10"], "64 inputs but the architecture's input layer has 60"),
    (["--dataset", "mnist", "--data-dir", "/nonexistent/mnist"], "/nonexistent/mnist does not exist"),
    (["--driver", "quantum"], "invalid choice: 'quantum' (choose from 'ideal', 'circuit', 'ngspice', 'visa')"),
    (["--driver", "circuit", "--linear-output"], "linear_output (--linear-output, config key 'linear_output') needs "
                                                 "the ideal driver"),
    (["--lr-decay", "2"], "lr_decay (--lr-decay, config key 'lr_decay') must be a finite number in (0, 1]"),
    (["--weight-decay", "-0.1"], "weight_decay') must be a finite number >= 0, got -0.1"),
    (["--g-dtod", "0.1"], "circuit.g_dtod (--g-dtod, config key 'driver_g_dtod'): not read by the ideal driver"),
    (["--config", "/nonexistent/run.toml"], "/nonexistent/run.toml: cannot read the configuration file"),
    (["--threads", "0"], "--threads must be a whole number >= 1, got 0"),
    (["--resume", "--init", "x.npz"], "--init and --init-matching start a new run"),
])
def test_user_errors_are_one_line(tmp_path, args, message):
    r = run("train", "--out", str(tmp_path / "r"), "--quiet", *args)
    assert r.returncode == 2
    lines = r.stderr.strip().splitlines()
    assert len(lines) == 1 and message in lines[0], r.stderr
    assert "Traceback" not in r.stderr


def test_train_then_evaluate(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--arch", "64-16-10", "--epochs", "2", "--lrs", "0.5,0.2", "--weight-decay", "1e-4",
                 "--feedback-init", "mirrored", "--alignment-drift", "--out", str(out), "--quiet"]) == 0
    assert "final: train error" in capsys.readouterr().out
    for name in ("config.json", "checkpoint.npz", "metrics.jsonl", "metrics.csv"):
        assert (out / name).exists()
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["weight_decay"] == 1e-4 and cfg["feedback_init"] == "mirrored" and cfg["alignment_drift"] is True
    last = json.loads((out / "metrics.jsonl").read_text().splitlines()[-1])
    assert len(last["alignment_drift_forward"]) == len(last["alignment_drift_feedback"]) == 1
    assert 0.5 < last["alignment"][0] < 1  # started at 1, learned apart (a random start is near 0)
    first = json.loads((out / "metrics.jsonl").read_text().splitlines()[0])
    assert first["alignment_start"] == [pytest.approx(1.0)]
    assert main(["evaluate", str(out), "--json"]) == 0

    res = json.loads(capsys.readouterr().out)
    assert res["test_error"] < 0.5 and res["dataset"] == "digits"


def test_keep_every_and_branch(tmp_path, capsys):
    out = tmp_path / "run"
    assert main(["train", "--arch", "64-16-10", "--epochs", "2", "--keep-every", "1", "--out", str(out), "--quiet"]) == 0
    assert sorted(p.name for p in (out / "snapshots").iterdir()) == ["epoch-001.npz", "epoch-002.npz"]
    assert main(["branch", str(out), "--epoch", "1", "--out", str(tmp_path / "b")]) == 0
    assert "continue it with: analogprop train --resume" in capsys.readouterr().out
    assert main(["train", "--resume", "--out", str(tmp_path / "b"), "--lr-decay", "0.5", "--lr-decay-start", "2",
                 "--quiet"]) == 0
    r = run("branch", str(out), "--epoch", "7", "--out", str(tmp_path / "c"))
    assert r.returncode == 2 and "no snapshot after epoch 7" in r.stderr and "kept: [1, 2]" in r.stderr
    assert main(["average", str(out), "--epochs", "1-2", "--out", str(tmp_path / "avg")]) == 0
    assert "analogprop evaluate" in capsys.readouterr().out
    assert main(["evaluate", str(tmp_path / "avg")]) == 0
    r = run("average", str(out), "--epochs", "1-x", "--out", str(tmp_path / "d"))
    assert r.returncode == 2 and "expected epochs as A-B or A,B,C" in r.stderr
    assert main(["export", str(out), "--dtype", "float32", "--out", str(tmp_path / "ship")]) == 0
    assert "exported" in capsys.readouterr().out and not (tmp_path / "ship" / "snapshots").exists()
    assert main(["evaluate", str(tmp_path / "ship")]) == 0
    r = run("export", str(out), "--dtype", "int8", "--out", str(tmp_path / "e"))
    assert r.returncode == 2 and "invalid choice: 'int8'" in r.stderr


def test_resume_without_run_is_refused(tmp_path):
    r = run("train", "--out", str(tmp_path / "empty"), "--resume", "--quiet")
    assert r.returncode == 2 and "not a run directory (no config.json)" in r.stderr
    for cmd in (["evaluate", str(tmp_path / "none1")], ["diagnose", str(tmp_path / "none2")],
                ["branch", str(tmp_path / "none3"), "--epoch", "1", "--out", str(tmp_path / "b")],
                ["average", str(tmp_path / "none4"), "--epochs", "1", "--out", str(tmp_path / "a")],
                ["export", str(tmp_path / "none5"), "--out", str(tmp_path / "e")]):
        r = run(*cmd)
        assert r.returncode == 2 and "not a run directory" in r.stderr, r.stderr
    assert sorted(p.name for p in tmp_path.iterdir()) == []  # reading a missing run creates nothing


def test_diagnose_a_checkpoint(tmp_path, capsys):
    """Tied weights (EP): nu = -dJ/dW, so every angle is ~0; untied: the hidden pair is off the gradient."""
    for name, extra in (("tied", ["--tied"]), ("untied", [])):
        assert main(["train", "--arch", "64-16-10", "--epochs", "1", "--out", str(tmp_path / name), "--quiet",
                     *extra]) == 0
    capsys.readouterr()
    assert main(["diagnose", str(tmp_path / "tied"), "--probe", "20", "--json"]) == 0
    tied = json.loads(capsys.readouterr().out)
    assert tied["probe"] == 20 and tied["rows"][-1]["name"] == "all"
    assert max(r["angle_nu_grad"] for r in tied["rows"]) < 0.01
    # a looser relaxation than the run's (1e-5) swamps part of the two-phase signal (h_beta - h0) / beta
    assert main(["diagnose", str(tmp_path / "tied"), "--probe", "20", "--json", "--tol", "3e-2"]) == 0
    loose = json.loads(capsys.readouterr().out)
    assert loose["rows"][-1]["angle_update_grad"] > tied["rows"][-1]["angle_update_grad"] + 5
    assert main(["diagnose", str(tmp_path / "untied"), "--probe", "20"]) == 0
    text = capsys.readouterr().out
    assert "angle(nu,-dJ/dW)" in text and "pair 0" in text and "bwd1" in text
    untied = {r.split()[0]: float(r.split()[3]) for r in text.splitlines()[2:] if "pair" not in r}
    assert untied["fwd0"] > 5 and untied["fwd1"] < untied["fwd0"]
    assert main(["train", "--arch", "64-16-10", "--epochs", "1", "--driver", "circuit", "--out",
                 str(tmp_path / "circuit"), "--quiet"]) == 0
    r = run("diagnose", str(tmp_path / "circuit"))
    assert r.returncode == 2 and "diagnose needs a run of the ideal driver" in r.stderr


def test_shift_option_reaches_the_run_config(tmp_path):
    out = tmp_path / "run"
    assert main(["train", "--arch", "64-16-10", "--epochs", "1", "--shift", "1", "--out", str(out), "--quiet"]) == 0
    assert json.loads((out / "config.json").read_text())["shift"] == 1


def test_optional_setting_takes_none_on_the_command_line(tmp_path):
    """``--opamp-gain none``: an exact virtual ground (saved as null)."""
    out = tmp_path / "vg"
    assert main(["train", "--driver", "circuit", "--level", "vground", "--opamp-gain", "none", "--wire-r-row", "1",
                 "--arch", "64-8-10", "--epochs", "1", "--train-subset", "20", "--test-subset", "20",
                 "--out", str(out), "--quiet"]) == 0
    cfg = json.loads((out / "config.json").read_text())
    assert cfg["driver_opamp_gain"] is None and cfg["driver_wire_r_row"] == 1.0
    with pytest.raises(SystemExit):
        main(["train", "--driver", "circuit", "--level", "vground", "--opamp-gain", "nothing", "--out", str(out)])
