"""ngspice operating points, netlists, transients and memory (issue 3, items 4, 5, 7)."""
import re
import shutil
import subprocess

import numpy as np
import pytest

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.solver import CircuitSolver
from analogprop.model.relax import FastSolver
from analogprop.spice.engine import NetlistError, engine
from analogprop.spice.include import IncludeError
from analogprop.spice.netlist import netlist, sanitise
from analogprop.spice.solver import SpiceSolver, kcl_residual
from analogprop.spice.transient import simulate

from conftest import saturating_network

SIZES = (12, 9, 7, 4)
MISMATCH = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=0.02, leak_dtod=0.05, cap_dtod=0.1)


def batch(sizes, n, seed=0):
    rng = np.random.default_rng(seed)
    x = rng.uniform(-0.2, 1.2, (n, sizes[0]))
    return x, np.eye(sizes[-1])[rng.integers(0, sizes[-1], n)]


def two_phases(solver, model, x, y, beta=0.5):
    """Free relaxation, then the nudged one continued from it."""
    free = solver.solve(model, x)
    return free, solver.solve(model, x, y, beta, start=free.states)


def max_diff(a, b):
    return max(float(np.max(np.abs(p - q))) for p, q in zip(a, b))


@pytest.fixture(scope="module")
def spice():
    return SpiceSolver()


def test_ideal_fast_circuit_and_ngspice_agree_behavioural_zero_mismatch(spice):
    net = saturating_network(SIZES, seed=5)
    x, y = batch(SIZES, 40)
    circuit = compile_circuit(SIZES, net.params, "behavioural")
    ideal = FastSolver(tol=1e-12, max_sweeps=5000)
    i_free, i_nudged = two_phases(ideal, net, x, y)
    fast = CircuitSolver(tol=1e-12)
    f_free, f_nudged = two_phases(fast, circuit, x, y)
    s_free, s_nudged = two_phases(spice, circuit, x, y)
    assert s_free.converged.all() and s_nudged.converged.all()
    sat = np.mean([np.mean((h <= 0) | (h >= 1)) for h in i_free.states])
    assert 0.2 < sat < 0.9                      # saturated and linear units both present
    for ideal_r, spice_r in ((i_free, s_free), (i_nudged, s_nudged)):
        assert max_diff(ideal_r.states, [np.clip(v, 0, 1) for v in spice_r.states]) < 1e-6
    assert max_diff(f_free.states, s_free.states) < 1e-5
    assert max_diff(f_nudged.states, s_nudged.states) < 1e-5
    assert max_diff(s_free.states, s_nudged.states) > 1e-3   # the nudge did move the circuit


@pytest.mark.parametrize("level", ["behavioural", "crossbar"])
def test_fast_circuit_and_ngspice_agree_with_mismatch(spice, level):
    for seed in (1, 2):
        net = saturating_network(SIZES, seed=seed)
        x, y = batch(SIZES, 25, seed)
        circuit = compile_circuit(SIZES, net.params, level, MISMATCH, die=seed)
        fast = CircuitSolver(tol=1e-12)
        f_free, f_nudged = two_phases(fast, circuit, x, y, -0.4)
        s_free, s_nudged = two_phases(spice, circuit, x, y, -0.4)
        assert s_free.converged.all() and s_nudged.converged.all()
        assert max_diff(f_free.states, s_free.states) < 1e-5
        assert max_diff(f_nudged.states, s_nudged.states) < 1e-5
        assert np.all(kcl_residual(circuit, s_nudged.states, x, y, -0.4) < 1e-9)
        r = circuit.outputs(s_free.states, x)[1:]
        assert any(np.mean((v <= 0) | (v >= 1)) > 0.1 for v in r)


def test_same_die_same_netlist_and_devices():
    net = saturating_network(SIZES, seed=3)
    x, _ = batch(SIZES, 3)
    text = [netlist(compile_circuit(SIZES, net.params, "crossbar", MISMATCH, die=d), x) for d in (7, 7, 8)]
    assert text[0] == text[1] and text[0] != text[2]
    c = compile_circuit(SIZES, net.params, "crossbar", MISMATCH, die=7)
    g = float(c.values["fwd1_p"][2, 3] * c.g_unit)
    assert re.search(rf"^rfp1_2_3 r1_3 h2_2 {re.escape(repr(1.0 / g))}$", text[0], re.M)


def test_netlist_runs_in_plain_ngspice_batch_mode(tmp_path, spice):
    if shutil.which("ngspice") is None:
        pytest.skip("the ngspice program is not installed (make setup installs it)")
    net = saturating_network(SIZES, seed=4)
    x, _ = batch(SIZES, 5)
    circuit = compile_circuit(SIZES, net.params, "crossbar", MISMATCH, die=4)
    path = tmp_path / "net.cir"
    path.write_text(netlist(circuit, x, title="weird name / with spaces"))
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=60)
    assert out.returncode == 0, out.stderr
    rows = [ln.split() for ln in out.stdout.splitlines() if re.match(r"^\d+\t", ln)]
    table = np.array([[float(v) for v in r[2:]] for r in rows])
    assert table.shape == (5, SIZES[-1])
    ref = spice.solve(circuit, x).states[-1]
    assert np.max(np.abs(table - ref)) < 1e-5 * (1 + np.max(np.abs(ref)))   # printed with 7 digits
    head = path.read_text().split("\n.subckt", 1)[0]
    assert "weird_name_with_spaces" in head and "h3_0 .. h3_3: state nodes of the 4 output neurons" in head


