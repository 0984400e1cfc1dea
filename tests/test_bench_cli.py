"""`analogprop train --driver visa` and `bench serve` as commands: separate processes train
through the emulator over loopback TCP; Ctrl-C and kill -9 are survived by resuming."""
import signal
import socket
import subprocess
import sys
import time

import numpy as np
import pytest

from analogprop.bench.emulator import BenchEmulator, profile_text_with_resources
from analogprop.bench.profile import load_profile
from analogprop.cli import main
from analogprop.drivers.visa import quantise
from analogprop.runs.directory import load_checkpoint
from bench_helpers import DIGITS, SMALL

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
        "analogprop: error: driver visa needs visa.profile (--profile, config key 'driver_profile'): "
        "a bench profile, see instruments/"]
    bad = tmp_path / "bad.toml"
    bad.write_text(DIGITS.read_text().replace("repeats = 1", "repeats = 0"))
    assert main(["train", "--driver", "visa", "--profile", str(bad), "--out", out, "--quiet"]) == 2
    err = capsys.readouterr().err.strip().splitlines()
    assert len(err) == 1 and f"{bad}: field 'timing.repeats': must be >= 1, got 0" in err[0]


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def test_bench_serve_with_armed_fault(tmp_path):
    import pyvisa

    from analogprop.bench.instruments import ScannerDMM
    from analogprop.bench.scpi import ConnectionLost

    base = load_profile(SMALL)
    ports = {n: f"TCPIP::127.0.0.1::{free_port()}::SOCKET" for n in base.instruments}
    prof = tmp_path / "bench.toml"
    prof.write_text(profile_text_with_resources(SMALL.read_text(), {n: s.resource for n, s in base.instruments.items()}, ports))
    cmd = [sys.executable, "-m", "analogprop", "bench", "serve", "--profile", str(prof), "--duration", "20",
           "--fault", "dmm:drop:MEAS", "--max-clients", "2"]
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
        port = int(ports["board"].split("::")[2])
        sessions = [socket.create_connection(("127.0.0.1", port), timeout=10) for _ in range(3)]
        for s in sessions:
            s.sendall(b"*OPC?\n")
        assert [s.recv(10) for s in sessions] == [b"1\n", b"1\n", b""]  # the third is closed: 2 sessions at most
        for s in sessions:
            s.close()
    finally:
        proc.send_signal(signal.SIGINT)
        err = proc.communicate(timeout=30)[1]
    assert "bench emulator: board: refused a connection from 127.0.0.1:" in err, err


def edited(old, new):
    text = SMALL.read_text()
    assert old in text, old
    return text.replace(old, new, 1)


RESOURCE = "TCPIP::127.0.0.1::{}::SOCKET"
BAD_PROFILES = [
    *[(edited("::56202::", f"::{port}::"), f"field 'instruments.dmm.resource': '{RESOURCE.format(port)}': port "
       f"'{port}' is not a TCP port (an integer in 1..65535)") for port in ("99999", "0", "-1")],
    (edited("limits = [0.0, 1.0]", "limits = [nan, 1.0]"), "field 'inputs.limits': limits must be finite, got [nan, 1.0]"),
    (edited("limits = [0.0, 1.0]", "limits = [0.0, inf]"), "field 'inputs.limits': limits must be finite, got [0.0, inf]"),
    (edited("limits = [0.0, 1.0]", "limits = [1.0, 0.0]"), "field 'inputs.limits': lower limit 1.0 is above upper limit 0.0"),
]
BAD_OPTIONS = [
    (["--duration", "-1"], "--duration -1.0: expected a finite number of seconds > 0"),
    (["--duration", "NaN"], "--duration nan: expected a finite number of seconds > 0"),
    (["--duration", "inf"], "--duration inf: expected a finite number of seconds > 0"),
    (["--duration", "0"], "--duration 0.0: expected a finite number of seconds > 0"),
    (["--max-clients", "0"], "--max-clients 0: expected at least 1 session per instrument"),
    (["--fault", "dmm:melt"], "--fault dmm:melt: unknown fault 'melt' (choose drop, drop_after, delay, error, range, "
                              "malformed, wrong, extra, stuck)"),
    (["--fault", "scope:drop"], "--fault scope:drop: no instrument 'scope' in the profile (defined: source, dmm, supply, board)"),
    (["--fault", "dmm"], "--fault 'dmm': expected INSTRUMENT:KIND[:MATCH[:ARG]]"),
    (["--fault", "dmm:delay:MEAS:soon"], "--fault dmm:delay:MEAS:soon: delay 'soon' is not a number of seconds in [0, 3600]"),
    (["--fault", "dmm:delay:MEAS:nan"], "--fault dmm:delay:MEAS:nan: delay 'nan' is not a number of seconds in [0, 3600]"),
    (["--fault", "dmm:delay:MEAS:-1"], "--fault dmm:delay:MEAS:-1: delay '-1' is not a number of seconds in [0, 3600]"),
    (["--fault", "board:error::oops"], "--fault board:error::oops: error 'oops' is not CODE,\"TEXT\" (e.g. -350,\"Queue overflow\")"),
    (["--fault", "source:stuck::99"], "--fault source:stuck::99: stuck channel '99' is not a channel of 'source' (1..16)"),
    (["--fault", "source:stuck::x"], "--fault source:stuck::x: stuck channel 'x' is not a channel of 'source' (1..16)"),
    (["--fault", "supply:stuck::1"], "--fault supply:stuck::1: stuck channel '1' is not a channel of 'supply' (none)"),
    (["--fault", "dmm:drop:MEAS:5"], "--fault dmm:drop:MEAS:5: fault 'drop' takes no argument, got '5'"),
    (["--fault", "dmm:wrong:MEAS:FOO"], "--fault dmm:wrong:MEAS:FOO: wrong reply source 'FOO' is not a query (ends with '?')"),
]


@pytest.mark.parametrize("text, message", BAD_PROFILES)
def test_bench_serve_refuses_a_bad_profile_in_one_line(tmp_path, capsys, text, message):
    bad = tmp_path / "bench.toml"
    bad.write_text(text)
    assert main(["bench", "serve", "--profile", str(bad), "--duration", "0.01"]) == 2
    assert capsys.readouterr().err.splitlines() == [f"analogprop: error: {bad}: {message}"]


@pytest.mark.parametrize("options, message", BAD_OPTIONS)
def test_bench_serve_refuses_bad_options_before_serving(capsys, options, message):
    t0 = time.monotonic()
    assert main(["bench", "serve", "--profile", str(SMALL), "--duration", "30", *options]) == 2
    out = capsys.readouterr()
    assert out.err.splitlines() == [f"analogprop: error: {message}"] and out.out == ""  # nothing was served
    assert time.monotonic() - t0 < 5
