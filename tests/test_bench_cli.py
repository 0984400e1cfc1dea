"""`analogprop train --driver visa` and `bench serve` as commands: separate processes train
through the emulator over loopback TCP; Ctrl-C and kill -9 are survived by resuming."""
import signal
import subprocess
import sys
import time

import numpy as np
import pytest

from analogprop.bench.emulator import BenchEmulator, profile_text_with_resources
from analogprop.bench.profile import load_profile
from analogprop.cli import main
from analogprop.drivers.visa import quantise
from analogprop.runs import load_checkpoint
from bench_helpers import DIGITS

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


def train(*args):
    return [sys.executable, "-m", "analogprop", "train", "--quiet", *args]


def next_checkpoint(path, proc, previous=None, timeout=60):
    """Block until the run writes a checkpoint whose state differs from `previous`; returns that state."""
    end = time.monotonic() + timeout
    while time.monotonic() < end:
        assert proc.poll() is None, proc.communicate()
        if path.exists():
            state = load_checkpoint(path)[1]["state"]
            if state != previous:
                return state
        time.sleep(0.02)
    raise AssertionError("no checkpoint in time")


def test_train_interrupt_kill_and_resume(tmp_path):
    """Ctrl-C, kill -9 and resume: every run continues from the last checkpointed minibatch."""
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
        st = emu.state

        def interrupt(proc):
            proc.send_signal(signal.SIGINT)
            out_, err = proc.communicate(timeout=60)
            assert "stopped; checkpoint written" in err and "Traceback" not in err, err
            assert proc.returncode == 130 and "no epoch finished yet" in out_
            assert not st.outputs["source"] and not st.smu["out"] and st.smu["volt"] == 0 and not st.nudge_on
            return load_checkpoint(ckpt)[1]["state"]

        # Ctrl-C: finish the minibatch, checkpoint, ramp the bench down
        a = subprocess.Popen(train(*args), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        next_checkpoint(ckpt, a)
        stopped = interrupt(a)

        # resume, then kill -9 right after its first checkpoint (outputs stay on: nothing can run)
        b = subprocess.Popen(train("--resume", *args[-2:]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        killed = next_checkpoint(ckpt, b, stopped)
        b.kill()
        b.communicate(timeout=30)
        assert killed["epoch"] == 0 and killed["batch"] in (stopped["batch"] + 1, stopped["batch"] + 2)

        # resume again: it continues from the killed run's checkpoint, not from the start
        c = subprocess.Popen(train("--resume", *args[-2:]), stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True)
        resumed = next_checkpoint(ckpt, c, killed)
        assert resumed["batch"] in (killed["batch"] + 1, killed["batch"] + 2)
        final = interrupt(c)
        assert final["batch"] >= resumed["batch"]
        assert final["stats"]["samples"] == 20 * final["batch"]  # every minibatch counted once across 3 runs

        params, meta = load_checkpoint(ckpt)
        assert meta["config"]["driver_profile"] == str(prof)
        c_ = base.conductances
        for name, w in params.items():  # the board holds exactly the codes of the checkpointed weights
            codes = quantise(w, c_).ravel()
            np.testing.assert_array_equal(st.physics.codes[c_.base[name]:c_.base[name] + codes.size], codes)


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
