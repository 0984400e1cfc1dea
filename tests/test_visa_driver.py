"""The VISA driver through the bench emulator over loopback TCP (pyvisa-py)."""
import numpy as np
import pytest

from analogprop.bench.scpi import InstrumentError, SetpointError
from analogprop.data import load_digits
from analogprop.drivers.ideal import IdealDriver
from analogprop.drivers.visa import VisaDriver
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from analogprop.training.trainer import TrainConfig, TwoPhaseTrainer
from bench_helpers import DIGITS, emulated, profile

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")
FAST_RECOVERY = {"reconnect_attempts": 3, "reconnect_backoff_s": 0.01}


def contracting_network(seed=1):
    """6-4-3 with weak feedback: one fixed point per input, whatever the starting state."""
    net = Network.create((6, 4, 3), seed=seed)
    net.params["bwd1"] *= 0.2
    net.params["bias1"][:] = 0.1
    return net


def batch(seed, n=8):
    rng = np.random.default_rng(seed)
    return rng.uniform(0, 1, (n, 6)), rng.integers(0, 3, n)


@pytest.mark.parametrize("physics", ["ideal", "circuit"])
def test_phases_and_update_match_the_ideal_model(physics):
    """With no device spread both emulated boards (network, compiled circuit) are the ideal model."""
    with emulated(profile(physics=physics)) as (emu, p), VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
        x, labels = batch(0)
        y = np.eye(3)[labels]
        free = drv.relax_free(x)
        nudged = drv.relax_nudged(x, y, 0.5, free)
        ideal = IdealDriver(Network((6, 4, 3), drv.effective_weights()), FastSolver(tol=1e-10))
        f0 = ideal.relax_free(x)
        n0 = ideal.relax_nudged(x, y, 0.5, f0)
        for a, b in zip(free.states + nudged.states, f0.states + n0.states):
            np.testing.assert_allclose(a, b, atol=2e-6)  # the DMM's 1 uV resolution
        upd, ref = drv.local_update(x, free, nudged), ideal.local_update(x, f0, n0)
        for k in ref:
            np.testing.assert_allclose(upd[k], ref[k], atol=2e-5)
        # codes are the rounded weights; the board holds exactly the host's codes
        c = p.conductances
        for k, w in drv.get_parameters().items():
            np.testing.assert_allclose(drv.effective_weights()[k], w, atol=c.lsb / 2 + 1e-12)
            n = drv.codes[k].size
            np.testing.assert_array_equal(emu.state.physics.codes[c.base[k]:c.base[k] + n], drv.codes[k].ravel())


def test_round_trips_per_phase_are_constant_per_sample():
    with emulated(profile()) as (emu, p), VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
        counts = {}
        for n in (2, 5):
            x, labels = batch(n, n)
            before = {k: dict(v) for k, v in drv.traffic.items()}
            free = drv.relax_free(x)
            drv.relax_nudged(x, np.eye(3)[labels], 0.5, free)
            counts[n] = {ph: {k: drv.traffic[ph][k] - before[ph][k] for k in ("writes", "queries")}
                         for ph in ("free", "nudged")}
        n_inst = len(p.instruments)
        for n, c in counts.items():
            assert c["free"] == {"writes": 0, "queries": 2 * n + n_inst + 1}
            assert c["nudged"]["queries"] == 4 * n + n_inst + 1
        assert counts[2]["nudged"]["writes"] == 1 and counts[5]["nudged"]["writes"] == 0  # nudge code set once


