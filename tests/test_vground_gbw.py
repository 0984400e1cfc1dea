"""The op-amps' gain-bandwidth product on the vground level: refused values, the single-pole macromodel in the
netlist, unchanged operating points (ngspice against the fast solver) and the transients it slows down."""
import math

import numpy as np
import pytest
from scipy.linalg import expm

from analogprop.circuit import Mismatch, compile_circuit
from analogprop.circuit.nonideal import Nonidealities, closed_loop_poles, step_settling
from analogprop.circuit.vground import Layer, drives
from analogprop.cli import main
from analogprop.errors import ConfigError
from analogprop.spice.netlist import netlist
from analogprop.spice.transient import simulate

from conftest import saturating_network
from test_vground import CASES, batch
from test_vground_spice import SIZES, SPREAD, assert_every_node_agrees

GBWS = (math.inf, 1e7, 1e6, 1e5)


@pytest.mark.parametrize("gbw", [0.0, -1e6, float("nan"), "1e6"])
def test_bad_gain_bandwidth_is_refused(gbw):
    with pytest.raises(ConfigError, match="opamp_gbw"):
        Nonidealities(opamp_gbw=gbw)


def test_cli_refuses_a_zero_gain_bandwidth(tmp_path, capsys):
    assert main(["train", "--driver", "circuit", "--level", "vground", "--opamp-gbw", "0", "--epochs", "1",
                 "--quiet", "--out", str(tmp_path)]) == 2
    err = capsys.readouterr().err
    assert err.startswith("analogprop: error:") and "opamp" in err and "gbw" in err


@pytest.mark.parametrize("gain, rail", [(1e5, math.inf), (1e4, 2.0), (math.inf, math.inf)])
def test_netlist_writes_a_single_pole_op_amp(gain, rail):
    net = saturating_network((6, 4, 3), seed=0)
    kw = dict(opamp_gain=gain, opamp_rail=rail)
    plain = compile_circuit(net.sizes, net.params, "vground", nonideal=Nonidealities(**kw))
    pole = compile_circuit(net.sizes, net.params, "vground", nonideal=Nonidealities(opamp_gbw=2e6, **kw))
    x = np.full((1, 6), 0.5)
    lines = netlist(pole, x).splitlines()
    assert not [line for line in netlist(plain, x).splitlines() if line.startswith(("g_p", "r_p", "c_p"))]
    a = gain if math.isfinite(gain) else 1e12
    for k, n in ((1, 4), (2, 3)):
        for i in range(n):
            if math.isfinite(rail):   # a B source, for the gain stepping of op-amps with rails
                assert f"b_p{k}_{i} 0 p{k}_{i} i=-{a!r}*pow(10,v(gs)/5)*v(c{k}_{i})" in lines
            else:
                assert f"g_p{k}_{i} 0 p{k}_{i} 0 c{k}_{i} {a!r}" in lines
            assert f"r_p{k}_{i} p{k}_{i} 0 1.0" in lines
            cap = [float(line.split()[-1]) for line in lines if line.startswith(f"c_p{k}_{i} ")]
            # DC gain a (a S into 1 ohm), pole at GBW / a: R C = a / (2 pi GBW)
            assert cap == [pytest.approx(a / (2 * math.pi * 2e6), rel=1e-15)]
            out = [line for line in lines if line.startswith(f"b_a{k}_{i} ") or line.startswith(f"e_a{k}_{i} ")]
            assert out == ([f"b_a{k}_{i} o{k}_{i} 0 v=min(max(v(p{k}_{i}),{-rail!r}),{rail!r})"] if math.isfinite(rail)
                           else [f"e_a{k}_{i} o{k}_{i} 0 p{k}_{i} 0 1.0"])


#: the gain-bandwidth product alone, with an exact virtual ground's gain, with rails, and with the other op-amp
#: and device non-idealities
GBW_CASES = {"alone": {}, "ideal gain": dict(opamp_gain=math.inf), "rails": CASES["rails"], "all": CASES["all"]}


@pytest.mark.parametrize("case", sorted(GBW_CASES))
def test_operating_points_are_those_without_the_pole(case):
    net = saturating_network(SIZES, seed=3)
    x, y = batch(SIZES, 4, seed=1)
    points = {}
    for gbw in (math.inf, 1e6):
        spread = SPREAD if case != "ideal gain" else Mismatch(g_dtod=0.05)   # (no offsets: see test_vground_spice)
        c = compile_circuit(SIZES, net.params, "vground", spread, die=2, clamp=False,
                            nonideal=Nonidealities(opamp_gbw=gbw, **GBW_CASES[case]))
        s0, s1 = assert_every_node_agrees(c, x, y)
        points[gbw] = s0 + s1
    # ngspice's DC points of the netlists with and without the pole are the same to rounding
    assert max(np.abs(p - q).max() for p, q in zip(points[math.inf], points[1e6])) <= 1e-9


