"""Protocol tests of the instrument drivers against pyvisa-sim (instruments/sim-bench.yaml).

Each test ends by draining SYST:ERR?: pyvisa-sim queues -113 for any command
it does not know, so an empty queue means every command was spelled as the
definitions say.
"""
from pathlib import Path

import numpy as np
import pytest
import pyvisa

from analogprop.bench.instruments import SMU, Board, ScannerDMM, VoltageSource, codes_crc
from analogprop.bench.scpi import Instrument, InstrumentError, ReplyError, SCPIErrorQueued, SetpointError

SIM = Path(__file__).resolve().parent.parent / "instruments" / "sim-bench.yaml"
RES = {k: f"TCPIP::127.0.0.1::5630{i}::SOCKET" for i, k in enumerate(["source", "dmm", "smu", "board", "smu_tsp"], 1)}


@pytest.fixture
def rm():
    m = pyvisa.ResourceManager(f"{SIM}@sim")
    yield m
    m.close()


def make(cls, rm, name, idn="analogprop", **kw):
    return cls(name, RES[name], idn, 500, rm, **kw).connect()


def test_source_block_write_readback_and_safe_ramp(rm):
    src = make(VoltageSource, rm, "source", ramp_step_v=0.25, ramp_dwell_s=0.0)
    assert src.idn.startswith("analogprop,VS-16")
    src.set_limits(1, 3, (0.0, 1.0))
    src.set_current_limit(1, 3, 0.005)
    src.output_enabled = 1
    assert src.output_enabled is True
    src.set_voltages([(1, [0.1, 0.2, 0.3])], synced=True)
    np.testing.assert_allclose(src.voltages(1, 3), [0.1, 0.2, 0.3])
    src.safe_shutdown()  # 0.3 V in 0.25 V steps: half way, then zero, then output off
    assert src.output_enabled is False
    src.check_errors()


def test_source_refuses_out_of_limit_setpoints_before_sending(rm):
    src = make(VoltageSource, rm, "source")
    src.set_limits(1, 3, (0.0, 1.0))
    before = src.writes + src.queries
    with pytest.raises(SetpointError, match="channel 2: setpoint 1.5 V is outside the safe limits"):
        src.set_voltages([(1, [0.1, 1.5, 0.3])])
    with pytest.raises(SetpointError, match="channel 9"):  # no limits configured: only 0 V allowed
        src.set_voltages([(9, [0.5])])
    with pytest.raises(SetpointError, match="nan"):
        src.set_voltages([(1, [0.1, float("nan"), 0.3])])
    with pytest.raises(SetpointError, match="output"):
        src.output_enabled = 2
    assert src.writes + src.queries == before
    src.check_errors()


def test_dmm_scan_read_and_malformed_replies(rm):
    dmm = make(ScannerDMM, rm, "dmm")
    dmm.sample_count = 1
    assert dmm.sample_count == 1
    np.testing.assert_allclose(dmm.measure(101, 103), [0.1, 0.2, 0.3])
    dmm.sample_count = 2
    np.testing.assert_allclose(dmm.measure(101, 102, repeats=2), [0.2, 0.35])  # mean of two sweeps
    with pytest.raises(ReplyError, match="expected 6 values, got 3"):
        dmm.measure(101, 103, repeats=2)
    with pytest.raises(ReplyError, match="malformed reply 'overload'"):
        dmm.measure(104, 104)
    with pytest.raises(SetpointError, match="sample count"):
        dmm.sample_count = 0
    dmm.check_errors()


def test_smu_properties_limits_and_shutdown(rm):
    smu = make(SMU, rm, "smu", voltage_limits=(0.0, 3.6), ramp_step_v=0.5, ramp_dwell_s=0.0)
    assert smu.source_function == "CURR"  # as the previous user left it
    smu.source_volts(3.3, 0.05)
    assert smu.source_function == "VOLT"
    with pytest.raises(SetpointError, match="source function: 'VOLTAGE' is not one of VOLT, CURR"):
        smu.source_function = "VOLTAGE"
    smu.output_enabled = 1
    assert smu.source_voltage == pytest.approx(3.3)
    assert smu.current_limit == pytest.approx(0.05)
    assert smu.limit_tripped is False
    assert smu.current == pytest.approx(0.012)
    writes = smu.writes
    with pytest.raises(SetpointError, match=r"source voltage: 5.0 is outside \[0.0, 3.6\]"):
        smu.source_voltage = 5.0
    assert smu.writes == writes and smu.source_voltage == pytest.approx(3.3)
    smu.safe_shutdown()
    assert smu.source_voltage == 0.0 and smu.output_enabled is False
    smu.check_errors()


def test_board_programming_readback_crc_and_nudge(rm):
    board = make(Board, rm, "board", codes=(0, 4000), nudge_codes=(0, 1000), address_count=64)
    board.program(0, np.array([1, 2, 3]))
    np.testing.assert_array_equal(board.read_codes(0, 3), [1, 2, 3])
    assert board.checksum(0, 3) == codes_crc(np.array([1, 2, 3]))
    board.nudge_code = 250
    assert board.nudge_code == 250
    board.switch_nudge(True)
    assert board.nudge_enabled is True
    board.safe_shutdown()
    assert board.nudge_enabled is False
    with pytest.raises(SetpointError, match="code 4001 is outside"):
        board.program(0, np.array([1, 4001]))
    with pytest.raises(SetpointError, match="addresses 63..64"):
        board.program(63, np.array([1, 2]))
    with pytest.raises(SetpointError, match="integers"):
        board.program(0, np.array([0.5]))
    with pytest.raises(SetpointError, match="nudge code"):
        board.nudge_code = 1001
    board.check_errors()


def test_smu_in_another_command_set_is_refused(rm):
    with pytest.raises(InstrumentError, match=r"instrument 'smu_tsp' at TCPIP::127.0.0.1::56305::SOCKET uses the 'TSP' "
                                              r"command set \(\*LANG\?\); switch it to SCPI .*\*LANG SCPI.* and reboot it"):
        make(SMU, rm, "smu_tsp")
    tsp = make(Instrument, rm, "smu_tsp")  # the same instrument, opened without the check, answers *IDN?
    assert tsp.query("*LANG?").strip() == "TSP"


def test_idn_mismatch_and_error_queue(rm):
    with pytest.raises(InstrumentError, match="identifies as 'analogprop,DMM-S10,sim,1.0', expected 'keysight'"):
        make(ScannerDMM, rm, "dmm", idn="keysight")
    board = make(Board, rm, "board")
    board.write("BOGUS 1")
    with pytest.raises(SCPIErrorQueued, match='-113,Undefined header'):
        board.check_errors()
    assert board.drain_errors() == []