def test_settling_check_reports_a_board_that_has_not_settled():
    """A second scan settle_check_ms later: its change is the residual; slow boards are flagged unconverged."""
    check = {"settle_check_s": 0.005, "settle_tol_v": 1e-4}
    x, labels = batch(3, 4)
    with emulated(profile(timing=check)) as (emu, p), VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
        before = dict(drv.traffic["free"])
        free = drv.relax_free(x)  # tau 0: settled at once
        assert free.converged.all() and np.all(free.residual <= 1e-5)
        assert drv.traffic["free"]["queries"] - before["queries"] == 3 * len(x) + len(p.instruments) + 1
        nudged = drv.relax_nudged(x, np.eye(3)[labels], 0.5, free)
        assert nudged.converged.all() and nudged.n_unconverged == 0
    with emulated(profile(timing=check, tau_ms=20.0)) as (emu, p), VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
        slow = drv.relax_free(x)  # scanned at once and 5 ms later, with a 20 ms time constant
        assert slow.n_unconverged == len(x) and np.all(slow.residual > 1e-4)
    with emulated(profile()) as (emu, p), VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
        unchecked = drv.relax_free(x)
        assert unchecked.converged.all() and np.isnan(unchecked.residual).all()


def test_out_of_limit_setpoints_are_refused_before_sending():
    with emulated(profile()) as (emu, p), VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
        x, labels = batch(0)
        x[3, 4] = 1.2
        sent = dict(emu.state.commands)
        with pytest.raises(SetpointError, match=r"input 4 of sample 3 is 1.2 V, outside the safe limits \[0.0, 1.0\] V of channel 5"):
            drv.relax_free(x)
        x[3, 4] = 0.5
        y = np.eye(3)[labels] * 1.5
        with pytest.raises(SetpointError, match="target 0 of sample"):
            drv.relax_nudged(x, y, 0.5, None)
        with pytest.raises(ConfigError, match="resistive nudge"):
            drv.relax_nudged(x, np.eye(3)[labels], -0.5, None)
        with pytest.raises(ConfigError, match="NaN"):
            drv.relax_free(np.full((2, 6), np.nan))
        assert emu.state.commands == sent


def train_steps(p, faults=None, steps=6):
    """Train `steps` minibatches; faults[i] = list of (instrument, kind, match, arg) armed before step i."""
    with emulated(p) as (emu, pe), VisaDriver(pe, contracting_network(), log=lambda m: None) as drv:
        tr = TwoPhaseTrainer(drv, TrainConfig(lrs=(0.5, 0.2), beta=0.5, batch_size=8))
        for i in range(steps):
            for f in (faults or {}).get(i, []):
                emu.inject(*f)
            x, labels = batch(100 + i)
            tr.step(x, labels)
        assert emu.pending_faults() == 0
        c = pe.conductances
        board = {k: emu.state.physics.codes[c.base[k]:c.base[k] + v.size].copy() for k, v in drv.codes.items()}
        return drv.get_parameters(), {k: v.ravel() for k, v in drv.codes.items()}, board, drv.events