def test_malformed_netlist_quotes_ngspice_and_path(tmp_path):
    path = tmp_path / "broken.cir"
    with pytest.raises(NetlistError, match=r"broken\.cir.*unknown subckt"):
        engine().load("* broken\nx1 a b no_such_subcircuit\nr1 a 0 1\n.end\n", path)
    with pytest.raises(NetlistError, match=r"broken\.cir.*no such function"):
        engine().load("* broken\nb1 a 0 v=frobnicate(1)\nr1 a 0 1\n.end\n", path)


@pytest.mark.parametrize("body", [".control\nrun\n.endc\n", "* fine\n  shell rm -rf /tmp/x\n", ".include other.lib\n"])
def test_includes_with_commands_are_refused(tmp_path, body):
    inc = tmp_path / "user.lib"
    inc.write_text("* user models\n" + body)
    circuit = compile_circuit((3, 2), {"fwd0": np.ones((2, 3))}, "behavioural")
    with pytest.raises(IncludeError, match="user.lib line"):
        netlist(circuit, np.zeros((1, 3)), includes=[inc])


def test_plain_include_is_copied_in(tmp_path):
    inc = tmp_path / "user.lib"
    inc.write_text("* my op-amp\n.subckt my_amp a b\nr1 a b 1k\n.ends my_amp\n")
    circuit = compile_circuit((3, 2), {"fwd0": np.ones((2, 3))}, "behavioural")
    text = netlist(circuit, np.zeros((1, 3)), includes=[inc])
    assert ".subckt my_amp a b" in text and ".include" not in text
    engine().load(text, "with-include.cir")


def test_sanitise():
    assert sanitise("My Net-1!") == "my_net_1"
    assert sanitise("9lives") == "n_9lives"


def test_unsolvable_samples_are_reported_not_raised():
    """Strong feedback and no capacitors: ngspice's own ladder and ours fail on some samples."""
    sizes = (8, 16, 16, 4)
    net = saturating_network(sizes, 0, gain=3.0, feedback=3.0)
    x, _ = batch(sizes, 6)
    circuit = compile_circuit(sizes, net.params, "behavioural")
    for k in range(1, 4):
        circuit.values[f"cap{k}"][:] = 0.0
    solver = SpiceSolver()
    r = solver.solve(circuit, x)
    assert 0 < r.n_unconverged < 6
    assert all(np.isfinite(v).all() for v in r.states)
    assert np.all(r.residual[r.converged] <= solver.tol) and np.all(~(r.residual[~r.converged] <= solver.tol))
    assert np.all(r.steps[~r.converged] == 3) and solver.stats["transient"] >= 1


def test_transient_settles_to_the_operating_points():
    net = saturating_network((10, 8, 3), seed=2)
    x, y = batch((10, 8, 3), 2)
    circuit = compile_circuit((10, 8, 3), net.params, "crossbar", MISMATCH, die=1)
    res = simulate(circuit, x, y, 0.5, window_taus=30, points=300)
    for ph in (res.free, res.nudged):
        assert np.all(np.isfinite(ph.settle_time)) and np.all(ph.settle_time > 0)
        assert np.all(ph.settle_time < res.window)
        assert np.all(ph.energy > 0) and np.all(ph.power > 0)
        # energy until settled lies between 0 and settle_time * peak power
    assert np.all(res.free.energy < res.free.settle_time * 10 * res.free.power.max())


def _rss_kb():
    with open("/proc/self/status") as f:
        return int(re.search(r"VmRSS:\s+(\d+)", f.read()).group(1))


def test_memory_flat_over_thousands_of_operating_points():
    sizes = (16, 12, 4)
    net = saturating_network(sizes, seed=1)
    x, y = batch(sizes, 100)
    circuit = compile_circuit(sizes, net.params, "behavioural", MISMATCH, die=3)
    solver = SpiceSolver()

    def pair():
        free = solver.solve(circuit, x)
        solver.solve(circuit, x, y, 0.5, start=free.states)

    solver.solve(circuit, x[:10])         # warm-up: library loaded, first circuit parsed
    pair()
    after_200 = _rss_kb()
    for _ in range(9):
        pair()
    assert solver.stats["points"] == 10 + 2000
    assert _rss_kb() - after_200 < 3 * 1024


@pytest.mark.parametrize("level", ["behavioural", "crossbar"])
def test_clamped_circuits_agree(spice, level):
    """Node clamps (projected dynamics): ngspice, the fast solver and, at zero mismatch, the ideal model."""
    net = saturating_network(SIZES, seed=7)
    x, y = batch(SIZES, 25, 7)
    small = Mismatch(g_dtod=0.1, gain_dtod=0.05, offset_dtod=1e-4, leak_dtod=0.05)
    for mismatch in (Mismatch(), small, MISMATCH):   # MISMATCH's offsets invert crossbar clamp windows
        circuit = compile_circuit(SIZES, net.params, level, mismatch, die=2, clamp=True)
        fast = CircuitSolver(tol=1e-12)
        f_free, f_nudged = two_phases(fast, circuit, x, y)
        s_free, s_nudged = two_phases(spice, circuit, x, y)
        assert s_free.converged.all() and s_nudged.converged.all()
        assert max_diff(f_free.states, s_free.states) < 1e-5
        assert max_diff(f_nudged.states, s_nudged.states) < 1e-5
        if level == "behavioural" and mismatch.is_zero:
            ideal = FastSolver(tol=1e-12, max_sweeps=5000)
            i_free, i_nudged = two_phases(ideal, net, x, y)
            assert max_diff(i_free.states, s_free.states) < 1e-6       # clamped nodes follow Eq. 59
            assert max_diff(i_nudged.states, s_nudged.states) < 1e-6
