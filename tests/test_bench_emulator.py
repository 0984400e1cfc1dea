"""The bench emulator over real loopback TCP (pyvisa-py): physics, protocol, bounds, faults."""
import socket
import time
import tracemalloc

import numpy as np
import pytest
import pyvisa

from analogprop.bench.emulator import ERROR_QUEUE_DEPTH, BenchEmulator
from analogprop.bench.instruments import PROG_CODES, SMU, Board, ScannerDMM, VoltageSource
from analogprop.bench.scpi import ConnectionLost, Instrument, InstrumentError, ReplyError, SCPIErrorQueued
from analogprop.errors import ConfigError
from analogprop.model.network import Network
from analogprop.model.relax import FastSolver
from bench_helpers import DIGITS, emulated, profile

pytestmark = pytest.mark.filterwarnings("ignore::ResourceWarning")


class Bench:
    """The four instruments of a profile, connected and powered, as the VISA driver configures them."""

    def __init__(self, p):
        self.p = p
        self.rm = pyvisa.ResourceManager("@py")
        spec = p.instruments
        mk = lambda cls, n, **kw: cls(n, spec[n].resource, spec[n].idn, 300, self.rm, **kw).connect()  # noqa: E731
        self.src = mk(VoltageSource, "source")
        self.dmm = mk(ScannerDMM, "dmm")
        self.smu = mk(SMU, "supply", voltage_limits=p.supply_limits)
        self.board = mk(Board, "board", codes=p.conductances.codes, nudge_codes=p.nudge_codes,
                        address_count=p.conductances.address_count)
        self.src.set_limits(1, 16, (0.0, 1.0))
        self.smu.source_volts(3.3, 0.05)
        self.smu.output_enabled = 1
        self.src.output_enabled = 1
        assert self.smu.output_enabled and self.src.output_enabled  # queries: the writes have been executed

    def program(self, net):
        c = self.p.conductances
        for name, w in net.params.items():
            codes = np.rint((w - c.weight_range[0]) / c.lsb).astype(np.int64) + c.codes[0]
            self.board.program(c.base[name], codes)
        assert self.board.query("*OPC?").strip() == "1"  # programmed before anything else is applied

    def apply(self, x, y=None):
        blocks = [(1, x)] + ([(9, y)] if y is not None else [])
        self.src.set_voltages(blocks, synced=True)

    def read(self):
        return self.dmm.measure(*self.p.states_channels)

    def close(self):
        self.rm.close()


def grid_network(seed, lsb=0.001):
    """A 6-4-3 network whose weights sit exactly on the device code grid."""
    net = Network.create((6, 4, 3), seed=seed)
    for w in net.params.values():
        w[:] = np.rint(w / lsb) * lsb
    net.params["bias1"][:] = 0.1
    return net


@pytest.fixture
def bench():
    with emulated(profile()) as (emu, p):
        b = Bench(p)
        yield emu, b
        b.close()


def test_servers_bind_loopback_only():
    p = profile()
    with BenchEmulator(p, ephemeral=True) as emu:
        assert {s.server_address[0] for s in emu.servers.values()} == {"127.0.0.1"}
    bad = p.with_resources({"dmm": "TCPIP::192.0.2.1::5025::SOCKET"})
    with pytest.raises(ConfigError, match="binds loopback only"):
        BenchEmulator(bad)


def test_free_and_nudged_states_are_the_networks_fixed_points(bench):
    emu, b = bench
    net = grid_network(3)
    b.program(net)
    rng = np.random.default_rng(0)
    solver = FastSolver(tol=1e-10)
    for _ in range(3):
        x, y = rng.uniform(0, 1, 6), np.eye(3)[rng.integers(3)]
        b.apply(x, y)
        expect = np.concatenate([s[0] for s in solver.solve(net, x[None]).states])
        np.testing.assert_allclose(b.read(), expect, atol=2e-6)
        b.board.nudge_code = 250  # beta = 2.0 * 250 / 1000
        b.board.switch_nudge(True)
        expect = np.concatenate([s[0] for s in solver.solve(net, x[None], y[None], 0.5).states])
        np.testing.assert_allclose(b.read(), expect, atol=2e-6)
        b.board.switch_nudge(False)
    b.smu.output_enabled = 0
    assert b.smu.output_enabled is False  # (the query also waits for the write to be executed)
    np.testing.assert_array_equal(b.read(), 0.0)