def test_faults_are_survived_without_losing_or_doubling_an_update():
    p = profile(timeout_ms=300, recovery=FAST_RECOVERY)
    clean, clean_codes, _, events = train_steps(p, steps=15)
    assert len(events) == 1 and events[0].startswith("device codes of ['fwd0'")  # the initial programming only
    faults = {0: [("dmm", "drop", "MEAS")],
              1: [("source", "delay", "SOUR:VOLT", "0.5")],
              2: [("board", "error", "NUDG:STAT")],
              3: [("source", "range", "SOUR:VOLT")],
              4: [("board", "drop_after", "PROG")],   # update written, connection lost before it was verified
              5: [("board", "drop", "PROG"), ("supply", "drop", "")],
              # replies that do not answer their query
              6: [("dmm", "malformed", "MEAS")],
              7: [("supply", "malformed", "SOUR:VOLT:ILIM:TRIP")],
              8: [("dmm", "wrong", "MEAS", "SAMP:COUN?")],
              9: [("board", "wrong", "NUDG:STAT 1", "NUDG?")],
              10: [("board", "malformed", "CRC", "\u00b5V")],
              # an unsolicited line shifts every later reply by one: caught by the phase's closing queries
              11: [("dmm", "extra", "MEAS")],
              12: [("source", "extra", "SOUR:VOLT")],
              13: [("board", "extra", "NUDG:STAT 1")],
              14: [("board", "extra", "CRC")]}
    params, codes, board, events = train_steps(p, faults, steps=15)
    assert sum("reconnecting" in e for e in events) >= 15, events
    for kind in ("dmm': MEAS:VOLT:DC?: malformed reply 'ERROR'", "supply': :SOUR:VOLT:ILIM:TRIP?: malformed reply 'ERROR'",
                 "dmm': MEAS:VOLT:DC?: expected 7 values, got 1", "replied '250', expected 1", "reply is not ASCII",
                 "dmm': malformed SYST:ERR? reply", "source': malformed SYST:ERR? reply",
                 "board': malformed SYST:ERR? reply '1'"):
        assert any(kind in e for e in events), (kind, events)
    for k in clean:
        np.testing.assert_allclose(params[k], clean[k], atol=1e-6)
        np.testing.assert_array_equal(codes[k], clean_codes[k])
        np.testing.assert_array_equal(board[k], codes[k])
    moved = max(np.abs(params[k] - contracting_network().params[k]).max() for k in params)
    assert moved > 0.01  # the updates were real


def test_persistent_fault_is_reported_with_outputs_at_zero():
    with emulated(profile(recovery=FAST_RECOVERY)) as (emu, p):
        drv = VisaDriver(p, contracting_network(), log=lambda m: None)
        x, _ = batch(0)
        drv.relax_free(x)
        emu.inject("source", "stuck", "", "2")
        with pytest.raises(InstrumentError, match=r"free phase: gave up after 3 reconnect attempts: .*channel 2 stuck.*; "
                                                  r"outputs ramped to zero and off"):
            drv.relax_free(x)
        st = emu.state
        assert not st.outputs["source"] and not st.smu["out"] and st.smu["volt"] == 0 and not st.nudge_on
        np.testing.assert_array_equal(st._applied(p.inputs), 0.0)
        drv.close()


@pytest.mark.parametrize("fault", [("dmm", "malformed", "MEAS"), ("supply", "malformed", "SOUR:VOLT:ILIM:TRIP", "ERROR"),
                                   ("dmm", "wrong", "MEAS", "*IDN?")])
def test_a_reply_fault_that_persists_is_reported_with_outputs_at_zero(fault):
    """One more bad reply than there are reconnect attempts: one line, outputs safe, weights untouched."""
    with emulated(profile(recovery=FAST_RECOVERY)) as (emu, p):
        drv = VisaDriver(p, contracting_network(), log=lambda m: None)
        x, _ = batch(0)
        drv.relax_free(x)
        codes = emu.state.physics.codes.copy()
        for _ in range(4):
            emu.inject(*fault)
        with pytest.raises(InstrumentError) as e:
            drv.relax_free(x)
        message = str(e.value)
        assert "\n" not in message and message.startswith("free phase: gave up after 3 reconnect attempts: "
                                                          f"instrument {fault[0]!r}: "), message
        assert message.endswith("; outputs ramped to zero and off"), message
        st = emu.state
        assert not st.outputs["source"] and not st.smu["out"] and st.smu["volt"] == 0 and not st.nudge_on
        np.testing.assert_array_equal(st.physics.codes, codes)
        assert emu.pending_faults() == 0
        drv.close()


def test_an_smu_in_another_command_set_is_refused_before_anything_is_switched_on():
    with emulated(profile(smu_language="TSP", recovery=FAST_RECOVERY)) as (emu, p):
        with pytest.raises(InstrumentError) as e:
            VisaDriver(p, contracting_network(), log=lambda m: None)
        assert str(e.value) == (
            f"connect: instrument 'supply' at {p.instruments['supply'].resource} uses the 'TSP' command set (*LANG?); "
            "switch it to SCPI (front panel: MENU > System > Settings > Command Set, or send *LANG SCPI) and reboot "
            "it; nothing was switched on")
        st = emu.state
        assert st.commands["source"] == st.commands["dmm"] == 1  # *IDN? only
        assert st.commands["board"] == 0 and not st.outputs["source"] and not st.smu["out"]


