"""`analogprop train --driver visa` end to end: a separate process trains through the
emulator (in this process) over loopback TCP; Ctrl-C and kill -9 are survived by resuming."""
import json
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from analogprop.bench.emulator import BenchEmulator, profile_text_with_resources
from analogprop.bench.profile import load_profile
from analogprop.cli import main
from analogprop.drivers.visa import VisaDriver
from analogprop.runs import load_checkpoint
from bench_helpers import DIGITS

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def train(*args):
    return [sys.executable, "-m", "analogprop", "train", "--quiet", *args]


def wait_for_checkpoint(path, proc, after_batch=-1, timeout=60):
    """Block until the run's checkpoint is past minibatch `after_batch`; returns its state."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        if path.exists():
            state = load_checkpoint(path)[1]["state"]
            if state["batch"] > after_batch or state["epoch"] > 0:
                return state
        time.sleep(0.05)
    raise AssertionError("no checkpoint in time")


def test_train_interrupt_kill_and_resume(tmp_path):
    base = load_profile(DIGITS)
    with BenchEmulator(base, ephemeral=True) as emu:
        text = profile_text_with_resources(DIGITS.read_text(), {n: s.resource for n, s in base.instruments.items()},
                                           emu.resources)
        prof = tmp_path / "bench.toml"
        prof.write_text(text)
        out = tmp_path / "run"
        ckpt = out / "checkpoint.npz"
        args = ["--driver", "visa", "--profile", str(prof), "--epochs", "1", "--checkpoint-every", "2",
                "--out", str(out)]

        # Ctrl-C: finish the minibatch, checkpoint, ramp the bench down
        a = subprocess.Popen(train(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        wait_for_checkpoint(ckpt, a)
        a.send_signal(signal.SIGINT)
        _, err = a.communicate(timeout=60)
        assert "stopped; checkpoint written" in err and "Traceback" not in err, err
        assert a.returncode in (2, 130)  # 2: train_run reports that no epoch has finished yet
        st = emu.state
        assert not st.outputs["source"] and not st.smu["out"] and st.smu["volt"] == 0 and not st.nudge_on
        stopped = load_checkpoint(ckpt)[1]["state"]

        # kill -9 mid-run: nothing can run, the checkpoint survives
        b = subprocess.Popen(train("--resume", *args[-2:]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = wait_for_checkpoint(ckpt, b, after_batch=stopped["batch"] + 1)
        b.kill()
        b.communicate(timeout=30)
        assert killed["batch"] > stopped["batch"]

        # resume to the end of the epoch
        c = subprocess.run(train("--resume", *args[-2:]), capture_output=True, text=True, timeout=120)
        assert c.returncode == 0, c.stderr
        assert "final: train error" in c.stdout
        records = [json.loads(line) for line in (out / "metrics.jsonl").read_text().splitlines()]
        assert len(records) == 1 and records[0]["test_error"] < 0.6  # from ~0.9 untrained
        params, meta = load_checkpoint(ckpt)
        assert meta["state"]["epoch"] == 1 and meta["config"]["driver_profile"] == str(prof)
        # the board holds exactly the codes of the checkpointed weights
        quant = VisaDriver.quantise
        c_ = base.conductances
        for name, w in params.items():
            codes = quant(type("P", (), {"profile": base})(), w).ravel()
            np.testing.assert_array_equal(emu.state.physics.codes[c_.base[name]:c_.base[name] + codes.size], codes)
        assert not st.outputs["source"] and not st.smu["out"]


def test_visa_driver_needs_a_profile(tmp_path, capsys):
    out = str(tmp_path / "r")
    assert main(["train", "--driver", "visa", "--out", out, "--quiet"]) == 2
    assert capsys.readouterr().err.strip().splitlines() == [
        "analogprop: error: --driver visa needs --profile PATH (a bench profile, see instruments/)"]
    bad = tmp_path / "bad.toml"
    bad.write_text(DIGITS.read_text().replace("repeats = 1", "repeats = 0"))
    assert main(["train", "--driver", "visa", "--profile", str(bad), "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}: field 'timing.repeats': must be >= 1, got 0" in err[0]


def free_port():
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bench_serve_with_armed_fault(tmp_path):
    import pyvisa

    from analogprop.bench.instruments import ScannerDMM
    from analogprop.bench.scpi import ConnectionLost
    from bench_helpers import SMALL

    base = load_profile(SMALL)
    ports = {n: f"TCPIP::127.0.0.1::{free_port()}::SOCKET" for n in base.instruments}
    prof = tmp_path / "bench.toml"
    prof.write_text(profile_text_with_resources(SMALL.read_text(), {n: s.resource for n, s in base.instruments.items()}, ports))
    cmd = [sys.executable, "-m", "analogprop", "bench", "serve", "--profile", str(prof), "--duration", "20",
           "--fault", "dmm:drop:MEAS"]
    proc = subprocess.Popen(cmd, stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
    try:
        lines = [proc.stdout.readline() for _ in base.instruments]
        assert lines[1] == f"dmm: {ports['dmm']} (dmm_scanner)\n"
        rm = pyvisa.ResourceManager("@py")
        dmm = ScannerDMM("dmm", ports["dmm"], "analogprop,DMM-S10", 1000, rm).connect()
        with pytest.raises(ConnectionLost):
            dmm.measure(101, 107)
        np.testing.assert_allclose(dmm.connect().measure(101, 107), 0.0, atol=0.005)  # unpowered: 0 V + noise
        rm.close()
    finally:
        proc.send_signal(signal.SIGINT)
        proc.communicate(timeout=30)
    r = subprocess.run(cmd[:-1] + ["dmm:melt"], capture_output=True, text=True, timeout=60)
    assert r.returncode == 2 and r.stderr.strip().splitlines() == [
        "analogprop: error: --fault dmm:melt: unknown fault 'melt' (choose drop, drop_after, delay, error, range, stuck)"]
