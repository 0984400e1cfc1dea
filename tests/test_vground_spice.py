"""The vground level in ngspice: every node within 1e-6 V of the fast solver, free and nudged, per non-ideality."""
import math
import subprocess

import numpy as np
import pytest

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities
from analogprop.circuit.vground import VgroundSolver, residual
from analogprop.drivers.circuit import CircuitDriver
from analogprop.drivers.ngspice import NgspiceDriver
from analogprop.errors import ConfigError
from analogprop.spice.netlist import gain_stepped, netlist, printed_operating_points, state_nodes
from analogprop.spice.solver import SpiceSolver

from conftest import saturating_network
from test_vground import CASES, batch, diode_currents

SIZES = (64, 32, 10)
SPREAD = Mismatch(g_dtod=0.05, gain_dtod=0.02, offset_dtod=1e-3, leak_dtod=0.02)


def _largest_difference(a, b):
    return max(np.abs(p - q).max() for p, q in zip(a.states, b.states))


def spice_free_and_nudged(circuit, x, y, beta):
    """ngspice's sweeps from 0 V (no ladder): every sample's free and nudged point."""
    return SpiceSolver().free_and_nudged(circuit, x, y, beta)


@pytest.mark.parametrize("case", sorted(CASES))
def test_every_node_agrees_with_ngspice(case):
    net = saturating_network(SIZES, seed=3)
    x, y = batch(SIZES, 4, seed=1)
    c = compile_circuit(SIZES, net.params, "vground", SPREAD, die=2, clamp=False,
                        nonideal=Nonidealities(**CASES[case]))
    assert_every_node_agrees(c, x, y)


def test_op_amps_on_their_rails_are_solved_by_ngspice_with_gain_stepping():
    """Every non-ideality at once (op-amp gain 1e4 with 3 V rails): a fifth of the stages of this saturating
    network sit on a rail, where ngspice's Newton method from 0 V stalls at the full gain (gmin, source
    stepping and its transient op all fail); the netlist's gain stepping solves every sample."""
    net = saturating_network(SIZES, seed=3)
    x, _ = batch(SIZES, 4, seed=1)
    c = compile_circuit(SIZES, net.params, "vground", SPREAD, die=2, clamp=False, nonideal=Nonidealities(**CASES["all"]))
    assert gain_stepped(c)
    rail = c.nonideal.opamp_rail
    s0, _ = spice_free_and_nudged(c, x, None, 0.0)
    assert np.all(residual(c, s0, x) <= 1e-8)
    stage = np.concatenate([v[:, n:] for v, n in zip(s0, c.sizes[1:])], axis=1)   # the op-amps' outputs
    assert np.mean(np.abs(stage) > 0.99 * rail) > 0.15
    eng = SpiceSolver().load(c, x)
    eng.exec_command("dc vsel 0 3 1")   # the sweep at the design's gain alone
    assert eng.vectors(state_nodes(c)).shape[0] == 0
    eng.release()


def test_all_nonidealities_with_wires_agree_with_ngspice():
    """Every non-ideality at once, sinh devices and op-amp rails included, with 200 ohm wire segments (on a
    smaller circuit: the fast solver's sweeps with sinh tiles take most of a minute at 64-32-10)."""
    sizes, wire_r = (16, 8, 4), 200.0
    net = saturating_network(sizes, seed=3)
    x, y = batch(sizes, 4, seed=1)
    c = compile_circuit(sizes, net.params, "vground", SPREAD, die=2, clamp=False,
                        nonideal=Nonidealities(**CASES["all"], wire_r_row=wire_r, wire_r_col=wire_r))
    assert c.nonideal.device_v0 == 1.0 and c.nonideal.opamp_rail == 3.0
    s0, _ = assert_every_node_agrees(c, x, y)
    # the wires matter: the outputs move from those of the wire-free circuit
    plain = compile_circuit(sizes, net.params, "vground", SPREAD, die=2, clamp=False,
                            nonideal=Nonidealities(**CASES["all"]))
    ref = VgroundSolver(tol=1e-12).solve(plain, x)
    assert max(np.abs(p - q).max() for p, q in zip(s0, ref.states)) > 1e-2