def test_mismatch_noise_and_resolution():
    with emulated(profile(mismatch=0.2, read_noise_v=0.01, resolution_v=1e-4)) as (emu, p):
        b = Bench(p)
        net = grid_network(3)
        b.program(net)
        x = np.full(6, 0.7)
        b.apply(x)
        reads = np.array([b.read() for _ in range(40)])
        gains = emu.state.physics.gains
        real = Network(net.sizes, {k: v * gains[k] for k, v in net.params.items()})
        nominal = np.concatenate([s[0] for s in FastSolver(tol=1e-10).solve(net, x[None]).states])
        mismatched = np.concatenate([s[0] for s in FastSolver(tol=1e-10).solve(real, x[None]).states])
        assert np.abs(mismatched - nominal).max() > 0.02  # 20 % gain spread moves the fixed point
        np.testing.assert_allclose(reads.mean(axis=0), mismatched, atol=0.01)
        assert 0.006 < reads.std(axis=0).mean() < 0.014
        np.testing.assert_allclose(reads / 1e-4, np.rint(reads / 1e-4), atol=1e-6)
        b.close()


def test_settle_time_constant():
    with emulated(profile(tau_ms=20.0)) as (emu, p):
        b = Bench(p)
        b.program(grid_network(3))
        b.apply(np.full(6, 1.0))
        early = b.read()
        time.sleep(0.3)
        late = b.read()
        time.sleep(0.1)
        assert np.abs(late).max() > 0.05
        np.testing.assert_allclose(b.read(), late, atol=1e-4)  # settled after 15 tau
        assert np.abs(early - late).max() > 0.5 * np.abs(late).max()
        b.close()


def test_faults(bench):
    emu, b = bench
    b.program(grid_network(3))
    assert b.read()[2] > 0.1
    emu.inject("dmm", "stuck", "", "103")
    reading = b.read()
    assert reading[2] == 0.0 and np.abs(reading).max() > 0.1
    with pytest.raises(SCPIErrorQueued, match="channel 103 stuck"):
        b.dmm.check_errors()

    emu.inject("dmm", "drop", "MEAS")
    with pytest.raises(ConnectionLost, match="dmm"):
        b.read()
    b.dmm.connect()
    b.read()

    emu.inject("dmm", "delay", "MEAS", "0.6")
    t0 = time.monotonic()
    with pytest.raises(ConnectionLost, match="Timeout|timeout|VI_ERROR_TMO"):
        b.read()
    assert time.monotonic() - t0 < 0.6
    b.dmm.connect()

    emu.inject("board", "error", "", '-350,"Queue overflow"')
    b.board.nudge_code = 10
    with pytest.raises(SCPIErrorQueued, match="-350,Queue overflow"):
        b.board.check_errors()

    b.apply(np.full(6, 0.25))
    emu.inject("source", "range", "SOUR:VOLT")
    b.apply(np.full(6, 0.5))
    with pytest.raises(SCPIErrorQueued, match="-222"):
        b.src.check_errors()
    np.testing.assert_allclose(b.src.voltages(1, 6), 0.25)  # refused setpoint not applied

    b.src.write("FOO:BAR 1")
    with pytest.raises(SCPIErrorQueued, match="-113"):
        b.src.check_errors()

    emu.inject("source", "stuck", "", "3")
    b.apply(np.full(6, 0.75))
    with pytest.raises(SCPIErrorQueued, match="channel 3 stuck"):
        b.src.check_errors()
    np.testing.assert_allclose(b.src.voltages(1, 6), [0.75, 0.75, 0.25, 0.75, 0.75, 0.75])


def test_fault_via_scpi_and_drop_after(bench):
    emu, b = bench
    b.board.write("EMUL:FAULT drop_after,PROG")
    b.board.check_errors()
    b.board.program(0, np.arange(5))
    with pytest.raises(ConnectionLost):
        b.board.read_codes(0, 5)
    b.board.connect()
    np.testing.assert_array_equal(b.board.read_codes(0, 5), np.arange(5))  # executed before the drop
    b.board.write("EMUL:FAULT melt")
    with pytest.raises(SCPIErrorQueued, match="-224"):
        b.board.check_errors()