def test_the_supply_sources_voltage_whatever_function_it_was_left_in():
    with emulated(profile()) as (emu, p):
        assert emu.state.smu["func"] == "CURR"
        with VisaDriver(p, contracting_network(), log=lambda m: None) as drv:
            assert emu.state.smu["func"] == "VOLT" and emu.state.powered()
            assert max(np.abs(s).max() for s in drv.relax_free(batch(0)[0]).states) > 0.1


def test_close_ramps_everything_to_zero():
    with emulated(profile()) as (emu, p):
        drv = VisaDriver(p, contracting_network(), log=lambda m: None)
        x, labels = batch(0)
        drv.relax_nudged(x, np.eye(3)[labels], 0.5, drv.relax_free(x))
        assert emu.state.outputs["source"] and emu.state.smu["out"]
        drv.close()
        st = emu.state
        np.testing.assert_array_equal(st.volts["source"], 0.0)
        assert not st.outputs["source"] and not st.smu["out"] and st.smu["volt"] == 0 and not st.nudge_on
        drv.close()  # idempotent


def test_tripped_supply_is_reported_with_outputs_at_zero():
    with emulated(profile(supply_current_a=0.08)) as (emu, p):  # the board draws more than the 50 mA limit
        with pytest.raises(InstrumentError, match=r"connect: instrument 'supply': the board supply hit its current "
                                                  r"limit \(0.05 A\); outputs ramped to zero and off"):
            VisaDriver(p, contracting_network(), log=lambda m: None)
        st = emu.state
        assert not st.outputs["source"] and not st.smu["out"] and st.smu["volt"] == 0


def test_unreachable_bench_is_reported():
    p = profile(recovery={"reconnect_attempts": 1, "reconnect_backoff_s": 0.0})
    with emulated(p) as (emu, pe):
        pass  # servers closed again: nothing listens on these ports now
    with pytest.raises(InstrumentError, match="connect: gave up after 1 reconnect attempts: .*cannot connect"):
        VisaDriver(pe, contracting_network(), log=lambda m: None)


def test_profile_must_fit_the_network():
    with pytest.raises(ConfigError, match="does not match the board"):
        VisaDriver(profile(), Network.create((6, 5, 3)))
    with pytest.raises(ConfigError, match="--no-bias"):
        VisaDriver(profile(), Network.create((6, 4, 3), bias=False))


def test_training_through_the_emulator_lowers_the_error():
    """Two epochs on 200 digits: the bench learns as the ideal model does (mismatch, noise, 1e-3 code steps)."""
    data = load_digits().subset(200, 50)
    cfg = TrainConfig(lrs=(0.5, 0.2), beta=0.5, batch_size=10, epochs=2)
    net = Network.create((64, 32, 10), seed=0)
    ideal = TwoPhaseTrainer(IdealDriver(net.copy()), cfg)
    ideal.fit(data)
    expected = ideal.evaluate(data.x_train, data.y_train)
    p = profile(DIGITS, mismatch=0.05, read_noise_v=0.0005, tau_ms=0.0)
    with emulated(p) as (emu, pe), VisaDriver(pe, net.copy(), log=lambda m: None) as drv:
        tr = TwoPhaseTrainer(drv, cfg)
        before = tr.evaluate(data.x_train, data.y_train)
        tr.fit(data)
        after = tr.evaluate(data.x_train, data.y_train)
    assert after["error"] < before["error"] - 0.15 and after["cost"] < before["cost"] - 0.1, (before, after)
    assert abs(after["error"] - expected["error"]) < 0.1, (after, expected)