def test_from_start_converges_from_the_fast_solvers_answer():
    """ngspice's Newton method started at the fast solver's answer (``.nodeset``, at the design's gain, no
    gain stepping) converges within 1e-8 V of KCL to within 1e-6 V of it on every node, free and nudged: the
    fast solver's answer is an operating point of the netlist."""
    net = saturating_network(SIZES, seed=3)
    x, y = batch(SIZES, 3, seed=1)
    c = compile_circuit(SIZES, net.params, "vground", SPREAD, die=2, clamp=False,
                        nonideal=Nonidealities(**CASES["all"]))
    fast = VgroundSolver(tol=1e-12)
    f0 = fast.solve(c, x)
    f1 = fast.solve(c, x, y, 0.5, start=f0.states)
    spice = SpiceSolver(tol=1e-8)
    s0, s1 = spice.from_start(c, x, f0.states), spice.from_start(c, x, f1.states, y, 0.5)
    diffs = []
    for f, s in ((f0, s0), (f1, s1)):
        assert f.converged.all() and s.converged.all()
        diffs.append(max(np.abs(p - q).max() for p, q in zip(f.states, s.states)))
    print(f"all non-idealities at {SIZES} from the fast start: free {diffs[0]:.1e} V, nudged {diffs[1]:.1e} V")
    assert 0 < max(diffs) <= 1e-6   # ngspice iterated from the start (its own answer, not the start echoed)


def test_from_start_refuses_start_voltages_of_the_wrong_shape():
    c = compile_circuit(SIZES, saturating_network(SIZES, seed=3).params, "vground", SPREAD, die=2)
    x, _ = batch(SIZES, 2, seed=1)
    with pytest.raises(ConfigError, match=r"start voltages have shape \(2, 3\)"):
        SpiceSolver().from_start(c, x, [np.zeros((2, 3))])


def assert_every_node_agrees(c, x, y, beta=0.5):
    """ngspice solves every sample (KCL within 1e-8 V), free and nudged, and the fast solver finds the same
    voltages on every node (within 1e-6 V); returns ngspice's free and nudged states."""
    fast = VgroundSolver(tol=1e-12)
    f0 = fast.solve(c, x)
    f1 = fast.solve(c, x, y, beta, start=f0.states)
    assert f0.converged.all() and f1.converged.all()
    s0, s1 = spice_free_and_nudged(c, x, y, beta)
    assert np.all(residual(c, s0, x) <= 1e-8) and np.all(residual(c, s1, x, y, beta) <= 1e-8)
    diffs = [max(np.abs(p - q).max() for p, q in zip(f.states, s)) for f, s in ((f0, s0), (f1, s1))]
    print(f"{'-'.join(map(str, c.sizes))}: largest node difference free {diffs[0]:.1e} V, nudged {diffs[1]:.1e} V")
    assert max(diffs) <= 1e-6
    return s0, s1


@pytest.mark.parametrize("dropped", [(), ("opamp_rail",)])
def test_plain_ngspice_batch_run_prints_the_fast_solvers_outputs(tmp_path, dropped):
    """Every non-ideality in ``ngspice -b`` (gain-stepped with rails, a plain sample sweep without)."""
    sizes = SIZES
    net = saturating_network(sizes, seed=3)
    x, _ = batch(sizes, 3, seed=1)
    c = compile_circuit(sizes, net.params, "vground", SPREAD, die=2, clamp=False,
                        nonideal=Nonidealities(**{k: v for k, v in CASES["all"].items() if k not in dropped}))
    assert gain_stepped(c) == (not dropped)
    path = tmp_path / "vground.cir"
    path.write_text(netlist(c, x, title="vground"))
    out = subprocess.run(["ngspice", "-b", str(path)], capture_output=True, text=True, timeout=120).stdout
    printed = printed_operating_points(out, c)
    ref = VgroundSolver(tol=1e-12).solve(c, x).states[-1][:, sizes[-1]:]
    assert printed.shape == ref.shape
    np.testing.assert_allclose(printed, ref, atol=1e-6)   # printed to 12 significant digits


def test_ngspice_driver_phases_and_local_rule_match_the_fast_driver():
    net = saturating_network((20, 12, 5), seed=0, gain=2.0, feedback=0.3)
    x, y = batch(net.sizes, 12, seed=0)
    nid = Nonidealities(opamp_gain=1e4, opamp_rout=50.0, opamp_offset=1e-3, temp=50.0, tc1=1e-3)
    out = {}
    for name, cls in (("fast", CircuitDriver), ("spice", NgspiceDriver)):
        drv = cls.from_network(net.sizes, net.params, "vground", SPREAD, die=4, clamp=False, nonideal=nid)
        free = drv.relax_free(x)
        nudged = drv.relax_nudged(x, y, 0.5, free)
        out[name] = (free, nudged, drv.local_update(x, free, nudged))
    for a, b in zip(out["fast"][:2], out["spice"][:2]):
        assert a.converged.all() and b.converged.all()
        assert max(np.abs(p - q).max() for p, q in zip(a.probes["exact_V"], b.probes["exact_V"])) <= 1e-6
    for k, v in out["fast"][2].items():
        np.testing.assert_allclose(out["spice"][2][k], v, atol=1e-5, err_msg=k)