def test_circuit_physics_with_device_spreads():
    x = np.full(6, 0.6)
    readings = {}
    for name, spreads in {"nominal": {}, "spread": {"mismatch": 0.1, "offset_dtod": 0.05, "gain_dtod": 0.05}}.items():
        with emulated(profile(physics="circuit", **spreads)) as (emu, p):
            b = Bench(p)
            b.program(grid_network(3))
            b.apply(x)
            readings[name] = b.read()
            b.close()
    expect = np.concatenate([s[0] for s in FastSolver(tol=1e-10).solve(grid_network(3), x[None]).states])
    np.testing.assert_allclose(readings["nominal"], expect, atol=2e-6)
    assert np.abs(readings["spread"] - expect).max() > 0.01


def raw(emu, name):
    """A plain TCP connection to an emulated instrument."""
    host, port = emu.servers[name].server_address
    return socket.create_connection((host, port), timeout=5)


def wait_for(condition, timeout=5.0):
    end = time.monotonic() + timeout
    while not condition():
        assert time.monotonic() < end, "condition not reached in time"
        time.sleep(0.005)


def ask(sock, line):
    sock.sendall(line.encode() + b"\n")
    reply = b""
    while not reply.endswith(b"\n"):
        chunk = sock.recv(4096)
        assert chunk, "connection closed"
        reply += chunk
    return reply.decode().strip()


def test_a_line_cut_off_by_a_disconnect_is_not_executed(bench):
    emu, b = bench
    before = emu.state.physics.codes[:4].copy()
    s = raw(emu, "board")
    s.sendall(b"PROG 0,1234,2222,3")  # no terminator: the client leaves mid-line
    s.close()
    wait_for(lambda: emu.sessions("board") == 1)  # only the Bench's own session is left
    np.testing.assert_array_equal(emu.state.physics.codes[:4], before)
    np.testing.assert_array_equal(b.board.read_codes(0, 4), before)
    s = raw(emu, "board")
    s.sendall(b"PROG 0,1234,2222,3\n")  # the same command, terminated, is executed
    assert ask(s, "*OPC?") == "1"
    s.close()
    np.testing.assert_array_equal(b.board.read_codes(0, 3), [1234, 2222, 3])


def test_an_overlong_line_is_refused_without_being_buffered(bench):
    emu, b = bench
    flood = b"PROG 0," + b"1," * (8 << 20)  # 16 MB without a terminator
    code = emu.state.physics.codes[0]
    s = raw(emu, "board")
    tracemalloc.start()
    try:
        s.sendall(flood)
        s.sendall(b"7\n")
        assert ask(s, "SYST:ERR?") == '-223,"Too much data"'
        peak = tracemalloc.get_traced_memory()[1]
    finally:
        tracemalloc.stop()
    assert peak < 1 << 20, peak  # the emulator held at most a bounded chunk of the line
    assert ask(s, "SYST:ERR?") == '0,"No error"' and ask(s, "PROG? 0,1") == str(code)  # discarded, not executed
    s.sendall(b"PROG 5,42\n")  # the session goes on
    assert ask(s, "PROG? 5,1") == "42"
    s.close()


def test_the_error_queue_is_bounded_and_reports_its_overflow(bench):
    emu, b = bench
    b.board.write(";".join(["BOGUS"] * 200))
    assert b.board.query("SYST:ERR?").strip() == '-113,"Undefined header; BOGUS"'
    errors = b.board.drain_errors()
    assert len(errors) == ERROR_QUEUE_DEPTH - 1  # the first was read above
    assert errors[:-1] == [(-113, "Undefined header; BOGUS")] * (ERROR_QUEUE_DEPTH - 2)
    assert errors[-1] == (-350, "Queue overflow")
    assert len(emu.state.errors["board"]) == 0


def test_concurrent_sessions_are_capped_and_extra_ones_refused():
    logs = []
    with BenchEmulator(profile(), ephemeral=True, max_clients=2, log=logs.append) as emu:
        first, second = raw(emu, "dmm"), raw(emu, "dmm")
        assert ask(first, "*IDN?").startswith("analogprop,DMM-S10") and ask(second, "*OPC?") == "1"
        extra = [raw(emu, "dmm") for _ in range(3)]
        for s in extra:
            s.sendall(b"*IDN?\n")
            assert s.recv(100) == b""  # closed by the emulator without a reply
            s.close()
        assert len(logs) == 3 and all(line.startswith("dmm: refused a connection from 127.0.0.1:") and
                                      line.endswith("(2 sessions already open)") for line in logs), logs
        assert ask(first, "*OPC?") == "1"  # the open sessions are unaffected
        assert ask(raw(emu, "source"), "*OPC?") == "1"  # the cap is per instrument
        first.close()
        wait_for(lambda: emu.sessions("dmm") == 1)
        third = raw(emu, "dmm")
        assert ask(third, "*OPC?") == "1"
        for s in (second, third):
            s.close()
    with pytest.raises(ValueError, match="max_clients"):
        BenchEmulator(profile(), ephemeral=True, max_clients=0)