def column_model(c, x, y, beta):
    """One column (sizes (n, 1), linear devices, no clamps, rails or R_out) as dz/dt = M z + b in SI units:
    z = (u, p), u = V_out - V_col the feedback capacitor's voltage, p the pole node (V_out = p);
    C_f du/dt = -(I_dev(V_col) + bn (V_y - V_col) + g_l u), dp/dt = -w_t (V_col - V_os) - w_t p / A."""
    lay, gu, nid = Layer(c, 1), c.g_unit, c.nonideal
    a1, s = lay.aggregate(*drives(c, [np.zeros((1, 2))], x[None]), None)   # (no wires: no column coupling)
    bn = beta * c.values["nudge"][0]
    gl, cf = lay.gf[0] + bn, c.values["cf1"][0] * c.c_unit
    wt, inv_a = 2 * math.pi * nid.opamp_gbw, 1.0 / nid.opamp_gain
    M = np.array([[-gu * (s[0] + bn + gl) / cf, gu * (s[0] + bn) / cf], [wt, -wt * (1 + inv_a)]])
    b = np.array([-gu * (a1[0, 0] + bn * c.target(y)[0]) / cf, wt * lay.vos[0]])
    return M, b


def model_settling(M, b, z0, band, horizon, points=40000):
    """Settling time of the model from z0: every node (V_col = p - u, V_out = p) within band of its change."""
    end = np.linalg.solve(M, -b)
    t = np.linspace(0, horizon, points)
    step = expm(M * (t[1] - t[0]))
    z = np.empty((points, 2))
    z[0] = z0 - end
    for i in range(1, points):
        z[i] = step @ z[i - 1]
    nodes = lambda d: np.stack([d[..., 1] - d[..., 0], d[..., 1]], axis=-1)
    dev = np.abs(nodes(z)).max(axis=1)
    out = np.flatnonzero(dev > band * np.abs(nodes(z0 - end)).max())
    return t[out[-1] + 1], end


def test_one_column_settles_as_its_closed_loop_poles_predict():
    sizes = (8, 1)
    net = saturating_network(sizes, seed=3, gain=1.0)
    x = np.random.default_rng(0).uniform(0, 1, (1, 8))
    y = np.ones((1, 1))
    beta, points = 0.5, 1000
    measured = []
    for gbw in GBWS:
        c = compile_circuit(sizes, net.params, "vground", Mismatch(g_dtod=0.05), die=1, clamp=False,
                            nonideal=Nonidealities(opamp_gain=1e5, opamp_gbw=gbw))
        r = simulate(c, x, y, beta, window_taus=12, points=points)
        step = r.window / points
        lay = Layer(c, 1)
        g_in, g_f = lay.S[0] * c.g_unit, lay.gf[0] * c.g_unit
        slow, fast = (float(p) for p in closed_loop_poles(g_in, g_f, c.values["cf1"][0] * c.c_unit, 1e5, gbw))
        free, nudged = float(r.free.settle_time[0]), float(r.nudged.settle_time[0])
        # free phase from rest: the step response of the two closed-loop poles (no zero)
        assert abs(free - step_settling(slow, fast)) <= 0.01 * free + step
        if math.isfinite(gbw):
            # the same from the column's state-space model, and the nudged phase from the free operating point
            M0, b0 = column_model(c, x[0], y[0], 0.0)
            assert np.allclose(sorted(np.linalg.eigvals(M0).real), sorted([fast, slow]), rtol=1e-9)
            t0, z_free = model_settling(M0, b0, np.zeros(2), 0.01, r.window)
            assert abs(free - t0) <= 0.01 * free + step
            M1, b1 = column_model(c, x[0], y[0], beta)
            t1, _ = model_settling(M1, b1, z_free, 0.01, r.window)
            assert abs(nudged - t1) <= 0.01 * nudged + 2 * step   # (+ the nudge switch's one-step ramp)
        else:   # one pole: every node decays as exp(slow t), in either phase
            bn = beta * c.values["nudge"][0] * c.g_unit
            slow1 = float(closed_loop_poles(g_in + bn, g_f + bn, c.values["cf1"][0] * c.c_unit, 1e5, gbw)[0])
            assert abs(nudged - math.log(100) / -slow1) <= 0.01 * nudged + 2 * step
        if gbw == 1e5:   # far below the column's own pole: GBW times the feedback factor g_f / (g_in + g_f)
            assert free == pytest.approx(math.log(100) / (2 * math.pi * gbw * g_f / (g_in + g_f)), rel=0.02)
        measured.append((free, nudged))
    free, nudged = np.array(measured).T
    assert np.all(np.diff(free) > 0) and np.all(np.diff(nudged) > 0)
    assert free[-1] > 50 * free[0]


def test_settling_slows_as_the_gain_bandwidth_drops():
    """A recurrent 12-8-4 network with the other op-amp non-idealities (no clamps: the ideal limiter's
    conductance makes transients stiff): every phase of every sample settles, ever later as GBW drops."""
    net = saturating_network((12, 8, 4), seed=1)
    x, y = batch(net.sizes, 3, seed=2)
    settle = []
    for gbw in GBWS:
        c = compile_circuit(net.sizes, net.params, "vground", SPREAD, die=3, clamp=False,
                            nonideal=Nonidealities(opamp_gain=1e4, opamp_rout=50.0, opamp_offset=1e-3, opamp_gbw=gbw))
        r = simulate(c, x, y, 0.5, window_taus=30, points=400)
        for ph in (r.free, r.nudged):
            assert np.all(np.isfinite(ph.settle_time)) and np.all(ph.settle_time < r.window)
            assert np.all(ph.energy > 0) and np.all(ph.power > 0)
        settle.append(np.concatenate([r.free.settle_time, r.nudged.settle_time]))
    settle = np.array(settle)
    assert np.all(np.diff(settle, axis=0) > 0)