def test_ideal_op_amp_netlist_is_within_a_microvolt_without_offsets():
    net = saturating_network(SIZES, seed=3)
    x, _ = batch(SIZES, 3)
    c = compile_circuit(SIZES, net.params, "vground", Mismatch(g_dtod=0.05), die=1,
                        nonideal=Nonidealities(opamp_gain=math.inf))
    assert _largest_difference(VgroundSolver(tol=1e-12).solve(c, x), SpiceSolver(tol=1e-8).solve(c, x)) <= 1e-6


@pytest.mark.parametrize("temp", [27.0, 80.0])
def test_diode_clamps_agree_with_ngspice(temp):
    """Shockley clamp diodes (ngspice D elements with a .model card): every node within 1e-6 V, free and nudged."""
    net = saturating_network(SIZES, seed=3)
    x, y = batch(SIZES, 4, seed=1)
    nid = Nonidealities(opamp_gain=1e4, opamp_rout=20.0, temp=temp, tc1=1e-3, clamp_model="diode", diode_is=2e-14,
                        diode_n=1.1, diode_rs=30.0)
    c = compile_circuit(SIZES, net.params, "vground", SPREAD, die=2, clamp=True, nonideal=nid)
    text = netlist(c, x)
    assert ".model apclamp D(IS=2e-14 N=1.1 RS=30.0 EG=1.11 XTI=3.0 TNOM=27.0)" in text
    assert sum(line.startswith("d_") for line in text.splitlines()) == 2 * sum(SIZES[1:])
    fast = VgroundSolver(tol=1e-12)
    f0 = fast.solve(c, x)
    f1 = fast.solve(c, x, y, 0.5, start=f0.states)
    assert f0.converged.all() and f1.converged.all()
    # saturated neurons draw up to twice the feedback current (g_unit * 1 V = 10 uA) through their diodes
    on = diode_currents(c, f0.states)
    assert sum((i > 0.1).sum() for i in on) >= 20
    s0, s1 = spice_free_and_nudged(c, x, y, 0.5)
    assert np.all(residual(c, s0, x) <= 1e-8) and np.all(residual(c, s1, x, y, 0.5) <= 1e-8)
    diff = [max(np.abs(p - q).max() for p, q in zip(f.states, s)) for f, s in ((f0, s0), (f1, s1))]
    print(f"\n{temp:g} C: {sum((i > 0.1).sum() for i in on)} diodes above 1 uA (largest "
          f"{1e6 * c.g_unit * max(i.max() for i in on):.1f} uA); fast vs ngspice, free {diff[0]:.1e} V, nudged {diff[1]:.1e} V")
    assert max(diff) <= 1e-6


@pytest.mark.parametrize("temp", [27.0, 80.0])
def test_sinh_device_as_written_follows_g_v0_sinh_in_ngspice(tmp_path, temp):
    """The netlist's sinh device (two antiparallel junctions) swept in ``ngspice -b``: ``G V0 sinh(V / V0)``
    to 1e-9 relative while ``|V| <= 3 V0``, and within the documented 5e-5 beyond, at any die temperature."""
    v0 = 0.2
    c = compile_circuit((2, 2, 2), saturating_network((2, 2, 2), seed=3).params, "vground", Mismatch(g_dtod=0.05),
                        die=2, clamp=False, nonideal=Nonidealities(device_v0=v0, temp=temp))
    text = netlist(c, np.zeros((1, 2)), analysis=False).splitlines()
    model = next(ln for ln in text if ln.startswith(".model apsinh"))
    forward, reverse = [ln.split() for ln in text if ln.startswith("d_fp1_0_0")]
    assert forward[1:3] == reverse[2:0:-1] and forward[4] == reverse[4]   # antiparallel, same area
    g = float(forward[4].split("=")[1]) * c.g_unit
    deck = "\n".join(["sinh device", ".options gmin=1e-20", f".temp {temp!r}", model, "v1 a 0 dc 0",
                      f"df a 0 apsinh {forward[4]}", f"dr 0 a apsinh {forward[4]}",
                      ".control", "dc v1 -2 2 0.01", "wrdata out.txt -i(v1)", ".endc", ".end", ""])
    (tmp_path / "sinh.cir").write_text(deck)
    run = subprocess.run(["ngspice", "-b", "sinh.cir"], cwd=tmp_path, capture_output=True, text=True, timeout=60)
    assert (tmp_path / "out.txt").exists(), run.stdout + run.stderr   # (its exit status is 1 after a .control run)
    v, i = np.loadtxt(tmp_path / "out.txt").T
    exact = g * v0 * np.sinh(v / v0)
    inner = np.abs(v) <= 3 * v0
    assert np.abs(i - exact)[inner].max() <= 1e-9 * np.abs(exact).max()
    assert np.all(np.abs(i - exact)[~inner] <= 5e-5 * np.abs(exact)[~inner])
    assert np.abs(i - exact)[~inner].max() > 0   # ngspice's reverse-bias form does depart out there
