"""The bench emulator over real loopback TCP (pyvisa-py): physics, protocol, faults."""
import time

import numpy as np
import pytest
import pyvisa

from analogprop.bench.emulator import BenchEmulator
from analogprop.bench.instruments import SMU, Board, ScannerDMM, VoltageSource
from analogprop.bench.scpi import ConnectionLost, SCPIErrorQueued
from analogprop.errors import ConfigError
from analogprop.network import Network
from analogprop.relax import FastSolver
from bench_helpers import emulated, profile

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
        self.smu.current_limit = 0.05
        self.smu.source_voltage = 3.3
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