def test_reply_faults_malformed_wrong_and_extra(bench):
    emu, b = bench
    emu.inject("dmm", "malformed", "MEAS")
    with pytest.raises(ReplyError, match="malformed reply 'ERROR'"):
        b.read()
    emu.inject("dmm", "wrong", "MEAS", "SAMP:COUN?")
    with pytest.raises(ReplyError, match="expected 7 values, got 1"):
        b.read()
    good = b.read()
    emu.inject("dmm", "extra", "MEAS")  # the reply, then the same line again
    np.testing.assert_array_equal(b.read(), good)
    with pytest.raises(ReplyError, match=r"malformed SYST:ERR\? reply '0,0"):  # the stray line (all-zero states)
        b.dmm.check_errors()
    emu.inject("board", "extra", "NUDG?", "hello")
    assert b.board.nudge_code == 0
    with pytest.raises(ReplyError, match="malformed reply 'hello'"):
        b.board.nudge_code
    emu.inject("supply", "malformed", "SOUR:VOLT:ILIM:TRIP", "µ")
    with pytest.raises(ReplyError, match="reply is not ASCII"):
        b.smu.limit_tripped
    assert emu.pending_faults() == 0


def test_emulated_smu_speaks_like_a_2450():
    with emulated(profile()) as (emu, p):
        b = Bench(p)
        b.program(grid_network(3))
        assert b.smu.query("*LANG?").strip() == "SCPI"
        assert b.smu.source_function == "VOLT"
        b.smu.source_function = "CURR"  # sourcing current: the board is not powered by a voltage
        assert b.smu.source_function == "CURR"  # (the query also waits for the write to be executed)
        b.apply(np.full(6, 0.5))
        np.testing.assert_array_equal(b.read(), 0.0)
        b.smu.source_function = "VOLT"
        assert b.smu.source_function == "VOLT"
        assert np.abs(b.read()).max() > 0.1
        b.smu.write(":SOUR:FUNC RESISTANCE")
        with pytest.raises(SCPIErrorQueued, match="-224"):
            b.smu.check_errors()
        b.close()
    rm = pyvisa.ResourceManager("@py")
    for language in ("TSP", "SCPI2400"):
        with emulated(profile(smu_language=language)) as (emu, p):
            smu = SMU("supply", p.instruments["supply"].resource, "analogprop", 300, rm)
            with pytest.raises(InstrumentError, match=f"uses the '{language}' command set"):
                smu.connect()
            assert not smu.connected
            generic = Instrument("supply", p.instruments["supply"].resource, "analogprop", 300, rm).connect()
            if language == "TSP":  # nothing but common commands is understood
                assert generic.query(":SOUR:FUNC VOLT;:OUTP 1;*OPC?").strip() == "1"
                assert emu.state.smu["func"] == "CURR" and not emu.state.smu["out"]
            else:  # the 2400's dialect: no :SOUR:VOLT:ILIM
                generic.write(":SOUR:VOLT:ILIM 0.05")
                with pytest.raises(SCPIErrorQueued, match="-113"):
                    generic.check_errors()
            generic.disconnect()
    rm.close()


def test_large_blocks_are_programmed_in_bounded_lines():
    with emulated(profile(DIGITS)) as (emu, p):
        rm = pyvisa.ResourceManager("@py")
        c = p.conductances
        board = Board("board", p.instruments["board"].resource, "analogprop", 1000, rm, codes=c.codes,
                      address_count=c.address_count).connect()
        codes = np.random.default_rng(0).integers(*c.codes, size=2 * PROG_CODES + 5)
        board.program(7, codes)
        assert board.writes == 3  # ceil(2053 / 1024) lines, each within the emulator's line limit
        np.testing.assert_array_equal(board.read_codes(7, codes.size), codes)
        board.check_errors()
        rm.close()
